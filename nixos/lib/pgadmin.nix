# Pure builders for nixos/services/pgadmin.nix (builtins only; evaluated for real in tests, and the Python they
# produce is run by a real python3 there).
#
# Checked against: pgAdmin 4 "Enabling OAUTH2 Authentication" (https://www.pgadmin.org/docs/pgadmin4/latest/
# oauth2.html: AUTHENTICATION_SOURCES, OAUTH2_AUTO_CREATE_USER, OAUTH2_CONFIG keys OAUTH2_NAME, OAUTH2_DISPLAY_NAME,
# OAUTH2_CLIENT_ID, OAUTH2_CLIENT_SECRET, OAUTH2_TOKEN_URL, OAUTH2_AUTHORIZATION_URL, OAUTH2_SERVER_METADATA_URL,
# OAUTH2_API_BASE_URL, OAUTH2_USERINFO_ENDPOINT, OAUTH2_SCOPE, OAUTH2_USERNAME_CLAIM) and NixOS 25.11
# nixos/modules/services/admin/pgadmin.nix (settings values with `_expr` are written to config_system.py verbatim).
let
  inherit (builtins) concatStringsSep toJSON attrNames map;
  oidcLib = import ./oidc.nix;

  # A Python string literal: JSON string syntax is valid Python (the nixpkgs module formats strings the same way).
  py = toJSON;
in
rec {
  # Python expression reading the client secret from the unit's credential directory at the moment pgAdmin
  # loads its configuration: the secret is never in config_system.py (which is built in the Nix store). Outside
  # the unit (no $CREDENTIALS_DIRECTORY, e.g. an admin running pgadmin4-cli) it is the empty string, so the
  # configuration still loads and only OAuth2 logins fail.
  secretExpr = credential:
    "(lambda d: open(d + \"/\" + ${py credential}).read().rstrip(\"\\n\") if d else \"\")"
    + "(__import__(\"os\").environ.get(\"CREDENTIALS_DIRECTORY\"))";

  # OAUTH2_CONFIG as a Python list expression with one provider, from the host data's `oidc` attribute set.
  oauth2Config = { oidc, credential }:
    let
      fields = {
        OAUTH2_NAME = py oidc.provider;
        OAUTH2_DISPLAY_NAME = py oidc.provider;
        OAUTH2_CLIENT_ID = py oidc.clientId;
        OAUTH2_CLIENT_SECRET = secretExpr credential;
        OAUTH2_TOKEN_URL = py oidc.tokenEndpoint;
        OAUTH2_AUTHORIZATION_URL = py oidc.authorizationEndpoint;
        OAUTH2_SERVER_METADATA_URL = py (oidcLib.discoveryUrl oidc.issuer);
        OAUTH2_API_BASE_URL = py oidc.issuer;
        OAUTH2_USERINFO_ENDPOINT = py oidc.userinfoEndpoint;
        OAUTH2_SCOPE = py (concatStringsSep " " oidc.scopes);
        OAUTH2_USERNAME_CLAIM = py oidc.usernameClaim;
      };
    in
    "[{" + concatStringsSep ", " (map (key: "${py key}: ${fields.${key}}") (attrNames fields)) + "}]";
}
