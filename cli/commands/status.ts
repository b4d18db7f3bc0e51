/**
 * `nixmox status [manifest] [--stack NAME] [--json] [--identity FILE] [--known-hosts FILE]`: live health of every
 * enabled service of the stack over SSH, concurrently, with the stack's deploy key and pinned host keys (cli/hosts.ts). Per service: its liveness checks (no start period), the running generation
 * and failed units (nixops `check` + bento status, field-notes §6.12).
 * Exit 0 all healthy, 1 any unhealthy or unreachable or an invalid manifest (as in validate), 2 bad input (key,
 * known_hosts, --current-system). On a terminal, stderr shows which hosts have answered while it runs.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { Command } from "commander";
import type { ServicePlan } from "../../manifest/plan-types";
import { hostAccessFailure, openHostAccess, type HostAccessFlags } from "../hosts";
import { displayPath, projectDir } from "../paths";
import { ttyStatusLine } from "../progress";
import { action, allowPathOption, exitCodes, print } from "../run";

export interface StatusRow {
  service: string;
  host: string;
  port: number;
  healthy: boolean;
  generation: string | null;
  failedUnits: string[];
  /** Why unhealthy (failing checks, or the connection error); "" when healthy. */
  lastOutput: string;
  /** The system NixMox last built (or deployed) for the host, from `--systems`; null when not known. */
  lastBuild: string | null;
  /** Whether the host runs its last build; null when either is not known. */
  matchesLastBuild: boolean | null;
}

export interface StatusOptions {
  /** Deploy key text (a secret: never printed). */
  privateKey: string;
  /** Pinned host keys for a host and port. */
  hostKeysFor: (host: string, port: number) => string[];
  /** @default "/run/current-system" */
  currentSystemPath?: string;
  /** Values masked in the output. @default [] */
  maskValues?: string[];
  /** Called as each service's row is known (progress). */
  onResult?: (row: StatusRow) => void;
  /** Per service, the system it should run (`pulumi stack output systems --json`). @default {} */
  lastBuilds?: Record<string, string>;
}

/** Checks every service concurrently, one SSH connection each; rows sorted by service name. */
export async function collectStatus(services: ServicePlan[], options: StatusOptions): Promise<StatusRow[]> {
  const rows = await Promise.all(services.map(async (service) => {
    const lastBuild = options.lastBuilds?.[service.name] || null;
    const checked = await statusOf(service, options);
    const row: StatusRow = { ...checked, lastBuild, matchesLastBuild: lastBuild === null || checked.generation === null ? null : checked.generation === lastBuild };
    options.onResult?.(row);
    return row;
  }));
  return rows.sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
}

async function statusOf(service: ServicePlan, options: StatusOptions): Promise<Omit<StatusRow, "lastBuild" | "matchesLastBuild">> {
  // The SSH client (ssh2) loads with the first host, not with the CLI.
  const { checksForPhase, openHostConnection, readHostFacts, runHealthChecks } = require("../../components/health/runner") as typeof import("../../components/health/runner");
  const base = { service: service.name, host: service.ip, port: service.sshPort };
  const hostKeys = options.hostKeysFor(service.ip, service.sshPort);
  if (hostKeys.length === 0) {
    return { ...base, healthy: false, generation: null, failedUnits: [], lastOutput: `no known host key for ${service.ip}:${service.sshPort} (add it to the known_hosts file)` };
  }
  const connection = openHostConnection({ host: service.ip, port: service.sshPort, privateKey: options.privateKey, hostKeys, readyTimeoutMs: 10_000 });
  try {
    const report = await runHealthChecks({
      service: service.name,
      checks: checksForPhase(service.health.checks, "liveness"),
      timing: service.health,
      exec: connection.exec,
      mode: "liveness",
      secrets: [...(options.maskValues ?? []), options.privateKey],
    });
    const facts = await readHostFacts(connection.exec, options.currentSystemPath);
    const failing = report.checks.filter((check) => !check.healthy);
    const lastOutput = describeFailures(failing.map((check) => ({ name: check.name, output: check.lastOutput || `exit code ${check.lastExitCode ?? "none"}` })));
    return { ...base, healthy: report.healthy, generation: facts.generation, failedUnits: facts.failedUnits, lastOutput };
  } catch (error) {
    return { ...base, healthy: false, generation: null, failedUnits: [], lastOutput: (error as Error).message };
  } finally {
    connection.close();
  }
}

/**
 * The failing checks' outputs, each distinct output once with the checks that gave it: a lost connection fails
 * every check the same way and is then one message, not one per check (newcomer review P9).
 */
export function describeFailures(failures: Array<{ name: string; output: string }>): string {
  const byOutput = new Map<string, string[]>();
  for (const failure of failures) byOutput.set(failure.output, [...(byOutput.get(failure.output) ?? []), failure.name]);
  return [...byOutput].map(([output, names]) => `${names.join(", ")}: ${output}`).join("; ");
}

/**
 * A fixed-width table: service, healthy, generation (store path name), with `withLastBuild` whether it is the last
 * build, failed units, last output (one line).
 */
