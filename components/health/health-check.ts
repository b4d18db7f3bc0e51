/**
 * `HealthCheck`: a dynamic resource that gates dependents on a service being healthy.
 *
 * - create / update: one SSH connection (host key pinned, private key a secret input), then the service's
 *   startup checks with Compose semantics until healthy or the bound (start_period + retries × interval) is
 *   hit; then, when `confirm` is set, confirms the activation over this fresh connection (deploy-rs's canary,
 *   field-notes §3.1); then compares the running generation with `expectedGeneration`. Any failure throws a
 *   message naming the service, the check, the last exit code and the last output (secrets masked), so the
 *   engine never creates the resources that depend on it.
 * - read (refresh): runs the liveness checks once (retries, no start period) and reports drift in `drift`:
 *   unhealthy, or "the host runs another NixOS generation than the one NixMox deployed".
 * - diff: re-runs (update) when the expected generation, the checks, the connection, the confirmation or the
 *   container's `rebootRevision` (Proxmox rebooted it to apply an edit) change, or when the last read found
 *   drift. Never replaces: there is nothing on the host to re-create.
 * - update after such a reboot: first waits until SSH runs a command again (up to 300 s, the host key pinned),
 *   then gates as above.
 * - update after a read found another generation: first re-runs the activation (`repair`, the rebuild's own
 *   command), so `pulumi refresh` + `pulumi up` repairs the drift; an unhealthy host is only checked again.
 * - delete: nothing to undo.
 *
 * The outputs keep `privateKey` and `maskValues` because `read` gets only the stored outputs
 * (cmd/dynamic-provider/index.js `read`) and must reconnect and mask; both are `additionalSecretOutputs`.
 */
import * as pulumi from "@pulumi/pulumi";
import type { HealthPlan } from "../../manifest/plan-types";
import { renderConfirmCommand, parseActivationResult } from "../activation";
import { checksForPhase, maskSecrets, openHostConnection, readHostFacts, runHealthChecks } from "./runner";
import { connectSsh, waitForSsh } from "../ssh/connection";
import { validateCheck } from "./probes";
import { parseHostKey } from "../ssh/host-key";
import { containsUnknown } from "../unknown";

export interface HealthCheckArgs {
  /** Service name, used in every message. */
  service: pulumi.Input<string>;
  /** Address the controller reaches the host on (the service's IP). */
  host: pulumi.Input<string>;
  /** @default 22 */
  port?: pulumi.Input<number>;
  /** @default "root" */
  username?: pulumi.Input<string>;
  /** Deploy key (secret). */
  privateKey: pulumi.Input<string>;
  /** Pinned host key, `ssh-ed25519 AAAA…`, recorded on first contact. */
  hostKey: pulumi.Input<string>;
  /** The service's checks and Compose timings (`ServicePlan.health`). */
  health: pulumi.Input<HealthPlan>;
  /** Store path the rebuild reported (`NIXMOX_RESULT.generation`); drift when the host runs another. @default no generation check */
  expectedGeneration?: pulumi.Input<string>;
  /** Confirm a pending activation (wrapper `--confirm-timeout`) once healthy. @default no confirmation */
  confirm?: pulumi.Input<{ configHash: string; stateDir?: string }>;
  /** @default "/run/current-system" */
  currentSystemPath?: pulumi.Input<string>;
  /** Values to mask in messages and outputs (e.g. the service's secrets). @default [] */
  maskValues?: pulumi.Input<pulumi.Input<string>[]>;
  /** Changes when Proxmox reboots the container to apply an edit; the gate then runs again. @default "" */
  rebootRevision?: pulumi.Input<string>;
  /** The activation the rebuild runs; re-run by the next update after a refresh found another generation. @default no repair */
  repair?: pulumi.Input<ActivationRun>;
}

/** One run of the activation wrapper (components/activation `renderActivationCommand`). */
export interface ActivationRun {
  command: string;
  stdin: string;
}

/** Resolved inputs, as the provider receives them. */
export interface HealthCheckInputs {
  service: string;
  host: string;
  port: number;
  username: string;
  privateKey: string;
  hostKey: string;
  health: HealthPlan;
  expectedGeneration: string | null;
  confirm: { configHash: string; stateDir?: string } | null;
  currentSystemPath: string;
  maskValues: string[];
  rebootRevision: string;
  repair: ActivationRun | null;
}

export interface HealthCheckOutputs extends HealthCheckInputs {
  healthy: boolean;
  /** Store path the host ran at the last check. */
  generation: string | null;
  failedUnits: string[];
  /** Why the last refresh found the service drifted; null when in line. */
  drift: string | null;
}

