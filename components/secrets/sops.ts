/**
 * Reads a SOPS-encrypted YAML/JSON file (age recipients) into plain values, in memory only.
 *
 * With `sops` on PATH it runs `sops --decrypt --output-type json <file>` (stdout captured, never printed).
 * Otherwise it decrypts in-process: the data key with `age-encryption` (typage, age's reference TypeScript
 * implementation by age's author), each `ENC[AES256_GCM,…]` value with node:crypto AES-256-GCM using the key
 * path as additional data, and it verifies the file's MAC (SHA-512 over every value in document order,
 * stored encrypted with `lastmodified` as additional data) the way sops does (getsops/sops sops.go,
 * `Tree.Decrypt` and `ToBytes`). The `sops-age` npm package was considered and not used: its 4.0.2 build
 * skips MAC verification (`if (sops.sops.mac && sops.sops.lastmodified) ;` in dist/index.cjs), so values
 * removed or reordered by an attacker would go unnoticed, and it pulls lodash, sshpk, dotenv and zod 3.
 *
 * Errors name the file, the key path and the fix; they never quote a value.
 */
import { execFile } from "node:child_process";
import { createDecipheriv, createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from "yaml";

export class SopsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SopsError";
  }
}

/** A decrypted leaf: its key path and value as text (sops types int/bool are returned as their text). */
export interface SopsLeaf {
  path: string[];
  value: string;
}

export interface DecryptSopsOptions {
  /** age identity file (`AGE-SECRET-KEY-1…` lines). @default $SOPS_AGE_KEY_FILE, else ~/.config/sops/age/keys.txt */
  identityFile?: string;
  /** The sops executable; null forces in-process decryption. @default "sops" when found on PATH, else null */
  sopsCommand?: string | null;
}

function findOnPath(command: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, command))) return join(dir, command);
  }
  return null;
}

function defaultIdentityFile(): string {
  if (process.env.SOPS_AGE_KEY_FILE) return process.env.SOPS_AGE_KEY_FILE;
  const configHome = process.env.XDG_CONFIG_HOME || join(homedir(), ".config");
  return join(configHome, "sops", "age", "keys.txt");
}

