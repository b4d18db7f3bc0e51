# A service without a built-in NixMox module: the manifest lists this file in `nixos_modules`.
# Checked against NixOS 25.11: nixos/modules/services/misc/homepage-dashboard.nix
# (services.homepage-dashboard.{enable,listenPort,allowedHosts}; allowedHosts becomes HOMEPAGE_ALLOWED_HOSTS,
# default "localhost:8082,127.0.0.1:8082").
#
# allowedHosts: homepage >= 1.0 answers only requests whose Host header it lists ("Host validation failed"),
# and Caddy forwards the client's Host (home.<domain>); the host's own address keeps direct checks working.
# `nixmox` is the generated host data (nixos/core.nix passes it to every module).
{ nixmox, ... }:
{
  services.homepage-dashboard = {
    enable = true;
    listenPort = 8082;
    allowedHosts = "home.${nixmox.host.domain},${nixmox.host.ip}:8082";
  };
}
