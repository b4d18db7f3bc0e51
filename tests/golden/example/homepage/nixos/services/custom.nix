# NixMox custom module: a service without a built-in module. The manifest's own NixOS module files
# (nixos_modules, copied into this host's flake under custom/) are imported by the flake next to this file
# and the core module, and read the same generated data as the built-in modules: `config.nixmox.host`,
# `config.nixmox.secrets` (name → path), or the module argument `{ nixmox, ... }:`.
#
# Checked against NixOS 25.11 (module system: _module.args, assertions).
{ config, ... }:
let
  host = config.nixmox.host;
in
{
  config.assertions = [
    {
      assertion = host.kind == "custom";
      message = "nixmox: service \"${host.name}\" of kind ${host.kind} imports the custom module; this is a renderer bug.";
    }
  ];
}
