# A stand-in for the few parts of nixpkgs that the monitoring, media and outposts modules call (lib.mkOption,
# lib.types, lib.optional, lib.concatStringsSep, lib.genAttrs, lib.getExe and three packages), so a test can
# call a module function with plain nix-instantiate and read the `config` it returns. Option declarations
# become inert records: this proves the modules' own wiring and messages, not nixpkgs' option names or types.
let
  type = name: { _type = "stub-type"; inherit name; };
  typeOf = name: _: type name;
  package = name: mainProgram: { outPath = "/nix/store/stub-${name}"; meta.mainProgram = mainProgram; };
in
{
  lib = {
    mkOption = attrs: attrs // { _type = "stub-option"; };
    types = {
      str = type "str";
      port = type "port";
      strMatching = typeOf "strMatching";
      nullOr = typeOf "nullOr";
      submodule = typeOf "submodule";
      listOf = typeOf "listOf";
      enum = typeOf "enum";
      attrsOf = typeOf "attrsOf";
    };
    optional = cond: value: if cond then [ value ] else [ ];
    concatStringsSep = builtins.concatStringsSep;
    genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
    getExe = pkg: "${pkg}/bin/${pkg.meta.mainProgram}";
  };

  pkgs = {
    transmission_4 = package "transmission-4" "transmission-daemon";
    authentik-outposts = {
      ldap = package "authentik-ldap-outpost" "ldap";
      radius = package "authentik-radius-outpost" "radius";
    };
  };
}
