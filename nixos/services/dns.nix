# NixMox dns module: Unbound answering an A record for every host and every route domain (route domains
# point at the reverse-proxy host), forwarding everything else.
#
# Why Unbound: NixOS ships a settings-based module for it (services.unbound.settings, freeform unbound.conf),
# local-data gives authoritative answers for single names without running a zone, and one daemon does both
# the local answers and the forwarding.
#
# Checked against NixOS 25.11: nixos/modules/services/networking/unbound.nix (services.unbound.{enable,
# resolveLocalQueries,enableRootTrustAnchor,settings}; strings are written verbatim, hence the quoted
# local-data entries; read at Swarsel/nixpkgs@4aa6836), unbound.conf(5), and pkgs.dnsutils (bind's tools).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixmox.dns;
  host = config.nixmox.host;
  dnsLib = import ../lib/dns.nix;
in
{
  options.nixmox.dns = {
    records = mkOption {
      type = types.listOf (types.submodule {
        options = {
          name = mkOption { type = types.str; description = "Fully qualified name, without trailing dot."; };
          type = mkOption { type = types.enum [ "A" ]; description = "Record type."; };
          value = mkOption { type = types.str; description = "IPv4 address."; };
          source = mkOption { type = types.enum [ "host" "route" ]; description = "A host's own name, or a route domain (points at the proxy)."; };
        };
      });
      default = [ ];
      description = "Records answered locally.";
    };
    forwarders = mkOption {
      type = types.listOf types.str;
      description = "Upstream resolvers for every other name (manifest network.dns.forwarders, default: the gateway).";
    };
    allowedNetworks = mkOption {
      type = types.listOf types.str;
      description = "Networks allowed to query (the containers' subnet and manifest network.dns.allowed_networks).";
    };
    localZone = mkOption {
      type = types.strMatching "[a-z0-9]([a-z0-9.-]*[a-z0-9])?";
      description = "The homelab domain: answered here only, never forwarded (unknown names get NXDOMAIN).";
    };
    dnssec = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Validate DNSSEC (manifest network.dns.dnssec). Off by default: many home routers' forwarders strip
        the signatures, and a validating unbound then answers SERVFAIL for every outside name.
      '';
    };
  };

  config = {
    assertions = [
      {
        assertion = dnsLib.invalidRecords cfg.records == [ ];
        message = "nixmox dns: records must be A records with a DNS name and an IPv4 address, got: ${builtins.toJSON (dnsLib.invalidRecords cfg.records)}.";
      }
      {
        assertion = dnsLib.conflictingNames cfg.records == [ ];
        message = "nixmox dns: these names have more than one address: ${lib.concatStringsSep ", " (dnsLib.conflictingNames cfg.records)}; give each route domain and host name a single owner in the manifest.";
      }
      {
        assertion = cfg.forwarders != [ ];
        message = "nixmox dns: no upstream resolver to forward to; set network.gateway (used as the forwarder).";
      }
      {
        assertion = builtins.elem 53 host.ports;
        message = "nixmox dns: service \"${host.name}\" must list port 53 in ports, or the firewall drops every query.";
      }
    ];

    # Port 53 over UDP as well: `ports` in the manifest are TCP.
    networking.firewall.allowedUDPPorts = [ 53 ];

    # The manifest's liveness check (`host -W 2 … 127.0.0.1`) and operators need `host`/`dig`; unbound only
    # ships unbound-host.
    environment.systemPackages = [ pkgs.dnsutils ];

    services.unbound = {
      enable = true;
      # The core module owns /etc/resolv.conf (the manifest's dns_server, which is this host).
      resolveLocalQueries = false;
      # The root trust anchor turns validation on (unbound.nix: auto-trust-anchor-file = mkIf enableRootTrustAnchor).
      enableRootTrustAnchor = cfg.dnssec;
      # `nixmox render --configs` writes these settings as configs/unbound.conf (../lib/dns.nix toConf).
      settings = dnsLib.settings { inherit host; dns = cfg; };
    };
  };
}
