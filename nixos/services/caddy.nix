# NixMox caddy module: the reverse proxy. One site block per route domain (routes sharing a domain become
# `handle` blocks of that site), non-"/" paths, the route's extra_config passed through, TLS per route
# (Caddy's internal CA by default, ACME or plain HTTP on request) and authentik forward auth for the routes
# that ask for it.
#
# Checked against NixOS 25.11: nixos/modules/services/web-servers/caddy/default.nix (services.caddy.{enable,
# extraConfig,globalConfig,email}) and the Caddy 2 Caddyfile docs cited in ../lib/caddy.nix.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixmox.caddy;
  host = config.nixmox.host;
  caddyLib = import ../lib/caddy.nix;
  routeType = types.submodule {
    options = {
      service = mkOption { type = types.str; description = "Service that owns the route."; };
      name = mkOption { type = types.str; description = "Route name (unique per service)."; };
      domain = mkOption { type = types.strMatching "[a-z0-9]([a-z0-9.-]*[a-z0-9])?"; description = "Site address."; };
      path = mkOption { type = types.strMatching "/[A-Za-z0-9._~/-]*[*]?"; description = "Path prefix."; };
      upstream = mkOption { type = types.strMatching "[A-Za-z0-9.-]+:[0-9]+"; description = "host:port requests go to."; };
      tls = mkOption { type = types.enum [ "internal" "acme" "off" ]; description = "internal CA, ACME or plain HTTP."; };
      forwardAuthUpstream = mkOption {
        type = types.nullOr (types.strMatching "[A-Za-z0-9.-]+:[0-9]+");
        default = null;
        description = "authentik outpost (host:port) asked before proxying; null: no forward auth.";
      };
      extraConfig = mkOption { type = types.lines; default = ""; description = "Caddyfile directives, passed through."; };
      blockedPaths = mkOption {
        type = types.listOf (types.strMatching "/[A-Za-z0-9._~/-]*");
        default = [ ];
        description = "Paths answered with 403 instead of proxied (Loki's push endpoints).";
      };
    };
  };
in
{
  options.nixmox.caddy = {
    routes = mkOption { type = types.listOf routeType; default = [ ]; description = "Every enabled route of the manifest."; };
    ca = mkOption {
      default = null;
      description = ''
        The managed CA (`tls = "internal"` routes): files on this host holding its root certificate and its
        intermediate's certificate and key, handed to Caddy with LoadCredential= and used through the global pki
        block (Caddy signs with the intermediate). null: Caddy's own CA.
      '';
      type = types.nullOr (types.submodule {
        options = {
          certFile = mkOption { type = types.strMatching "/[A-Za-z0-9._/-]+"; description = "Root certificate (PEM)."; };
          intermediateCertFile = mkOption { type = types.strMatching "/[A-Za-z0-9._/-]+"; description = "Intermediate certificate (PEM), signed by the root."; };
          intermediateKeyFile = mkOption { type = types.strMatching "/[A-Za-z0-9._/-]+"; description = "Intermediate private key (PEM)."; };
        };
      });
    };
    acmeEmail = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Contact address for ACME accounts; null: Caddy registers without one.";
    };
  };

  config = {
    assertions = [
      {
        assertion = caddyLib.conflictingTls cfg.routes == [ ];
        message = "nixmox caddy: routes of ${lib.concatStringsSep ", " (caddyLib.conflictingTls cfg.routes)} ask for different tls settings; one domain is one Caddy site, give its routes the same tls.";
      }
      {
        assertion = caddyLib.conflictingOutposts cfg.routes == [ ];
        message = "nixmox caddy: forward-auth routes of ${lib.concatStringsSep ", " (caddyLib.conflictingOutposts cfg.routes)} use different outposts; a domain can be protected by one authentik outpost only.";
      }
      {
        assertion = builtins.elem 443 host.ports || builtins.all (r: r.tls == "off") cfg.routes;
        message = "nixmox caddy: service \"${host.name}\" serves TLS routes but does not list port 443 in ports.";
      }
    ];

    # `nixmox render --configs` writes the same file from ../lib/caddy.nix (nixosCaddyfile) for review and tests.
    services.caddy = {
      enable = true;
      email = cfg.acmeEmail;
      globalConfig = caddyLib.globalConfigWith cfg.ca;
      extraConfig = caddyLib.caddyfileWith cfg.ca cfg.routes;
    };

    # The key stays root-only on disk; systemd hands the unit a private copy (systemd.exec(5), LoadCredential=).
    systemd.services.caddy.serviceConfig.LoadCredential = lib.mkIf (cfg.ca != null)
      (lib.mapAttrsToList (id: file: "${id}:${file}") (caddyLib.credentialsWith cfg.ca));
  };
}