export function renderStatusTable(rows: StatusRow[], withLastBuild = false): string {
  const header = ["SERVICE", "HEALTHY", "GENERATION", ...(withLastBuild ? ["LAST BUILD"] : []), "FAILED UNITS", "LAST OUTPUT"];
  const lastBuild = (row: StatusRow) =>
    row.lastBuild === null ? "-" : row.matchesLastBuild === null ? `? (${basename(row.lastBuild)})` : row.matchesLastBuild ? "runs it" : `differs: ${basename(row.lastBuild)}`;
  const cells = rows.map((row) => [
    row.service,
    row.healthy ? "yes" : "no",
    row.generation ? basename(row.generation) : "-",
    ...(withLastBuild ? [lastBuild(row)] : []),
    row.failedUnits.length > 0 ? row.failedUnits.join(",") : "-",
    row.lastOutput === "" ? "-" : row.lastOutput.replace(/\s*\n\s*/g, " | "),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((cell) => cell[column].length)));
  const line = (cell: string[]) =>
    cell
      .map((text, column) => (column === cell.length - 1 ? text : text.padEnd(widths[column])))
      .join("  ")
      .trimEnd();
  return [line(header), ...cells.map(line)].join("\n");
}

/** The project's own file with the system each host should run (`pulumi stack output systems --json > …`). */
const defaultSystems = join(projectDir, ".nixmox", "systems.json");

/**
 * `--systems FILE` (or the project's .nixmox/systems.json when it exists): service → store path, what
 * `pulumi stack output systems --json` prints; undefined without one. A bad file is a usage error (exit 2).
 */
function readLastBuilds(file: string | undefined): Record<string, string> | undefined {
  if (file === undefined && !existsSync(defaultSystems)) return undefined;
  const path = file ?? defaultSystems;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new SystemsFileError(`cannot read the systems file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SystemsFileError(`${path} is not JSON; write it with \`pulumi stack output systems --json > ${displayPath(defaultSystems)}\``);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || Object.values(parsed).some((value) => typeof value !== "string")) {
    throw new SystemsFileError(`${path} must map service names to store paths, as \`pulumi stack output systems --json\` prints them`);
  }
  return parsed as Record<string, string>;
}

class SystemsFileError extends Error {}

export function register(program: Command): void {
  allowPathOption(program
    .command("status")
    .description("Run every enabled service's liveness checks over SSH and print a table. Exit 1 when any service is unhealthy.")
    .argument("[manifest]", "optional: the stack's nixmox:manifest (another file is an error); with --identity and without --stack, the manifest to check without a stack")
    .option("--json", "print JSON instead of a table")
    .option("--stack <name>", "the stack whose hosts are checked (default: the Pulumi CLI's selected stack)")
    .option("--backend <url>", "state backend URL, or \"local\" for .nixmox/state (default: the Pulumi CLI's current backend)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml and the stack files", projectDir)
    .option("--identity <file>", "SSH private key for root on the hosts (default: $NIXMOX_SSH_IDENTITY, else the stack's nixmox:sshPrivateKey)")
    .option("--known-hosts <file>", "known_hosts file with the pinned host keys (default: the stack's knownHosts output; without a stack, .nixmox/known_hosts in the project)")
    .option("--current-system <path>", "the running system's link on the hosts", "/run/current-system")
    .option("--systems <file>", `JSON of the system each host should run, to say whether it runs its last build (default: ${displayPath(defaultSystems)} when it exists, where \`pulumi stack output systems --json\` writes it)`))
    .action(
      action(async (manifest: string | undefined, flags: HostAccessFlags & { json?: boolean; currentSystem: string; systems?: string }) => {
        if (!/^\/[A-Za-z0-9/._-]*$/.test(flags.currentSystem)) return usage(`--current-system must be an absolute path, got ${JSON.stringify(flags.currentSystem)}`);
        const identity = flags.identity ?? process.env.NIXMOX_SSH_IDENTITY;
        if (manifest !== undefined && flags.stack === undefined && !identity) {
          return usage("no SSH key: pass --identity FILE (or set NIXMOX_SSH_IDENTITY) with the deploy key (nixmox:sshPrivateKey), or pass --stack NAME to use the stack's");
        }
        let access;
        try {
          access = await openHostAccess(manifest, flags, (text) => process.stderr.write(text));
        } catch (error) {
          const message = hostAccessFailure(error);
          if (message === null) throw error;
          return usage(message);
        }
        const { plan } = access;
        let lastBuilds: Record<string, string> | undefined;
        try {
          lastBuilds = readLastBuilds(flags.systems);
        } catch (error) {
          if (error instanceof SystemsFileError) return usage(error.message);
          throw error;
        }
        // On a terminal, which hosts have answered so far (unreachable hosts take up to the SSH timeout).
        const line = ttyStatusLine(process.stderr);
        const done: string[] = [];
        line.update(`checking ${plan.services.length} services over SSH…`);
        const rows = await collectStatus(plan.services, {
          onResult: (row) => {
            done.push(`${row.service} ${row.healthy ? "ok" : "unhealthy"}`);
            line.update(`checked ${done.length}/${plan.services.length}: ${done.slice(-3).join(", ")}`);
          },
          privateKey: access.privateKey,
          currentSystemPath: flags.currentSystem,
          hostKeysFor: access.hostKeysFor,
          ...(lastBuilds ? { lastBuilds } : {}),
        });
        line.done();
        print(flags.json ? JSON.stringify(rows, null, 2) : renderStatusTable(rows, lastBuilds !== undefined));
        return rows.every((row) => row.healthy) ? 0 : 1;
      }),
    );
}

function usage(message: string): number {
  process.stderr.write(`nixmox status: ${message}\n`);
  return exitCodes.usage;
}
