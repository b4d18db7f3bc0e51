# NixMox core module: what every container shares. Imported by every host's flake.
#
# Checked against NixOS 25.11 (nixpkgs nixos-25.11): nixos/modules/virtualisation/proxmox-lxc.nix
# (options proxmoxLXC.{enable,privileged,manageNetwork,manageHostName}), networking.* / systemd.network.*,
# services.openssh.{settings,authorizedKeysInHomedir}, services.resolved, nix.settings, users.users.<name>.openssh.authorizedKeys.keys,
# networking.resolvconf.enable and environment.etc.<name>.text (nixos/modules/config/resolvconf.nix, etc.nix),
# security.pki.certificates (nixos/modules/security/ca.nix),
# networking.nftables.enable and networking.firewall.{enable,checkReversePath,logRefusedConnections}
# (nixos/modules/services/networking/{nftables,firewall,firewall-nftables}.nix, read at Swarsel/nixpkgs@4aa6836).
#
# Data: the host's generated `host.json` is assigned to `config.nixmox` by the host's flake.nix, so every key
# of the JSON is type-checked by the options below (an unknown key is an evaluation error, not ignored).
#
# Who owns the network: NixOS. `proxmoxLXC.manageNetwork = true` and `manageHostName = true`, and this module
# writes a static systemd-networkd unit from the manifest. Why: with Proxmox in charge, NixOS ignores part of
# what Proxmox writes (DNS server and search domain are not applied: NixOS/nixpkgs#390932; interface setup
# through Proxmox was broken for a long time: NixOS/nixpkgs#227416). The Pulumi container still gets the same
# IP/prefix, gateway and DNS server from the same plan, so that the container is reachable over SSH before
# its first rebuild and the Proxmox UI shows the truth; both are rendered from one plan, so they cannot drift.
# Our unit is named "10-nixmox-<if>.network": networkd applies the first file (in lexical order) matching an
# interface, so it wins over the "eth0.network" Proxmox may write (systemd.network(5), [Match]).
#
# The resolver is the manifest's dns_server, written to /etc/resolv.conf as a static file (lib/resolv.nix says
# why resolvconf cannot do it with networkd: NixOS/nixpkgs#445496); resolvconf and systemd-resolved are off.
#
# Secrets: files under `nixmox.host.secretsDir` (root-only, outside the Nix store), filled before the rebuild
# by the secrets push. Modules hand them to services only with systemd `LoadCredential=`, so file ownership
# never matters and no value is ever part of a unit, a script or the store.
{ config, lib, pkgs, modulesPath, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nixmox;
  host = cfg.host;
  shell = import ./lib/shell.nix;
  resolv = import ./lib/resolv.nix;
  firewallLib = import ./lib/firewall.nix;
  ipv4 = types.strMatching "(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})";
  dnsName = types.strMatching "[a-z0-9]([a-z0-9.-]*[a-z0-9])?";

  installedStateVersionFile = ../state-version;
  installedStateVersion = lib.removeSuffix "\n" (builtins.readFile installedStateVersionFile);

  # The activation wrapper keeps each attempt, with its own copy of the wrapper, under
  # /var/lib/nixmox/<service>/attempts/<config hash>/ (components/activation). `recover` rolls back an attempt that
  # has no result and no unit any more under the wrapper's lock, and records the outcome for the controller.
  activationRecovery.nixmox-activation-recover = {
    description = "NixMox: roll back an activation that a restart interrupted";
    path = [ pkgs.bash pkgs.coreutils pkgs.util-linux pkgs.gnused pkgs.nix pkgs.systemd ];
    serviceConfig.Type = "oneshot";
    script = ''
      status=0
      for dir in /var/lib/nixmox/${host.name}/attempts/*/; do
        [ -f "$dir/nixmox-activate.sh" ] && [ ! -e "$dir/result" ] || continue
        bash "$dir/nixmox-activate.sh" recover --service ${host.name} --config-hash "$(basename "$dir")" || status=1
      done
      exit $status
    '';
  };
in
{
  imports = [ (modulesPath + "/virtualisation/proxmox-lxc.nix") ];

  options.nixmox = {
    schemaVersion = mkOption {
      type = types.ints.positive;
      description = "Version of the host.json layout written by `nixmox render`.";
    };

    host = {
      name = mkOption { type = types.str; description = "Service name from the manifest."; };
      kind = mkOption {
        type = types.enum [ "dns" "caddy" "postgresql" "authentik" "vaultwarden" "guacamole" "forgejo" "nextcloud" "monitoring" "media" "openbao" "mail" "pgadmin" "builder" "custom" ];
        description = "Built-in module the host runs, or custom (the manifest's own NixOS modules).";
      };
      hostName = mkOption { type = types.strMatching "[a-z0-9]([a-z0-9-]*[a-z0-9])?"; description = "Short host name."; };
      domain = mkOption { type = dnsName; description = "The homelab domain (manifest network.domain)."; };
      ip = mkOption { type = ipv4; description = "Static IPv4 address."; };
      prefixLength = mkOption { type = types.ints.between 0 32; description = "Prefix length of network.network_cidr."; };
      networkCidr = mkOption { type = types.str; description = "The containers' subnet."; };
      gateway = mkOption { type = ipv4; description = "Default gateway."; };
      dnsServer = mkOption { type = ipv4; description = "Resolver (manifest network.dns_server)."; };
      fallbackDnsServers = mkOption { type = types.listOf ipv4; default = [ ]; description = "Resolvers asked when dnsServer does not answer (manifest network.fallback_dns_servers)."; };
      interface = mkOption {
        type = types.strMatching "[a-z0-9]+";
        default = "eth0";
        description = "Container NIC name; the Pulumi container names net0 like this.";
      };
      ports = mkOption { type = types.listOf types.port; default = [ ]; description = "TCP ports the host's services listen on (firewallRules says who reaches each)."; };
      firewallRules = mkOption {
        default = [ ];
        description = "Who may open each port (manifest/firewall.ts): from = null is every address, a list only those sources, [ ] only this host.";
        type = types.listOf (types.submodule {
          options = {
            protocol = mkOption { type = types.enum [ "tcp" "udp" ]; description = "Transport protocol."; };
            port = mkOption { type = types.port; description = "Port on this host."; };
            from = mkOption {
              type = types.nullOr (types.listOf (types.strMatching "[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]{1,2})?"));
              description = "Source IPv4 addresses or CIDRs; null: every address.";
            };
            reasons = mkOption { type = types.listOf (types.strMatching "[^\n]*"); default = [ ]; description = "Why the port is open (a comment in the rules)."; };
          };
        });
      };
      firewall = mkOption {
        type = types.enum [ "nftables" "proxmox" ];
        default = "nftables";
        description = "Where the container is firewalled (manifest network.firewall): the NixOS nftables firewall, or the Proxmox firewall outside.";
      };
      udpPorts = mkOption { type = types.listOf types.port; default = [ ]; description = "UDP ports opened in the firewall (DNS, HTTP/3, RADIUS)."; };
      sshPort = mkOption { type = types.port; default = 22; description = "Port sshd listens on (always open)."; };
      rootSshKeys = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Public keys allowed to log in as root (manifest network.ssh_keys.root).";
      };
      stateVersion = mkOption { type = types.str; description = "system.stateVersion: the manifest's state_version, else the default for a new host."; };
      stateVersionFromManifest = mkOption {
        type = types.bool;
        default = false;
        description = "The manifest sets state_version; otherwise the release recorded at the host's first install wins.";
      };
      system = mkOption { type = types.str; default = "x86_64-linux"; description = "nixpkgs.hostPlatform."; };
      caCertificates = mkOption {
        type = types.listOf (types.strMatching "-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?");
        default = [ ];
        description = "PEM root certificates every program on the host trusts: the homelab's managed CA (Caddy's tls internal).";
      };
      secretsDir = mkOption {
        type = types.strMatching "/[A-Za-z0-9._/-]+";
        default = "/var/lib/nixmox/secrets";
        description = "Root-only directory holding this host's secret files.";
      };
    };

    nix = mkOption {
      default = null;
      description = ''
        The binary caches and signing keys of the host's Nix (manifest network.substituters and trusted_public_keys,
        and first the stack's key when systems are built once and copied, components/build). null: Nix's defaults.
      '';
      type = types.nullOr (types.submodule {
        options = {
          substituters = mkOption { type = types.listOf types.str; description = "nix.settings.substituters, in order."; };
          trustedPublicKeys = mkOption { type = types.listOf (types.strMatching "[A-Za-z0-9._-]+:[A-Za-z0-9+/]+={0,2}"); description = "nix.settings.trusted-public-keys."; };
        };
      });
    };

    secrets = mkOption {
      type = types.attrsOf (types.strMatching "/[A-Za-z0-9._/-]+");
      default = { };
      description = "Secret name → absolute path of the file holding it on this host (never the value).";
    };

    environmentFiles = mkOption {
      default = { };
      description = ''
        Environment files composed from secret files when their consumers start, for programs that only read
        secrets from the environment (e.g. a password inside DATABASE_URL). The file is written to
        /run/nixmox/env/<name>.env (root, 0400; systemd reads EnvironmentFile= as root) by the oneshot unit
        nixmox-env-<name>.service, ordered before and restarted with the consumers.
      '';
      type = types.attrsOf (types.submodule ({ name, ... }: {
        options = {
          consumers = mkOption { type = types.listOf types.str; description = "Units (e.g. \"vaultwarden.service\") that read the file."; };
          path = mkOption { type = types.str; readOnly = true; default = "/run/nixmox/env/${name}.env"; description = "Where the file is written."; };
          variables = mkOption {
            description = "Variable name → how to build its value from one secret file.";
            type = types.attrsOf (types.submodule {
              options = {
                file = mkOption { type = types.strMatching "/[A-Za-z0-9._/-]+"; description = "Secret file (its trailing newline is dropped)."; };
                encoding = mkOption { type = types.enum [ "raw" "uri" ]; default = "raw"; description = "uri: percent-encode the secret (for URLs)."; };
                prefix = mkOption { type = types.str; default = ""; description = "Non-secret text before the secret."; };
                suffix = mkOption { type = types.str; default = ""; description = "Non-secret text after the secret."; };
              };
            });
          };
        };
      }));
    };
  };

  config = {
    # Custom modules get the same generated data as a module argument, e.g. `{ nixmox, ... }:`.
    _module.args.nixmox = cfg;

    assertions = [
      {
        assertion = host.stateVersionFromManifest || !(builtins.pathExists installedStateVersionFile)
          || builtins.match "[0-9]{2}\\.[0-9]{2}" installedStateVersion != null;
        message = "nixmox: service \"${host.name}\": /etc/nixmox/state-version is not a NixOS release such as 25.11; set state_version in the manifest to the release the host was installed with.";
      }
      {
        assertion = !(builtins.elem host.sshPort host.ports);
        message = "nixmox: service \"${host.name}\": ports lists the SSH port ${toString host.sshPort}; remove it, SSH is always open.";
      }
    ] ++ lib.mapAttrsToList (name: path: {
      assertion = lib.hasPrefix "${host.secretsDir}/" path && shell.isSafePath path;
      message = "nixmox: service \"${host.name}\": secret \"${name}\" path ${path} must lie under ${host.secretsDir}/.";
    }) cfg.secrets;

    nixpkgs.hostPlatform = host.system;
    # The release of the host's first install, kept in the flake directory by the config push
    # (components/config-push.ts): a later NixMox default must never move a running host (its PostgreSQL data
    # directory follows system.stateVersion). The manifest's state_version, when set, is the user's decision.
    system.stateVersion = if host.stateVersionFromManifest || !(builtins.pathExists installedStateVersionFile)
      then host.stateVersion
      else installedStateVersion;

    proxmoxLXC = {
      enable = true;
      # Unprivileged containers: keeps the module's sys-kernel-debug.mount workaround (NixOS/nixpkgs#157918)
      # and ping wrapper.
      privileged = false;
      manageNetwork = true;
      manageHostName = true;
    };

    networking = {
      hostName = host.hostName;
      domain = host.domain;
      useDHCP = false;
      useNetworkd = true;
      useHostResolvConf = false;
      # Kept for tools that read the option; /etc/resolv.conf itself comes from environment.etc below.
      nameservers = resolv.nameservers cfg;
      search = [ host.domain ];
      resolvconf.enable = false;
      # The firewall of an unprivileged LXC runs in the container's network namespace, but the kernel is the
      # Proxmox node's and the container cannot load modules (CAP_SYS_MODULE). nftables needs fewer modules than
      # the iptables backend (whose rules need xt_conntrack, xt_pkttype, xt_rpfilter, xt_LOG through nft_compat):
      # with the reverse-path filter off (it needs nft_fib) and no refused-connection logging (nf_log_syslog),
      # the ruleset of nixos/modules/services/networking/firewall-nftables.nix needs only nf_tables and
      # nf_conntrack/nft_ct on the node (`printf 'nf_tables\nnft_ct\nnf_conntrack\n' > /etc/modules-load.d/nixmox.conf`).
      # The reverse-path filter adds nothing here: one interface, and Proxmox's bridge decides what reaches it.
      # network.firewall = "proxmox" turns it off inside and leaves filtering to the Proxmox firewall.
      nftables.enable = host.firewall == "nftables";
      # The gate behind forward auth: a port is open to every address only when the manifest makes it public
      # (public_ports, the kind's own such as the proxy's 443); a route's port only to the proxy, a database's only
      # to its clients (manifest/firewall.ts, rules in ./lib/firewall.nix). So http://<app ip>:<port> does not
      # bypass the proxy's login. `nixmox render --configs` writes the resulting table as configs/nftables.conf.
      firewall = {
        enable = host.firewall == "nftables";
        checkReversePath = false;
        logRefusedConnections = false;
        allowedTCPPorts = firewallLib.publicPorts "tcp" host;
        allowedUDPPorts = firewallLib.publicPorts "udp" host;
        extraInputRules = firewallLib.inputRules host;
      };
    };

    systemd.network = {
      enable = true;
      networks."10-nixmox-${host.interface}" = {
        matchConfig.Name = host.interface;
        address = [ "${host.ip}/${toString host.prefixLength}" ];
        routes = [ { Gateway = host.gateway; } ];
        networkConfig = {
          DHCP = "no";
          IPv6AcceptRA = false;
        };
        linkConfig.RequiredForOnline = "routable";
      };
    };

    # The managed CA signs every `tls = "internal"` route, so server-side calls between hosts (OIDC discovery,
    # JWKS downloads to https://auth.<domain>) verify (nixos/modules/security/ca.nix: added to the system bundle
    # /etc/ssl/certs/ca-certificates.crt that OpenSSL, curl, rustls-native-certs and Go use).
    security.pki.certificates = host.caCertificates;

    services.resolved.enable = false;
    # `nixmox render --configs` writes the same text as configs/resolv.conf.
    environment.etc."resolv.conf".text = resolv.resolvConf cfg;

    services.openssh = {
      enable = true;
      ports = [ host.sshPort ];
      openFirewall = true;
      # Keep reading ~/.ssh/authorized_keys (the NixOS default, pinned here so a future default cannot lock NixMox
      # out): Proxmox writes the deploy key there when it creates the container, and NixMox must still reach the
      # host after the first switch even when network.ssh_keys.root does not list that key.
      authorizedKeysInHomedir = true;
      settings = {
        PermitRootLogin = "prohibit-password";
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
      };
    };
    users.users.root.openssh.authorizedKeys.keys = host.rootSshKeys;

    nix.settings = {
      experimental-features = [ "nix-command" "flakes" ];
      # The Nix sandbox needs kernel namespaces an unprivileged LXC does not always grant
      # (tfc/nspawn-nixos#5, NixOS/nix#2649); NixMox builds on the host itself, so it is turned off here.
      sandbox = false;
      # Nothing unsigned enters the store (the NixOS default, pinned: systems copied by NixMox are signed).
      require-sigs = true;
    } // lib.optionalAttrs ((cfg.nix or null) != null) {
      substituters = cfg.nix.substituters;
      trusted-public-keys = cfg.nix.trustedPublicKeys;
    };

    # Building the NixOS manual on every rebuild costs minutes and RAM in a small container.
    documentation.nixos.enable = false;

    systemd.services = activationRecovery // lib.mapAttrs' (name: envFile: lib.nameValuePair "nixmox-env-${name}" {
      description = "NixMox: compose ${envFile.path} from secret files";
      before = envFile.consumers;
      requiredBy = envFile.consumers;
      partOf = envFile.consumers;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        UMask = "0077";
        LoadCredential = lib.mapAttrsToList (var: v: "${var}:${v.file}") envFile.variables;
      };
      # jq reads each secret on stdin and writes VAR="…" (JSON string escaping, which systemd's
      # EnvironmentFile= double-quote parsing accepts); only non-secret prefixes and suffixes are arguments.
      script = ''
        mkdir -p /run/nixmox/env
        tmp=${shell.shellQuote "${envFile.path}.tmp"}
        : > "$tmp"
      '' + lib.concatStrings (lib.mapAttrsToList (var: v: ''
        ${pkgs.jq}/bin/jq -Rrs --arg name ${shell.shellQuote var} --arg pre ${shell.shellQuote v.prefix} --arg post ${shell.shellQuote v.suffix} \
          'rtrimstr("\n") | ${if v.encoding == "uri" then "@uri" else "."} as $v | "\($name)=" + (($pre + $v + $post) | @json)' \
          < "$CREDENTIALS_DIRECTORY/${var}" >> "$tmp"
      '') envFile.variables) + ''
        mv "$tmp" ${shell.shellQuote envFile.path}
      '';
    }) cfg.environmentFiles;

    # The secrets push writes files here over SSH before the rebuild. 0711: nobody but root can list it, and a
    # service user can still reach a file that a manifest secret gives it (owner/mode per file); tmpfiles
    # re-applies this mode at boot, so 0700 would lock such users out until the next delivery.
    systemd.tmpfiles.rules = [ "d ${host.secretsDir} 0711 root root -" ];

    # A restart during an activation boots the new, unchecked generation; shortly after boot (outside the boot
    # transaction, which a switch-to-configuration must not run inside) this rolls it back.
    systemd.timers.nixmox-activation-recover = {
      description = "NixMox: roll back an activation that a restart interrupted";
      wantedBy = [ "timers.target" ];
      timerConfig.OnBootSec = "15s";
    };
  };
}
