# NixMox guacamole module: guacd plus the Guacamole web app (Tomcat) on the manifest's port, with its
# PostgreSQL database and OpenID Connect login from the manifest.
#
# Guacamole reads guacamole.properties, which lives in the Nix store, so the database password is not put
# there: `enable-environment-properties` makes Guacamole read POSTGRESQL_PASSWORD from the environment
# (https://guacamole.apache.org/doc/gug/configuring-guacamole.html#guacamole-properties), and that variable
# comes from a root-only environment file composed at start (core option nixmox.environmentFiles).
# Guacamole's OpenID extension uses the implicit flow, so the client needs no secret.
#
# The JDBC and OpenID extensions are separate jars that nixpkgs does not package: they are fetched with the hashes
# pinned in nixos/lib/guacamole.nix for the guacamole-client version of the host's nixpkgs and linked into
# /etc/guacamole/extensions (Guacamole's GUACAMOLE_HOME when /etc/guacamole exists), with nixpkgs' PostgreSQL JDBC
# driver (postgresql_jdbc, share/java/postgresql-jdbc.jar) in /etc/guacamole/lib. A database or an OIDC client
# without its extension is an assertion, not a warning: for a version without pinned hashes, give the jars in
# nixmox.guacamole.extensionJars and the schema in nixmox.guacamole.schemaFile. The nixmox-guacamole-schema unit
# creates the JDBC schema once, as the database's owner (lib/guacamole.nix). Accounts of users who sign in through
# OpenID are created in the database on first login (postgresql-auto-create-accounts); nobody is an administrator
# until one is granted (README, Guacamole).
#
# Checked against NixOS 25.11: nixos/modules/services/web-apps/guacamole-server.nix (services.guacamole-server.
# {enable,host,port}), guacamole-client.nix (services.guacamole-client.{enable,enableWebserver,settings}) and
# nixos/modules/services/web-servers/tomcat.nix (services.tomcat.{port,javaOpts,jdk}; javaOpts is
# either str (listOf str)), and keytool(1) (-importcert -storetype PKCS12).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf optionalAttrs optional;
  guac = import ../lib/guacamole.nix;
  cfg = config.nixmox.guacamole;
  host = config.nixmox.host;
  db = cfg.database;
  oidc = cfg.oidc;
  roots = config.nixmox.host.caCertificates;
  version = config.services.guacamole-client.package.version;
  release = guac.releases.${version} or null;
  # One unpacked release tarball (stdenv's unpack phase knows .tar.gz).
  unpacked = part: pkgs.runCommand "guacamole-auth-${part}-${version}" { } ''
    mkdir -p $out && tar -xzf ${pkgs.fetchurl { url = guac.tarballUrl part version; hash = release.${part}; }} -C $out
  '';
  pinnedJars = if release == null then [ ] else
    optional (db != null) "${unpacked "jdbc"}/${guac.jdbcJar version}"
    ++ optional (oidc != null) "${unpacked "sso"}/${guac.openidJar version}";
  jars = pinnedJars ++ cfg.extensionJars;
  names = map baseNameOf jars;
  schema = if cfg.schemaFile != null then cfg.schemaFile
    else if release != null then "${unpacked "jdbc"}/${guac.schemaFile version}" else null;
  # A PKCS12 store of public certificates; its password only satisfies keytool (nothing secret is inside).
  trustStore = if roots == [ ] then null else pkgs.runCommand "nixmox-truststore.p12" { } (lib.concatStrings (lib.imap0 (i: pem: ''
    ${config.services.tomcat.jdk}/bin/keytool -importcert -noprompt -alias nixmox-root-${toString i} \
      -file ${pkgs.writeText "nixmox-root-${toString i}.pem" pem} -keystore $out -storetype PKCS12 -storepass nixmox
  '') roots));
