/**
 * `nixmox status [manifest] [--json] [--identity FILE] [--known-hosts FILE]`: live health of every enabled
 * service over SSH, concurrently. Per service: its liveness checks (no start period), the running generation
 * and failed units (nixops `check` + bento status, field-notes §6.12).
 * Exit 0 all healthy, 1 any unhealthy or unreachable or an invalid manifest (as in validate), 2 bad input (key,
 * known_hosts, --current-system). On a terminal, stderr shows which hosts have answered while it runs.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Command } from "commander";
import type { ServicePlan } from "../../manifest/plan-types";
import { ManifestError } from "../../manifest/problems";
import { displayPath, exampleManifestPath, projectRoot } from "../paths";
import { ttyStatusLine } from "../progress";
import { action, allowPathOption, exitCodes, loadOptions, manifestModule, print } from "../run";

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

function readFileOrUsage(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

class UsageError extends Error {}

/** In the project directory, which .gitignore covers (`/.nixmox/`), whatever manifest is checked. */
const defaultKnownHosts = join(projectRoot, ".nixmox", "known_hosts");
const defaultSystems = join(projectRoot, ".nixmox", "systems.json");

/** `--systems FILE` (or the default file when it exists): service → store path; undefined without one. */
function readLastBuilds(file: string | undefined): Record<string, string> | undefined {
  if (file === undefined && !existsSync(defaultSystems)) return undefined;
  const path = file ?? defaultSystems;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileOrUsage(path, "systems file"));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`${path} is not JSON; write it with \`pulumi stack output systems --json > ${displayPath(defaultSystems)}\``);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || Object.values(parsed).some((value) => typeof value !== "string")) {
    throw new UsageError(`${path} must map service names to store paths, as \`pulumi stack output systems --json\` prints them`);
  }
  return parsed as Record<string, string>;
}

export function register(program: Command): void {
  allowPathOption(program
    .command("status")
    .description("Run every enabled service's liveness checks over SSH and print a table. Exit 1 when any service is unhealthy.")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", displayPath(exampleManifestPath))
    .option("--json", "print JSON instead of a table")
    .option("--identity <file>", "SSH private key for root on the hosts (default: $NIXMOX_SSH_IDENTITY)")
    .option("--known-hosts <file>", `known_hosts file with the pinned host keys (default: ${displayPath(defaultKnownHosts)}, where the README's \`pulumi stack output knownHosts\` writes them)`)
    .option("--current-system <path>", "the running system's link on the hosts", "/run/current-system")
    .option("--systems <file>", `JSON of the system each host should run, to say whether it runs its last build (default: ${displayPath(defaultSystems)} when it exists, where \`pulumi stack output systems --json\` writes it)`))
    .action(
      action(async (manifest: string, flags: { json?: boolean; identity?: string; knownHosts?: string; currentSystem: string; allowPath?: string[]; systems?: string }) => {
        try {
          const identity = flags.identity ?? process.env.NIXMOX_SSH_IDENTITY;
          if (!identity) throw new UsageError("no SSH key: pass --identity FILE (or set NIXMOX_SSH_IDENTITY) with the deploy key (nixmox:sshPrivateKey)");
          const privateKey = readFileOrUsage(identity, "identity file");
          const { formatHostKey, lookupKnownHost, readKnownHostsFile } = require("../../components/ssh/host-key") as typeof import("../../components/ssh/host-key");
          const plan = await manifestModule().loadPlan(manifest, loadOptions(flags));
          const knownHostsFile = flags.knownHosts ?? defaultKnownHosts;
          if (!existsSync(knownHostsFile)) {
            const shown = displayPath(knownHostsFile);
            throw new UsageError(`known_hosts file ${shown} does not exist: write the keys NixMox pinned with \`mkdir -p ${displayPath(dirname(knownHostsFile))} && pulumi stack output knownHosts > ${shown}\`, or pass --known-hosts FILE`);
          }
          let entries;
          try {
            entries = readKnownHostsFile(knownHostsFile);
          } catch (error) {
            throw new UsageError((error as Error).message);
          }
          if (!/^\/[A-Za-z0-9/._-]*$/.test(flags.currentSystem)) throw new UsageError(`--current-system must be an absolute path, got ${JSON.stringify(flags.currentSystem)}`);
          const lastBuilds = readLastBuilds(flags.systems);
          // On a terminal, which hosts have answered so far (unreachable hosts take up to the SSH timeout).
          const line = ttyStatusLine(process.stderr);
          const done: string[] = [];
          line.update(`checking ${plan.services.length} services over SSH…`);
          const rows = await collectStatus(plan.services, {
            onResult: (row) => {
              done.push(`${row.service} ${row.healthy ? "ok" : "unhealthy"}`);
              line.update(`checked ${done.length}/${plan.services.length}: ${done.slice(-3).join(", ")}`);
            },
            privateKey,
            currentSystemPath: flags.currentSystem,
            ...(lastBuilds ? { lastBuilds } : {}),
            hostKeysFor: (host, port) => lookupKnownHost(entries, host, port).map(formatHostKey),
          });
          line.done();
          print(flags.json ? JSON.stringify(rows, null, 2) : renderStatusTable(rows, lastBuilds !== undefined));
          return rows.every((row) => row.healthy) ? 0 : 1;
        } catch (error) {
          if (error instanceof UsageError) {
            process.stderr.write(`nixmox status: ${error.message}\n`);
            return exitCodes.usage;
          }
          // An invalid manifest exits 1 here too, as in validate and plan.
          if (error instanceof ManifestError) throw error;
          throw error;
        }
      }),
    );
}
