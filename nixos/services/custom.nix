# NixMox custom module: a service without a built-in module. The manifest's own NixOS module files
# (nixos_modules, copied into this host's flake under custom/) are imported by the flake next to this file
# and the core module, and read the same generated data as the built-in modules: `config.nixmox.host`,
# `config.nixmox.secrets` (name → path), `config.nixmox.custom` (listen, publicUrl, database(s), oidc, routes:
# see app-options.nix and docs/custom-apps.md), or the module argument `{ nixmox, ... }:`.
#
# Checked against NixOS 25.11 (module system: _module.args, assertions).
{ config, lib, ... }:
let
  host = config.nixmox.host;
in
{
  options.nixmox.custom = import ./app-options.nix lib;

  config.assertions = [
    {
      assertion = host.kind == "custom";
      message = "nixmox: service \"${host.name}\" of kind ${host.kind} imports the custom module; this is a renderer bug.";
    }
  ];
}
