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

  # The command line: quoted arguments, plus the secret's path inside the unit's credential directory.
  providerCommand = { occ, oidc, credential }:
    concatStringsSep " " ([ occ ] ++ map shell.shellQuote (providerArgs oidc))
    + " --clientsecret-file=\"$CREDENTIALS_DIRECTORY\"/${shell.shellQuote credential}";
}
