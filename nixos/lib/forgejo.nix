# Pure builders for nixos/services/forgejo.nix (builtins only; evaluated for real in tests, and the script they
# produce is run by a real /bin/sh against a stand-in `forgejo` there).
#
# Checked against: Forgejo cmd/admin_auth_oauth.go (flags --name --provider --key --secret --auto-discover-url
# --scopes (string slice, repeatable) --group-claim-name; update-oauth takes --id and changes only the flags it
# is given; no flag reads the secret from a file or the environment), cmd/admin_auth.go (`admin auth list`
# prints "ID Name Type Enabled" through a tabwriter), services/auth/source/oauth2/source.go (the source's
# configuration is stored as JSON in login_source.cfg, the secret under "ClientSecret", not encrypted), and
# Gitea/Forgejo modules/setting/oauth2_client.go ([oauth2_client] USERNAME: userid | nickname | email, which goth's
# openidConnect provider fills from the claims sub | preferred_username | email).
let
  inherit (builtins) concatStringsSep concatMap map;
  shell = import ./shell.nix;
  oidcLib = import ./oidc.nix;
in
rec {
  # [oauth2_client] USERNAME for a username claim, or null when Forgejo cannot take the name from that claim.
  usernameSource = claim: { sub = "userid"; preferred_username = "nickname"; email = "email"; }.${claim} or null;

  # Flags of `forgejo admin auth add-oauth` / `update-oauth` for the OIDC client, without the secret: it would
  # be visible in the process list (see sourceScript for how it gets there instead).
  oauthArgs = { name, oidc }:
    [ "--name" name "--provider" "openidConnect" "--key" oidc.clientId "--auto-discover-url" (oidcLib.discoveryUrl oidc.issuer) ]
    ++ concatMap (scope: [ "--scopes" scope ]) oidc.scopes
    ++ [ "--group-claim-name" oidc.groupsClaim ];

  # psql script that stores the client secret in the source's JSON configuration. `\set … \`cat …\`` reads the
  # credential inside psql, so the value is in no argv, environment or file of ours; it is sent as a quoted
  # literal. `name` is checked by the module (oidcLib.isPlainName) before it is put into SQL.
  secretSql = { name, credential }: concatStringsSep "\n" [
    "\\set ON_ERROR_STOP on"
    "\\set secret `cat \"$CREDENTIALS_DIRECTORY/${credential}\"`"
    "UPDATE login_source SET cfg = jsonb_set(cfg::jsonb, '{ClientSecret}', to_jsonb(:'secret'::text))::text"
    "  WHERE name = '${name}' AND cfg::jsonb ->> 'ClientSecret' IS DISTINCT FROM :'secret';"
    "\\unset secret"
    ""
  ];

  # `nixmox-forgejo-sso-check`, the kind's health check (manifest/kinds.ts healthCommands): "can log in" means
  # Forgejo answers its login start URL for the provider (/user/oauth2/<name>, routers/web/auth/oauth.go SignInOAuth)
  # with a redirect to the provider's authorization endpoint for this client. Until the provider serves this client's
  # discovery document, NixMox has not created its application yet (that happens after this host's rebuild), so the
  # check passes saying so; from then on a Forgejo that cannot send users to the provider fails it.
  ssoCheckScript = { curl, listen, name, oidc }:
    let login = "http://${listen.address}:${toString listen.port}/user/oauth2/${name}"; in ''
    if ! ${curl} --silent --fail --max-time 10 --output /dev/null ${shell.shellQuote (oidcLib.discoveryUrl oidc.issuer)}; then
      echo ${shell.shellQuote "nixmox forgejo: the SSO provider does not serve ${oidcLib.discoveryUrl oidc.issuer} yet (its application is created after this host's rebuild); local accounts work"}
      exit 0
    fi
    answer=$(${curl} --silent --max-time 10 --output /dev/null --write-out '%{http_code} %{redirect_url}' ${shell.shellQuote login}) || answer="000 "
    case "$answer" in
      3[0-9][0-9]\ ${shell.shellQuote oidc.authorizationEndpoint}*client_id=${shell.shellQuote oidc.clientId}*) echo ${shell.shellQuote "nixmox forgejo: ${login} sends users to ${oidc.authorizationEndpoint}"}; exit 0 ;;
    esac
    echo "nixmox forgejo: "${shell.shellQuote login}" does not send users to the SSO provider (got: $answer); see journalctl -u forgejo"
    exit 1
  '';

  # Shell fragment for forgejo.service's preStart (after the module's config generation and `forgejo migrate`,
  # before the web server reads its login sources): create the source or update it in place, then set its
  # secret with `psql`. Idempotent: run at every start. Never fatal: add-oauth/update-oauth fetch the discovery
  # document, which fails while the provider's application does not exist yet (or the provider is down); Forgejo
  # then starts without this login source (local accounts still work), `pendingFile` records it, and the module's
  # retry timer restarts Forgejo once the document answers.
  sourceScript = { forgejo, awk, psql, name, oidc, db, sqlFile, dbCredential, pendingFile }:
    let
      quoted = list: concatStringsSep " " (map shell.shellQuote list);
      args = quoted (oauthArgs { inherit name oidc; });
      connection = quoted [ "--host=${db.host}" "--port=${toString db.port}" "--dbname=${db.name}" "--username=${db.owner}" ];
    in ''
      nixmox_oidc_source() {
        id=$(${forgejo} admin auth list | ${awk} -v name=${shell.shellQuote name} 'NR > 1 && $2 == name { print $1 }') || return 1
        if [ -z "$id" ]; then
          ${forgejo} admin auth add-oauth ${args} || return 1
        else
          ${forgejo} admin auth update-oauth --id "$id" ${args} || return 1
        fi
        PGPASSWORD=$(cat "$CREDENTIALS_DIRECTORY/${dbCredential}") ${psql} --no-psqlrc --quiet ${connection} --file=${sqlFile} || return 1
      }
      if nixmox_oidc_source; then
        rm -f ${shell.shellQuote pendingFile}
      else
        touch ${shell.shellQuote pendingFile}
        echo ${shell.shellQuote "nixmox forgejo: could not create or update the login source \"${name}\" (is ${oidcLib.discoveryUrl oidc.issuer} reachable?); Forgejo starts without it and restarts once that URL answers"} >&2
      fi
    '';
}
