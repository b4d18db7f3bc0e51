# Pure builders for nixos/services/monitoring.nix (builtins only, so tests evaluate them with a bare
# `nix-instantiate --eval`, no nixpkgs needed). Input: the host's `nixmox.monitoring` data (render/host-data.ts
# `AppData`: apps.{prometheus,grafana,alertmanager,loki}.{listen,publicUrl,oidc}, database).
#
# Checked against: Grafana 12 configuration docs (https://grafana.com/docs/grafana/latest/setup-grafana/
# configure-grafana/: [server] http_addr/http_port/domain/root_url/serve_from_sub_path, [database] type/host/
# name/user/password, [security] secret_key/admin_password, variable expansion `$__file{}`, which trims the file's whitespace:
# pkg/setting/expanders.go), Grafana's generic OAuth docs (https://grafana.com/docs/grafana/latest/
# setup-grafana/configure-security/configure-authentication/generic-oauth/: client_id, client_secret, scopes,
# auth_url, token_url, api_url, login_attribute_path, groups_attribute_path, role_attribute_path (JMESPath),
# use_pkce; the callback is
# <root_url>login/generic_oauth), Prometheus 3 configuration (scrape_configs, alerting.alertmanagers,
# path_prefix; --web.external-url also prefixes the routes), Loki 3 configuration (server, common, schema_config
# with tsdb/v13, as in Loki's own cmd/loki/loki-local-config.yaml) and Promtail's configuration
# (server.disable, clients, scrape_configs.journal).
let
  inherit (builtins) concatStringsSep match elemAt filter elem;

  # "https://grafana.lan/g" → { origin = "https://grafana.lan"; host = "grafana.lan"; path = "/g"; }
  # (path "" at the domain's root). Route URLs never end in "/" (render/host-data.ts routeUrl).
  parseUrl = url:
    let m = match "(https?://([^/:]+)(:[0-9]+)?)(/.*)?" url;
    in
    if m == null then throw "nixmox monitoring: ${url} is not an http(s) URL"
    else { origin = elemAt m 0; host = elemAt m 1; path = if elemAt m 3 == null then "" else elemAt m 3; };

  urlPath = url: if url == null then "" else (parseUrl url).path;

  hostPort = listen: "${listen.address}:${toString listen.port}";
  localUrl = app: "http://${hostPort app.listen}${urlPath app.publicUrl}";

  credentials = "/run/credentials/grafana.service";
