# NixMox builder module: a container that builds the other hosts' NixOS systems once (components/build, issue 18),
# signs them with the stack's key and copies them to the hosts with `nix copy`. It serves nothing: its Nix daemon
# builds, and NixMox reaches it over SSH as root with the deploy key (the copies use the controller's forwarded
# agent, so the key is never stored here).
#
# Checked against NixOS 25.11: nixos/modules/services/system/nix-daemon.nix (nix.settings.{max-jobs,cores,
# auto-optimise-store,trusted-users}, nix.gc), nixos/modules/services/networking/ssh/sshd.nix
# (services.openssh.settings.AllowAgentForwarding).
{ config, lib, ... }:
let
  cfg = config.nixmox.builder;
in
{
  options.nixmox.builder = {
    maxJobs = lib.mkOption { type = lib.types.ints.positive; description = "Builds at once: the container's cores."; };
    forwarders = lib.mkOption { type = lib.types.listOf lib.types.str; default = [ ]; description = "Upstream resolvers after the manifest's (nixos/lib/resolv.nix): the builder deploys before the DNS service."; };
  };

  config = {
    nix.settings = {
      max-jobs = cfg.maxJobs;
      # Each build may use every core; NixMox runs at most maxJobs builds at once.
      cores = 0;
      auto-optimise-store = true;
      trusted-users = [ "root" ];
      # The evaluations of every host share this store: keep what the hosts' current systems need.
      keep-outputs = false;
    };
    # The copies to the hosts run here with the deploy key's agent forwarded by NixMox's connection.
    services.openssh.settings.AllowAgentForwarding = true;
    # What no host's last build needs any more (the builder keeps one GC root per host under /var/lib/nixmox-build).
    nix.gc = {
      automatic = true;
      dates = "weekly";
      options = "--delete-older-than 14d";
    };
  };
}
