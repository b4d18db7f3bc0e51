/**
 * `nixmox secrets import`: move the values of a SOPS file in the seed's `secrets/default.yaml` layout
 * (`<service>.database_password`, `<service>.oidc_client_secret`, `<service>.env`, …) into the stack's config
 * secrets, through the Automation API (`setAllConfig` with `secret: true` and path keys).
 *
 * Only values that the plan needs are imported; every other key is listed with the reason. Nothing here
 * prints or returns a value outside the `value` fields of `ImportEntry`, which go straight to the CLI call.
 * Known limit: the Automation API passes `config set-all` values as arguments of the local `pulumi` process
 * (@pulumi/pulumi automation/localWorkspace.js `setAllConfig`), so they are visible to other local users in
 * /proc for the second the command runs; run the import on a machine you alone use.
 */
import type { PulumiCommand } from "@pulumi/pulumi/automation";
import type { Plan } from "../../manifest/plan-types";
import { configPath, secretKey } from "./delivery";
import type { SopsLeaf } from "./sops";

/** Seed key names → NixMox secret names (the rest keep their name). */
export const importKeyAliases: Record<string, string> = {
  database_password: "db_password",
  db_pass: "db_password",
  postgres_password: "db_password",
  oidc_secret: "oidc_client_secret",
  client_secret: "oidc_client_secret",
};

export interface ImportEntry {
  /** Dotted key in the SOPS file. */
  from: string;
  configService: string;
  name: string;
  /** `--path` config key, e.g. `nixmox:secrets.vaultwarden.db_password`. */
  configKey: string;
  value: string;
}

export interface SkippedEntry {
  from: string;
  reason: string;
}

export interface ImportPlan {
  imports: ImportEntry[];
  skipped: SkippedEntry[];
}

const byFrom = <T extends { from: string }>(a: T, b: T) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0);

/** Maps decrypted leaves onto the plan's secrets. Pure. */
export function planImport(leaves: SopsLeaf[], plan: Pick<Plan, "secrets" | "services">): ImportPlan {
  const needed = new Set(plan.secrets.map(secretKey));
  const services = new Set(plan.services.map((service) => service.name));
  const imports: ImportEntry[] = [];
  const skipped: SkippedEntry[] = [];
  const taken = new Map<string, string>();
  for (const leaf of leaves) {
    const from = leaf.path.join(".");
    if (leaf.path.length !== 2) {
      skipped.push({ from, reason: "not a <service>.<name> value" });
      continue;
    }
    const [service, key] = leaf.path;
    const name = importKeyAliases[key] ?? key;
    if (!services.has(service)) {
      skipped.push({ from, reason: `no enabled service "${service}" in the manifest` });
      continue;
    }
    if (!needed.has(`${service}/${name}`)) {
      skipped.push({ from, reason: `service "${service}" needs no secret "${name}" (declare it under the service's secrets to import it)` });
      continue;
    }
    const previous = taken.get(`${service}/${name}`);
    if (previous !== undefined) {
      skipped.push({ from, reason: `${previous} already provides ${service}/${name}` });
      continue;
    }
    taken.set(`${service}/${name}`, from);
    imports.push({ from, configService: service, name, configKey: configPath(service, name), value: leaf.value });
  }
  return { imports: imports.sort(byFrom), skipped: skipped.sort(byFrom) };
}

/** The report lines: what went where and what was left, never a value. */
export function formatImportPlan(result: ImportPlan, written: boolean): string {
  const lines: string[] = [];
  for (const entry of result.imports) lines.push(`${written ? "imported" : "would import"} ${entry.from} -> ${entry.configKey} (secret)`);
  for (const entry of result.skipped) lines.push(`skipped ${entry.from}: ${entry.reason}`);
  lines.push(`${result.imports.length} imported${written ? "" : " (dry run)"}, ${result.skipped.length} skipped`);
  return lines.join("\n");
}

export interface WriteImportOptions {
  stack: string;
  /** Directory with Pulumi.yaml. */
  workDir: string;
  /** Injected CLI (tests); omitted: the `pulumi` on PATH. */
  pulumiCommand?: PulumiCommand;
}

/** Writes every import in one `pulumi config set-all --path --secret …` through the Automation API. */
export async function writeImport(entries: ImportEntry[], options: WriteImportOptions): Promise<void> {
  if (entries.length === 0) return;
  const { LocalWorkspace } = require("@pulumi/pulumi/automation") as typeof import("@pulumi/pulumi/automation");
  const workspace = await LocalWorkspace.create({ workDir: options.workDir, ...(options.pulumiCommand ? { pulumiCommand: options.pulumiCommand } : {}) });
  const config = Object.fromEntries(entries.map((entry) => [entry.configKey, { value: entry.value, secret: true }]));
  try {
    await workspace.setAllConfig(options.stack, config, true);
  } catch (error) {
    // A CommandError's message holds the full command line, values included: report the exit only.
    const code = (error as { commandResult?: { code?: number } }).commandResult?.code;
    throw new Error(`pulumi config set-all failed for stack "${options.stack}"${code === undefined ? "" : ` (exit ${code})`}; check \`pulumi stack ls\` and the backend login; no value was printed`);
  }
}
