/**
 * Every Nix command of "build once, copy closures" (issue 18), in one file: what the builder (or the controller)
 * runs to build and sign a host's system, what it runs to copy that closure to the host, and the values they need.
 * Pure text; nothing here runs anything.
 *
 * - **Build** (`renderBuildCommand`): the host's rendered flake directory arrives on stdin (the config push's
 *   `<base64 path> <base64 content>` lines, after one line with the signing key), is written under the work
 *   directory, and `nix build` builds `nixosConfigurations."<service>".config.system.build.toplevel` of it, the
 *   attribute `nixos-rebuild` builds (nixpkgs nixos/modules/installer/tools/nixos-rebuild.sh). The inputs are fetched
 *   by `nix flake archive` under one lock, so parallel builds share one nixpkgs download, and at most `slots` builds
 *   run at once (the builder's cores). The closure is then signed with the stack's key (`nix store sign
 *   --recursive`, the key read from stdin: never a command word, never a file on the builder). The last line is
 *   `NIXMOX_BUILD {"path":…,"service":…}`.
 * - **Copy** (`renderCopyCommand`): `nix copy --to ssh-ng://root@<host>` with the host's recorded key as the only
 *   known host (`UserKnownHostsFile` written from stdin, `StrictHostKeyChecking=yes`, no global file) and the deploy
 *   key from an SSH agent (components/build/agent.ts: forwarded by the controller's own connection, so the key is
 *   never written on the builder). The receiving `nix-daemon` is told which keys it trusts and that signatures are
 *   required (`--option require-sigs true --option trusted-public-keys …`), whatever the host's nix.conf says on its
 *   first deploy, so a path that lacks the stack's signature is refused by the host ("cannot add path … because it
 *   lacks a valid signature"). `ssh-ng`, not `ssh`: the legacy `nix-store --serve` protocol adds paths without
 *   checking signatures when root sends them (checked with Nix 2.8). The last line is
 *   `NIXMOX_COPY {"bytes":…,"paths":…}`: the paths Nix reported copying and the sum of their NAR sizes.
 */
import { shellCommand } from "../ssh/quote";

/** The attribute path of a host's system in its rendered flake (render/flake.ts). */
export function systemAttribute(service: string): string {
  checkService(service);
  return `nixosConfigurations."${service}".config.system.build.toplevel`;
}

/** Where a builder keeps its work (rendered directories and one GC root per host). */
export const builderWorkDir = "/var/lib/nixmox-build";

