# NixMox authentik module: the SSO provider, run from nixpkgs' `authentik` package (`ak server` and
# `ak worker`) with its database on the manifest's PostgreSQL host.
#
# Why not the authentik-nix flake: it would add its own nixpkgs and half a dozen inputs (poetry2nix, napalm,
# flake-parts, …) to this host's flake.lock, and NixMox pins one nixpkgs for every host. nixpkgs packages
# authentik (pkgs/by-name/au/authentik/package.nix, binary `ak`) but ships no NixOS module, so this module is
# the small service wrapper. Applications, providers and outposts are created through the API by NixMox's
# Authentik dynamic providers, not here.
#
# Secrets: authentik reads any setting from a file given as "file://<path>"
# (https://docs.goauthentik.io/install-config/configuration/); the files are handed over with
# LoadCredential=. The bootstrap token NixMox uses for the API is only read from the environment, so it goes
# through a composed root-only environment file (core option nixmox.environmentFiles).
# Required secrets on this host: `secret_key`; optional: `bootstrap_token`, `bootstrap_password`.
#
# Checked against NixOS 25.11 (services.redis.servers.<name>, systemd.services, users.users) and authentik
# 2025.x configuration docs (AUTHENTIK_LISTEN__HTTP, AUTHENTIK_POSTGRESQL__*, AUTHENTIK_REDIS__*,
# AUTHENTIK_SECRET_KEY, AUTHENTIK_BOOTSTRAP_TOKEN).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf optionalAttrs;
  cfg = config.nixmox.authentik;
  host = config.nixmox.host;
  secrets = config.nixmox.secrets;
  db = cfg.database;
  credentials = "/run/credentials";
  bootstrapSecrets = lib.filterAttrs (name: _: builtins.elem name [ "bootstrap_token" "bootstrap_password" ]) secrets;

  environmentFor = unit: {
    AUTHENTIK_LISTEN__HTTP = "${cfg.listen.address}:${toString cfg.listen.port}";
    # Only the HTTP listener is published; TLS is terminated by the reverse proxy.
    AUTHENTIK_LISTEN__HTTPS = "127.0.0.1:9443";
    AUTHENTIK_LISTEN__METRICS = "127.0.0.1:9300";
    AUTHENTIK_SECRET_KEY = "file://${credentials}/${unit}/secret_key";
    AUTHENTIK_REDIS__HOST = "127.0.0.1";
    AUTHENTIK_REDIS__PORT = toString cfg.redisPort;
    AUTHENTIK_DISABLE_STARTUP_ANALYTICS = "true";
    AUTHENTIK_ERROR_REPORTING__ENABLED = "false";
  } // optionalAttrs (db != null) {
    AUTHENTIK_POSTGRESQL__HOST = db.host;
    AUTHENTIK_POSTGRESQL__PORT = toString db.port;
    AUTHENTIK_POSTGRESQL__NAME = db.name;
    AUTHENTIK_POSTGRESQL__USER = db.owner;
    AUTHENTIK_POSTGRESQL__PASSWORD = "file://${credentials}/${unit}/db_password";
  };

  unitFor = unit: command: {
    description = "NixMox authentik ${command}";
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" "redis-authentik.service" ];
    wants = [ "network-online.target" ];
    requires = [ "redis-authentik.service" ];
    environment = environmentFor unit;
    serviceConfig = {
      User = "authentik";
      Group = "authentik";
      ExecStart = "${pkgs.authentik}/bin/ak ${command}";
      StateDirectory = "authentik";
      WorkingDirectory = "/var/lib/authentik";
      Restart = "on-failure";
      RestartSec = 5;
      LoadCredential = [ "secret_key:${secrets.secret_key or "/nonexistent"}" ]
        ++ lib.optional (db != null) "db_password:${db.passwordFile}";
      EnvironmentFile = lib.optional (bootstrapSecrets != { }) config.nixmox.environmentFiles.authentik.path;
    };
  };
in
{
  options.nixmox.authentik = (import ./app-options.nix lib) // {
    redisPort = mkOption { type = types.port; default = 6379; description = "Port of the local Redis authentik uses (loopback only)."; };
  };

  config = {
    assertions = [
      {
        assertion = secrets ? secret_key;
        message = "nixmox authentik: service \"${host.name}\" needs a secret named secret_key (authentik's AUTHENTIK_SECRET_KEY); declare it under the service's secrets with generate = true.";
      }
      {
        assertion = db != null;
        message = "nixmox authentik: service \"${host.name}\" needs a PostgreSQL database; set interface.db.host to the postgresql service.";
      }
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox authentik: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports (the outpost answers forward auth there too).";
      }
    ];

    users.users.authentik = {
      isSystemUser = true;
      group = "authentik";
    };
    users.groups.authentik = { };

    services.redis.servers.authentik = {
      enable = true;
      bind = "127.0.0.1";
      port = cfg.redisPort;
    };

    # The package points authentik's media at /var/lib/authentik/media (package.nix postPatch).
    systemd.tmpfiles.rules = [ "d /var/lib/authentik/media 0750 authentik authentik -" ];

    systemd.services.authentik = unitFor "authentik.service" "server";
    systemd.services.authentik-worker = unitFor "authentik-worker.service" "worker";

    nixmox.environmentFiles = mkIf (bootstrapSecrets != { }) {
      authentik = {
        consumers = [ "authentik.service" "authentik-worker.service" ];
        variables = lib.mapAttrs' (name: path: lib.nameValuePair "AUTHENTIK_${lib.toUpper name}" { file = path; }) bootstrapSecrets;
      };
    };
  };
}
