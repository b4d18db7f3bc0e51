# A sibling file the Miniflux module imports: NixMox copies it into the host's flake next to the module.
# Checked against NixOS 25.11 (systemd.services.<name>.serviceConfig).
{ ... }:
{
  systemd.services.miniflux.serviceConfig.MemoryMax = "512M";
}
