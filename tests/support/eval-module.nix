# Evaluates ONE shipped NixOS module's `config` section against a rendered host.json, with the real
# nix-instantiate but a stub `lib`/`pkgs` and a hand-made `config` (no nixpkgs exists on these machines).
#
# What this proves: the values the module computes from the host data (units, environments, files, ports).
# What it does NOT prove: that the option names exist in nixpkgs, or how the real module system merges them
# with other modules (mkIf/mkForce/mkDefault are resolved naively here, lists are not merged across modules).
{ module, hostJson, vaultwardenVersion ? "1.35.0", guacamoleVersion ? "1.6.0" }:
let
  inherit (builtins) isAttrs isList attrNames listToAttrs filter map mapAttrs;

  data = builtins.fromJSON (builtins.readFile hostJson);

  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];

  lib = rec {
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkForce = content: { _type = "override"; inherit content; };
    mkDefault = content: { _type = "override"; inherit content; };
    mkOption = attrs: attrs;
    types = { };
    optionalAttrs = condition: set: if condition then set else { };
    optional = condition: x: if condition then [ x ] else [ ];
    filterAttrs = pred: set: listToAttrs (map (name: { inherit name; value = set.${name}; }) (filter (name: pred name set.${name}) (attrNames set)));
    mapAttrs' = f: set: listToAttrs (map (name: f name set.${name}) (attrNames set));
    mapAttrsToList = f: set: map (name: f name set.${name}) (attrNames set);
    nameValuePair = name: value: { inherit name value; };
    concatStringsSep = builtins.concatStringsSep;
    concatStrings = builtins.concatStringsSep "";
    toUpper = builtins.replaceStrings lower upper;
    hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
    versionAtLeast = a: b: builtins.compareVersions a b >= 0;
    optionalString = condition: s: if condition then s else "";
    removeSuffix = suffix: s:
      let n = builtins.stringLength s; k = builtins.stringLength suffix;
      in if k <= n && builtins.substring (n - k) k s == suffix then builtins.substring 0 (n - k) s else s;
    imap0 = f: list: builtins.genList (i: f i (builtins.elemAt list i)) (builtins.length list);
    recursiveUpdate = a: b: a // mapAttrs (name: value: if isAttrs value && isAttrs (a.${name} or null) then recursiveUpdate a.${name} value else value) b;
  };

  pkgs = {
    authentik = "/nix/store/stub-authentik";
    jq = "/nix/store/stub-jq";
    bash = "/nix/store/stub-bash";
    dnsutils = "/nix/store/stub-dnsutils";
    coreutils = "/nix/store/stub-coreutils";
    util-linux = "/nix/store/stub-util-linux";
    gnused = "/nix/store/stub-gnused";
    nix = "/nix/store/stub-nix";
    systemd = "/nix/store/stub-systemd";
    postgresql = "/nix/store/stub-postgresql";
    postgresql_jdbc = "/nix/store/stub-postgresql-jdbc";
    fetchurl = { url, hash }: "/nix/store/stub-fetchurl-${baseNameOf url}-${hash}";
    writeText = name: _text: "/nix/store/stub-${name}";
    runCommand = name: _env: _script: "/nix/store/stub-${name}";
  };

  # The option defaults the modules read from each other (core's nixmox.environmentFiles.<name>.path).
  envPaths = listToAttrs (map (name: { inherit name; value.path = "/run/nixmox/env/${name}.env"; }) [ "authentik" "vaultwarden" "guacamole" ]);

  # Defaults of options host.json leaves out (declared in the modules).
  defaults = { caddy = { acmeEmail = null; ca = null; }; guacamole = { extensionJars = [ ]; schemaFile = null; guacdPort = 4822; }; host.caCertificates = [ ]; };
  isCore = baseNameOf (toString module) == "core.nix";

  config = {
    # core.nix builds units from nixmox.environmentFiles, which only the app modules fill in.
    nixmox = lib.recursiveUpdate defaults data // { environmentFiles = if isCore then { } else envPaths; };
    services.vaultwarden.package.version = vaultwardenVersion;
    services.postgresql.package = "/nix/store/stub-postgresql";
    services.tomcat.jdk = "/nix/store/stub-jdk";
    services.guacamole-client.package.version = guacamoleVersion;
  };

  # mkIf false → dropped, mkIf true / mkForce / mkDefault → their content.
  resolve = v:
    if isAttrs v then
      if (v._type or null) == "if" then (if v.condition then resolve v.content else null)
      else if (v._type or null) == "override" then resolve v.content
      else
        let resolved = mapAttrs (_: resolve) v; in
        listToAttrs (map (name: { inherit name; value = resolved.${name}; }) (filter (name: resolved.${name} != null) (attrNames resolved)))
    else if isList v then map resolve v
    else v;

  # `nixmox` is the module argument core.nix passes to every module (_module.args.nixmox).
  evaluated = import module { inherit config lib pkgs; nixmox = config.nixmox; modulesPath = "/stub-modules"; };
in
# A manifest module may be written without a `config` section.
resolve (evaluated.config or (builtins.removeAttrs evaluated [ "imports" "options" ]))