in
rec {
  inherit parseUrl urlPath;

  # Grafana reads these files itself when it starts ($__file{}); the paths are systemd credentials
  # (LoadCredential= on grafana.service), so no value is ever in the Nix store or the unit.
  fileRef = path: "$__file{${path}}";

  # Grafana's root_url ends in "/"; it is the public URL users reach, so its OAuth callback matches the
  # redirect URI registered at the provider.
  grafanaRootUrl = cfg:
    let url = cfg.apps.grafana.publicUrl;
    in if url == null then null else "${url}/";

  grafanaCallback = cfg:
    let root = grafanaRootUrl cfg;
    in if root == null then null else "${root}login/generic_oauth";

  # True when Grafana would send users back to a redirect URI the provider does not list.
  grafanaCallbackMissing = cfg:
    let oidc = cfg.apps.grafana.oidc; callback = grafanaCallback cfg;
    in oidc != null && callback != null && !(elem callback oidc.redirectUris);

  # `adminGroup`: members of this group at the SSO provider become Grafana admins, everyone else a viewer.
  grafanaSettings = cfg: adminGroup:
    let
      app = cfg.apps.grafana;
      db = cfg.database;
      oidc = app.oidc;
      url = app.publicUrl;
    in
    {
      server = {
        http_addr = app.listen.address;
        http_port = app.listen.port;
      } // (if url == null then { } else {
        domain = (parseUrl url).host;
        root_url = grafanaRootUrl cfg;
        # The proxy forwards the path unchanged (Caddy `handle`, nixos/lib/caddy.nix).
        serve_from_sub_path = urlPath url != "";
      });
      # Both stack secrets (nixos/services/monitoring.nix): no default admin/admin, no public key.
      security = {
        secret_key = fileRef "${credentials}/secret_key";
        admin_password = fileRef "${credentials}/admin_password";
      };
      users.allow_sign_up = false;
      analytics = {
        reporting_enabled = false;
        check_for_updates = false;
      };
    }
    // (if db == null then { } else {
      database = {
        type = "postgres";
        host = "${db.host}:${toString db.port}";
        name = db.name;
        user = db.owner;
        password = fileRef "${credentials}/db_password";
      };
    })
    // (if oidc == null then { } else {
      "auth.generic_oauth" = {
        enabled = true;
        name = oidc.provider;
        allow_sign_up = true;
        client_id = oidc.clientId;
        scopes = concatStringsSep " " oidc.scopes;
        auth_url = oidc.authorizationEndpoint;
        token_url = oidc.tokenEndpoint;
        api_url = oidc.userinfoEndpoint;
        login_attribute_path = oidc.usernameClaim;
        groups_attribute_path = oidc.groupsClaim;
        role_attribute_path = "contains(${oidc.groupsClaim}[*], '${adminGroup}') && 'Admin' || 'Viewer'";
        email_attribute_path = "email";
        use_pkce = true;
        use_refresh_token = true;
      } // (if oidc.clientSecretFile == null then { } else {
        client_secret = fileRef "${credentials}/oidc_client_secret";
      });
    });

  # LoadCredential= entries of grafana.service: one per file grafanaSettings reads with $__file{}. `secrets` holds the
  # paths of the stack secrets grafana_secret_key and grafana_admin_password (the host's `nixmox.secrets`).
  grafanaCredentials = cfg: secrets:
    [ "secret_key:${secrets.grafana_secret_key}" "admin_password:${secrets.grafana_admin_password}" ]
    ++ (if cfg.database == null then [ ] else [ "db_password:${cfg.database.passwordFile}" ])
    ++ (let oidc = cfg.apps.grafana.oidc; in
      if oidc == null || oidc.clientSecretFile == null then [ ] else [ "oidc_client_secret:${oidc.clientSecretFile}" ]);

  # Grafana's data sources: this host's Prometheus, Loki and Alertmanager, by their local address (a path
  # prefix from the public URL applies to the local listener too).
  grafanaDatasources = cfg: [
    { name = "Prometheus"; uid = "prometheus"; type = "prometheus"; access = "proxy"; url = localUrl cfg.apps.prometheus; isDefault = true; }
    { name = "Loki"; uid = "loki"; type = "loki"; access = "proxy"; url = localUrl cfg.apps.loki; }
    {
      name = "Alertmanager"; uid = "alertmanager"; type = "alertmanager"; access = "proxy"; url = localUrl cfg.apps.alertmanager;
      jsonData.implementation = "prometheus";
    }
  ];

  # Prometheus scrapes itself and the Alertmanager; both serve their routes under their public URL's path.
  prometheusScrapeConfigs = cfg: [
    {
      job_name = "prometheus";
      metrics_path = "${urlPath cfg.apps.prometheus.publicUrl}/metrics";
      static_configs = [ { targets = [ (hostPort cfg.apps.prometheus.listen) ]; } ];
    }
    {
      job_name = "alertmanager";
      metrics_path = "${urlPath cfg.apps.alertmanager.publicUrl}/metrics";
      static_configs = [ { targets = [ (hostPort cfg.apps.alertmanager.listen) ]; } ];
    }
  ];

  prometheusAlertmanagers = cfg: [
    ({ static_configs = [ { targets = [ (hostPort cfg.apps.alertmanager.listen) ]; } ]; }
      // (let p = urlPath cfg.apps.alertmanager.publicUrl; in if p == "" then { } else { path_prefix = p; }))
  ];

  # Single-binary Loki on the filesystem: HTTP on the app's address and port, gRPC (used between Loki's own
  # components) on loopback only, an in-memory ring (no memberlist port), no usage reporting.
  lokiConfig = cfg: dataDir: {
    auth_enabled = false;
    server = {
      http_listen_address = cfg.apps.loki.listen.address;
      http_listen_port = cfg.apps.loki.listen.port;
      grpc_listen_address = "127.0.0.1";
      grpc_listen_port = 9095;
      log_level = "warn";
    } // (let p = urlPath cfg.apps.loki.publicUrl; in if p == "" then { } else { http_path_prefix = p; });
    common = {
      # Every component (rings, query frontend) advertises loopback, where the gRPC listener is.
      instance_addr = "127.0.0.1";
      path_prefix = dataDir;
      replication_factor = 1;
      ring.kvstore.store = "inmemory";
      storage.filesystem = {
        chunks_directory = "${dataDir}/chunks";
        rules_directory = "${dataDir}/rules";
      };
    };
    schema_config.configs = [
      {
        from = "2024-01-01";
        store = "tsdb";
        object_store = "filesystem";
        schema = "v13";
        index = { prefix = "index_"; period = "24h"; };
      }
    ];
    analytics.reporting_enabled = false;
  };

  # Promtail ships this host's journal to the local Loki and opens no port (server.disable).
  promtailConfig = cfg: hostName: {
    server.disable = true;
    clients = [ { url = "${localUrl cfg.apps.loki}/loki/api/v1/push"; } ];
    scrape_configs = [
      {
        job_name = "journal";
        journal = {
          max_age = "12h";
          labels = { job = "systemd-journal"; host = hostName; };
        };
        relabel_configs = [
          { source_labels = [ "__journal__systemd_unit" ]; target_label = "unit"; }
          { source_labels = [ "__journal_priority_keyword" ]; target_label = "level"; }
        ];
      }
    ];
  };

  # Apps without a login of their own whose route lets anyone through: no forward_auth in front of them.
  unprotectedApps = cfg:
    filter (name: cfg.apps.${name}.publicUrl != null && cfg.apps.${name}.auth != "forward_auth")
      [ "alertmanager" "loki" "prometheus" ];
}
