/**
 * A stand-in for a host's rendered flake whose `nixosConfigurations."<host>".config.system.build.toplevel` real Nix
 * can build without nixpkgs (builtins.derivation, /bin/sh as builder, the builder's sandbox off as nixos/core.nix
 * sets it in containers). Same attribute, same `nix build`, same closure shape as a NixOS system: a shared "sw"
 * path every host's system refers to, and the host's own toplevel holding its host.json and state-version and a
 * `bin/switch-to-configuration`.
 *
 * That switch-to-configuration is the test hosts' (tests/support/sshd.ts): it records the call in
 * `$NIXMOX_STUB_DIR/calls.log`, fails with 4 when `$NIXMOX_STUB_DIR/control/switch-fail` exists, and otherwise points
 * `$NIXMOX_STUB_DIR/root/run/current-system` at its own store path, as the real one does first. What it does not
 * prove: NixOS's activation itself (units, users, /etc); the twin's stand-in starts daemons.
 */

export interface StandInOptions {
  /** Bytes of the shared path (every host's closure has it). @default 65536 */
  sharedBytes?: number;
  /** Bytes of a file only this host's toplevel holds (a large closure, to cut a copy midway). @default 0 */
  ownBytes?: number;
  /** The state-version file of the rendered directory. @default "25.11\n" */
  stateVersion?: string;
}

const switchScript = [
  "#!/bin/sh",
  'echo "switch-to-configuration $* (@service@ @out@)" >> "$NIXMOX_STUB_DIR/calls.log"',
  'if [ -e "$NIXMOX_STUB_DIR/control/switch-fail" ]; then echo "stand-in: activation failed" >&2; exit 4; fi',
  'ln -sfn @out@ "$NIXMOX_STUB_DIR/root/run/current-system"',
  "",
].join("\n");

/** The rendered directory of one host, with the stand-in flake in place of the nixpkgs one. */
export function standInSystemFiles(service: string, hostJson: string, options: StandInOptions = {}): Record<string, string> {
  const shared = options.sharedBytes ?? 65536;
  const own = options.ownBytes ?? 0;
  const flake = `{
  description = "NixMox stand-in system for ${service} (no nixpkgs)";
  outputs = { self }: let
    sw = derivation {
      name = "nixmox-standin-sw";
      system = "x86_64-linux";
      builder = "/bin/sh";
      args = [ "-c" "/usr/bin/mkdir -p $out && /usr/bin/head -c ${shared} /dev/zero > $out/blob" ];
    };
    toplevel = derivation {
      name = "nixos-system-${service}-standin";
      system = "x86_64-linux";
      builder = "/bin/sh";
      inherit sw;
      hostJson = builtins.readFile ./host.json;
      stateVersion = builtins.readFile ./state-version;
      switchScript = builtins.readFile ./switch-to-configuration.in;
      args = [ "-c" ''
        /usr/bin/mkdir -p $out/bin
        printf '%s' "$hostJson" > $out/host.json
        printf '%s' "$stateVersion" > $out/state-version
        printf '%s\\n' "$sw" > $out/sw
        printf '%s' "$switchScript" | /usr/bin/sed -e "s|@out@|$out|g" -e "s|@service@|${service}|g" > $out/bin/switch-to-configuration
        /usr/bin/chmod +x $out/bin/switch-to-configuration
        ${own > 0 ? `/usr/bin/head -c ${own} /dev/zero > $out/own-blob` : ":"}
      '' ];
    };
  in {
    nixosConfigurations."${service}".config.system.build.toplevel = toplevel;
  };
}
`;
  return {
    "flake.nix": flake,
    "host.json": hostJson,
    "state-version": options.stateVersion ?? "25.11\n",
    "switch-to-configuration.in": switchScript,
  };
}

/** nix.conf of a test host or builder: no build users, no sandbox (as nixos/core.nix in a container), no cache. */
export const testNixConf = ["build-users-group =", "sandbox = false", "substituters =", "experimental-features = nix-command flakes"];
