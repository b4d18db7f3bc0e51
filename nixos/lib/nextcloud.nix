# Pure builders for nixos/services/nextcloud.nix (builtins only; evaluated for real in tests, and the command
# they produce is run by a real /bin/sh against a stand-in `nextcloud-occ` there).
#
# Checked against: nextcloud/user_oidc lib/Command/UpsertProvider.php (`occ user_oidc:provider <identifier>`
# creates or updates in place; options --clientid, --clientsecret-file (read and trimmed by the app, so the
# secret is in no argv), --discoveryuri, --scope, --unique-uid, --mapping-uid, --mapping-groups).
let
  inherit (builtins) concatStringsSep map;
  shell = import ./shell.nix;
  oidcLib = import ./oidc.nix;
in
rec {
  # Non-secret arguments of `occ user_oidc:provider` for the host data's OIDC client.
  providerArgs = oidc: [
    "user_oidc:provider"
    oidc.provider
    "--clientid=${oidc.clientId}"
    "--discoveryuri=${oidcLib.discoveryUrl oidc.issuer}"
    "--scope=${concatStringsSep " " oidc.scopes}"
    # The user id is the claim itself (not a hash of provider and claim), so names stay readable.
    "--unique-uid=0"
    "--mapping-uid=${oidc.usernameClaim}"
    "--mapping-groups=${oidc.groupsClaim}"
  ];

  # `nixmox-nextcloud-sso-check`, the kind's health check (manifest/kinds.ts healthCommands). user_oidc keeps its
  # providers in Nextcloud's database and reads them on every request (lib/Db/ProviderMapper.php; PHP-FPM keeps no
  # state between requests), so a provider stored by the oneshot works for the next login without a restart. "Can
  # log in" then means: the provider is stored (the oneshot succeeded) once the SSO provider serves this client's
  # discovery document; before that, NixMox has not created the application yet and the check passes saying so.
  ssoCheckScript = { curl, systemctl, oidc }: ''
    if ! ${curl} --silent --fail --max-time 10 --output /dev/null ${shell.shellQuote (oidcLib.discoveryUrl oidc.issuer)}; then
      echo ${shell.shellQuote "nixmox nextcloud: the SSO provider does not serve ${oidcLib.discoveryUrl oidc.issuer} yet (its application is created after this host's rebuild)"}
      exit 0
    fi
    if ${systemctl} is-active --quiet nextcloud-oidc-provider.service; then
      echo ${shell.shellQuote "nixmox nextcloud: user_oidc has the provider ${oidc.provider}; logins go to ${oidc.authorizationEndpoint}"}
      exit 0
    fi
    echo "nixmox nextcloud: user_oidc has no provider yet: nextcloud-oidc-provider.service is not active (see journalctl -u nextcloud-oidc-provider)"
    exit 1
  '';

  # The command line: quoted arguments, plus the secret's path inside the unit's credential directory.
  providerCommand = { occ, oidc, credential }:
    concatStringsSep " " ([ occ ] ++ map shell.shellQuote (providerArgs oidc))
    + " --clientsecret-file=\"$CREDENTIALS_DIRECTORY\"/${shell.shellQuote credential}";
}