/** Picks the known fields with defaults (never forwards the raw object: it carries `__provider`). */
export function resolveHealthCheckInputs(raw: Record<string, unknown>): HealthCheckInputs {
  const confirm = raw.confirm as HealthCheckInputs["confirm"] | undefined;
  return {
    service: String(raw.service),
    host: String(raw.host),
    port: raw.port === undefined || raw.port === null ? 22 : Number(raw.port),
    username: raw.username === undefined || raw.username === null ? "root" : String(raw.username),
    privateKey: String(raw.privateKey),
    hostKey: String(raw.hostKey),
    health: raw.health as HealthPlan,
    expectedGeneration: typeof raw.expectedGeneration === "string" && raw.expectedGeneration !== "" ? raw.expectedGeneration : null,
    confirm: confirm ? { configHash: confirm.configHash, ...(confirm.stateDir ? { stateDir: confirm.stateDir } : {}) } : null,
    currentSystemPath: typeof raw.currentSystemPath === "string" ? raw.currentSystemPath : "/run/current-system",
    maskValues: Array.isArray(raw.maskValues) ? raw.maskValues.map(String) : [],
    rebootRevision: typeof raw.rebootRevision === "string" ? raw.rebootRevision : "",
    repair: isActivationRun(raw.repair) ? { command: raw.repair.command, stdin: raw.repair.stdin } : null,
  };
}

function isActivationRun(value: unknown): value is ActivationRun {
  const run = value as Partial<ActivationRun> | null | undefined;
  return typeof run?.command === "string" && typeof run.stdin === "string";
}

function connectOptions(inputs: HealthCheckInputs) {
  return { host: inputs.host, port: inputs.port, username: inputs.username, privateKey: inputs.privateKey, hostKeys: [inputs.hostKey] };
}

function secretsOf(inputs: HealthCheckInputs): string[] {
  return [...inputs.maskValues, inputs.privateKey];
}

/**
 * Drift repair: the last refresh found the host running another generation than the one NixMox deployed, so
 * re-run the activation the rebuild ran (same configuration; the wrapper is idempotent only while the deployed
 * generation runs, so here it switches again, with its own checks and rollback). The rebuild itself cannot be
 * re-triggered by this resource's drift without a cycle (it depends on the rebuild). Returns the generation the
 * activation reports: with the same configuration, Nix builds the same store path.
 */
async function repairGenerationDrift(inputs: HealthCheckInputs & { repair: ActivationRun }): Promise<string | null> {
  const session = await connectSsh(connectOptions(inputs));
  try {
    const ran = await session.exec(inputs.repair.command, { stdin: inputs.repair.stdin, timeoutMs: 45 * 60_000 });
    const result = parseActivationResult(ran.stdout);
    if (result?.status !== "switched" && result?.status !== "awaiting-confirmation" && result?.status !== "unchanged") {
      const reason = result?.reason ?? maskSecrets(`${ran.stderr}`.trim().split("\n").slice(-5).join("\n"), secretsOf(inputs));
      throw new Error(`service "${inputs.service}": re-running the activation to repair drift failed (exit code ${ran.code ?? "none"}, ${result?.status ?? "no result"}): ${reason}`);
    }
    return result.generation ?? null;
  } finally {
    session.close();
  }
}

function foundGenerationDrift(olds: HealthCheckOutputs | null): boolean {
  return olds !== null && olds.drift !== null && olds.drift !== undefined && olds.expectedGeneration !== null && olds.generation !== olds.expectedGeneration;
}

async function gate(inputs: HealthCheckInputs, olds: HealthCheckOutputs | null = null): Promise<HealthCheckOutputs> {
  let expectedGeneration = inputs.expectedGeneration;
  // `?? ""`: state written before rebootRevision existed has none.
  if (olds !== null && (olds.rebootRevision ?? "") !== inputs.rebootRevision) {
    await waitForSsh({ service: inputs.service, host: inputs.host, port: inputs.port, user: inputs.username, privateKey: inputs.privateKey, pinnedHostKey: inputs.hostKey, timeoutSeconds: 300, intervalSeconds: 2 });
  }
  if (inputs.repair !== null && foundGenerationDrift(olds)) {
    expectedGeneration = (await repairGenerationDrift({ ...inputs, repair: inputs.repair })) ?? expectedGeneration;
  }
  const connection = openHostConnection(connectOptions(inputs));
  try {
    const report = await runHealthChecks({
      service: inputs.service,
      checks: checksForPhase(inputs.health.checks, "startup"),
      timing: inputs.health,
      exec: connection.exec,
      mode: "startup",
      secrets: secretsOf(inputs),
    });
    if (!report.healthy) throw new Error(report.message ?? `service "${inputs.service}" is unhealthy`);
    if (inputs.confirm) {
      const command = renderConfirmCommand({
        service: inputs.service,
        configHash: inputs.confirm.configHash,
        ...(inputs.confirm.stateDir ? { paths: { stateDir: inputs.confirm.stateDir } } : {}),
      });
      const confirmed = await connection.exec(command, 330_000);
      const result = parseActivationResult(confirmed.stdout);
      if (confirmed.code !== 0 || result?.status !== "switched") {
        const reason = result?.reason ?? maskSecrets(`${confirmed.stderr}`.trim(), secretsOf(inputs));
        throw new Error(`service "${inputs.service}": confirming the activation failed (exit code ${confirmed.code ?? "none"}): ${reason}`);
      }
    }
    const facts = await readHostFacts(connection.exec, inputs.currentSystemPath);
    if (expectedGeneration !== null && facts.generation !== expectedGeneration) {
      throw new Error(generationDrift(inputs.service, facts.generation, expectedGeneration));
    }
    return { ...inputs, healthy: true, generation: facts.generation, failedUnits: facts.failedUnits, drift: null };
  } finally {
    connection.close();
  }
}

