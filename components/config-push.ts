/**
 * The config push: one host's rendered flake directory, sent over SSH stdin and installed atomically.
 *
 * On the host, `/etc/nixmox` is a symlink to `/etc/nixmox.d/<content hash>`: the files are written into a
 * fresh directory, then a new symlink is renamed over the old one (rename(2) is atomic), so
 * `nixos-rebuild --flake /etc/nixmox#<service>` never sees a half-written tree. The previous directory is
 * kept (what the running generation was built from); older ones are removed.
 *
 * `state-version` (system.stateVersion of the host's first install, nixos/core.nix) is carried from the installed
 * directory into every new one: the rendered file only counts for a host's first install.
 *
 * The command string holds only the validated service name, the hex content hash and fixed paths; the file
 * contents travel on stdin as `<base64 path> <base64 content>` lines, so no file text ever reaches a shell
 * word. Rendered files hold no secrets (secrets go to files under the secrets dir, components/secrets).
 */
import { contentHash } from "../render/content-hash";
import { shellQuote } from "./ssh/quote";

export interface ConfigPushPaths {
  /** The symlink nixos-rebuild reads. @default "/etc/nixmox" */
  link: string;
  /** Where the versions live. @default "/etc/nixmox.d" */
  store: string;
}

export const defaultConfigPushPaths: ConfigPushPaths = { link: "/etc/nixmox", store: "/etc/nixmox.d" };

const hashPattern = /^[0-9a-f]{16,128}$/;
const absolutePathPattern = /^\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;
const relativePathPattern = /^[A-Za-z0-9._+-]+(\/[A-Za-z0-9._+-]+)*$/;

/** Refuses any path that could leave the directory (absolute, `..`, `.`, empty segments, odd characters). */
export function checkRelativePath(service: string, file: string): void {
  if (!relativePathPattern.test(file) || file.split("/").some((segment) => segment === "." || segment === "..")) {
    throw new Error(`service "${service}": rendered file path ${JSON.stringify(file)} must be relative, of [A-Za-z0-9._+-] segments, without . or ..`);
  }
}

/** stdin of the push: one line per file, sorted by path. */
export function renderConfigPayload(service: string, files: Record<string, string>): string {
  const lines: string[] = [];
  for (const file of Object.keys(files).sort()) {
    checkRelativePath(service, file);
    lines.push(`${Buffer.from(file, "utf8").toString("base64")} ${Buffer.from(files[file], "utf8").toString("base64")}`);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** The push command; it changes exactly when the content hash does. */
export function renderConfigPushCommand(service: string, contentHash: string, paths: Partial<ConfigPushPaths> = {}): string {
  if (!hashPattern.test(contentHash)) throw new Error(`service "${service}": content hash must be 16-128 lowercase hex characters, got ${JSON.stringify(contentHash)}`);
  const resolved = { ...defaultConfigPushPaths, ...paths };
  for (const [key, value] of Object.entries(resolved)) {
    if (!absolutePathPattern.test(value)) throw new Error(`service "${service}": config push path ${key} must be absolute, of [A-Za-z0-9._-] segments, got ${JSON.stringify(value)}`);
  }
  const link = shellQuote(resolved.link);
  const store = shellQuote(resolved.store);
  const target = shellQuote(`${resolved.store}/${contentHash}`);
  const staging = shellQuote(`${resolved.store}/.${contentHash}.tmp`);
  const newLink = shellQuote(`${resolved.link}.new`);
  const legacy = shellQuote(`${resolved.link}.pre-nixmox`);
  // bash: NixOS always has it, and `read -r` + `[[ ]]` keep file names literal.
  const script = [
    "set -euo pipefail",
    "umask 022",
    `mkdir -p ${store}`,
    `rm -rf ${staging}`,
    `trap 'rm -rf ${staging}' EXIT`,
    `mkdir ${staging}`,
    "count=0",
    "while IFS=' ' read -r name data; do",
    "  file=$(printf '%s' \"$name\" | base64 -d)",
    "  if [[ -z $file || $file == /* || $file =~ (^|/)\\.\\.?(/|$) ]]; then echo \"nixmox: refusing file path '$file'\" >&2; exit 2; fi",
    `  mkdir -p "$(dirname ${staging}/"$file")"`,
    `  printf '%s' "$data" | base64 -d > ${staging}/"$file"`,
    "  count=$((count + 1))",
    "done",
    `[ -f ${staging}/flake.nix ] || { echo "nixmox: the pushed config has no flake.nix ($count files)" >&2; exit 2; }`,
    `previous=$(readlink ${link} 2>/dev/null || true)`,
    `if [ -n "$previous" ] && [ -f "$previous/state-version" ]; then cp "$previous/state-version" ${staging}/state-version; fi`,
    `rm -rf ${target}`,
    `mv ${staging} ${target}`,
    // A real directory left by a manual install cannot be replaced by rename: keep it aside once.
    `if [ -d ${link} ] && [ ! -L ${link} ]; then rm -rf ${legacy}; mv ${link} ${legacy}; fi`,
    `ln -sfn ${target} ${newLink}`,
    `mv -T ${newLink} ${link}`,
    `for dir in ${store}/*; do [ "$dir" = ${target} ] || [ "$dir" = "$previous" ] || rm -rf "$dir"; done`,
    `echo "nixmox: config ${contentHash} installed ($count files)"`,
  ].join("\n");
  return `bash -c ${shellQuote(script)}`;
}

/**
 * What a refresh checks on the host (RemoteCommand `check`): the files under `/etc/nixmox` are exactly the pushed
 * ones. The command prints render/host.ts `contentHash` of the installed directory (every regular file as
 * "<path>\0<byte length>\0<content>", in byte order of the paths), leaving out `state-version`, which the push carries
 * over from the host's first install; `expect` is the same digest of the rendered files. A file edited, added or
 * removed on the host is drift, which the next `up` repairs by pushing the configuration again.
 */
export function renderConfigCheck(service: string, files: Record<string, string>, paths: Partial<ConfigPushPaths> = {}): { command: string; expect: string; meaning: string } {
  const resolved = { ...defaultConfigPushPaths, ...paths };
  if (!absolutePathPattern.test(resolved.link)) throw new Error(`service "${service}": config push path link must be absolute, of [A-Za-z0-9._-] segments, got ${JSON.stringify(resolved.link)}`);
  const { "state-version": _carried, ...compared } = files;
  const script = [
    "set -euo pipefail",
    `cd ${shellQuote(`${resolved.link}/`)}`,
    "find . -type f ! -path ./state-version -printf '%P\\0' | LC_ALL=C sort -z |",
    "  while IFS= read -r -d '' file; do printf '%s\\0%s\\0' \"$file\" \"$(stat -c %s -- \"$file\")\"; cat -- \"$file\"; done |",
    "  sha256sum | cut -c1-64",
  ].join("\n");
  return {
    command: `bash -c ${shellQuote(script)}`,
    expect: contentHash(compared),
    meaning: `${resolved.link} on the host differs from the configuration NixMox pushed (a file was edited, added or removed there)`,
  };
}
