# NixMox monitoring module: Prometheus, Alertmanager, Grafana, Loki and Promtail on one host. Each app listens
# on its `nixmox.monitoring.apps.<app>.listen` (the route named after it, else the kind's default port,
# manifest/kinds.ts); the config texts come from the pure builders in nixos/lib/monitoring.nix.
#
# Grafana keeps its data in the manifest's PostgreSQL database (interface.db) and logs users in through the
# OIDC client (generic_oauth), with root_url from its route. Grafana reads every secret itself with its file
# provider `$__file{<path>}`, and the paths are systemd credentials (LoadCredential=), so no value reaches the
# Nix store, the unit or the environment: the database password, the OIDC client secret, its own secret_key
# and the local admin's password. The last two are not manifest secrets: nixmox-grafana-secrets.service
# generates them once on this host (root-only files under grafanaGeneratedDir, never leaving the host), so
# Grafana never starts with its default admin/admin, and its secret_key (which encrypts data-source secrets)
# is not the public default that NixOS 26.05 drops (nixpkgs PR #484374). OIDC users of the SSO provider's
# admin group (grafanaAdminGroup) become Grafana admins, everyone else a viewer.
#
# Prometheus scrapes itself and the Alertmanager and sends alerts there; the Alertmanager routes everything to
# a receiver that does nothing (add receivers in a custom module with services.prometheus.alertmanager.
# configuration) and runs without its cluster listener (port 9094). Loki's gRPC port (9095) is bound to
# loopback; Promtail ships the journal to the local Loki and opens no port. Grafana gets Prometheus, Loki and
# Alertmanager as provisioned data sources.
#
# Prometheus, Alertmanager and Loki have no login of their own: a route to one of them gets forward auth through the
# manifest's authentik unless it sets auth = "none" (manifest/resolve.ts routeAuth; the module warns then), and the
# firewall opens their ports to the proxy only (manifest/firewall.ts). Loki's port also answers every homelab host,
# which push logs to it directly; the proxy refuses the push endpoints (render/host-data.ts lokiPushPaths).
# Not done here: alert rules and dashboards (none are generated).
# Promtail reached end of life upstream on 2026-03-02 (Grafana Alloy replaces it); nixpkgs 25.11 still ships it.
#
# Checked against NixOS 25.11: nixos/modules/services/monitoring/prometheus/default.nix (services.prometheus.
# {enable,listenAddress,port,webExternalUrl,scrapeConfigs,alertmanagers}), prometheus/alertmanager.nix
# (services.prometheus.alertmanager.{enable,listenAddress,port,webExternalUrl,configuration,extraFlags}; unit
# alertmanager.service), grafana.nix (services.grafana.{enable,settings,provision.enable,provision.datasources.
# settings}; unit grafana.service), loki.nix (services.loki.{enable,configuration,dataDir}), and
# nixos/modules/services/logging/promtail.nix (services.promtail.{enable,configuration}); Alertmanager's
# --cluster.listen-address= (empty disables clustering, prometheus/alertmanager README).
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixmox.monitoring;
  host = config.nixmox.host;
  build = import ../lib/monitoring.nix;
  shell = import ../lib/shell.nix;
  apps = cfg.apps;
  waitForAddress = {
    after = [ "network-online.target" ];
    wants = [ "network-online.target" ];
  };
in
{
  options.nixmox.monitoring = (import ./app-options.nix lib) // {
    grafanaGeneratedDir = mkOption {
      type = types.strMatching "/[A-Za-z0-9._/-]+";
      default = "/var/lib/nixmox/generated/grafana";
      description = "Root-only directory where Grafana's secret_key and the local admin's password are generated on first start (back it up with Grafana's database).";
    };
    grafanaAdminGroup = mkOption {
      type = types.strMatching "[^']+";
      default = "authentik Admins";
      description = "Group at the SSO provider whose members become Grafana admins (others are viewers); authentik's built-in admin group by default.";
    };
  };

  config = {
    assertions = map (app: {
      assertion = builtins.elem apps.${app}.listen.port host.ports;
      message = "nixmox monitoring: service \"${host.name}\" routes to ${app} on port ${toString apps.${app}.listen.port} but ports does not list it; add it to ports.";
    }) (builtins.filter (app: apps.${app}.publicUrl != null) (builtins.attrNames apps))
    ++ [
      {
        assertion = !(build.grafanaCallbackMissing cfg);
        message = "nixmox monitoring: service \"${host.name}\": Grafana sends users back to ${toString (build.grafanaCallback cfg)}, which the OIDC client's redirect_uris does not list; add it to interface.auth.oidc.redirect_uris.";
      }
    ];

    warnings = map (app:
      "nixmox monitoring: service \"${host.name}\": ${app} has no login of its own and its route asks nobody first, so anyone who reaches the proxy can use it; set interface.proxy.${app}.auth = { type = \"forward_auth\"; provider = …; }."
    ) (build.unprotectedApps cfg);

    services.prometheus = {
      enable = true;
      listenAddress = apps.prometheus.listen.address;
      port = apps.prometheus.listen.port;
      webExternalUrl = apps.prometheus.publicUrl;
      scrapeConfigs = build.prometheusScrapeConfigs cfg;
      alertmanagers = build.prometheusAlertmanagers cfg;

      alertmanager = {
        enable = true;
        listenAddress = apps.alertmanager.listen.address;
        port = apps.alertmanager.listen.port;
        webExternalUrl = apps.alertmanager.publicUrl;
        # Single instance: no gossip listener on 9094, which the manifest never opens.
        extraFlags = [ "--cluster.listen-address=" ];
        configuration = {
          route = { receiver = "null"; group_by = [ "alertname" ]; };
          receivers = [ { name = "null"; } ];
        };
      };
    };

    services.grafana = {
      enable = true;
      settings = build.grafanaSettings cfg cfg.grafanaAdminGroup;
      provision = {
        enable = true;
        datasources.settings = {
          apiVersion = 1;
          datasources = build.grafanaDatasources cfg;
        };
      };
    };

    services.loki = {
      enable = true;
      configuration = build.lokiConfig cfg config.services.loki.dataDir;
    };

    services.promtail = {
      enable = true;
      configuration = build.promtailConfig cfg host.hostName;
    };

    # The apps bind the host's address, which exists once networkd has configured it (core.nix,
    # RequiredForOnline=routable); Promtail also waits for Loki.
    systemd.services.prometheus = waitForAddress;
    systemd.services.alertmanager = waitForAddress;
    systemd.services.grafana = waitForAddress // {
      serviceConfig.LoadCredential = build.grafanaCredentials cfg cfg.grafanaGeneratedDir;
    };
    systemd.services.loki = waitForAddress;
    systemd.services.promtail = {
      after = [ "network-online.target" "loki.service" ];
      wants = [ "network-online.target" "loki.service" ];
    };

    # Grafana's own secrets: created once, kept across rebuilds; only root reads them (grafana gets credential
    # copies). admin_password replaces Grafana's default admin/admin on a port the network reaches.
    systemd.services.nixmox-grafana-secrets = {
      description = "NixMox: generate Grafana's secret_key and admin password once";
      before = [ "grafana.service" ];
      requiredBy = [ "grafana.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      script = ''
        dir=${shell.shellQuote cfg.grafanaGeneratedDir}
        mkdir -p "$dir"
        for name in secret_key admin_password; do
          if [ ! -s "$dir/$name" ]; then
            head -c 32 /dev/urandom | base64 -w0 | tr -d '/+=' > "$dir/$name.tmp"
            mv "$dir/$name.tmp" "$dir/$name"
          fi
        done
      '';
    };
  };
}
