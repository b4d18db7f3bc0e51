# A service without a built-in NixMox module: the manifest lists this file in `nixos_modules`.
# Checked against NixOS 25.05: services.homepage-dashboard.{enable,listenPort,openFirewall}.
{ ... }:
{
  services.homepage-dashboard = {
    enable = true;
    listenPort = 8082;
  };
}
