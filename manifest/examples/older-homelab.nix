# A third example: an older NixMox homelab, written the way the original project's manifests looked while Terraform
# still created its containers. It loads unchanged:
#
# - no network.domain: NixMox derives "homelab.lan" from the full hostnames and says so;
# - an interface.terraform block on every service (the per-service Terraform modules): accepted and ignored, with one
#   note, because the Pulumi program creates the containers now;
# - no vmid anywhere: Proxmox assigns each container's id at its first deploy, and the stack keeps it;
# - the *arr databases without additionaldbs: each gets "<name>-log" as its log database (the plan shows it);
# - a database for Jellyfin, which has no PostgreSQL support: it is still created (role, password, pg_hba line) for a
#   module of your own, with a warning naming the apps that do use PostgreSQL on that host.
#
#   npx nixmox validate manifest/examples/older-homelab.nix
#   npx nixmox plan manifest/examples/older-homelab.nix
let
  subnet = "10.77.0";
  ip = host: "${subnet}.${toString host}";
  # What each Terraform module was given; NixMox reads network instead.
  terraform = name: {
    modules = [ "./terraform/${name}" ];
    variables = {
      domain = "homelab.lan";
      network_cidr = "${subnet}.0/24";
    };
  };
  health = unit: {
    startup = "systemctl is-active --quiet ${unit}";
    liveness = "systemctl is-active --quiet ${unit}";
    interval = 30;
    timeout = 60;
    retries = 3;
  };
  oidc = redirect: { client_type = "confidential"; redirect_uris = [ redirect ]; };
in
{
  network = {
    dns_server = ip 13;
    gateway = ip 1;
    network_cidr = "${subnet}.0/24";
    vlan_tag = 77;
    ssh_keys = {
      root = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG9sZGVyLWhvbWVsYWItZXhhbXBsZS1rZXktcmVwbGFjZQ admin@workstation" ];
    };
  };

  core_services = {
    dns = {
      enable = true;
      ip = ip 13;
      hostname = "dns.homelab.lan";
      resources = { cores = 1; memory = 1024; disk_gb = 8; };
      onboot = true;
      start = true;
      interface = {
        terraform = terraform "dns";
        health = health "unbound";
      };
    };

    postgresql = {
      enable = true;
      ip = ip 11;
      hostname = "postgresql.homelab.lan";
      version = "1.0";
      resources = { cores = 2; memory = 4096; disk_gb = 64; };
      onboot = true;
      start = true;
      interface = {
        terraform = terraform "postgresql";
        health = health "postgresql";
      };
    };

    caddy = {
      enable = true;
      ip = ip 10;
      hostname = "caddy.homelab.lan";
      resources = { cores = 2; memory = 2048; disk_gb = 16; };
      interface = {
        terraform = terraform "caddy";
        health = health "caddy";
      };
    };

    authentik = {
      enable = true;
      ip = ip 12;
      hostname = "authentik.homelab.lan";
      resources = { cores = 2; memory = 4096; disk_gb = 16; };
      depends_on = [ "postgresql" ];
      interface = {
        terraform = terraform "authentik";
        db = { host = ip 11; name = "authentik"; owner = "authentik"; port = 5432; };
        proxy = { domain = "auth.homelab.lan"; path = "/"; upstream = "${ip 12}:9000"; tls = true; authz = false; };
        health = health "authentik";
      };
    };
  };

  services = {
    vaultwarden = {
      enable = true;
      ip = ip 14;
      hostname = "vaultwarden.homelab.lan";
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8080 ];
      interface = {
        terraform = terraform "vaultwarden";
        db = { host = ip 11; name = "vaultwarden"; owner = "vaultwarden"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidc "https://vault.homelab.lan/identity/connect/oidc-signin"; };
        proxy = { domain = "vault.homelab.lan"; path = "/"; upstream = "${ip 14}:8080"; tls = true; authz = false; };
        health = health "vaultwarden";
      };
    };

    monitoring = {
      enable = true;
      ip = ip 18;
      hostname = "monitoring.homelab.lan";
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 9090 3000 ];
      interface = {
        terraform = terraform "monitoring";
        # Grafana keeps its data here.
        db = { host = ip 11; name = "monitoring"; owner = "monitoring"; port = 5432; };
        auth = { type = "oidc"; provider = "authentik"; oidc = oidc "https://grafana.homelab.lan/login/generic_oauth"; };
        proxy = {
          grafana = { domain = "grafana.homelab.lan"; path = "/"; upstream = "${ip 18}:3000"; };
          prometheus = { domain = "prometheus.homelab.lan"; path = "/"; upstream = "${ip 18}:9090"; authz = true; };
        };
        health = health "grafana";
      };
    };

    media = {
      enable = true;
      ip = ip 17;
      hostname = "media.homelab.lan";
      resources = { cores = 2; memory = 2048; disk_gb = 32; };
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8096 8989 7878 9696 9091 ];
      interface = {
        terraform = terraform "media";
        # One database per app, as the first multi-database revision wrote them: no additionaldbs, and one for
        # Jellyfin, which keeps its data in SQLite.
        dbs = {
          jellyfin = { host = ip 11; name = "jellyfin"; owner = "jellyfin"; port = 5432; };
          sonarr = { host = ip 11; name = "sonarr"; owner = "sonarr"; port = 5432; };
          radarr = { host = ip 11; name = "radarr"; owner = "radarr"; port = 5432; };
          prowlarr = { host = ip 11; name = "prowlarr"; owner = "prowlarr"; port = 5432; };
        };
        proxy = {
          jellyfin = { domain = "jellyfin.homelab.lan"; path = "/"; upstream = "${ip 17}:8096"; };
          sonarr = { domain = "sonarr.homelab.lan"; upstream = "${ip 17}:8989"; authz = true; };
          radarr = { domain = "radarr.homelab.lan"; upstream = "${ip 17}:7878"; authz = true; };
          prowlarr = { domain = "prowlarr.homelab.lan"; upstream = "${ip 17}:9696"; authz = true; };
          transmission = { domain = "transmission.homelab.lan"; upstream = "${ip 17}:9091"; authz = true; };
        };
        health = health "jellyfin";
      };
    };
  };
}
