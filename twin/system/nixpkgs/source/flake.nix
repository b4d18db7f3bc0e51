# The twin's stand-in for nixpkgs (twin/README.md, "Building on a builder"): what a twin builder finds in its store
# where a real one has the nixpkgs source it fetched. It has no packages and no NixOS modules; it has the one function
# a NixMox host's flake calls, `lib.nixosSystem { modules }`, whose `config.system.build.toplevel` is a real derivation
# that real Nix evaluates and builds on the builder:
# - the evaluation applies the flake's own config builders (every `configFiles` / `credentials` of nixos/lib/*.nix,
#   the functions `nixmox render --configs` evaluates) to the host's data, as twin/system/lib/build-system.js does
#   with nix-instantiate on a host that builds itself; each file is a store path of its own (builtins.toFile);
# - the build runs build-system.js --derivation, which writes the same system tree into $out: the host's daemons as
#   twin units on those files, a listener on every port the host serves, etc/nix.conf, and the twin's
#   bin/switch-to-configuration, so the host that switches to it starts real daemons and listeners.
# Impure on purpose (the builder's /.twin files, /usr), as the twin's builds are: the Nix sandbox is off in NixMox's
# containers (nixos/core.nix).
{
  description = "NixMox twin: stand-in nixpkgs (lib.nixosSystem only)";
  outputs = { self }: {
    lib.nixosSystem = { modules, ... }:
      let
        inherit (builtins) attrNames baseNameOf concatMap dirOf filter foldl' head isAttrs isPath listToAttrs match pathExists readDir readFile toFile toJSON;
        data = (head (filter (module: isAttrs module && module ? nixmox) modules)).nixmox;
        core = head (filter (module: isPath module && baseNameOf module == "core.nix") modules);
        root = dirOf (dirOf core);
        libDir = dirOf core + "/lib";
        libFiles = filter (name: match ".*\\.nix" name != null) (attrNames (readDir libDir));
        built = map (name: let lib = import (libDir + "/${name}"); in {
          inherit name;
          files = if lib ? configFiles then lib.configFiles data else { };
          credentials = if lib ? credentials then lib.credentials data else { };
        }) libFiles;
        configs = foldl' (all: entry: all // listToAttrs (map (file: { name = file; value = toFile file entry.files.${file}; }) (attrNames entry.files))) { } built;
        credentials = listToAttrs (map (entry: { inherit (entry) name; value = entry.credentials; }) built);
        stateVersionFile = root + "/state-version";
        stateVersion = if pathExists stateVersionFile then head (match "([0-9.]+)[[:space:]]*" (readFile stateVersionFile)) else data.host.stateVersion or "25.11";
      in {
        config.system.build.toplevel = derivation {
          name = "nixos-system-${data.host.hostName}-${stateVersion}";
          system = "x86_64-linux";
          builder = "/.twin/bin/node";
          args = [ "/.twin/system/lib/build-system.js" "--derivation" ];
          hostJson = toJSON data;
          configsJson = toJSON configs;
          credentialsJson = toJSON credentials;
          inherit stateVersion;
          # The flake it was built from, in its closure (as a host that builds itself keeps it): an edit of the host's
          # modules gives a new system, as it would with NixOS.
          flake = "${root}";
        };
      };
  };
}
