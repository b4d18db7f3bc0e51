# Pure builders for nixos/services/authentik-outposts.nix (builtins only, so tests evaluate them with a bare
# `nix-instantiate --eval`, no nixpkgs needed). Input: the authentik host's `nixmox.outposts` data
# (render/host-data.ts `OutpostsData`: ldap {baseDn, port}, radius {clientNetworks, port, sharedSecretFile},
# tokenFiles {ldap|radius → path}).
#
# Checked against authentik's Go outposts (goauthentik/authentik internal/config/struct.go: AUTHENTIK_HOST,
# AUTHENTIK_TOKEN, AUTHENTIK_INSECURE, AUTHENTIK_DEBUG, AUTHENTIK_LISTEN__{LDAP,LDAPS,RADIUS,METRICS};
# cmd/ldap and cmd/radius: both refuse to start without AUTHENTIK_HOST and AUTHENTIK_TOKEN). The token is not
# here: some releases of the RADIUS outpost read AUTHENTIK_TOKEN with os.LookupEnv, without the "file://"
# indirection the shared config loader offers, so it reaches both outposts through a composed environment file.
let
  inherit (builtins) filter;
in
rec {
  types = [ "ldap" "radius" ];

  # The outposts this host runs: the types whose data is present.
  enabledTypes = outposts: filter (type: outposts.${type} or null != null) types;

  # systemd unit (without ".service") of an outpost, as the authentik-nix flake names them.
  unitName = type: "authentik-${type}";

  # Outposts without a token file path: NixMox could never start them.
  missingTokenFiles = outposts: filter (type: !(outposts.tokenFiles ? ${type})) (enabledTypes outposts);

  # The outpost's environment without its token: where authentik's API is, and every listener it opens. Only the
  # protocol port listens on the host's address; metrics (and LDAPS, which NixMox does not publish) stay on
  # loopback, on ports apart from authentik's own metrics listener (127.0.0.1:9300).
  environment = { type, authentikUrl, address, port, metricsPort }:
    {
      AUTHENTIK_HOST = authentikUrl;
      AUTHENTIK_INSECURE = "false";
      AUTHENTIK_DEBUG = "false";
      AUTHENTIK_LISTEN__METRICS = "127.0.0.1:${toString metricsPort}";
    }
    // (if type == "ldap" then {
      AUTHENTIK_LISTEN__LDAP = "${address}:${toString port}";
      AUTHENTIK_LISTEN__LDAPS = "127.0.0.1:6636";
    } else {
      AUTHENTIK_LISTEN__RADIUS = "${address}:${toString port}";
    });
}
