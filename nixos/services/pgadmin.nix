# NixMox pgadmin module: pgAdmin 4 on the manifest's address and port, logging in through the manifest's OIDC
# client. Imported on a host of kind "pgadmin" and on a PostgreSQL host that has a route (the original NixMox
# layout); both read `config.nixmox.pgadmin`.
#
# Secrets: nixpkgs' module writes config_system.py from the Nix store, so the OIDC client secret is not a setting:
# OAUTH2_CLIENT_SECRET is a Python expression that reads the file systemd hands over with LoadCredential=
# (see ../lib/pgadmin.nix). The initial account's password goes through the module's own LoadCredential=.
#
# What the plan does not provide yet: pgAdmin always creates one internal account (nixpkgs runs `pgadmin4-cli
# setup-db` with an email and a password file before every start; both options have no default). NixMox has no
# such data, so this module asks for it instead of inventing it: nixmox.pgadmin.initialEmail (set it in a custom
# module of the service) and a password file, by default the service's secret named `pgadmin_password` (declare
# it under the service's secrets with generate = true). Until both exist the rebuild stops with an assertion.
#
# Checked against NixOS 25.11: nixos/modules/services/admin/pgadmin.nix (services.pgadmin.{enable,port,
# initialEmail,initialPasswordFile,settings}; unit pgadmin.service, LoadCredential list) and pgAdmin's config.py
# (DEFAULT_SERVER, AUTHENTICATION_SOURCES, OAUTH2_AUTO_CREATE_USER, OAUTH2_CONFIG;
# https://www.pgadmin.org/docs/pgadmin4/latest/config_py.html, .../oauth2.html).
{ config, lib, ... }:
let
  inherit (lib) mkOption types mkIf optionalAttrs;
  cfg = config.nixmox.pgadmin;
  host = config.nixmox.host;
  oidc = cfg.oidc;
  pgadminLib = import ../lib/pgadmin.nix;
  hasSecret = oidc != null && oidc.clientSecretFile != null;
in
{
  options.nixmox.pgadmin = (import ./app-options.nix lib) // {
    initialEmail = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Email of pgAdmin's initial internal account (nixpkgs requires one); not in the manifest, set it in a custom module.";
    };
    initialPasswordFile = mkOption {
      type = types.nullOr (types.strMatching "/[A-Za-z0-9._/-]+");
      default = config.nixmox.secrets.pgadmin_password or null;
      defaultText = "the service's secret `pgadmin_password`, if declared";
      description = "Secret file with the initial account's password (at least 6 characters).";
    };
  };

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox pgadmin: service \"${host.name}\" runs pgAdmin on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
      {
        assertion = cfg.initialEmail != null && cfg.initialPasswordFile != null;
        message = "nixmox pgadmin: service \"${host.name}\" runs pgAdmin, which needs an initial account: set nixmox.pgadmin.initialEmail in a custom module (nixos_modules) and declare a secret named pgadmin_password with generate = true under the service's secrets (or set nixmox.pgadmin.initialPasswordFile).";
      }
      {
        assertion = oidc == null || hasSecret;
        message = "nixmox pgadmin: service \"${host.name}\" needs a confidential OIDC client (pgAdmin sends a client secret); set interface.auth.oidc.client_type = \"confidential\".";
      }
    ];

    # pgAdmin names OAuth2 users by their email claim and refuses a login without one (oauth2.html).
    warnings = lib.optional (oidc != null && !(builtins.elem "email" oidc.scopes))
      "nixmox pgadmin: service \"${host.name}\": the OIDC scopes ${builtins.toJSON (if oidc == null then [ ] else oidc.scopes)} do not include email; pgAdmin refuses OAuth2 logins without an email claim. Add \"email\" to interface.auth.oidc.scopes.";

    services.pgadmin = {
      enable = true;
      port = cfg.listen.port;
      # Left undefined when missing: NixOS reports the failed assertion above before it reads these.
      initialEmail = mkIf (cfg.initialEmail != null) cfg.initialEmail;
      initialPasswordFile = mkIf (cfg.initialPasswordFile != null) cfg.initialPasswordFile;
      settings = {
        # The module listens on localhost unless openFirewall; the firewall is NixMox's (core.nix), so the
        # address is set here instead.
        DEFAULT_SERVER = cfg.listen.address;
      } // optionalAttrs (oidc != null) {
        AUTHENTICATION_SOURCES = [ "oauth2" "internal" ];
        OAUTH2_AUTO_CREATE_USER = true;
        OAUTH2_CONFIG._expr = pgadminLib.oauth2Config { inherit oidc; credential = "oidc_client_secret"; };
      };
    };

    systemd.services.pgadmin = {
      # Appended to the module's own list (initial_password); readable by the unit's user through
      # $CREDENTIALS_DIRECTORY, for pgadmin4 and for its preStart alike.
      serviceConfig.LoadCredential = mkIf hasSecret [ "oidc_client_secret:${oidc.clientSecretFile}" ];
      # On a PostgreSQL host a changed secret restarts the kind's units, postgresql.service only
      # (manifest/kinds.ts); partOf carries that restart to pgAdmin, which reads its secret only when it starts.
      partOf = mkIf (host.kind == "postgresql") [ "postgresql.service" ];
    };
  };
}
