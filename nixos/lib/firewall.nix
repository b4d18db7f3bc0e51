# Pure builders of a host's firewall (builtins only; nixos/core.nix uses them, and `nixmox render --configs` writes
# the whole nftables table as configs/nftables.conf, which the tests load into the real `nft`).
#
# Input: the host's `host` data (render/host-data.ts HostFacts): `firewallRules` = [ { protocol, port, from, reasons } ]
# from manifest/firewall.ts, where `from = null` opens the port to every address and a list opens it to those
# sources only (an empty list: to nobody but the host itself, whose own traffic arrives on the trusted `lo`).
#
# Open-to-all ports go to networking.firewall.allowedTCPPorts/allowedUDPPorts; the others become one
# `ip saddr { … } <proto> dport <port> accept` rule each in networking.firewall.extraInputRules, which the nftables
# firewall appends to its input-allow chain. Everything not accepted there hits the input chain's `policy drop`.
#
# Checked against: nixos/modules/services/networking/firewall-nftables.nix and firewall.nix (read at NixOS/nixpkgs
# 040b4eb and 0192bb8: the table `inet nixos-fw`, its input / input-allow chains, `trustedInterfaces = [ "lo" ]`,
# extraInputRules appended to input-allow, allowedTCPPorts canonicalised (sorted, unique)), and nft(8) (anonymous
# sets of addresses and prefixes, `#` comments in rule files).
let
  inherit (builtins) concatStringsSep filter map sort toString;
  uniqSorted = list: builtins.foldl' (acc: x: if acc != [ ] && builtins.elemAt acc (builtins.length acc - 1) == x then acc else acc ++ [ x ]) [ ] (sort builtins.lessThan list);
in
rec {
  # Ports open to every address, for one protocol ("tcp" or "udp").
  publicPorts = protocol: host:
    map (rule: rule.port) (filter (rule: rule.protocol == protocol && rule.from == null) host.firewallRules);

  # Ports open to some sources only (a rule each); ports open to nobody else need no rule.
  restrictedRules = host: filter (rule: rule.from != null && rule.from != [ ]) host.firewallRules;

  ruleLines = rule: [
    "# ${concatStringsSep "; " rule.reasons}"
    "ip saddr { ${concatStringsSep ", " rule.from} } ${rule.protocol} dport ${toString rule.port} accept"
  ];

  # networking.firewall.extraInputRules.
  inputRules = host: concatStringsSep "\n" (builtins.concatLists (map ruleLines (restrictedRules host)));

  # The table the NixOS nftables firewall loads for this host, with NixMox's settings (nixos/core.nix: reverse-path
  # filter off, no logging, ping allowed; sshd's openFirewall adds its port to allowedTCPPorts). Rebuilt from the
  # module source cited above the way nixos/lib/caddy.nix rebuilds the Caddyfile; blank lines are not kept.
  nixosRuleset = host:
    let
      set = ports: concatStringsSep ", " (map toString (uniqSorted ports));
      tcp = publicPorts "tcp" host ++ [ host.sshPort ];
      udp = publicPorts "udp" host;
      extra = inputRules host;
    in
    concatStringsSep "\n" ([
      "table inet nixos-fw {"
      "  set temp-ports {"
      "    comment \"Temporarily opened ports\""
      "    type inet_proto . inet_service"
      "    flags interval"
      "    auto-merge"
      "  }"
      "  chain rpfilter-allow {"
      "  }"
      "  chain input {"
      "    type filter hook input priority filter; policy drop;"
      "    iifname { \"lo\" } accept comment \"trusted interfaces\""
      "    ct state vmap {"
      "      invalid : drop,"
      "      established : accept,"
      "      related : accept,"
      "      new : jump input-allow,"
      "      untracked: jump input-allow,"
      "    }"
      "  }"
      "  chain input-allow {"
      "    tcp dport { ${set tcp} } accept"
    ]
    ++ (if udp == [ ] then [ ] else [ "    udp dport { ${set udp} } accept" ])
    ++ [
      "    meta l4proto . th dport @temp-ports accept"
      "    icmp type echo-request accept comment \"allow ping\""
      "    icmpv6 type != { nd-redirect, 139 } accept comment \"Accept all ICMPv6 messages except redirects and node information queries (type 139).  See RFC 4890, section 4.4.\""
      "    ip6 daddr fe80::/64 udp dport 546 accept comment \"DHCPv6 client\""
    ]
    ++ map (line: "    ${line}") (filter (line: line != "") (builtins.filter builtins.isString (builtins.split "\n" extra)))
    ++ [
      "  }"
      "}"
    ]) + "\n";

  # `nixmox render --configs`: the firewall table of a host whose firewall is NixOS's own (network.firewall).
  configFiles = data: if data.host.firewall == "nftables" then { "nftables.conf" = nixosRuleset data.host; } else { };
}
