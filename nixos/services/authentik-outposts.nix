# NixMox authentik outposts module: the LDAP and RADIUS outposts (manifest network.outposts) on the authentik
# host, next to nixos/services/authentik.nix; render/host.ts imports this file when the host data has an
# `outposts` key.
#
# An outpost needs an API token that exists only after Authentik created the outpost; NixMox delivers it
# later to `tokenFiles.<type>` (root-only, components/outpost-token.ts; outside the secrets directory, whose
# push removes files it did not declare) and restarts the outpost's unit. Until then the outpost's unit is
# skipped, not failed (ConditionPathExists=), and a path unit starts it as soon as the file appears. The token
# reaches the outpost through a root-only environment file composed at start (core option
# nixmox.environmentFiles: the RADIUS outpost of some authentik releases reads AUTHENTIK_TOKEN only from the
# environment); restarting authentik-<type>.service composes the file again from the new token.
#
# The base DN, the RADIUS client networks and the RADIUS shared secret are properties of the providers that
# NixMox creates through Authentik's API; the outposts fetch them from there, so this module only declares
# them (host.json carries them) and does not use them. The outposts reach authentik's HTTP listener on this
# host. LDAP listens on the host's address at `ldap.port` (TCP), RADIUS at `radius.port` (UDP); LDAPS and the
# metrics listeners stay on loopback. Nothing else listens.
#
# Checked against NixOS 25.11: pkgs/top-level/all-packages.nix (authentik-outposts = callPackages of
# pkgs/by-name/au/authentik/outposts.nix: .ldap, .proxy, .radius, built from authentik's source with
# meta.mainProgram "ldap"/"radius" in ldap.nix and radius.nix), systemd.services.<name>.unitConfig,
# systemd.paths.<name>.pathConfig (systemd.path(5): PathExists=, Unit=), and authentik's outpost environment
# (nixos/lib/authentik-outposts.nix). Unit names follow the authentik-nix flake (authentik-ldap.service,
# authentik-radius.service). They are not among the authentik kind's health-check units (manifest/kinds.ts):
# they cannot run before NixMox delivers their tokens.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixmox.outposts;
  host = config.nixmox.host;
  authentik = config.nixmox.authentik;
  build = import ../lib/authentik-outposts.nix;
  secretPath = types.strMatching "/[A-Za-z0-9._/-]+";
  enabled = build.enabledTypes cfg;
  tokenFile = type: cfg.tokenFiles.${type};

  outpostUnit = type: {
    description = "NixMox authentik ${type} outpost";
    wantedBy = [ "multi-user.target" ];
    wants = [ "network-online.target" ];
    after = [ "network-online.target" "authentik.service" ];
    unitConfig.ConditionPathExists = tokenFile type;
    environment = build.environment {
      inherit type;
      authentikUrl = "http://${authentik.listen.address}:${toString authentik.listen.port}";
      address = host.ip;
      port = cfg.${type}.port;
      metricsPort = cfg.metricsPorts.${type};
    };
    serviceConfig = {
      ExecStart = lib.getExe pkgs.authentik-outposts.${type};
      EnvironmentFile = [ config.nixmox.environmentFiles.${build.unitName type}.path ];
      DynamicUser = true;
      Restart = "on-failure";
      RestartSec = 5;
    };
  };
in
{
  options.nixmox.outposts = {
    ldap = mkOption {
      default = null;
      description = "The LDAP outpost (manifest network.outposts.ldap); null: none.";
      type = types.nullOr (types.submodule {
        options = {
          baseDn = mkOption { type = types.str; description = "Base DN of the LDAP provider (set through Authentik's API)."; };
          port = mkOption { type = types.port; description = "TCP port the outpost listens on."; };
        };
      });
    };

    radius = mkOption {
      default = null;
      description = "The RADIUS outpost (manifest network.outposts.radius); null: none.";
      type = types.nullOr (types.submodule {
        options = {
          clientNetworks = mkOption { type = types.listOf types.str; description = "Networks allowed to ask (set on the provider through Authentik's API)."; };
          port = mkOption { type = types.port; description = "UDP port the outpost listens on."; };
          sharedSecretFile = mkOption { type = secretPath; description = "Secret file with the RADIUS shared secret (set on the provider through Authentik's API)."; };
        };
      });
    };

    tokenFiles = mkOption {
      type = types.attrsOf secretPath;
      default = { };
      description = "Outpost type (ldap, radius) → the file NixMox writes its API token to once Authentik created the outpost.";
    };

    metricsPorts = mkOption {
      type = types.attrsOf types.port;
      default = { ldap = 9301; radius = 9302; };
      description = "Loopback port of each outpost's metrics listener (authentik's own is 127.0.0.1:9300).";
    };
  };

  config = {
    assertions = [
      {
        assertion = host.kind == "authentik";
        message = "nixmox: service \"${host.name}\" of kind ${host.kind} imports the authentik outposts module; outposts run on the authentik host, this is a renderer bug.";
      }
    ]
    ++ map (type: {
      assertion = false;
      message = "nixmox outposts: service \"${host.name}\" runs the ${type} outpost but tokenFiles has no path for it; render the host again with this NixMox version.";
    }) (build.missingTokenFiles cfg)
    ++ lib.optional (cfg.ldap != null) {
      assertion = builtins.elem cfg.ldap.port host.ports;
      message = "nixmox outposts: service \"${host.name}\" runs the LDAP outpost on TCP ${toString cfg.ldap.port} but ports does not list it; add it to ports.";
    }
    ++ lib.optional (cfg.radius != null) {
      assertion = builtins.elem cfg.radius.port host.udpPorts;
      # NixMox opens this port itself (manifest/plan.ts); the manifest has no UDP port list.
      message = "nixmox outposts: service \"${host.name}\" runs the RADIUS outpost on UDP ${toString cfg.radius.port} but the host's UDP ports do not list it; this is a renderer bug, render the host again.";
    };

    systemd.services = builtins.listToAttrs (map (type: {
      name = build.unitName type;
      value = outpostUnit type;
    }) enabled)
    # The composing unit waits for the token too: without it, it is skipped with its outpost instead of failing.
    // builtins.listToAttrs (map (type: {
      name = "nixmox-env-${build.unitName type}";
      value.unitConfig.ConditionPathExists = tokenFile type;
    }) enabled);

    systemd.paths = builtins.listToAttrs (map (type: {
      name = build.unitName type;
      value = {
        description = "NixMox: start the authentik ${type} outpost once its token arrives";
        wantedBy = [ "multi-user.target" ];
        pathConfig = {
          PathExists = tokenFile type;
          Unit = "${build.unitName type}.service";
        };
      };
    }) enabled);

    nixmox.environmentFiles = builtins.listToAttrs (map (type: {
      name = build.unitName type;
      value = {
        consumers = [ "${build.unitName type}.service" ];
        variables.AUTHENTIK_TOKEN.file = tokenFile type;
      };
    }) enabled);
  };
}
