# NixMox guacamole module: guacd plus the Guacamole web app (Tomcat) on the manifest's port, with its
# PostgreSQL database and OpenID Connect login from the manifest.
#
# Guacamole reads guacamole.properties, which lives in the Nix store, so the database password is not put
# there: `enable-environment-properties` makes Guacamole read POSTGRESQL_PASSWORD from the environment
# (https://guacamole.apache.org/doc/gug/configuring-guacamole.html#guacamole-properties), and that variable
# comes from a root-only environment file composed at start (core option nixmox.environmentFiles).
# Guacamole's OpenID extension uses the implicit flow, so the client needs no secret.
#
# The JDBC and OpenID extensions are separate jars that nixpkgs does not package; list them in
# nixmox.guacamole.extensionJars (e.g. from a custom module of the manifest) and they are linked into
# GUACAMOLE_HOME/extensions. Without them Guacamole starts with its default authentication.
#
# Checked against NixOS 25.11: nixos/modules/services/web-apps/guacamole-server.nix (services.guacamole-server.
# {enable,host,port}), guacamole-client.nix (services.guacamole-client.{enable,enableWebserver,settings}) and
# nixos/modules/services/web-servers/tomcat.nix (services.tomcat.{port,javaOpts,jdk}; javaOpts is
# either str (listOf str)), and keytool(1) (-importcert -storetype PKCS12).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types mkIf optionalAttrs;
  cfg = config.nixmox.guacamole;
  host = config.nixmox.host;
  db = cfg.database;
  oidc = cfg.oidc;
  roots = config.nixmox.host.caCertificates;
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
      description = "Guacamole extension jars (guacamole-auth-jdbc-postgresql, guacamole-auth-sso-openid, …).";
    };
  };

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox guacamole: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
    ];

    warnings = lib.optional ((db != null || oidc != null) && cfg.extensionJars == [ ])
      "nixmox guacamole: service \"${host.name}\" has a database or OIDC client but no extension jars; Guacamole ignores both until nixmox.guacamole.extensionJars lists the JDBC/OpenID extensions.";

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
      } // optionalAttrs (oidc != null) {
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
    }) cfg.extensionJars);

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
