# NixMox vaultwarden module: Vaultwarden on the manifest's address and port, PostgreSQL from interface.db,
# SSO through the manifest's OIDC client.
#
# Secrets: DATABASE_URL embeds the owner's password, so it is composed at start from the secret file into a
# root-only environment file (core option nixmox.environmentFiles); the OIDC client secret is handed over
# with LoadCredential= and read by Vaultwarden itself through SSO_CLIENT_SECRET_FILE (Vaultwarden reads any
# setting from "<NAME>_FILE", https://github.com/dani-garcia/vaultwarden/wiki/Configuration-overview).
#
# Checked against NixOS 25.11: nixos/modules/services/security/vaultwarden/default.nix (services.vaultwarden.
# {enable,dbBackend,config,environmentFile}) and Vaultwarden's .env.template (ROCKET_ADDRESS, ROCKET_PORT,
# DOMAIN, DATABASE_URL, SSO_ENABLED, SSO_AUTHORITY, SSO_CLIENT_ID, SSO_CLIENT_SECRET, SSO_SCOPES). SSO_* need
# Vaultwarden >= 1.35.0 (the SSO release, 2025-12-28, NixOS/nixpkgs#474836 on master; whether nixos-25.11 got it
# depends on the pin), so an OIDC client on an older package is an evaluation error, not a silent password login.
# SSO_SCOPES: Vaultwarden always asks for `openid` itself (its default is "email profile"), so it is left out.
{ config, lib, ... }:
let
  inherit (lib) mkIf optionalAttrs;
  cfg = config.nixmox.vaultwarden;
  host = config.nixmox.host;
  db = cfg.database;
  oidc = cfg.oidc;
in
{
  options.nixmox.vaultwarden = import ./app-options.nix lib;

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox vaultwarden: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
      {
        assertion = oidc == null || lib.versionAtLeast config.services.vaultwarden.package.version "1.35.0";
        message = "nixmox vaultwarden: service \"${host.name}\" has an OIDC client, but Vaultwarden ${config.services.vaultwarden.package.version} has no SSO (it needs 1.35.0 or later); pin a newer nixpkgs (stack config nixmox:nixpkgsRev) or remove interface.auth.";
      }
      {
        assertion = oidc == null || oidc.clientSecretFile != null;
        message = "nixmox vaultwarden: service \"${host.name}\" needs a confidential OIDC client (Vaultwarden sends a client secret); set interface.auth.oidc.client_type = \"confidential\".";
      }
    ];

    services.vaultwarden = {
      enable = true;
      dbBackend = if db == null then "sqlite" else "postgresql";
      environmentFile = mkIf (db != null) config.nixmox.environmentFiles.vaultwarden.path;
      config = {
        ROCKET_ADDRESS = cfg.listen.address;
        ROCKET_PORT = cfg.listen.port;
        SIGNUPS_ALLOWED = false;
      } // optionalAttrs (cfg.publicUrl != null) {
        DOMAIN = cfg.publicUrl;
      } // optionalAttrs (oidc != null) {
        SSO_ENABLED = true;
        SSO_AUTHORITY = oidc.issuer;
        SSO_CLIENT_ID = oidc.clientId;
        SSO_SCOPES = lib.concatStringsSep " " (builtins.filter (scope: scope != "openid") oidc.scopes);
        # $CREDENTIALS_DIRECTORY of the unit (systemd.exec(5)); a literal path because these settings go
        # through an EnvironmentFile, where systemd does not expand the %d specifier.
        SSO_CLIENT_SECRET_FILE = "/run/credentials/vaultwarden.service/oidc_client_secret";
      };
    };

    nixmox.environmentFiles = mkIf (db != null) {
      vaultwarden = {
        consumers = [ "vaultwarden.service" ];
        variables.DATABASE_URL = {
          file = db.passwordFile;
          encoding = "uri";
          prefix = "postgresql://${db.owner}:";
          suffix = "@${db.host}:${toString db.port}/${db.name}";
        };
      };
    };

    systemd.services.vaultwarden.serviceConfig.LoadCredential =
      mkIf (oidc != null && oidc.clientSecretFile != null) [ "oidc_client_secret:${oidc.clientSecretFile}" ];
  };
}
