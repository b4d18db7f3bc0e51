# A second example homelab, written the way the original NixMox manifests are: every service named after its
# kind (no `kind` field), `network.outposts`, named routes with their own auth, `interface.dbs` with
# additional databases, pgAdmin with OIDC on the PostgreSQL host (while Authentik's database lives there),
# `deployment_phases` and the global health knobs. No NixMox extension is used.
#
#   npx nixmox validate manifest/examples/seed-homelab.nix
#   npx nixmox plan manifest/examples/seed-homelab.nix
#
# The RADIUS shared secret is not here: NixMox generates it, or the stack sets it from a file or stdin:
# `pulumi config set --secret --path 'nixmox:secrets.authentik.radius_shared_secret' < FILE`.
let
  health = units: {
    startup = "systemctl is-active --quiet ${units}";
    liveness = "systemctl is-active --quiet ${units}";
    interval = 30;
    timeout = 60;
    retries = 3;
  };
  sized = cores: memory: disk_gb: { inherit cores memory disk_gb; };
  oidcDefaults = { client_type = "confidential"; scopes = [ "openid" "email" "profile" ]; username_claim = "preferred_username"; groups_claim = "groups"; };
in
{
  network = {
    domain = "home.lab";
    dns_server = "10.40.0.13";
    gateway = "10.40.0.1";
    network_cidr = "10.40.0.0/24";
    vlan_tag = 40;
    ssh_keys = {
      admin = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlZWQtZXhhbXBsZS1hZG1pbi1rZXktcmVwbGFjZQ admin@laptop" ];
      root = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlZWQtZXhhbXBsZS1hZG1pbi1rZXktcmVwbGFjZQ admin@laptop" ];
    };
    outposts = {
      ldap = { base_dn = "dc=home,dc=lab"; };
      radius = { client_networks = [ "10.40.0.0/24" ]; };
    };
  };

  core_services = {
    dns = {
      enable = true;
      ip = "10.40.0.13";
      hostname = "dns.home.lab";
      vmid = 1013;
      resources = sized 1 1024 8;
      onboot = true;
      start = true;
      interface.health = health "unbound";
    };

    postgresql = {
      enable = true;
      ip = "10.40.0.11";
      hostname = "postgresql.home.lab";
      vmid = 1011;
      version = "1.0";
      resources = sized 2 4096 64;
      interface = {
        auth = {
          type = "oidc";
          provider = "authentik";
          oidc = oidcDefaults // { client_id = "pgadmin-oidc"; redirect_uris = [ "https://pgadmin.home.lab/oauth2/authorize" ]; };
        };
        proxy = { domain = "pgadmin.home.lab"; path = "/"; upstream = "10.40.0.11:5050"; };
        health = health "postgresql";
      };
    };

    caddy = {
      enable = true;
      ip = "10.40.0.10";
      hostname = "caddy.home.lab";
      vmid = 1010;
      resources = sized 2 2048 16;
      interface.health = health "caddy";
    };

    authentik = {
      enable = true;
      ip = "10.40.0.12";
      hostname = "authentik.home.lab";
      vmid = 1012;
      resources = sized 2 4096 16;
      interface = {
        db = { host = "10.40.0.11"; name = "authentik"; owner = "authentik"; port = 5432; };
        proxy = { domain = "auth.home.lab"; path = "/"; upstream = "10.40.0.12:9000"; };
        health = health "authentik";
      };
    };
  };

  services = {
    vaultwarden = {
      ip = "10.40.0.14";
      hostname = "vaultwarden.home.lab";
      vmid = 1014;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8080 ];
      interface = {
        db = { host = "10.40.0.11"; name = "vaultwarden"; owner = "vaultwarden"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidcDefaults // { redirect_uris = [ "https://vault.home.lab/identity/connect/oidc-signin" ]; }; };
        proxy = { domain = "vault.home.lab"; path = "/"; upstream = "10.40.0.14:8080"; };
        health = health "vaultwarden" // { liveness = "curl -f -s http://localhost:8080/alive"; };
      };
    };

    guacamole = {
      ip = "10.40.0.16";
      hostname = "guacamole.home.lab";
      vmid = 1016;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8280 4822 ];
      interface = {
        db = { host = "10.40.0.11"; name = "guacamole"; owner = "guacamole"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidcDefaults // { client_id = "guacamole-oidc"; client_type = "public"; redirect_uris = [ "https://guac.home.lab/guacamole/" ]; }; };
        proxy = { domain = "guac.home.lab"; path = "/guacamole"; upstream = "10.40.0.16:8280"; };
        health = health "tomcat";
      };
    };

    monitoring = {
      ip = "10.40.0.18";
      hostname = "monitoring.home.lab";
      vmid = 1018;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 9090 3000 9093 ];
      interface = {
        db = { host = "10.40.0.11"; name = "monitoring"; owner = "monitoring"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidcDefaults // { client_id = "monitoring-oidc"; redirect_uris = [ "https://grafana.home.lab/login/generic_oauth" ]; }; };
        proxy = {
          prometheus = { domain = "prometheus.home.lab"; path = "/"; upstream = "10.40.0.18:9090"; };
          grafana = { domain = "grafana.home.lab"; path = "/"; upstream = "10.40.0.18:3000"; };
          alertmanager = { domain = "alertmanager.home.lab"; path = "/"; upstream = "10.40.0.18:9093"; };
          loki = { domain = "loki.home.lab"; path = "/"; upstream = "10.40.0.18:3100"; };
        };
        health = health "prometheus && systemctl is-active --quiet grafana";
      };
    };

    nextcloud = {
      ip = "10.40.0.15";
      hostname = "nextcloud.home.lab";
      vmid = 1015;
      resources = sized 4 4096 32;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8080 ];
      interface = {
        db = { host = "10.40.0.11"; name = "nextcloud"; owner = "nextcloud"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidcDefaults // { scopes = [ "email" "profile" "nextcloud" "openid" ]; redirect_uris = [ "https://cloud.home.lab/apps/user_oidc/code" ]; }; };
        proxy = { domain = "cloud.home.lab"; path = "/"; upstream = "10.40.0.15:80"; };
        health = health "phpfpm-nextcloud" // { liveness = "curl -f -s http://localhost:80/status.php"; };
      };
    };

    media = {
      ip = "10.40.0.17";
      hostname = "media.home.lab";
      vmid = 1017;
      resources = sized 2 2048 32;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8096 8989 7878 9696 9091 ];
      interface = {
        dbs = {
          sonarr = { host = "10.40.0.11"; name = "sonarr"; owner = "sonarr"; port = 5432; additionaldbs = [ "sonarr-log" ]; };
          radarr = { host = "10.40.0.11"; name = "radarr"; owner = "radarr"; port = 5432; additionaldbs = [ "radarr-log" ]; };
          prowlarr = { host = "10.40.0.11"; name = "prowlarr"; owner = "prowlarr"; port = 5432; additionaldbs = [ "prowlarr-log" ]; };
        };
        proxy = {
          jellyfin = {
            domain = "jellyfin.home.lab";
            path = "/";
            upstream = "10.40.0.17:8096";
            auth = { type = "oidc"; provider = "authentik"; oidc = oidcDefaults // { redirect_uris = [ "https://jellyfin.home.lab/sso/OID/redirect/authentik" ]; }; };
            extra_config = ''
              header {
                X-Content-Type-Options nosniff
                X-Frame-Options DENY
              }
            '';
          };
          sonarr = { domain = "sonarr.home.lab"; upstream = "10.40.0.17:8989"; auth = { type = "forward_auth"; provider = "authentik"; forward_auth_upstream = "10.40.0.12:9000"; }; };
          radarr = { domain = "radarr.home.lab"; upstream = "10.40.0.17:7878"; auth = { type = "forward_auth"; provider = "authentik"; forward_auth_upstream = "10.40.0.12:9000"; }; };
          prowlarr = { domain = "prowlarr.home.lab"; upstream = "10.40.0.17:9696"; auth = { type = "forward_auth"; provider = "authentik"; forward_auth_upstream = "10.40.0.12:9000"; }; };
          transmission = { domain = "transmission.home.lab"; upstream = "10.40.0.17:9091"; auth = { type = "forward_auth"; provider = "authentik"; }; };
        };
        health = health "jellyfin && systemctl is-active --quiet sonarr";
      };
    };

    mail = {
      enable = false;
      ip = "10.40.0.19";
      hostname = "mail.home.lab";
      vmid = 1019;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 25 587 ];
      interface.health = health "postfix";
    };

    openbao = {
      ip = "10.40.0.20";
      hostname = "openbao.home.lab";
      vmid = 1020;
      depends_on = [ "caddy" "authentik" ];
      ports = [ 8200 ];
      interface = {
        auth = {
          type = "oidc";
          provider = "authentik";
          oidc = oidcDefaults // { client_id = "openbao-oidc"; redirect_uris = [ "https://bao.home.lab/oidc/callback" "https://bao.home.lab/ui/vault/auth/oidc/oidc/callback" ]; };
        };
        proxy = { domain = "bao.home.lab"; path = "/"; upstream = "10.40.0.20:8200"; };
        health = health "openbao";
      };
    };

    forgejo = {
      ip = "10.40.0.21";
      hostname = "forgejo.home.lab";
      vmid = 1021;
      resources = sized 4 4096 64;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 3000 ];
      interface = {
        db = { host = "10.40.0.11"; name = "forgejo"; owner = "forgejo"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidcDefaults // { redirect_uris = [ "https://git.home.lab/user/oauth2/authentik/callback" ]; }; };
        proxy = { domain = "git.home.lab"; path = "/"; upstream = "10.40.0.21:3000"; };
        health = health "forgejo" // { liveness = "curl -f -s http://localhost:3000/api/v1/version"; };
      };
    };
  };

  deployment_phases = {
    tf_infra = [ "postgresql" "dns" "caddy" "authentik" ];
    nix_core = [ "postgresql" "dns" "caddy" "authentik" ];
    services = [ "vaultwarden" "guacamole" "monitoring" "nextcloud" "media" "mail" "openbao" "forgejo" ];
  };

  health_check_timeout = 600;
  retry_attempts = 5;
  retry_delay = 15;

  enable_rollback = true;
  enable_health_monitoring = true;
  enable_dependency_graphing = true;
  enable_deployment_logging = true;
}
