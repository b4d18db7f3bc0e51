# Option declarations shared by the application modules (authentik, vaultwarden, guacamole, forgejo, nextcloud,
# monitoring, media, openbao, mail, pgadmin) and by custom modules (`nixmox.custom`): where the app listens, its
# public URL, its databases, its OIDC clients, its routes and the apps of a multi-app kind, exactly as sliced for
# the host by render/host-data.ts (`AppData`). A function of nixpkgs' lib; imported by those modules only.
#
# Checked against NixOS 25.11 lib (lib.mkOption, lib.types.{str,port,nullOr,submodule,listOf,enum,strMatching}).
lib:
let
  inherit (lib) mkOption types;
  secretPath = types.strMatching "/[A-Za-z0-9._/-]+";
  pgName = types.strMatching "[a-z_][a-z0-9_-]*";
  listenOptions = {
    address = mkOption { type = types.str; description = "Address the app listens on (the host's IP)."; };
    port = mkOption { type = types.port; description = "Port the app listens on (its route upstream's port)."; };
  };
  database = types.submodule {
    options = {
      host = mkOption { type = types.str; description = "PostgreSQL server address."; };
      port = mkOption { type = types.port; description = "PostgreSQL port."; };
      name = mkOption { type = pgName; description = "Database name."; };
      owner = mkOption { type = pgName; description = "Login role."; };
      passwordFile = mkOption { type = secretPath; description = "Secret file with the role's password."; };
      additional = mkOption { type = types.listOf pgName; default = [ ]; description = "More databases owned by the same role."; };
    };
  };
  oidc = types.submodule {
    options = {
      provider = mkOption { type = types.str; description = "Service providing SSO (authentik)."; };
      clientId = mkOption { type = types.str; description = "OIDC client id."; };
      clientType = mkOption { type = types.enum [ "confidential" "public" ]; description = "Client type."; };
      clientSecretFile = mkOption { type = types.nullOr secretPath; default = null; description = "Secret file with the client secret (confidential clients)."; };
      issuer = mkOption { type = types.str; description = "Issuer URL (authentik: <base>/application/o/<slug>/)."; };
      authorizationEndpoint = mkOption { type = types.str; description = "Authorization endpoint URL."; };
      tokenEndpoint = mkOption { type = types.str; description = "Token endpoint URL."; };
      userinfoEndpoint = mkOption { type = types.str; description = "Userinfo endpoint URL."; };
      jwksEndpoint = mkOption { type = types.str; description = "JWKS URL."; };
      redirectUris = mkOption { type = types.listOf types.str; description = "Allowed redirect URIs."; };
      scopes = mkOption { type = types.listOf types.str; description = "Requested scopes."; };
      usernameClaim = mkOption { type = types.str; description = "Claim holding the user name."; };
      groupsClaim = mkOption { type = types.str; description = "Claim holding the groups."; };
    };
  };
  auth = types.nullOr (types.enum [ "oidc" "forward_auth" ]);
in
{
  listen = {
    address = mkOption { type = types.str; description = "Address the app listens on (the host's IP)."; };
    port = mkOption { type = types.port; description = "Port the app listens on (its route upstream's port)."; };
  };

  publicUrl = mkOption {
    type = types.nullOr types.str;
    default = null;
    description = "URL users reach the app at (its first route, scheme from the route's tls); null without a route.";
  };

  database = mkOption {
    default = null;
    description = "The app's PostgreSQL database (manifest interface.db, or its only interface.dbs entry); null: none.";
    type = types.nullOr database;
  };

  databases = mkOption {
    default = { };
    description = "Every database of the service: \"db\" for interface.db, else the interface.dbs entry name.";
    type = types.attrsOf database;
  };

  oidc = mkOption {
    default = null;
    description = "The service's OIDC client at the SSO provider (manifest interface.auth type oidc); null: none.";
    type = types.nullOr oidc;
  };

  routes = mkOption {
    default = { };
    description = "The service's routes by name (\"default\" for a single interface.proxy).";
    type = types.attrsOf (types.submodule {
      options = {
        domain = mkOption { type = types.str; description = "Route domain."; };
        path = mkOption { type = types.str; description = "Route path prefix."; };
        url = mkOption { type = types.str; description = "Public URL of the route."; };
        upstreamPort = mkOption { type = types.port; description = "Port the proxy sends the route's requests to."; };
        auth = mkOption { type = auth; default = null; description = "The route's auth: oidc (the app logs in), forward_auth (the proxy asks first) or null."; };
      };
    });
  };

  apps = mkOption {
    default = { };
    description = "The apps this kind runs (manifest/kinds.ts), by name: where each listens, its URL and login.";
    type = types.attrsOf (types.submodule {
      options = {
        listen = listenOptions;
        publicUrl = mkOption { type = types.nullOr types.str; default = null; description = "URL of the app's route; null without one."; };
        oidc = mkOption { type = types.nullOr oidc; default = null; description = "The app's OIDC client (its route's own, or the service's); null: none."; };
        auth = mkOption { type = auth; default = null; description = "The auth of the app's route."; };
      };
    });
  };
}
