/**
 * Which secrets a plan needs and where each value comes from: set in the stack config, generated with
 * @pulumi/random, or missing (with the exact command that sets it). Pure: the caller says which config keys are
 * set. Used by `nixmox secrets check` (from the stack file) and by the program before it creates any resource
 * (`assertSecretsComplete`), which is how `pulumi preview`/`up` stop early with the same list.
 */
import type { Plan, SecretPlan } from "../../manifest/plan-types";
import { configPath, secretKey } from "./delivery";
import { terminalText } from "../../manifest/problems";

/**
 * How a key under `nixmox:secrets` is stored: `secret` (encrypted, `secure:` in the stack file) or `plaintext`
 * (set without `--secret`: the value sits readable in `Pulumi.<stack>.yaml`, which NixMox refuses).
 */
export type ConfigEntryState = "secret" | "plaintext";

export type SecretStatus = "set" | "generated" | "missing" | "plaintext";

export interface SecretCheckRow {
  configService: string;
  name: string;
  status: SecretStatus;
  /** Generated with @pulumi/random when not set. */
  generated: boolean;
  /** A missing value stops the deploy. */
  required: boolean;
  /** Hosts that receive the file, sorted. */
  hosts: string[];
  description: string;
  /** The command that sets (or re-sets as a secret) the value; null when nothing needs doing. */
  command: string | null;
  /** True when this row stops the deploy. */
  blocking: boolean;
  /** How the row is named in the table: `<service>/<name>`, or the stack key (`nixmox:sshPrivateKey`). */
  label: string;
}

export interface CheckOptions {
  /** Stack named in the printed commands; omitted: no `--stack` flag (the selected stack). */
  stack?: string;
}

/** The exact command that stores a secret value (the user types the value in place of `<value>`). */
export function configSetCommand(configService: string, name: string, options: CheckOptions = {}): string {
  const stack = options.stack === undefined ? "" : ` --stack ${/^[A-Za-z0-9_.\/-]+$/.test(options.stack) ? options.stack : `'${options.stack.replace(/'/g, `'\\''`)}'`}`;
  return `pulumi config set --secret${stack} --path '${configPath(configService, name)}' <value>`;
}

/** One row per distinct stack-config value (`<configService>/<name>`), sorted; a db password sent to two hosts is one row. */
export function checkSecrets(plan: Pick<Plan, "secrets">, configured: Record<string, ConfigEntryState>, options: CheckOptions = {}): SecretCheckRow[] {
  const byKey = new Map<string, SecretPlan[]>();
  for (const secret of plan.secrets) {
    const list = byKey.get(secretKey(secret)) ?? [];
    list.push(secret);
    byKey.set(secretKey(secret), list);
  }
  const rows: SecretCheckRow[] = [];
  for (const key of [...byKey.keys()].sort()) {
    const entries = byKey.get(key) as SecretPlan[];
    const first = entries[0];
    const generated = entries.some((entry) => entry.generated);
    const required = entries.some((entry) => entry.required);
    const state = Object.prototype.hasOwnProperty.call(configured, key) ? configured[key] : undefined;
    const status: SecretStatus = state === "secret" ? "set" : state === "plaintext" ? "plaintext" : generated ? "generated" : "missing";
    const blocking = status === "plaintext" || (status === "missing" && required);
    rows.push({
      configService: first.configService,
      name: first.name,
      status,
      generated,
      required,
      hosts: [...new Set(entries.map((entry) => entry.service))].sort(),
      description: first.description,
      command: status === "missing" || status === "plaintext" ? configSetCommand(first.configService, first.name, options) : null,
      blocking,
      label: `${first.configService}/${first.name}`,
    });
  }
  return rows;
}

const stackKeyDescriptions: Record<string, { description: string; value: string }> = {
  "nixmox:proxmoxApiToken": { description: "Proxmox API token (user@realm!name=secret) NixMox deploys with", value: "'<user@realm!token=secret>'" },
  "nixmox:sshPrivateKey": { description: "the deploy key: SSH private key NixMox logs in to every host with", value: "< ~/.ssh/nixmox_ed25519" },
};