function generationDrift(service: string, running: string | null, expected: string): string {
  return `service "${service}": the host runs another NixOS generation (${running ?? "unknown"}) than the one NixMox deployed (${expected})`;
}

export const healthCheckProvider: pulumi.dynamic.ResourceProvider = {
  async check(_olds: Record<string, unknown>, news: Record<string, unknown>) {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const inputs = resolveHealthCheckInputs(news);
    // In a preview any input may still be unknown (the host key always is for a new container): validate only
    // what is known; the engine checks again with the real values before create/update.
    if (typeof news.hostKey === "string" && !containsUnknown(news.hostKey)) {
      try {
        parseHostKey(inputs.hostKey, `service "${inputs.service}": hostKey`);
      } catch (error) {
        failures.push({ property: "hostKey", reason: (error as Error).message });
      }
    }
    const checks = containsUnknown(news.health) ? [] : (inputs.health?.checks ?? []);
    for (const check of checks) {
      try {
        validateCheck(inputs.service, check);
      } catch (error) {
        failures.push({ property: "health", reason: (error as Error).message });
      }
    }
    return { inputs: news, failures };
  },

  async create(raw: Record<string, unknown>) {
    const inputs = resolveHealthCheckInputs(raw);
    return { id: `${inputs.service}-health`, outs: await gate(inputs) };
  },

  async diff(_id: string, olds: HealthCheckOutputs, raw: Record<string, unknown>) {
    const news = resolveHealthCheckInputs(raw);
    const keys: (keyof HealthCheckInputs)[] = ["service", "host", "port", "username", "hostKey", "health", "expectedGeneration", "confirm", "currentSystemPath", "privateKey", "rebootRevision"];
    // `?? ""` for rebootRevision: state written before it existed has none.
    const changed = keys.filter((key) => JSON.stringify(olds[key] ?? (key === "rebootRevision" ? "" : null)) !== JSON.stringify(news[key] ?? null));
    const drifted = olds.healthy === false || (olds.drift ?? null) !== null;
    return { changes: changed.length > 0 || drifted, replaces: [], deleteBeforeReplace: false };
  },

  async update(_id: string, olds: HealthCheckOutputs, raw: Record<string, unknown>) {
    return { outs: await gate(resolveHealthCheckInputs(raw), olds) };
  },

  async read(id: string, props?: HealthCheckOutputs) {
    if (!props) return { id };
    const inputs = resolveHealthCheckInputs(props as unknown as Record<string, unknown>);
    const connection = openHostConnection(connectOptions(inputs));
    try {
      const report = await runHealthChecks({
        service: inputs.service,
        checks: checksForPhase(inputs.health.checks, "liveness"),
        timing: inputs.health,
        exec: connection.exec,
        mode: "liveness",
        secrets: secretsOf(inputs),
      });
      const facts = await readHostFacts(connection.exec, inputs.currentSystemPath);
      const drift = !report.healthy
        ? report.message
        : inputs.expectedGeneration !== null && facts.generation !== inputs.expectedGeneration
          ? generationDrift(inputs.service, facts.generation, inputs.expectedGeneration)
          : null;
      return { id, props: { ...props, healthy: report.healthy, generation: facts.generation, failedUnits: facts.failedUnits, drift } };
    } finally {
      connection.close();
    }
  },

  async delete() {
    return;
  },
};

export class HealthCheck extends pulumi.dynamic.Resource {
  declare public readonly healthy: pulumi.Output<boolean>;
  declare public readonly generation: pulumi.Output<string | null>;
  declare public readonly failedUnits: pulumi.Output<string[]>;
  declare public readonly drift: pulumi.Output<string | null>;

  constructor(name: string, args: HealthCheckArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      healthCheckProvider,
      name,
      {
        healthy: undefined,
        generation: undefined,
        failedUnits: undefined,
        drift: undefined,
        ...args,
        privateKey: pulumi.secret(args.privateKey),
        maskValues: pulumi.secret(args.maskValues ?? []),
      },
      // `read` (refresh) reconnects with the stored outputs, so they keep the key and the values to mask; listed
      // here they are secret in the state whatever the engine copies from the inputs.
      { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "privateKey", "maskValues"] },
      "nixmox",
      "HealthCheck",
    );
  }
}
