# NixMox postgresql module: one database and owner role per `interface.db` request of the manifest, owner
# passwords set from secret files each time PostgreSQL starts, and a pg_hba that lets each owner in only
# to its database and only from its service's address. When the host runs pgAdmin, pgAdmin gets a role of its
# own ("pgadmin", secret pgadmin_db_password) that logs in from loopback only (review N2).
#
# Password handling: the file is handed to the setup unit with LoadCredential= (systemd reads it as root; the
# unit sees a private copy), psql reads it with a backquoted `cat` into a psql variable and sends it as a
# literal (see ../lib/postgresql.nix). The value is never in the store, a unit file, an argv or the log.
#
# Checked against NixOS 25.11: nixos/modules/services/databases/postgresql.nix (services.postgresql.{enable,
# package,enableTCPIP,authentication,settings.port}) and systemd.exec(5) (LoadCredential=, $CREDENTIALS_DIRECTORY).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixmox.postgresql;
  host = config.nixmox.host;
  pgLib = import ../lib/postgresql.nix;
  shell = import ../lib/shell.nix;
  setupScript = pkgs.writeText "nixmox-postgresql-passwords.sql" (pgLib.setupScriptWith cfg.admin cfg.databases);
in
{
  options.nixmox.postgresql = {
    port = mkOption { type = types.port; default = 5432; description = "TCP port PostgreSQL listens on."; };
    databases = mkOption {
      type = types.listOf (types.submodule {
        options = {
          service = mkOption { type = types.str; description = "Application that uses the database."; };
          name = mkOption { type = types.str; description = "Database name."; };
          owner = mkOption { type = types.str; description = "Owner role, the application's login."; };
          clientIp = mkOption { type = types.str; description = "The application's IPv4 address (pg_hba)."; };
          credential = mkOption { type = types.str; description = "systemd credential id of the owner's password."; };
          passwordFile = mkOption { type = types.strMatching "/[A-Za-z0-9._/-]+"; description = "Secret file holding the owner's password."; };
        };
      });
      default = [ ];
      description = "Databases requested by the manifest's services.";
    };
    admin = mkOption {
      default = null;
      description = "pgAdmin's own role on this host (it runs pgAdmin): it logs in from loopback with its password (../lib/postgresql.nix adminSetup).";
      type = types.nullOr (types.submodule {
        options = {
          role = mkOption { type = types.strMatching "[a-z_][a-z0-9_-]{0,62}"; description = "Role name."; };
          credential = mkOption { type = types.strMatching "[A-Za-z0-9_.-]+"; description = "systemd credential id of its password."; };
          passwordFile = mkOption { type = types.strMatching "/[A-Za-z0-9._/-]+"; description = "Secret file holding its password."; };
        };
      });
    };
  };

  config = {
    assertions = [
      {
        assertion = pgLib.invalidDatabases cfg.databases == [ ];
        message = "nixmox postgresql: database requests must use plain identifiers and IPv4 client addresses, got: ${builtins.toJSON (map (d: d.service) (pgLib.invalidDatabases cfg.databases))}.";
      }
      {
        assertion = cfg.admin == null || !(builtins.any (db: db.owner == cfg.admin.role) cfg.databases);
        message = "nixmox postgresql: service \"${host.name}\" runs pgAdmin, whose role is \"${if cfg.admin == null then "" else cfg.admin.role}\", and a database request uses the same owner; give that database another owner (interface.db.owner).";
      }
      {
        assertion = builtins.elem cfg.port host.ports;
        message = "nixmox postgresql: service \"${host.name}\" must list port ${toString cfg.port} in ports, or its clients cannot connect.";
      }
    ];

    services.postgresql = {
      enable = true;
      enableTCPIP = true;
      settings = {
        port = cfg.port;
        password_encryption = "scram-sha-256";
      };
      # mkForce: the module's defaults would also accept any local role and 127.0.0.1 with a password;
      # the only remote logins are the manifest's (see ../lib/postgresql.nix, hbaLines).
      authentication = lib.mkForce (pgLib.hbaWith cfg.admin cfg.databases);
    };

    systemd.services.nixmox-postgresql-passwords = lib.mkIf (cfg.databases != [ ] || cfg.admin != null) {
      description = "NixMox: create the manifest's databases and set their owners' passwords";
      after = [ "postgresql.service" ];
      requires = [ "postgresql.service" ];
      # Re-run whenever PostgreSQL restarts, so a rotated password file takes effect with the restart.
      partOf = [ "postgresql.service" ];
      wantedBy = [ "multi-user.target" "postgresql.service" ];
      path = [ config.services.postgresql.package pkgs.coreutils ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        User = "postgres";
        Group = "postgres";
        LoadCredential = lib.mapAttrsToList (id: file: "${shell.credentialId id}:${file}") (pgLib.credentialsWith cfg.admin cfg.databases);
        ExecStart = "${config.services.postgresql.package}/bin/psql --no-psqlrc --port=${toString cfg.port} --dbname=postgres --file=${setupScript}";
      };
    };
  };
}
