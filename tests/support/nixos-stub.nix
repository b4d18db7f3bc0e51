# A stand-in for the few parts of nixpkgs that the application modules call (lib.mkOption, lib.types, lib.optional,
# lib.concatStringsSep, lib.genAttrs, lib.getExe, lib.mkIf/mkAfter/optionalAttrs/removeSuffix/escapeShellArg/last/splitString and a
# few packages and builders), so a test can call a module function with plain nix-instantiate and read the `config`
# it returns. Option declarations become inert records, mkIf and mkAfter the records nixpkgs' lib makes: this proves
# the modules' own wiring and messages, not nixpkgs' option names or types.
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
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkAfter = content: { _type = "order"; priority = 1500; inherit content; };
    mkForce = content: { _type = "override"; priority = 50; inherit content; };
    optionalAttrs = cond: attrs: if cond then attrs else { };
    removeSuffix = suffix: s:
      let n = builtins.stringLength s; k = builtins.stringLength suffix;
      in if k <= n && builtins.substring (n - k) k s == suffix then builtins.substring 0 (n - k) s else s;
    escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
    last = list: builtins.elemAt list (builtins.length list - 1);
    # Only the separators the modules use ("." here) need escaping for builtins.split.
    splitString = sep: s: builtins.filter builtins.isString (builtins.split (builtins.replaceStrings [ "." ] [ "\\." ] sep) s);
  };

  pkgs = {
    writeText = name: text: "/nix/store/stub-${name}";
    writeShellScriptBin = name: text: (package name name) // { inherit text; };
    gawk = package "gawk" "awk";
    postgresql = package "postgresql" "psql";
    curl = package "curl" "curl";
    systemd = package "systemd" "systemctl";
    transmission_4 = package "transmission-4" "transmission-daemon";
    authentik-outposts = {
      ldap = package "authentik-ldap-outpost" "ldap";
      radius = package "authentik-radius-outpost" "radius";
    };
  };
}
