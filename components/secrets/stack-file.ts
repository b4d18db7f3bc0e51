/**
 * Which `nixmox:secrets` keys a stack sets, read from `Pulumi.<stack>.yaml` without decrypting anything:
 * `pulumi config set --secret --path 'nixmox:secrets.<svc>.<name>' …` stores
 * `nixmox:secrets: { <svc>: { <name>: { secure: v1:… } } }`, so presence and encryption are visible in the file.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import type { ConfigEntryState } from "./check";
import { secretsConfigKey } from "./values";

export class StackFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StackFileError";
  }
}

const stackNamePattern = /^[A-Za-z0-9_.-]+$/;

export function stackFilePath(projectDir: string, stack: string): string {
  if (!stackNamePattern.test(stack)) throw new StackFileError(`stack name must be [A-Za-z0-9_.-]+, got ${JSON.stringify(stack)}`);
  return join(projectDir, `Pulumi.${stack}.yaml`);
}

function isSecure(value: unknown): boolean {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && typeof (value as { secure?: unknown }).secure === "string";
}

/** The stack file's `config:` map (empty when absent). */
function readConfigSection(text: string, fileName: string): Record<string, unknown> {
  let document: unknown;
  try {
    document = parse(text);
  } catch {
    throw new StackFileError(`${fileName} is not valid YAML`);
  }
  return (document as { config?: Record<string, unknown> } | null)?.config ?? {};
}

/** `<configService>/<name>` → how it is stored. Throws a message naming the key (never a value) for other shapes. */
export function readStackSecretStates(text: string, fileName: string): Record<string, ConfigEntryState> {
  const config = readConfigSection(text, fileName);
  const secrets = config[secretsConfigKey] ?? config["nixmox:config:secrets"];
  const states: Record<string, ConfigEntryState> = {};
  if (secrets === undefined || secrets === null) return states;
  if (isSecure(secrets)) {
    throw new StackFileError(
      `${fileName}: ${secretsConfigKey} is one encrypted value, so which secrets it holds cannot be read without decrypting it; ` +
        `set each secret on its own with pulumi config set --secret --path '${secretsConfigKey}.<service>.<name>' < FILE`,
    );
  }
  if (typeof secrets !== "object" || Array.isArray(secrets)) throw new StackFileError(`${fileName}: ${secretsConfigKey} must map services to secrets`);
  for (const [service, names] of Object.entries(secrets as Record<string, unknown>)) {
    if (typeof names !== "object" || names === null || Array.isArray(names) || isSecure(names)) {
      throw new StackFileError(`${fileName}: ${secretsConfigKey}.${service} must map secret names to values, each set with --secret --path`);
    }
    for (const [name, value] of Object.entries(names as Record<string, unknown>)) {
      if (isSecure(value)) states[`${service}/${name}`] = "secret";
      else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") states[`${service}/${name}`] = "plaintext";
      else throw new StackFileError(`${fileName}: ${secretsConfigKey}.${service}.${name} must be a single value set with --secret --path`);
    }
  }
  return states;
}

/** The stack's own secrets, which every deploy needs (Pulumi.yaml declares them without a default). */
export const stackSecretKeys = ["nixmox:proxmoxApiToken", "nixmox:sshPrivateKey"] as const;
export type StackSecretKey = (typeof stackSecretKeys)[number];

/** How each of `stackSecretKeys` is stored in a stack file (absent: not set), read without decrypting. */
export function readStackKeyStates(text: string, fileName: string): Partial<Record<StackSecretKey, ConfigEntryState>> {
  const config = readConfigSection(text, fileName);
  const states: Partial<Record<StackSecretKey, ConfigEntryState>> = {};
  for (const key of stackSecretKeys) {
    const value = config[key] ?? config[key.replace(":", ":config:")];
    if (value === undefined || value === null) continue;
    states[key] = isSecure(value) ? "secret" : "plaintext";
  }
  return states;
}

/** `readStackKeyStates` of the stack file of `stack` in `projectDir`. */
export function readStackFileKeyStates(projectDir: string, stack: string): Partial<Record<StackSecretKey, ConfigEntryState>> {
  const file = stackFilePath(projectDir, stack);
  if (!existsSync(file)) throw new StackFileError(`stack file ${file} does not exist; create the stack with \`nixmox stack init ${stack}\` or pass --stack <name>`);
  return readStackKeyStates(readFileSync(file, "utf8"), file);
}

/** Reads the stack file of `stack` in `projectDir`; a missing file is an error with the command that creates it. */
export function readStackFileSecretStates(projectDir: string, stack: string): Record<string, ConfigEntryState> {
  const file = stackFilePath(projectDir, stack);
  if (!existsSync(file)) throw new StackFileError(`stack file ${file} does not exist; create the stack with \`nixmox stack init ${stack}\` or pass --stack <name>`);
  return readStackSecretStates(readFileSync(file, "utf8"), file);
}
