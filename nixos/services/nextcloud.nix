# NixMox nextcloud module: Nextcloud (PHP-FPM behind the module's nginx) on the manifest's address and port,
# PostgreSQL from interface.db, and login through the manifest's OIDC client with the `user_oidc` app.
#
# Secrets: the database password goes through nixpkgs' own LoadCredential= (config.dbpassFile → `dbpass`, read
# by config.php's nix_read_secret). The OIDC provider is stored by user_oidc in the database, so a oneshot unit
# (nextcloud-oidc-provider.service, after nextcloud-setup.service) runs `occ user_oidc:provider` at every start
# of PHP-FPM; it reads the client secret from its credential file with --clientsecret-file (../lib/nextcloud.nix).
#
# What the plan does not provide yet: nixpkgs' nextcloud-setup.service needs an admin password file
# (services.nextcloud.config.adminpassFile, no default) to install Nextcloud. NixMox declares none, so this module
# uses the service's secret named `admin_password` when the manifest declares it (secrets, generate = true) or
# nixmox.nextcloud.adminPasswordFile, and stops the rebuild with an assertion otherwise.
# Known upstream limit: nixpkgs' first install runs `occ maintenance:install --database-pass "$DBPASS"
# --admin-pass "$ADMINPASS"`, so both values are on php's argv during that one command (Nextcloud's installer
# reads them from nowhere else).
#
# Checked against NixOS 25.11: nixos/modules/services/web-apps/nextcloud.nix (services.nextcloud.{enable,
# hostName,https,config.{dbtype,dbhost,dbname,dbuser,dbpassFile,adminpassFile},settings.{trusted_proxies,
# overwriteprotocol,"overwrite.cli.url"},extraApps,extraAppsEnable,occ,package}; units nextcloud-setup.service,
# phpfpm-nextcloud.service, nginx.service; the occ wrapper reads credentials from $CREDENTIALS_DIRECTORY and needs
# `dbpass` there), nixos/modules/services/web-servers/nginx/vhost-options.nix (virtualHosts.<name>.listen.{addr,
# port}) and nixpkgs' Nextcloud manual section "Installing Apps" (package.packages.apps.<app>, here user_oidc).
{ config, lib, ... }:
let
  inherit (lib) mkOption types mkIf optionalAttrs;
  cfg = config.nixmox.nextcloud;
  host = config.nixmox.host;
  db = cfg.database;
  oidc = cfg.oidc;
  ncLib = import ../lib/nextcloud.nix;
  oidcLib = import ../lib/oidc.nix;
  hasSecret = oidc != null && oidc.clientSecretFile != null;
  urlParts = if cfg.publicUrl == null then null else builtins.match "(https?)://([^/:]+)(:[0-9]+)?(/.*)?" cfg.publicUrl;
  https = urlParts != null && builtins.head urlParts == "https";
  # Nextcloud's main trusted domain: the route's domain, else the container's own name.
  hostName = if urlParts != null then builtins.elemAt urlParts 1 else "${host.hostName}.${host.domain}";
in
{
  options.nixmox.nextcloud = (import ./app-options.nix lib) // {
    adminPasswordFile = mkOption {
      type = types.nullOr (types.strMatching "/[A-Za-z0-9._/-]+");
      default = config.nixmox.secrets.admin_password or null;
      defaultText = "the service's secret `admin_password`, if declared";
      description = "Secret file with the password of Nextcloud's admin account (user root), used at the first install only.";
    };
  };

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox nextcloud: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
      {
        assertion = db != null;
        message = "nixmox nextcloud: service \"${host.name}\" needs a PostgreSQL database; set interface.db.host to the postgresql service.";
      }
      {
        assertion = cfg.adminPasswordFile != null;
        message = "nixmox nextcloud: service \"${host.name}\" needs an admin password to install Nextcloud; declare a secret named admin_password with generate = true under the service's secrets (or set nixmox.nextcloud.adminPasswordFile in a custom module).";
      }
      {
        assertion = oidc == null || hasSecret;
        message = "nixmox nextcloud: service \"${host.name}\" needs a confidential OIDC client (user_oidc sends a client secret); set interface.auth.oidc.client_type = \"confidential\".";
      }
      {
        assertion = oidc == null || oidcLib.isPlainName oidc.provider;
        message = "nixmox nextcloud: service \"${host.name}\": the SSO provider name ${builtins.toJSON (if oidc == null then "" else oidc.provider)} names the user_oidc provider; use letters, digits, '.', '_' or '-'.";
      }
      {
        assertion = cfg.publicUrl == null || urlParts != null;
        message = "nixmox nextcloud: service \"${host.name}\": public URL ${builtins.toJSON cfg.publicUrl} is not an http(s) URL.";
      }
    ];

    services.nextcloud = {
      enable = true;
      inherit hostName https;
      config = {
        dbtype = "pgsql";
        adminpassFile = mkIf (cfg.adminPasswordFile != null) cfg.adminPasswordFile;
      } // optionalAttrs (db != null) {
        dbhost = "${db.host}:${toString db.port}";
        dbname = db.name;
        dbuser = db.owner;
        dbpassFile = db.passwordFile;
      };
      settings = {
        # The reverse proxy is another container of the homelab network; Nextcloud then takes the client address
        # from X-Forwarded-For (brute-force protection per user, not per proxy).
        trusted_proxies = [ host.networkCidr ];
      } // optionalAttrs (cfg.publicUrl != null) {
        overwriteprotocol = if https then "https" else "http";
        "overwrite.cli.url" = cfg.publicUrl;
      };
      # Declaring extraApps turns the app store off (appstoreEnable null → false): apps come from nixpkgs only.
      extraApps = mkIf (oidc != null) { inherit (config.services.nextcloud.package.packages.apps) user_oidc; };
      extraAppsEnable = true;
    };

    # Only this address and port; the module's vhost would otherwise listen on every address at port 80.
    services.nginx.virtualHosts.${hostName}.listen = [ { addr = cfg.listen.address; port = cfg.listen.port; } ];

    systemd.services.nextcloud-oidc-provider = mkIf (hasSecret && db != null) {
      description = "NixMox: point Nextcloud's user_oidc at the manifest's OIDC client";
      after = [ "nextcloud-setup.service" ];
      requires = [ "nextcloud-setup.service" ];
      # Re-run whenever PHP-FPM restarts (a changed client secret restarts it), like the setup unit.
      partOf = [ "phpfpm-nextcloud.service" ];
      wantedBy = [ "multi-user.target" "phpfpm-nextcloud.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        User = "nextcloud";
        # `dbpass`: the occ wrapper's config.php reads the database password from this credential id.
        LoadCredential = [ "oidc_client_secret:${oidc.clientSecretFile}" "dbpass:${db.passwordFile}" ];
      };
      script = ncLib.providerCommand {
        occ = lib.getExe config.services.nextcloud.occ;
        inherit oidc;
        credential = "oidc_client_secret";
      };
    };
  };
}
