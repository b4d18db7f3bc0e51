/**
 * Compose healthcheck semantics over one SSH connection (docs.docker.com/reference/compose-file/services/#healthcheck):
 * every check is probed each `intervalSeconds`; a probe is killed after `timeoutSeconds`; failures during
 * `startPeriodSeconds` do not count; `retries` consecutive counted failures make the check unhealthy.
 * A run is therefore bounded: a check that never passes fails by start_period + retries × interval
 * (plus the probe timeouts), never "hangs on service_healthy" (docker/compose#10042).
 */
import type { HealthCheckSpec, HealthPlan } from "../../manifest/plan-types";
import { SshConnectOptions, SshSession, connectSsh, ExecResult, isHostKeyMismatch } from "../ssh/connection";
import { shellCommand } from "../ssh/quote";
import { ProbeOutcome, RemoteExec, runProbe, validateCheck } from "./probes";

export type HealthTiming = Pick<HealthPlan, "intervalSeconds" | "timeoutSeconds" | "retries" | "startPeriodSeconds">;

export interface CheckOutcome {
  name: string;
  kind: HealthCheckSpec["kind"];
  healthy: boolean;
  attempts: number;
  lastExitCode: number | null;
  /** Last lines of the last probe's output, secrets masked. */
  lastOutput: string;
}

export interface HealthReport {
  service: string;
  healthy: boolean;
  checks: CheckOutcome[];
  /** Why the service is unhealthy (names service, check, exit code, output); null when healthy. */
  message: string | null;
}

export interface RunChecksOptions {
  service: string;
  checks: HealthCheckSpec[];
  timing: HealthTiming;
  exec: RemoteExec;
  /** "startup": wait out start_period (deploy gate). "liveness": no start period (refresh, status). */
  mode: "startup" | "liveness";
  /** Values replaced by "********" in every reported output. */
  secrets?: string[];
  /** Called after each probe (progress). */
  onProbe?: (check: HealthCheckSpec, outcome: ProbeOutcome, attempt: number) => void;
}

const maskText = "********";
const outputLines = 5;
const outputChars = 400;

/**
 * The forms a value takes in output: itself, base64 (padded and not) and percent-encoding (upper- and lower-case
 * hex), as in a connection URL or an Authorization header (security review L3). Encoded forms shorter than 4
 * characters are left out: they would mask unrelated text.
 */
function secretForms(value: string): string[] {
  const base64 = Buffer.from(value, "utf8").toString("base64");
  const percent = encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const encoded = [base64, base64.replace(/=+$/, ""), percent, percent.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase())];
  return [value, ...encoded.filter((form) => form !== value && form.length >= 4)];
}

/** Replaces every secret value and its encoded forms (longest first, so overlapping values leave no fragment) in `text`. */
export function maskSecrets(text: string, secrets: string[] = []): string {
  let masked = text;
  const forms = [...new Set(secrets.filter((value) => value.length > 0).flatMap(secretForms))];
  for (const secret of forms.sort((a, b) => b.length - a.length)) {
    masked = masked.split(secret).join(maskText);
  }
  return masked;
}

/** The last few lines of probe output, for messages and the status table. */
export function lastLines(text: string): string {
  const lines = text.trim().split("\n").slice(-outputLines).join("\n");
  return lines.length > outputChars ? `…${lines.slice(lines.length - outputChars)}` : lines;
}

