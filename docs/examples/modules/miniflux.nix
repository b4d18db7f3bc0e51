# A custom app for NixMox: Miniflux on its own host, with its PostgreSQL database and SSO from the manifest.
# See docs/custom-apps.md. Everything host-specific comes from `config.nixmox.custom` (host.json); no address,
# port, domain or password is written here.
#
# Checked against NixOS 25.11 nixos/modules/services/web-apps/miniflux.nix (services.miniflux.{enable,
# createDatabaseLocally,config}; the unit is miniflux.service with DynamicUser) and Miniflux's configuration
# docs (LISTEN_ADDR, BASE_URL, DATABASE_URL, CREATE_ADMIN, OAUTH2_PROVIDER=oidc, OAUTH2_CLIENT_ID,
# OAUTH2_CLIENT_SECRET_FILE, OAUTH2_REDIRECT_URL, OAUTH2_OIDC_DISCOVERY_ENDPOINT, OAUTH2_USER_CREATION).
{ config, lib, ... }:
let
  app = config.nixmox.custom;
  db = app.database;
  oidc = app.oidc;
  credentials = "/run/credentials/miniflux.service";
in
{
  imports = [ ./hardening.nix ];

  assertions = [
    { assertion = db != null; message = "miniflux: give the service an interface.db"; }
    { assertion = oidc != null && oidc.clientSecretFile != null; message = "miniflux: give the service a confidential interface.auth (type oidc)"; }
  ];

  services.miniflux = {
    enable = true;
    # The database lives on the manifest's PostgreSQL host, created there by NixMox.
    createDatabaseLocally = false;
    config = {
      LISTEN_ADDR = "${app.listen.address}:${toString app.listen.port}";
      BASE_URL = app.publicUrl;
      CREATE_ADMIN = false;
      # The real value (it holds the password) comes from the environment file below, which systemd reads after
      # Environment= and so overrides this placeholder (systemd.exec(5), EnvironmentFile=).
      DATABASE_URL = "set-at-start";
      OAUTH2_PROVIDER = "oidc";
      OAUTH2_CLIENT_ID = oidc.clientId;
      OAUTH2_CLIENT_SECRET_FILE = "${credentials}/oidc_client_secret";
      OAUTH2_REDIRECT_URL = builtins.head oidc.redirectUris;
      OAUTH2_OIDC_DISCOVERY_ENDPOINT = lib.removeSuffix "/" oidc.issuer;
      OAUTH2_USER_CREATION = 1;
    };
  };

  # DATABASE_URL embeds the owner's password: NixMox composes it when the unit starts, root-only, never in the store.
  nixmox.environmentFiles.miniflux = {
    consumers = [ "miniflux.service" ];
    variables.DATABASE_URL = {
      file = db.passwordFile;
      encoding = "uri";
      prefix = "postgres://${db.owner}:";
      suffix = "@${db.host}:${toString db.port}/${db.name}?sslmode=disable";
    };
  };

  systemd.services.miniflux.serviceConfig = {
    EnvironmentFile = [ config.nixmox.environmentFiles.miniflux.path ];
    # The secret files are root-only; systemd hands a private copy to the DynamicUser service.
    LoadCredential = [ "oidc_client_secret:${oidc.clientSecretFile}" ];
  };
}
