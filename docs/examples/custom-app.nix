# The worked example of docs/custom-apps.md: the NixMox example homelab plus Miniflux, a custom app.
let
  base = import ../../manifest/service-manifest.nix;
in
base // {
  # homepage is dropped: its module lives next to the main example, not here.
  services = removeAttrs base.services [ "homepage" ] // {
    miniflux = {
      kind = "custom";
      ip = "192.168.99.17";
      hostname = "miniflux.nixmox.lan";
      vmid = 917;
      depends_on = [ "postgresql" "caddy" ];
      nixos_modules = [ "modules/miniflux.nix" ];
      interface = {
        proxy = { domain = "rss.nixmox.lan"; upstream = "192.168.99.17:8080"; };
        db = { host = "postgresql"; };
        auth = {
          type = "oidc";
          provider = "authentik";
          oidc.redirect_uris = [ "https://rss.nixmox.lan/oauth2/oidc/callback" ];
        };
        health = {
          checks = [ { type = "http"; url = "http://192.168.99.17:8080/healthcheck"; from = "host"; } ];
          start_period = 30;
        };
      };
    };
  };
}