/** Decrypts the file and returns its leaves in document order (the `sops` metadata key excluded). */
export async function decryptSopsFile(file: string, options: DecryptSopsOptions = {}): Promise<SopsLeaf[]> {
  const sops = options.sopsCommand === undefined ? findOnPath("sops") : options.sopsCommand;
  if (sops !== null) return decryptWithSopsCli(sops, file, options.identityFile);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new SopsError(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? "unreadable"}`);
  }
  const identityFile = options.identityFile ?? defaultIdentityFile();
  let identities: string[];
  try {
    identities = readFileSync(identityFile, "utf8")
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line.startsWith("AGE-SECRET-KEY-"));
  } catch {
    throw new SopsError(`cannot read the age identity file ${identityFile}; pass --identity <file> (the key created with age-keygen)`);
  }
  if (identities.length === 0) throw new SopsError(`${identityFile} holds no AGE-SECRET-KEY-1… line; pass --identity <file> (the key created with age-keygen)`);
  return decryptSopsText(text, identities, file);
}

function decryptWithSopsCli(sops: string, file: string, identityFile: string | undefined): Promise<SopsLeaf[]> {
  const env = { ...process.env, ...(identityFile ? { SOPS_AGE_KEY_FILE: identityFile } : {}) };
  return new Promise((resolve, reject) => {
    execFile(sops, ["--decrypt", "--output-type", "json", file], { env, maxBuffer: 64 * 1024 * 1024, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) {
        // sops' own stderr names the problem (no key, MAC mismatch) and never prints values.
        reject(new SopsError(`sops could not decrypt ${file}: ${String(stderr).trim().split("\n").slice(-1)[0] || error.message}`));
        return;
      }
      try {
        resolve(leavesOfPlain(JSON.parse(stdout) as unknown));
      } catch {
        reject(new SopsError(`sops printed something other than JSON for ${file}`));
      }
    });
  });
}

function leavesOfPlain(value: unknown, path: string[] = []): SopsLeaf[] {
  if (Array.isArray(value)) return value.flatMap((item) => leavesOfPlain(item, path));
  if (typeof value === "object" && value !== null) {
    return Object.entries(value as Record<string, unknown>).flatMap(([key, item]) => (path.length === 0 && key === "sops" ? [] : leavesOfPlain(item, [...path, key])));
  }
  return [{ path, value: typeof value === "boolean" ? (value ? "True" : "False") : String(value) }];
}

const encPattern = /^ENC\[AES256_GCM,data:([A-Za-z0-9+/=]*),iv:([A-Za-z0-9+/=]+),tag:([A-Za-z0-9+/=]+),type:(str|int|float|bool|bytes)\]$/;

interface SopsMetadata {
  age: Array<{ recipient?: string; enc: string }>;
  lastmodified: string;
  mac: string;
  unencrypted_suffix?: string;
  encrypted_suffix?: string;
  encrypted_regex?: string;
  unencrypted_regex?: string;
  mac_only_encrypted?: boolean;
}

function decryptValue(enc: string, dataKey: Buffer, additionalData: string, where: string): { text: string; type: string } {
  const match = encPattern.exec(enc);
  if (!match) throw new SopsError(`${where} is not a sops AES256_GCM value`);
  const [, data, iv, tag, type] = match;
  try {
    const decipher = createDecipheriv("aes-256-gcm", dataKey, Buffer.from(iv, "base64"));
    decipher.setAAD(Buffer.from(additionalData, "utf8"));
    decipher.setAuthTag(Buffer.from(tag, "base64"));
    const plain = Buffer.concat([decipher.update(Buffer.from(data, "base64")), decipher.final()]);
    return { text: plain.toString("utf8"), type };
  } catch {
    throw new SopsError(`${where} does not decrypt: the file was modified or moved between keys (authentication failed)`);
  }
}

/** The bytes sops hashes into the MAC for a value of this type (sops.go `ToBytes`: bools are "True"/"False"). */
function macBytes(text: string, type: string): string {
  return type === "bool" ? (text === "true" ? "True" : text === "false" ? "False" : text) : text;
}

async function dataKeyOf(metadata: SopsMetadata, identities: string[], file: string): Promise<Buffer> {
  // Loaded here: age-encryption is an ES module, required only when in-process decryption is needed.
  const age = require("age-encryption") as typeof import("age-encryption");
  if (!Array.isArray(metadata.age) || metadata.age.length === 0) {
    throw new SopsError(`${file} has no age recipients (sops.age); only age-encrypted files are supported without the sops binary`);
  }
  for (const stanza of metadata.age) {
    const decrypter = new age.Decrypter();
    for (const identity of identities) decrypter.addIdentity(identity);
    try {
      const key = await decrypter.decrypt(age.armor.decode(stanza.enc), "uint8array");
      if (key.length !== 32) throw new SopsError(`${file}: the data key is ${key.length} bytes, expected 32`);
      return Buffer.from(key);
    } catch (error) {
      if (error instanceof SopsError) throw error;
      continue;
    }
  }
  const recipients = metadata.age.map((stanza) => stanza.recipient ?? "?").join(", ");
  throw new SopsError(`none of the identities can decrypt ${file} (its age recipients: ${recipients}); pass --identity with the matching key`);
}

/** In-process decryption of SOPS YAML or JSON text. Exported for tests; use `decryptSopsFile`. */
export async function decryptSopsText(text: string, identities: string[], file = "the sops file"): Promise<SopsLeaf[]> {
  const document = parseDocument(text);
  if (document.errors.length > 0) throw new SopsError(`${file} is not valid YAML/JSON (line ${document.errors[0].linePos?.[0].line ?? "?"})`);
  const root = document.contents;
  if (!isMap(root)) throw new SopsError(`${file} must be a mapping at the top level`);
  const metadata = (root.get("sops", true) as YamlNode | undefined)?.toJSON() as SopsMetadata | undefined;
  if (!metadata || typeof metadata.mac !== "string" || typeof metadata.lastmodified !== "string") {
    throw new SopsError(`${file} is not a sops-encrypted file (no sops.mac / sops.lastmodified)`);
  }
  if (metadata.mac_only_encrypted) throw new SopsError(`${file} uses mac_only_encrypted, which needs the sops binary; install sops or re-encrypt without it`);
  const dataKey = await dataKeyOf(metadata, identities, file);

  const isEncrypted = (path: string[]): boolean => {
    if (metadata.unencrypted_suffix && path.some((part) => part.endsWith(metadata.unencrypted_suffix as string))) return false;
    if (metadata.encrypted_suffix) return path.some((part) => part.endsWith(metadata.encrypted_suffix as string));
    if (metadata.encrypted_regex) return path.some((part) => new RegExp(metadata.encrypted_regex as string).test(part));
    if (metadata.unencrypted_regex) return !path.some((part) => new RegExp(metadata.unencrypted_regex as string).test(part));
    return true;
  };

  const hash = createHash("sha512");
  const leaves: SopsLeaf[] = [];
  const walk = (node: unknown, path: string[]): void => {
    if (isMap(node)) {
      for (const item of node.items) {
        const key = isScalar(item.key) ? String(item.key.value) : String(item.key);
        if (path.length === 0 && key === "sops") continue;
        walk(item.value, [...path, key]);
      }
      return;
    }
    if (isSeq(node)) {
      // sops does not add list indexes to the path (sops.go walkValue).
      for (const item of node.items) walk(item, path);
      return;
    }
    const raw = isScalar(node) ? node.value : node;
    const where = `${file}: ${path.join(".")}`;
    if (isEncrypted(path)) {
      if (typeof raw !== "string") throw new SopsError(`${where} should be encrypted but is not an ENC[…] string`);
      const { text: value, type } = decryptValue(raw, dataKey, `${path.join(":")}:`, where);
      hash.update(macBytes(value, type), "utf8");
      leaves.push({ path, value });
    } else {
      const value = typeof raw === "boolean" ? (raw ? "True" : "False") : raw === null ? "" : String(raw);
      hash.update(value, "utf8");
      leaves.push({ path, value });
    }
  };
  walk(root, []);
  const storedMac = decryptValue(metadata.mac, dataKey, metadata.lastmodified, `${file}: sops.mac`).text;
  const computedMac = hash.digest("hex").toUpperCase();
  if (storedMac.toUpperCase() !== computedMac) {
    throw new SopsError(`${file}: MAC mismatch: values were added, removed or reordered outside sops; refusing to import (re-encrypt it with sops)`);
  }
  return leaves;
}
