# Option declarations shared by the application modules (authentik, vaultwarden, guacamole): where the app
# listens, its public URL, its database and its OIDC client, exactly as sliced for the host by
# render/host-data.ts. A function of nixpkgs' lib; imported by those modules only.
#
# Checked against NixOS 25.11 lib (lib.mkOption, lib.types.{str,port,nullOr,submodule,listOf,enum,strMatching}).
lib:
let
  inherit (lib) mkOption types;
  secretPath = types.strMatching "/[A-Za-z0-9._/-]+";
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
    description = "The app's PostgreSQL database (manifest interface.db); null: none.";
    type = types.nullOr (types.submodule {
      options = {
        host = mkOption { type = types.str; description = "PostgreSQL server address."; };
        port = mkOption { type = types.port; description = "PostgreSQL port."; };
        name = mkOption { type = types.strMatching "[a-z_][a-z0-9_]*"; description = "Database name."; };
        owner = mkOption { type = types.strMatching "[a-z_][a-z0-9_]*"; description = "Login role."; };
        passwordFile = mkOption { type = secretPath; description = "Secret file with the role's password."; };
      };
    });
  };

  oidc = mkOption {
    default = null;
    description = "The app's OIDC client at the SSO provider (manifest interface.auth type oidc); null: none.";
    type = types.nullOr (types.submodule {
      options = {
        provider = mkOption { type = types.str; description = "Service providing SSO (authentik)."; };
        clientId = mkOption { type = types.str; description = "OIDC client id."; };
        clientType = mkOption { type = types.enum [ "confidential" "public" ]; description = "Client type."; };
        clientSecretFile = mkOption { type = types.nullOr secretPath; default = null; description = "Secret file with the client secret (confidential clients)."; };
        issuer = mkOption { type = types.str; description = "Issuer URL (authentik: <base>/application/o/<slug>/)."; };
        authorizationEndpoint = mkOption { type = types.str; description = "Authorization endpoint URL."; };
        tokenEndpoint = mkOption { type = types.str; description = "Token endpoint URL."; };
        jwksEndpoint = mkOption { type = types.str; description = "JWKS URL."; };
        redirectUris = mkOption { type = types.listOf types.str; description = "Allowed redirect URIs."; };
        scopes = mkOption { type = types.listOf types.str; description = "Requested scopes."; };
        usernameClaim = mkOption { type = types.str; description = "Claim holding the user name."; };
        groupsClaim = mkOption { type = types.str; description = "Claim holding the groups."; };
      };
    });
  };
}