in
{
  options.nixmox.guacamole = (import ./app-options.nix lib) // {
    guacdPort = mkOption { type = types.port; default = 4822; description = "Port of the local guacd (loopback only)."; };
    extensionJars = mkOption {
      type = types.listOf types.path;
      default = [ ];
      description = "More Guacamole extension jars, linked into /etc/guacamole/extensions next to the pinned JDBC/OpenID ones (for a guacamole-client version without pinned hashes: guacamole-auth-jdbc-postgresql-<v>.jar, guacamole-auth-sso-openid-<v>.jar).";
    };
    schemaFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "The JDBC extension's postgresql/schema/001-create-schema.sql; null: the pinned release's.";
    };
  };

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox guacamole: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
      {
        assertion = db == null || (builtins.any guac.isJdbcJar names && schema != null);
        message = "nixmox guacamole: service \"${host.name}\" has a database, but NixMox pins no extension hashes for guacamole-client ${version}; set nixmox.guacamole.extensionJars to include guacamole-auth-jdbc-postgresql-${version}.jar and nixmox.guacamole.schemaFile to its postgresql/schema/001-create-schema.sql.";
      }
      {
        assertion = oidc == null || builtins.any guac.isOpenidJar names;
        message = "nixmox guacamole: service \"${host.name}\" has an OIDC client, but NixMox pins no extension hashes for guacamole-client ${version}; set nixmox.guacamole.extensionJars to include guacamole-auth-sso-openid-${version}.jar.";
      }
    ];

    services.guacamole-server = {
      enable = true;
      host = "127.0.0.1";
      port = cfg.guacdPort;
    };

    services.tomcat.port = cfg.listen.port;
    # Java does not read the system CA bundle: Tomcat gets a trust store holding the managed CA's root, so the
    # OpenID extension's JWKS download from https://auth.<domain> verifies. Guacamole talks TLS to nothing else.
    services.tomcat.javaOpts = lib.mkIf (trustStore != null) [
      "-Djavax.net.ssl.trustStore=${trustStore}"
      "-Djavax.net.ssl.trustStoreType=PKCS12"
      "-Djavax.net.ssl.trustStorePassword=nixmox"
    ];

    services.guacamole-client = {
      enable = true;
      enableWebserver = true;
      settings = {
        guacd-hostname = "127.0.0.1";
        guacd-port = cfg.guacdPort;
        enable-environment-properties = true;
      } // optionalAttrs (db != null) {
        postgresql-hostname = db.host;
        postgresql-port = db.port;
        postgresql-database = db.name;
        postgresql-username = db.owner;
      } // optionalAttrs (db != null && oidc != null) {
        # Users who sign in through OpenID get a database account (for their connections and permissions).
        postgresql-auto-create-accounts = true;
      } // optionalAttrs (oidc != null) {
        # OpenID first: the login page sends users to Authentik instead of asking for a database password.
        extension-priority = "openid";
        openid-authorization-endpoint = oidc.authorizationEndpoint;
        openid-jwks-endpoint = oidc.jwksEndpoint;
        openid-issuer = oidc.issuer;
        openid-client-id = oidc.clientId;
        openid-redirect-uri = builtins.head oidc.redirectUris;
        openid-username-claim-type = oidc.usernameClaim;
        openid-groups-claim-type = oidc.groupsClaim;
        openid-scope = lib.concatStringsSep " " oidc.scopes;
      };
    };

    environment.etc = builtins.listToAttrs (map (jar: {
      name = "guacamole/extensions/${baseNameOf jar}";
      value.source = jar;
    }) jars) // optionalAttrs (db != null) {
      "guacamole/lib/postgresql-jdbc.jar".source = "${pkgs.postgresql_jdbc}/share/java/postgresql-jdbc.jar";
    };

    # Once per database: loads the schema when it is missing, before Tomcat starts (Wants, not Requires: Tomcat
    # still starts while the database host is down, and a failed load shows up as a failed unit at the switch).
    systemd.services.nixmox-guacamole-schema = mkIf (db != null && schema != null) {
      description = "NixMox: create the Guacamole database schema once";
      wantedBy = [ "multi-user.target" "tomcat.service" ];
      before = [ "tomcat.service" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        DynamicUser = true;
        LoadCredential = [ "db-password:${db.passwordFile}" ];
        Restart = "on-failure";
        RestartSec = 10;
      };
      script = guac.schemaCommand {
        psql = "${pkgs.postgresql}/bin/psql";
        inherit (db) host port;
        user = db.owner;
        database = db.name;
        credential = "db-password";
        script = pkgs.writeText "nixmox-guacamole-schema.sql" (guac.schemaScript schema);
      };
    };

    nixmox.environmentFiles = mkIf (db != null) {
      guacamole = {
        consumers = [ "tomcat.service" ];
        variables.POSTGRESQL_PASSWORD.file = db.passwordFile;
      };
    };

    systemd.services.tomcat.serviceConfig.EnvironmentFile =
      mkIf (db != null) [ config.nixmox.environmentFiles.guacamole.path ];
  };
}
