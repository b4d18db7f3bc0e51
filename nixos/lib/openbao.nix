# Pure builders for nixos/services/openbao.nix (builtins only; evaluated for real in tests, and the script they
# produce is run by a real /bin/sh against a stand-in `bao` there).
#
# Checked against: OpenBao JWT/OIDC auth method API (https://openbao.org/api-docs/auth/jwt/: config
# oidc_discovery_url (the issuer, without .well-known), oidc_client_id, oidc_client_secret, default_role; role
# role_type, user_claim, groups_claim, allowed_redirect_uris, oidc_scopes, token_policies) and the `bao write`
# argument syntax inherited from Vault (key=value; key=- reads the value from stdin; list values comma-separated).
let
  inherit (builtins) concatStringsSep filter map;
  shell = import ./shell.nix;
  q = shell.shellQuote;
in
rec {
  # `bao write auth/oidc/role/default` arguments: who may log in through which callback, with which claims.
  roleArgs = oidc: [
    "role_type=oidc"
    "user_claim=${oidc.usernameClaim}"
    "groups_claim=${oidc.groupsClaim}"
    "allowed_redirect_uris=${concatStringsSep "," oidc.redirectUris}"
    # OpenBao always asks for openid; these are the others.
    "oidc_scopes=${concatStringsSep "," (filter (s: s != "openid") oidc.scopes)}"
    "token_policies=default"
  ];

  # The operator's script (run as root, with BAO_TOKEN set, after OpenBao was initialised and unsealed):
  # enable the oidc auth method once, then (re)write its configuration and default role. The client secret's
  # first line is printed by the shell builtin printf into `bao write … oidc_client_secret=-`, so it is in no argv.
  oidcScript = { bao, address, oidc, secretFile }: ''
    set -eu
    : "''${BAO_TOKEN:?set BAO_TOKEN to a token that may manage auth methods (the root token after bao operator init)}"
    export BAO_ADDR=${q address}
    if ! ${bao} auth list | grep -q '^oidc/'; then
      ${bao} auth enable oidc
    fi
    { IFS= read -r secret || [ -n "$secret" ]; printf '%s' "$secret"; } < ${q secretFile} | ${bao} write auth/oidc/config \
      ${q "oidc_discovery_url=${oidc.issuer}"} ${q "oidc_client_id=${oidc.clientId}"} oidc_client_secret=- default_role=default
    ${bao} write auth/oidc/role/default ${concatStringsSep " " (map q (roleArgs oidc))}
  '';
}