const servicePattern = /^[a-z][a-z0-9-]{0,62}$/;
const hashPattern = /^[0-9a-f]{16,128}$/;
const pathPattern = /^\/[A-Za-z0-9/._-]*$/;
/** A Nix store path: /nix/store/<32 base-32 characters>-<name>. */
export const storePathPattern = /^\/nix\/store\/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+._?=-]+$/;
/** A Nix public or secret key: `<name>:<base64>` (nix-store --generate-binary-cache-key). */
export const nixKeyPattern = /^[A-Za-z0-9._-]+:[A-Za-z0-9+/]+={0,2}$/;
/** A substituter URL (any Nix binary cache: https://, http://, s3://, ssh://, file://). */
export const substituterPattern = /^(https?|s3|ssh|ssh-ng|file):\/\/[A-Za-z0-9._~:/?#@!$&*+,;=%-]+$/;

function checkService(service: string): void {
  if (!servicePattern.test(service)) throw new Error(`service ${JSON.stringify(service)}: name must match [a-z][a-z0-9-]* to be built`);
}

export function checkStorePath(service: string, path: string): void {
  if (!storePathPattern.test(path)) throw new Error(`service "${service}": the system must be a Nix store path /nix/store/<hash>-<name>, got ${JSON.stringify(path)}`);
}

function checkKeys(service: string, keys: string[]): void {
  const bad = keys.filter((key) => !nixKeyPattern.test(key));
  if (bad.length > 0) throw new Error(`service "${service}": trusted public keys must look like "name:base64", got ${JSON.stringify(bad)}`);
}

function checkSubstituters(service: string, urls: string[]): void {
  const bad = urls.filter((url) => !substituterPattern.test(url));
  if (bad.length > 0) throw new Error(`service "${service}": substituters must be binary cache URLs such as https://cache.example.lan, got ${JSON.stringify(bad)}`);
}

/** The binary caches and keys every build and every host uses (manifest network.substituters/trusted_public_keys). */
export interface NixCaches {
  substituters: string[];
  trustedPublicKeys: string[];
}

export interface BuildCommandOptions {
  service: string;
  /** The rendered directory's content hash: the directory's name on the builder. */
  contentHash: string;
  /** @default builderWorkDir */
  workDir?: string;
  /** Builds at once on this builder (its cores). @default 1 */
  slots?: number;
  caches: NixCaches;
  /** The stack's signing key's public half: trusted for the build too (a cache may serve paths it signed). */
  signingPublicKey: string;
}

const buildScript = String.raw`set -euo pipefail
umask 022
service=$1 hash=$2 root=$3 slots=$4 substituters=$5 keys=$6
attribute="nixosConfigurations.\"$service\".config.system.build.toplevel"
opts=(--extra-experimental-features 'nix-command flakes' --option substituters "$substituters" --option trusted-public-keys "$keys")
IFS= read -r key_line
key=$(printf '%s' "$key_line" | base64 -d)
[ -n "$key" ] || { echo "nixmox-build: no signing key on stdin" >&2; exit 2; }
dir="$root/$service/src/$hash"
mkdir -p "$root/$service/src"
rm -rf "$dir.tmp"
trap 'rm -rf "$dir.tmp"' EXIT
mkdir "$dir.tmp"
count=0
while IFS=' ' read -r name data; do
  file=$(printf '%s' "$name" | base64 -d)
  if [[ -z $file || $file == /* || $file =~ (^|/)\.\.?(/|$) ]]; then echo "nixmox-build: refusing file path '$file'" >&2; exit 2; fi
  mkdir -p "$(dirname "$dir.tmp/$file")"
  printf '%s' "$data" | base64 -d > "$dir.tmp/$file"
  count=$((count + 1))
done
[ -f "$dir.tmp/flake.nix" ] || { echo "nixmox-build: the rendered directory has no flake.nix ($count files)" >&2; exit 2; }
rm -rf "$dir"
mv "$dir.tmp" "$dir"
# One input fetch at a time: the first build downloads nixpkgs, the others find it in the store.
exec 7>"$root/.fetch.lock"
flock 7
nix flake archive "${"$"}{opts[@]}" "path:$dir" >/dev/null
flock -u 7
# At most $slots builds at once: take a free slot, or wait for one.
slot=""
for ((i = 0; i < slots; i++)); do
  exec 8>"$root/.slot-$i.lock"
  if flock -n 8; then slot=$i; break; fi
  exec 8>&-
done
if [ -z "$slot" ]; then
  exec 8>"$root/.slot-$((RANDOM % slots)).lock"
  flock 8
fi
echo "nixmox-build: evaluating and building $attribute of $service ($count files)" >&2
nix build "${"$"}{opts[@]}" --out-link "$root/$service/result" "path:$dir#$attribute"
exec 8>&-
path=$(readlink -f "$root/$service/result")
printf '%s' "$key" | nix store sign "${"$"}{opts[@]}" --key-file /dev/stdin --recursive "$path"
for old in "$root/$service/src"/*; do [ "$old" = "$dir" ] || rm -rf -- "$old"; done
printf 'NIXMOX_BUILD {"path":"%s","service":"%s"}\n' "$path" "$service"
`;

/** The build command (bash; the same on a builder and on the controller). Its stdin: `renderBuildPayload`. */
export function renderBuildCommand(options: BuildCommandOptions): string {
  checkService(options.service);
  if (!hashPattern.test(options.contentHash)) throw new Error(`service "${options.service}": content hash must be 16-128 lowercase hex characters, got ${JSON.stringify(options.contentHash)}`);
  const workDir = options.workDir ?? builderWorkDir;
  if (!pathPattern.test(workDir)) throw new Error(`service "${options.service}": the build work directory must be an absolute path of [A-Za-z0-9/._-], got ${JSON.stringify(workDir)}`);
  const slots = options.slots ?? 1;
  if (!Number.isInteger(slots) || slots < 1 || slots > 256) throw new Error(`service "${options.service}": build slots must be a whole number from 1 to 256, got ${slots}`);
  checkSubstituters(options.service, options.caches.substituters);
  const keys = trustedKeys(options.service, options.caches, options.signingPublicKey);
  return shellCommand(["bash", "-c", buildScript, "nixmox-build", options.service, options.contentHash, workDir, String(slots), options.caches.substituters.join(" "), keys.join(" ")]);
}

/** The build's stdin: the signing key (base64) on the first line, then the rendered files as the config push sends them. */
export function renderBuildPayload(signingSecretKey: string, filesPayload: string): string {
  return `${Buffer.from(signingSecretKey, "utf8").toString("base64")}\n${filesPayload}`;
}

/** The keys a host trusts for its system: the stack's signing key first, then the manifest's (deduplicated). */
export function trustedKeys(service: string, caches: NixCaches, signingPublicKey: string): string[] {
  const keys = [...new Set([signingPublicKey, ...caches.trustedPublicKeys])];
  checkKeys(service, keys);
  return keys;
}

export interface CopyCommandOptions {
  service: string;
  /** The host's system, built and signed. */
  storePath: string;
  /** The host's address and SSH port. */
  host: string;
  port: number;
  /** What the receiving host trusts (trustedKeys). */
  trustedPublicKeys: string[];
}

const copyScript = String.raw`set -euo pipefail
path=$1 url=$2 port=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/known_hosts"
[ -S "${"$"}{SSH_AUTH_SOCK:-}" ] || { echo "nixmox-copy: no SSH agent with the deploy key (SSH_AUTH_SOCK)" >&2; exit 2; }
export NIX_SSHOPTS="-p $port -o UserKnownHostsFile=$tmp/known_hosts -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=15 -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
rc=0
nix --extra-experimental-features nix-command copy --to "$url" "$path" 2>"$tmp/log" || rc=$?
cat "$tmp/log" >&2
[ "$rc" = 0 ] || exit "$rc"
copied=$(sed -n "s|^copying path '\(/nix/store/[^']*\)' to .*|\1|p" "$tmp/log" | sort -u)
bytes=0 count=0
if [ -n "$copied" ]; then
  count=$(printf '%s\n' "$copied" | wc -l)
  bytes=$(nix --extra-experimental-features nix-command path-info --size $copied | awk '{ total += $2 } END { printf "%d", total }')
fi
printf 'NIXMOX_COPY {"bytes":%s,"paths":%s}\n' "$bytes" "$count"
`;

const ipPattern = /^(\d{1,3}\.){3}\d{1,3}$/;

/** The program the copy starts on the host: nix-daemon, told to require the trusted keys' signatures. */
export function remoteDaemonProgram(service: string, trustedPublicKeys: string[]): string {
  checkKeys(service, trustedPublicKeys);
  if (trustedPublicKeys.length === 0) throw new Error(`service "${service}": a copy needs at least one trusted public key`);
  return shellCommand(["nix-daemon", "--option", "require-sigs", "true", "--option", "trusted-public-keys", trustedPublicKeys.join(" ")]);
}

/** The store URL of the host: root over ssh-ng, its daemon started with remoteDaemonProgram. */
export function hostStoreUrl(service: string, host: string, trustedPublicKeys: string[]): string {
  if (!ipPattern.test(host)) throw new Error(`service "${service}": the copy needs the host's IPv4 address, got ${JSON.stringify(host)}`);
  return `ssh-ng://root@${host}?remote-program=${encodeURIComponent(remoteDaemonProgram(service, trustedPublicKeys))}`;
}

/** The copy command (bash; run where the system was built). Its stdin: the host's known_hosts line. */
export function renderCopyCommand(options: CopyCommandOptions): string {
  checkService(options.service);
  checkStorePath(options.service, options.storePath);
  if (!Number.isInteger(options.port) || options.port < 1 || options.port > 65535) throw new Error(`service "${options.service}": SSH port must be 1-65535, got ${options.port}`);
  return shellCommand(["bash", "-c", copyScript, "nixmox-copy", options.storePath, hostStoreUrl(options.service, options.host, options.trustedPublicKeys), String(options.port)]);
}

/** What `nix store verify` on the host needs to accept a system (the activation wrapper's `--trusted-keys`). */
export function verifyKeysArgument(service: string, trustedPublicKeys: string[]): string {
  checkKeys(service, trustedPublicKeys);
  return trustedPublicKeys.join(",");
}

export interface BuildResult {
  path: string;
  service: string;
}

export interface CopyResult {
  bytes: number;
  paths: number;
}

function lastLine(stdout: string, prefix: string): unknown {
  const line = stdout.split("\n").reverse().find((candidate) => candidate.startsWith(`${prefix} `));
  if (!line) return null;
  try {
    return JSON.parse(line.slice(prefix.length + 1));
  } catch {
    return null;
  }
}

/** The build's `NIXMOX_BUILD {…}` line; null when there is none or it names no store path. */
export function parseBuildResult(stdout: string): BuildResult | null {
  const parsed = lastLine(stdout, "NIXMOX_BUILD") as BuildResult | null;
  return parsed && typeof parsed.path === "string" && storePathPattern.test(parsed.path) ? parsed : null;
}

/** The copy's `NIXMOX_COPY {…}` line; null when there is none. */
export function parseCopyResult(stdout: string): CopyResult | null {
  const parsed = lastLine(stdout, "NIXMOX_COPY") as CopyResult | null;
  return parsed && Number.isInteger(parsed.bytes) && Number.isInteger(parsed.paths) ? parsed : null;
}

/** `nix-store --generate-binary-cache-key` in Node: an Ed25519 pair as `<name>:<base64>` (secret: seed ‖ public key). */
export function generateNixSigningKey(name: string): { secretKey: string; publicKey: string } {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`a signing key name must be of [A-Za-z0-9._-], got ${JSON.stringify(name)}`);
  const { generateKeyPairSync } = require("node:crypto") as typeof import("node:crypto");
  const { privateKey } = generateKeyPairSync("ed25519");
  const jwk = privateKey.export({ format: "jwk" }) as { d: string; x: string };
  const seed = Buffer.from(jwk.d, "base64url");
  const pub = Buffer.from(jwk.x, "base64url");
  // libsodium's 64-byte secret key, the form Nix reads (libstore/crypto.cc SecretKey).
  return { secretKey: `${name}:${Buffer.concat([seed, pub]).toString("base64")}`, publicKey: `${name}:${pub.toString("base64")}` };
}
