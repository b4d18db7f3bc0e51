/**
 * SSH host keys as OpenSSH writes them (`ssh-ed25519 AAAA… comment`), their SHA256 fingerprints, and a
 * known_hosts reader. Pure functions: no sockets here (see `connection.ts`).
 *
 * Why pinning matters for NixMox: re-created containers reuse IPs and cloned templates share host keys
 * (TAPPaaS/TAPPaaS#112), so "accept whatever answers" would silently talk to the wrong host.
 */
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

/** A public host key: its algorithm name and the raw key blob (what the server sends in KEXDH_REPLY). */
export interface HostKey {
  type: string;
  blob: Buffer;
}

/** Parses `"<type> <base64> [comment]"`; throws an Error naming `what` when the text is not a key. */
export function parseHostKey(text: string, what = "host key"): HostKey {
  const parts = text.trim().split(/\s+/);
  if (parts.length < 2 || !/^[a-z0-9@.-]+$/.test(parts[0]) || !/^[A-Za-z0-9+/]{16,}={0,2}$/.test(parts[1])) {
    throw new Error(`${what} must look like "ssh-ed25519 AAAA…", got ${JSON.stringify(abbreviate(text))}`);
  }
  const blob = Buffer.from(parts[1], "base64");
  const embedded = blobKeyType(blob);
  if (embedded !== parts[0]) {
    throw new Error(`${what} says type "${parts[0]}" but its key data is of type "${embedded ?? "unknown"}"`);
  }
  return { type: parts[0], blob };
}

/** The key type stored at the start of an SSH public key blob (RFC 4253 §6.6: string type, then data). */
export function blobKeyType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const length = blob.readUInt32BE(0);
  if (length === 0 || length > 64 || blob.length < 4 + length) return null;
  return blob.subarray(4, 4 + length).toString("latin1");
}

/** Builds a HostKey from the raw blob that ssh2's `hostVerifier` receives. */
export function hostKeyFromBlob(blob: Buffer): HostKey {
  return { type: blobKeyType(blob) ?? "unknown", blob: Buffer.from(blob) };
}

/** `ssh-ed25519 AAAA…` (no comment): the form NixMox stores in state and passes around. */
export function formatHostKey(key: HostKey): string {
  return `${key.type} ${key.blob.toString("base64")}`;
}

/** OpenSSH-style fingerprint, e.g. `SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s`. */
export function fingerprint(key: HostKey): string {
  return `SHA256:${createHash("sha256").update(key.blob).digest("base64").replace(/=+$/, "")}`;
}

export function sameHostKey(a: HostKey, b: HostKey): boolean {
  return a.type === b.type && a.blob.equals(b.blob);
}

/**
 * The ssh2 `algorithms.serverHostKey` list that makes the server present one of the pinned keys.
 * Without it a server holding several host keys may pick another type and the pin would "mismatch".
 * RSA keys sign with rsa-sha2-* (RFC 8332); plain "ssh-rsa" (SHA-1) is last resort only.
 */
export function hostKeyAlgorithms(keys: HostKey[]): string[] {
  const algorithms: string[] = [];
  for (const key of keys) {
    const names = key.type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [key.type];
    for (const name of names) if (!algorithms.includes(name)) algorithms.push(name);
  }
  return algorithms;
}

/** One usable line of a known_hosts file. */
export interface KnownHostEntry {
  /** Host patterns as written (`host`, `[host]:2222`, or a hashed `|1|salt|hash`). */
  patterns: string[];
  key: HostKey;
  revoked: boolean;
  line: number;
}

/**
 * Parses known_hosts text (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"). `@cert-authority` lines are skipped
 * (NixMox pins plain keys), `@revoked` lines are kept so a key revoked for a host is refused for it even when
 * another line lists it.
 * Unparseable lines are skipped, as OpenSSH does.
 */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    let fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0].startsWith("@")) {
      if (fields[0] !== "@revoked") return;
      revoked = true;
      fields = fields.slice(1);
    }
    if (fields.length < 3) return;
    try {
      const key = parseHostKey(`${fields[1]} ${fields[2]}`);
      entries.push({ patterns: fields[0].split(","), key, revoked, line: index + 1 });
    } catch {
      return;
    }
  });
  return entries;
}

/** How `host`/`port` is written in known_hosts: bare for port 22, else `[host]:port`. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith("|1|")) {
    const [, , salt, hash] = pattern.split("|");
    if (!salt || !hash) return false;
    const digest = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return digest === hash;
  }
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
  return regex.test(name);
}

/**
 * Whether a line's pattern list applies to `name`, as OpenSSH's match_hostname does: some plain pattern matches and
 * no negated one (`!pattern`) does; a matching negation excludes the name whatever else matches (security review L5).
 */
function patternListMatches(patterns: string[], name: string): boolean {
  let matched = false;
  for (const pattern of patterns) {
    if (pattern.startsWith("!")) {
      if (patternMatches(pattern.slice(1), name)) return false;
    } else if (patternMatches(pattern, name)) {
      matched = true;
    }
  }
  return matched;
}

/** Keys known for `host:port` (revoked keys excluded), in file order. */
export function lookupKnownHost(entries: KnownHostEntry[], host: string, port: number): HostKey[] {
  const name = knownHostsName(host, port);
  const matching = entries.filter((entry) => patternListMatches(entry.patterns, name));
  const revoked = matching.filter((entry) => entry.revoked);
  return matching
    .filter((entry) => !entry.revoked)
    .map((entry) => entry.key)
    .filter((key) => !revoked.some((entry) => sameHostKey(entry.key, key)));
}

/** Reads a known_hosts file; a clear error names the file when it cannot be read. */
export function readKnownHostsFile(path: string): KnownHostEntry[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`cannot read known_hosts file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return parseKnownHosts(text);
}

/** One known_hosts line for a key recorded on first contact. */
export function formatKnownHostsLine(host: string, port: number, key: HostKey): string {
  return `${knownHostsName(host, port)} ${formatHostKey(key)}`;
}

function abbreviate(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}
