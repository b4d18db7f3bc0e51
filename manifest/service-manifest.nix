# The NixMox example homelab: the original NixMox layout on 192.168.99.0/24.
# Validate it with `npx nixmox validate`, see the deployment plan with `npx nixmox plan`.
# Secrets never go here: they live in the Pulumi stack config (`nixmox secrets check` lists them).
let
  domain = "nixmox.lan";
  subnet = "192.168.99";
  ip = host: "${subnet}.${toString host}";
  # Every host lets the same admin key in; replace it with yours.
  adminKeys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC1leGFtcGxlLWtleS1yZXBsYWNlLW1l admin@nixmox" ];
in
{
  network = {
    inherit domain;
    dns_server = ip 13;
    gateway = ip 1;
    network_cidr = "${subnet}.0/24";
    vlan_tag = 99;
    ssh_keys = { root = adminKeys; };
  };

  core_services = {
    dns = {
      ip = ip 13;
      hostname = "dns.${domain}";
      vmid = 913;
      resources = { cores = 1; memory = 512; disk_gb = 4; };
      ports = [ 53 ];
      interface.health = {
        liveness = "host -W 2 caddy.${domain} 127.0.0.1";
        checks = [ { type = "tcp"; port = 53; } ];
      };
    };

    postgresql = {
      ip = ip 11;
      hostname = "postgresql.${domain}";
      vmid = 911;
      resources = { cores = 2; memory = 2048; disk_gb = 32; };
      ports = [ 5432 ];
      interface.health = {
        startup = "pg_isready -h 127.0.0.1 -p 5432";
        liveness = "pg_isready -h 127.0.0.1 -p 5432";
        start_period = 30;
      };
    };

    caddy = {
      ip = ip 10;
      hostname = "caddy.${domain}";
      vmid = 910;
      ports = [ 80 443 ];
      # No route of its own: every route of the manifest points at this host, and a route to itself would loop.
      interface.health = {
        startup = "systemctl is-active --quiet caddy";
        liveness = "systemctl is-active --quiet caddy";
      };
    };

    authentik = {
      ip = ip 12;
      hostname = "authentik.${domain}";
      vmid = 912;
      depends_on = [ "postgresql" ];
      resources = { cores = 2; memory = 4096; disk_gb = 16; };
      ports = [ 9000 ];
      interface = {
        proxy = { domain = "auth.${domain}"; upstream = "${ip 12}:9000"; };
        db = { host = ip 11; name = "authentik"; owner = "authentik"; };
        health = {
          checks = [ { type = "http"; url = "http://${ip 12}:9000/-/health/ready/"; from = "host"; } ];
          start_period = 120;
          interval = 15;
        };
      };
    };
  };

  services = {
    vaultwarden = {
      ip = ip 14;
      hostname = "vaultwarden.${domain}";
      vmid = 914;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      stateful = true;
      ports = [ 8080 ];
      interface = {
        proxy = { domain = "vault.${domain}"; upstream = "${ip 14}:8080"; };
        auth = { type = "oidc"; provider = "authentik"; };
        db = { host = "postgresql"; };
        health.checks = [ { type = "http"; url = "http://${ip 14}:8080/alive"; from = "host"; } ];
      };
    };

    guacamole = {
      ip = ip 15;
      hostname = "guacamole.${domain}";
      vmid = 915;
      depends_on = [ "postgresql" "caddy" "authentik" ];
      ports = [ 8280 ];
      interface = {
        # Guacamole's web app lives under /guacamole/ (nixpkgs' guacamole-client replaces Tomcat's ROOT app), so the
        # bare domain redirects there instead of landing on a Tomcat 404.
        proxy = { domain = "guac.${domain}"; path = "/"; upstream = "${ip 15}:8280"; extra_config = "redir / /guacamole/ 302"; };
        # Guacamole's OpenID extension uses the implicit flow and never sends a secret: a public client.
        auth = { type = "oidc"; provider = "authentik"; oidc = { client_type = "public"; redirect_uris = [ "https://guac.${domain}/guacamole/" ]; }; };
        db = { host = "postgresql.${domain}"; name = "guacamole"; };
      };
    };

    homepage = {
      ip = ip 16;
      hostname = "homepage.${domain}";
      vmid = 916;
      depends_on = [ "caddy" ];
      nixos_modules = [ "modules/homepage.nix" ];
      ports = [ 8082 ];
      interface = {
        proxy = { domain = "home.${domain}"; upstream = "${ip 16}:8082"; authz = true; };
        health.checks = [ { type = "systemd"; unit = "homepage-dashboard.service"; } ];
      };
    };
  };
}
