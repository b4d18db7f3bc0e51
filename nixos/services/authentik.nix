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
# Server and worker: since authentik 2025.8 the worker also runs an HTTP server (health) and a metrics server
# on `listen.http`/`listen.metrics`, so with one environment both units race for the same sockets and the
# loser's port may be taken by the worker's health-only server (nix-community/authentik-nix 6a08032,
# "module: override metrics & http address for worker"; goauthentik/authentik#22606). The worker gets its own
# loopback listeners, as authentik-nix does (on other ports than the outposts' 9301/9302). Migrations run once
# in authentik-migrate before both units (authentik-nix's authentik-migrate unit), so the two never migrate the
# same database at first start.
#
# No Redis: authentik 2025.10 moved caching, sessions, WebSocket channels and tasks to PostgreSQL, and
# nixpkgs' package dropped every Redis dependency with that update (NixOS/nixpkgs#456433, "authentik: 2025.8.4 ->
# 2025.10.1 … removes all redis dependencies", merged before nixos-25.11 branched; the pin ships 2025.12.x,
# NixOS/nixpkgs#523691).
#
# Checked against NixOS 25.11 (systemd.services, users.users) and authentik 2025.x configuration docs
# (AUTHENTIK_LISTEN__HTTP/HTTPS/METRICS, AUTHENTIK_POSTGRESQL__*, AUTHENTIK_SECRET_KEY, AUTHENTIK_BOOTSTRAP_TOKEN),
# goauthentik/authentik lifecycle/ak (`ak <command>` runs `python -m manage <command>`: `ak migrate` is
# Django's migrate; server and worker still run lifecycle.migrate, under a database lock, which is then a no-op).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkIf optionalAttrs;
  cfg = config.nixmox.authentik;
  host = config.nixmox.host;
  secrets = config.nixmox.secrets;
  db = cfg.database;
  credentials = "/run/credentials";
  bootstrapSecrets = lib.filterAttrs (name: _: builtins.elem name [ "bootstrap_token" "bootstrap_password" ]) secrets;

  # Where each unit listens. Only the server's HTTP listener is published; TLS is terminated by the reverse
  # proxy, so HTTPS stays on loopback (do not list 9443 in ports).
  listeners = {
    server = {
      http = "${cfg.listen.address}:${toString cfg.listen.port}";
      https = "127.0.0.1:${toString httpsPort}";
      metrics = "127.0.0.1:9300";
    };
    # Apart from the server's and from the LDAP/RADIUS outposts' metrics (9301/9302, authentik-outposts.nix).
    worker = {
      http = "127.0.0.1:9001";
      https = "127.0.0.1:9444";
      metrics = "127.0.0.1:9310";
    };
  };
  httpsPort = 9443;

  environmentFor = unit: role: {
    AUTHENTIK_LISTEN__HTTP = listeners.${role}.http;
    AUTHENTIK_LISTEN__HTTPS = listeners.${role}.https;
    AUTHENTIK_LISTEN__METRICS = listeners.${role}.metrics;
    AUTHENTIK_SECRET_KEY = "file://${credentials}/${unit}/secret_key";
    AUTHENTIK_DISABLE_STARTUP_ANALYTICS = "true";
    AUTHENTIK_ERROR_REPORTING__ENABLED = "false";
  } // optionalAttrs (db != null) {
    AUTHENTIK_POSTGRESQL__HOST = db.host;
    AUTHENTIK_POSTGRESQL__PORT = toString db.port;
    AUTHENTIK_POSTGRESQL__NAME = db.name;
    AUTHENTIK_POSTGRESQL__USER = db.owner;
    AUTHENTIK_POSTGRESQL__PASSWORD = "file://${credentials}/${unit}/db_password";
  };

  # role: "server" or "worker" (the listeners), command: the `ak` arguments.
  unitFor = unit: role: command: {
    description = "NixMox authentik ${command}";
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
    environment = environmentFor unit role;
    serviceConfig = {
      User = "authentik";
      Group = "authentik";
      ExecStart = "${pkgs.authentik}/bin/ak ${command}";
      StateDirectory = "authentik";
      WorkingDirectory = "/var/lib/authentik";
      LoadCredential = [ "secret_key:${secrets.secret_key or "/nonexistent"}" ]
        ++ lib.optional (db != null) "db_password:${db.passwordFile}";
      EnvironmentFile = lib.optional (bootstrapSecrets != { }) config.nixmox.environmentFiles.authentik.path;
    };
  };

  # recursiveUpdate replaces lists, so `after` is written out in full.
  longRunning = unit: role: command: lib.recursiveUpdate (unitFor unit role command) {
    wantedBy = [ "multi-user.target" ];
    after = [ "network-online.target" "authentik-migrate.service" ];
    requires = [ "authentik-migrate.service" ];
    serviceConfig = {
      Restart = "on-failure";
      RestartSec = 5;
    };
  };
in
{
  options.nixmox.authentik = import ./app-options.nix lib;

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

    # The package points authentik's media at /var/lib/authentik/media (package.nix postPatch).
    systemd.tmpfiles.rules = [ "d /var/lib/authentik/media 0750 authentik authentik -" ];

    warnings = lib.optional (builtins.elem httpsPort host.ports)
      "nixmox authentik: service \"${host.name}\" lists ${toString httpsPort} in ports, but authentik's HTTPS listener is bound to 127.0.0.1 (the reverse proxy terminates TLS); remove it from ports.";

    # Oneshot, ordered before both long-running units (they require it).
    systemd.services.authentik-migrate = lib.recursiveUpdate (unitFor "authentik-migrate.service" "server" "migrate") {
      # `ak server` and `ak worker` wait for the database themselves (lifecycle.wait_for_db); `ak migrate` does
      # not. At boot the PostgreSQL container may still be starting, and a failed oneshot would keep both units
      # down, so the unit first waits (bounded) until the database port accepts connections.
      preStart = lib.optionalString (db != null) ''
        for _ in $(seq 1 120); do
          if timeout 2 ${pkgs.bash}/bin/bash -c '</dev/tcp/${db.host}/${toString db.port}' 2>/dev/null; then exit 0; fi
          sleep 5
        done
        echo "authentik-migrate: PostgreSQL at ${db.host}:${toString db.port} did not accept connections within 10 minutes" >&2
        exit 1
      '';
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        TimeoutStartSec = "15min";
      };
    };
    systemd.services.authentik = longRunning "authentik.service" "server" "server";
    systemd.services.authentik-worker = longRunning "authentik-worker.service" "worker" "worker";

    nixmox.environmentFiles = mkIf (bootstrapSecrets != { }) {
      authentik = {
        consumers = [ "authentik-migrate.service" "authentik.service" "authentik-worker.service" ];
        variables = lib.mapAttrs' (name: path: lib.nameValuePair "AUTHENTIK_${lib.toUpper name}" { file = path; }) bootstrapSecrets;
      };
    };
  };
}
