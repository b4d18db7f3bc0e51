# NixMox openbao module: OpenBao on the manifest's address and port (plain HTTP; TLS ends at the reverse proxy),
# with integrated (raft) storage under /var/lib/openbao and the web UI.
#
# Health: the kind's checks run `nixmox-openbao-health` (../lib/openbao.nix healthScript): refresh and status call
# OpenBao healthy only when /v1/sys/health says unsealed and active, and a sealed one unhealthy with the unseal
# command in the message; the deploy's startup gate asks only that the new listener answers (a restart seals it).
#
# What this module sets: the listener (address:port from the manifest, cluster traffic on 127.0.0.1 only, so no
# other port is opened), api_addr (the public URL), storage and the UI.
# What it cannot set: OIDC login is API-level configuration inside OpenBao (auth method, its config, a role), and
# the API answers only after `bao operator init` and an unseal, which are manual on purpose (the unseal keys must
# never reach a NixMox host or the Nix store). The module therefore ships `nixmox-openbao-oidc`: run it once as
# root with BAO_TOKEN set after init/unseal (and again after a client secret rotation); it enables the oidc auth
# method and writes its config and default role from the manifest's OIDC data, the client secret read from its
# file into stdin (../lib/openbao.nix). Policies beyond `default` and group mappings are left to the operator.
#
# Checked against NixOS 25.11: nixos/modules/services/security/openbao.nix (services.openbao.{enable,package,
# settings.{ui,listener.<name>.{type,address},…freeform}}; unit openbao.service, DynamicUser, StateDirectory
# openbao, restartIfChanged = false) and OpenBao's configuration docs (https://openbao.org/docs/configuration/:
# api_addr, cluster_addr, listener "tcp" {address, cluster_address, tls_disable}, storage "raft" {path, node_id}).
{ config, lib, pkgs, ... }:
let
  cfg = config.nixmox.openbao;
  host = config.nixmox.host;
  oidc = cfg.oidc;
  baoLib = import ../lib/openbao.nix;
  address = "${cfg.listen.address}:${toString cfg.listen.port}";
  # Raft's cluster port (the API port + 1 by convention), bound to loopback: a single node has no peers.
  clusterAddress = "127.0.0.1:${toString (cfg.listen.port + 1)}";
  healthHelper = pkgs.writeShellScriptBin "nixmox-openbao-health" (baoLib.healthScript { curl = "${pkgs.curl}/bin/curl"; inherit address; });
  listenerStateFile = "/var/lib/nixmox/openbao/listener";
  oidcHelper = pkgs.writeShellScriptBin "nixmox-openbao-oidc" (baoLib.oidcScript {
    bao = lib.getExe config.services.openbao.package;
    address = "http://${address}";
    inherit oidc;
    secretFile = oidc.clientSecretFile;
  });
in
{
  options.nixmox.openbao = import ./app-options.nix lib;

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox openbao: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
      {
        assertion = cfg.listen.port < 65535;
        message = "nixmox openbao: service \"${host.name}\" listens on ${toString cfg.listen.port}; OpenBao's cluster listener needs the next port (on 127.0.0.1), choose a lower one.";
      }
      {
        assertion = oidc == null || oidc.clientSecretFile != null;
        message = "nixmox openbao: service \"${host.name}\" needs a confidential OIDC client (OpenBao's oidc auth method sends a client secret); set interface.auth.oidc.client_type = \"confidential\".";
      }
    ];

    services.openbao = {
      enable = true;
      settings = {
        ui = true;
        listener.nixmox = {
          type = "tcp";
          inherit address;
          cluster_address = clusterAddress;
          tls_disable = true;
        };
        api_addr = if cfg.publicUrl != null then cfg.publicUrl else "http://${address}";
        cluster_addr = "http://${clusterAddress}";
        storage.raft = {
          path = "/var/lib/openbao";
          node_id = host.hostName;
        };
      };
    };

    # The kind's health checks run it (manifest/kinds.ts): serving = unsealed and active, else the unseal step.
    environment.systemPackages = [ healthHelper ] ++ lib.optional (oidc != null && oidc.clientSecretFile != null) oidcHelper;

    # A changed listener restarts OpenBao although nixpkgs' unit does not restart on changes (../lib/openbao.nix
    # listenerRestartScript); any other settings change still waits for a restart by hand (`systemctl restart
    # openbao`, then unseal), as nixpkgs intends.
    systemd.services.nixmox-openbao-listener = {
      description = "NixMox: restart OpenBao when its listener changed";
      after = [ "openbao.service" ];
      wantedBy = [ "multi-user.target" ];
      restartTriggers = [ address ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = baoLib.listenerRestartScript { systemctl = "${pkgs.systemd}/bin/systemctl"; listener = address; stateFile = listenerStateFile; };
    };
  };
}