/**
 * The stack's own required secrets (Pulumi.yaml's `nixmox:proxmoxApiToken` and `nixmox:sshPrivateKey`), as rows:
 * set, missing or stored in plain text; a missing or plain one blocks the deploy, with the command that sets it.
 */
export function checkStackKeys(states: Partial<Record<string, ConfigEntryState>>, options: CheckOptions = {}): SecretCheckRow[] {
  const stack = options.stack === undefined ? "" : ` --stack ${/^[A-Za-z0-9_.\/-]+$/.test(options.stack) ? options.stack : `'${options.stack.replace(/'/g, `'\\''`)}'`}`;
  return Object.keys(stackKeyDescriptions).map((key) => {
    const state = states[key];
    const status: SecretStatus = state === "secret" ? "set" : state === "plaintext" ? "plaintext" : "missing";
    const [configService, name] = key.split(":");
    return {
      configService,
      name,
      status,
      generated: false,
      required: true,
      hosts: [],
      description: stackKeyDescriptions[key].description,
      command: status === "set" ? null : `pulumi config set --secret${stack} ${key} ${stackKeyDescriptions[key].value}`,
      blocking: status !== "set",
      label: key,
    };
  });
}

/** Aligned table plus, for each blocking row, what to run. Contains names and commands, never values. */
export function formatSecretCheck(rows: SecretCheckRow[]): string {
  if (rows.length === 0) return "no secrets required by this manifest";
  const table = [["SECRET", "STATUS", "HOSTS", "DESCRIPTION"]];
  for (const row of rows) {
    const status = row.status === "missing" && !row.required ? "missing (optional)" : row.status;
    // The description comes from the manifest: one line, its control characters shown, not obeyed (review L7).
    table.push([row.label, status, row.hosts.join(","), terminalText(row.description, { newlines: false })]);
  }
  const widths = table[0].map((_, column) => Math.max(...table.map((line) => line[column].length)));
  const lines = table.map((line) => line.map((cell, column) => (column === line.length - 1 ? cell : cell.padEnd(widths[column]))).join("  ").trimEnd());
  const counts = (status: SecretStatus) => rows.filter((row) => row.status === status).length;
  lines.push("");
  lines.push(`${rows.length} secrets: ${counts("set")} set, ${counts("generated")} generated, ${counts("missing")} missing, ${counts("plaintext")} in plain text`);
  const todo = rows.filter((row) => row.command !== null);
  if (todo.length > 0) {
    lines.push("");
    for (const row of todo) {
      const why =
        row.status === "plaintext"
          ? "is stored in plain text in the stack file; set it again as a secret"
          : row.required
            ? "is required and cannot be generated; set it"
            : "is optional; to provide it";
      lines.push(`# ${row.label} ${why}:`);
      lines.push(row.command as string);
    }
  }
  return lines.join("\n");
}

/** Thrown before any resource is created when a required secret cannot be obtained. */
export class SecretsMissingError extends Error {
  constructor(readonly rows: SecretCheckRow[]) {
    super(
      `secrets: ${rows.length} required secret${rows.length === 1 ? " is" : "s are"} not usable; nothing was changed:\n` +
        rows
          .map((row) => {
            const problem = row.status === "plaintext" ? "stored in plain text (re-set it with --secret)" : "missing and not generatable";
            return `  service "${row.configService}": secret "${row.name}" is ${problem}: ${row.command}`;
          })
          .join("\n"),
    );
    this.name = "SecretsMissingError";
  }
}

/** Throws `SecretsMissingError` listing every blocking row; returns the rows otherwise. */
export function assertSecretsComplete(plan: Pick<Plan, "secrets">, configured: Record<string, ConfigEntryState>, options: CheckOptions = {}): SecretCheckRow[] {
  const rows = checkSecrets(plan, configured, options);
  const blocking = rows.filter((row) => row.blocking);
  if (blocking.length > 0) throw new SecretsMissingError(blocking);
  return rows;
}
