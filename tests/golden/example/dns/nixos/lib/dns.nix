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

  accessControl = cidrs: [ "127.0.0.0/8 allow" ] ++ map (c: "${c} allow") cidrs;
}
