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
  # `nixmox-openbao-health [serving|listening]`, the kind's health checks (manifest/kinds.ts healthCommands): OpenBao's
  # /v1/sys/health answers 200 only when it is initialised, unsealed and active (503 sealed, 501 not initialised, 429
  # standby; https://openbao.org/api-docs/system/health/). "serving" (refresh and status) passes on 200 alone and
  # names the operator's next step otherwise; "listening" (the deploy's startup gate) passes on any answer from the
  # configured listener: a rebuild that restarted OpenBao leaves it sealed, and the unseal keys never reach a host.
  healthScript = { curl, address }: ''
    mode=''${1:-serving}
    code=$(${curl} --silent --output /dev/null --write-out '%{http_code}' --max-time 5 ${q "http://${address}/v1/sys/health"}) || code=000
    case "$code" in
      200) echo ${q "OpenBao at ${address} is unsealed and active"}; exit 0 ;;
      000) echo ${q "OpenBao does not answer at ${address} (see: systemctl status openbao)"}; exit 1 ;;
    esac
    if [ "$mode" = listening ]; then echo "OpenBao answers at "${q address}" (HTTP $code)"; exit 0; fi
    case "$code" in
      503) echo ${q "OpenBao at ${address} is sealed, as after every restart: unseal it with `BAO_ADDR=http://${address} bao operator unseal`, once per unseal key up to the threshold"} ;;
      501) echo ${q "OpenBao at ${address} is not initialised: run `BAO_ADDR=http://${address} bao operator init` once, keep the unseal keys and the root token off this host, then unseal it"} ;;
      429) echo ${q "OpenBao at ${address} is unsealed but a standby node, not the active one"} ;;
      *) echo "OpenBao at "${q address}" is not serving (HTTP $code from /v1/sys/health)" ;;
    esac
    exit 1
  '';

  # nixpkgs' openbao.service has restartIfChanged = false (a restart seals it), so a rebuild that moves the listener
  # would leave OpenBao on the old address while the proxy and the firewall use the new one (review N5). This runs in
  # a oneshot restarted whenever the listener changes (restartTriggers): it restarts OpenBao only when the listener
  # differs from the one recorded at the last start, and records the new one. The first run only records.
  listenerRestartScript = { systemctl, listener, stateFile }: ''
    set -eu
    if [ -f ${q stateFile} ] && [ "$(cat ${q stateFile})" != ${q listener} ]; then
      echo "nixmox openbao: the listener changed to "${q listener}"; restarting openbao.service, which then starts sealed: unseal it" >&2
      ${systemctl} try-restart --no-block openbao.service
    fi
    mkdir -p "$(dirname ${q stateFile})"
    printf '%s\n' ${q listener} > ${q stateFile}
  '';

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
