# NixMox monitoring module: Prometheus, Alertmanager, Grafana, Loki and Promtail on one host. Each app listens
# on its `nixmox.monitoring.apps.<app>.listen` (the route named after it, else the kind's default port,
# manifest/kinds.ts); the config texts come from the pure builders in nixos/lib/monitoring.nix.
#
# Grafana keeps its data in the manifest's PostgreSQL database (interface.db) and logs users in through the
# OIDC client (generic_oauth), with root_url from its route. Grafana reads every secret itself with its file
# provider `$__file{<path>}`, and the paths are systemd credentials (LoadCredential=), so no value reaches the
# Nix store, the unit or the environment: the database password, the OIDC client secret, and its own
# secret_key. That key (it encrypts data-source secrets in the database) is not a manifest secret: it is
# generated once on this host by nixmox-grafana-secret-key.service (root-only file, never leaves the host).
# NixOS 26.05 drops Grafana's built-in default key (nixpkgs PR #484374), so setting one now avoids a
# re-encryption later.
#
# Prometheus scrapes itself and the Alertmanager and sends alerts there; the Alertmanager routes everything to
# a receiver that does nothing (add receivers in a custom module with services.prometheus.alertmanager.
# configuration) and runs without its cluster listener (port 9094). Loki's gRPC port (9095) is bound to
# loopback; Promtail ships the journal to the local Loki and opens no port. Grafana gets Prometheus, Loki and
# Alertmanager as provisioned data sources.
#
# Not done here: alert rules and dashboards (none are generated); Prometheus, Alertmanager and Loki have no
# login of their own, so a route in front of them needs forward_auth (the module warns when it has none).
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
in
{
  options.nixmox.monitoring = (import ./app-options.nix lib) // {
    grafanaSecretKeyFile = mkOption {
      type = types.strMatching "/[A-Za-z0-9._/-]+";
      default = "/var/lib/nixmox/generated/grafana_secret_key";
      description = "Where Grafana's secret_key is generated on first start (root-only; back it up with Grafana's database).";
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
      settings = build.grafanaSettings cfg;
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

    systemd.services.promtail = {
      after = [ "loki.service" ];
      wants = [ "loki.service" ];
    };

    # Grafana's own key: created once, kept across rebuilds; only root reads it (grafana gets a credential copy).
    systemd.services.nixmox-grafana-secret-key = {
      description = "NixMox: create Grafana's secret_key once";
      before = [ "grafana.service" ];
      requiredBy = [ "grafana.service" ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
      };
      script = ''
        key=${shell.shellQuote cfg.grafanaSecretKeyFile}
        if [ ! -s "$key" ]; then
          mkdir -p "$(dirname "$key")"
          head -c 32 /dev/urandom | base64 -w0 > "$key.tmp"
          mv "$key.tmp" "$key"
        fi
      '';
    };

    systemd.services.grafana.serviceConfig.LoadCredential = build.grafanaCredentials cfg cfg.grafanaSecretKeyFile;
  };
}