/** Startup checks gate a deploy; liveness checks run on refresh and `nixmox status`. */
export function checksForPhase(checks: HealthCheckSpec[], phase: "startup" | "liveness"): HealthCheckSpec[] {
  return checks.filter((check) => check.phase === phase || check.phase === "both");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function runHealthChecks(options: RunChecksOptions): Promise<HealthReport> {
  const { service, checks, timing } = options;
  for (const check of checks) validateCheck(service, check);
  const retries = Math.max(1, timing.retries);
  const startPeriodMs = options.mode === "startup" ? timing.startPeriodSeconds * 1000 : 0;
  const started = Date.now();
  const state = checks.map((check) => ({ check, passed: false, failed: false, failures: 0, attempts: 0, last: null as ProbeOutcome | null }));

  for (;;) {
    const pending = state.filter((entry) => !entry.passed && !entry.failed);
    if (pending.length === 0) break;
    const roundStarted = Date.now();
    for (const entry of pending) {
      const outcome = await runProbe(entry.check, timing.timeoutSeconds, options.exec);
      entry.attempts += 1;
      entry.last = outcome;
      options.onProbe?.(entry.check, outcome, entry.attempts);
      if (outcome.ok) entry.passed = true;
      else if (Date.now() - started >= startPeriodMs) {
        entry.failures += 1;
        if (entry.failures >= retries) entry.failed = true;
      }
    }
    if (state.some((entry) => !entry.passed && !entry.failed)) {
      await sleep(Math.max(0, timing.intervalSeconds * 1000 - (Date.now() - roundStarted)));
    }
  }

  const elapsedSeconds = Math.round((Date.now() - started) / 1000);
  const outcomes: CheckOutcome[] = state.map((entry) => ({
    name: entry.check.name,
    kind: entry.check.kind,
    healthy: entry.passed,
    attempts: entry.attempts,
    lastExitCode: entry.last?.exitCode ?? null,
    lastOutput: lastLines(maskSecrets(entry.last?.output ?? "", options.secrets)),
  }));
  const failed = outcomes.filter((outcome) => !outcome.healthy);
  const message =
    failed.length === 0
      ? null
      : failed
          .map(
            (outcome) =>
              `service "${service}": health check "${outcome.name}" (${outcome.kind}) is unhealthy after ${outcome.attempts} probe(s) in ${elapsedSeconds}s ` +
              `(start_period ${options.mode === "startup" ? timing.startPeriodSeconds : 0}s, retries ${retries}, interval ${timing.intervalSeconds}s, timeout ${timing.timeoutSeconds}s): ` +
              `last exit code ${outcome.lastExitCode ?? "none"}, last output: ${outcome.lastOutput === "" ? "(none)" : outcome.lastOutput}`,
          )
          .join("\n");
  return { service, healthy: failed.length === 0, checks: outcomes, message };
}

/**
 * One SSH connection per check run, reused across probes. If the connection drops (sshd restarted by the
 * activation, deploy-rs #68), the probe counts as failed and the next probe reconnects, still within the
 * run's bound. A host-key mismatch is never retried: it rejects the run.
 */
export interface HostConnection {
  exec: RemoteExec;
  /** How many SSH connections were opened (1 unless the connection dropped). */
  connections(): number;
  /** The key the host presented on the last connection. */
  hostKey(): string | null;
  close(): void;
}

export function openHostConnection(connect: SshConnectOptions): HostConnection {
  let session: SshSession | null = null;
  let opened = 0;
  let fatal: Error | null = null;
  const exec: RemoteExec = async (command, timeoutMs) => {
    if (fatal) throw fatal;
    if (!session || !session.isOpen()) {
      try {
        opened += 1;
        session = await connectSsh(connect);
      } catch (error) {
        if (isHostKeyMismatch(error)) {
          fatal = error;
          throw error;
        }
        session = null;
        return failedExec((error as Error).message);
      }
    }
    return session.exec(command, { timeoutMs });
  };
  return {
    exec,
    connections: () => opened,
    hostKey: () => session?.hostKey ?? null,
    close: () => session?.close(),
  };
}

function failedExec(message: string): ExecResult {
  return { code: null, signal: null, stdout: "", stderr: message, timedOut: false, connectionLost: true };
}

/** What NixMox reads about a host besides its checks: the running generation and failed units. */
export interface HostFacts {
  /** Store path of the running system (`readlink -f /run/current-system`), null if unreadable. */
  generation: string | null;
  failedUnits: string[];
}

/** @param currentSystemPath @default "/run/current-system" */
export async function readHostFacts(exec: RemoteExec, currentSystemPath = "/run/current-system"): Promise<HostFacts> {
  const command =
    `${shellCommand(["readlink", "-e", "--", currentSystemPath])} || echo; ` +
    "systemctl list-units --failed --plain --no-legend --no-pager 2>/dev/null || true";
  const result = await exec(command, 15_000);
  if (result.code !== 0) return { generation: null, failedUnits: [] };
  const [first, ...rest] = result.stdout.split("\n");
  return {
    generation: first.trim() === "" ? null : first.trim(),
    failedUnits: rest
      .map((line) => line.trim().split(/\s+/)[0])
      .filter((unit) => unit !== undefined && unit !== "")
      .sort(),
  };
}
