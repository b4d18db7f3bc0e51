# Your homelab: every service, its container, address, routes, database and health checks.
# `npx nixmox validate` checks it, `npx nixmox plan` shows the deployment plan, and docs/manifest-reference.md in
# NixMox (node_modules/nixmox/docs/) lists every field. Secrets never go here: they live in the Pulumi stack config
# (`npx nixmox secrets check` lists them).
#
# Replace the network, the addresses and the vmids with yours, and the admin key with your own: `nixmox up`
# refuses to deploy the placeholder, and also a deploy key (nixmox:sshPrivateKey) whose public half is not listed
# in ssh_keys.root.
let
  domain = "home.arpa";
  subnet = "192.168.10";
  ip = host: "${subnet}.${toString host}";
  adminKeys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC1leGFtcGxlLWtleS1yZXBsYWNlLW1l admin@nixmox"
    # "ssh-ed25519 AAAA… nixmox-deploy"   # the public half of nixmox:sshPrivateKey
  ];
in
{
  network = {
    inherit domain;
    dns_server = ip 20;
    gateway = ip 1;
    network_cidr = "${subnet}.0/24";
    ssh_keys.root = adminKeys;
  };

  core_services = {
    dns = {
      ip = ip 20;
      vmid = 220;
      resources = { cores = 1; memory = 512; disk_gb = 4; };
    };

    caddy = {
      ip = ip 21;
      vmid = 221;
    };

    postgresql = {
      ip = ip 22;
      vmid = 222;
      resources = { cores = 2; memory = 2048; disk_gb = 32; };
    };
  };

  services = {
    vaultwarden = {
      ip = ip 23;
      vmid = 223;
      depends_on = [ "caddy" ];
      interface = {
        proxy = { domain = "vault.${domain}"; upstream = "${ip 23}:8080"; };
        db.host = "postgresql";
      };
    };
  };
}
