# Pure Unbound configuration builders for nixos/services/dns.nix (builtins only; evaluated for real in tests).
#
# Checked against: NixOS 25.11 `services.unbound.settings` (nixos/modules/services/networking/unbound.nix:
# string values are written verbatim after "name: ", so local-data entries carry their own double quotes)
# and unbound.conf(5) (local-data "name. IN A addr", local-data-ptr "addr name.", forward-zone).
#
# Records come from the generated host data: [ { name, type = "A", value } ].
let
  inherit (builtins) concatStringsSep filter map sort match length;

  ipv4Pattern = "(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})";
  namePattern = "[a-z0-9]([a-z0-9.-]*[a-z0-9])?";
in
rec {
  # A record value is only ever a dotted quad and a name only DNS characters: anything else would let a
  # manifest value inject unbound.conf syntax, so the module asserts on `invalidRecords`.
  isValidRecord = r: r.type == "A" && match ipv4Pattern r.value != null && match namePattern r.name != null;
  invalidRecords = records: filter (r: !(isValidRecord r)) records;

  # Fully qualified, with the trailing dot unbound expects.
  fqdn = name: "${name}.";

  localData = records: map (r: "\"${fqdn r.name} IN A ${r.value}\"") (sortRecords records);

  # Reverse records only for host records: a route domain shares the proxy's address, and one address
  # must not get several PTR answers.
  localDataPtr = records:
    map (r: "\"${r.value} ${fqdn r.name}\"") (sortRecords (filter (r: r.source == "host") records));

  sortRecords = records: sort (a: b: if a.name != b.name then a.name < b.name else a.value < b.value) records;

  # Names that appear twice with different addresses (unbound would answer both, round-robin).
  conflictingNames = records:
    let names = map (r: r.name) records; in
    filter (n: length (builtins.foldl' (acc: r: if r.name == n && !(builtins.elem r.value acc) then acc ++ [ r.value ] else acc) [ ] records) > 1)
      (builtins.foldl' (acc: n: if builtins.elem n acc then acc else acc ++ [ n ]) [ ] names);

  forwardZone = forwarders: [ { name = "."; forward-addr = forwarders; } ];

  # Loopback for the host itself (its own address lies in the containers' subnet), then the networks the
  # manifest allows (the containers' subnet and network.dns.allowed_networks); unbound refuses everyone else.
  accessControl = cidrs: [ "127.0.0.0/8 allow" ] ++ map (c: "${c} allow") cidrs;

  # `local-zone: "<domain>." static`: a name under the homelab domain that has no local-data gets NXDOMAIN
  # here instead of being forwarded upstream (unbound.conf(5), local-zone; `.lan` is not a reserved TLD).
  localZone = domain: "\"${fqdn domain}\" static";

  # services.unbound.settings of the DNS host (nixos/services/dns.nix assigns exactly this). `host` is the
  # nixmox.host option tree, `dns` the nixmox.dns one (the host.json sections of the same names).
  settings = { host, dns }: {
    server = {
      interface = [ "127.0.0.1" host.ip ];
      access-control = accessControl dns.allowedNetworks;
      local-zone = localZone dns.localZone;
      local-data = localData dns.records;
      local-data-ptr = localDataPtr dns.records;
    };
    forward-zone = forwardZone dns.forwarders;
  };

  # unbound.conf text from settings, written the way nixos/modules/services/networking/unbound.nix
  # (nixos-25.11, toConf/confServer/confNoServer) writes it: `server:` first, its options indented by two
  # spaces, lists as repeated options, bools as yes/no, then every other section; attribute names sorted.
  # The module adds path settings of the host (directory, chroot "", username "", pidfile "",
  # auto-trust-anchor-file when services.unbound.enableRootTrustAnchor, tls-cert-bundle, ip-freebind,
  # do-daemonize, remote-control) that only exist there; they are not part of this file.
  toConf = settings:
    let
      toOption = indent: n: v: "${indent}${n}: ${v}";
      render = indent: n: v:
        if builtins.isBool v then toOption indent n (if v then "yes" else "no")
        else if builtins.isInt v then toOption indent n (toString v)
        else if builtins.isString v then toOption indent n v
        else if builtins.isList v then concatStringsSep "\n" (map (render indent n) v)
        else concatStringsSep "\n" ([ "${indent}${n}:" ] ++ map (k: render "${indent}  " k v.${k}) (builtins.attrNames v));
      others = builtins.removeAttrs settings [ "server" ];
    in
    concatStringsSep "\n" (
      [ "server:" ]
      ++ map (k: render "  " k settings.server.${k}) (builtins.attrNames settings.server)
      ++ map (k: render "" k others.${k}) (builtins.attrNames others)
    ) + "\n";

  # `nixmox render --configs`: the daemon files of a DNS host, from its host.json (the `nixmox` option tree).
  configFiles = data: { "unbound.conf" = toConf (settings { inherit (data) host dns; }); };
}
