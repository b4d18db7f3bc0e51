/**
 * `RemoteCommand` (dynamic resource `pulumi-nodejs:dynamic/nixmox:RemoteCommand`): one shell command run as root
 * over SSH on a host, with its host key pinned and its standard input fed from an input. NixMox's config push,
 * secrets push, activation and outpost-token push are each one of these.
 *
 * It replaces @pulumi/command's `remote.Command`. Two reasons: every SSH connection NixMox makes now goes through one
 * implementation with one trust path (components/ssh/connection.ts: ssh2, the host key recorded by `SshHostKey`,
 * never trust on first use here), and the command plugin cannot be built from the Go module proxy our machines
 * reach, so it could not run under the real engine in our tests (tools/engine/README.md).
 *
 * - create: connects (retrying a refused or unreachable connection until `connectTimeoutSeconds`; a wrong host key
 *   fails at once), runs `command` with `stdin`, and fails unless it exits 0. The failure names the service, what
 *   ran, where, the exit status and the last lines of its output, with `maskValues` masked.
 * - diff: the command runs again (an update) when `command` or `stdin` changed, or is not known yet (a preview).
 *   Nothing else re-runs it: a new address, deploy key or host key is where the *next* run connects, not a reason
 *   to run (a re-created container replaces this resource through `replaceWith` instead). So a preview never shows
 *   a run that `up` then skips (pulumi-engine-2 review B3).
 *   A `check` that found drift on the last refresh makes it run again too.
 * - update: runs the command again with the new inputs (or the same ones, to repair what a refresh found changed).
 * - read: returns the state, never runs the command. With a `check` (the config push: "is what I installed still
 *   there?"), a refresh runs the check's command on the host and records `drift` when its output is not the expected
 *   one; a host it cannot reach is the health check's finding, not drift of this command's effect.
 * - delete: nothing: the command's effect lives on the host, which goes away with its container or is overwritten
 *   by the next push.
 *
 * State keeps the command, a SHA-256 of stdin (to see a change) and the output's tail, never stdin itself; mark
 * `stdinSha256`, `stdout` and `stderr` secret (`additionalSecretOutputs`) when stdin or the output can carry secrets.
 * The private key is an input only. Node modules are required inside methods (components/ssh/connection.ts).
 */
import * as pulumi from "@pulumi/pulumi";
import { connectTarget, isHostKeyMismatch, type SshSession } from "./connection";

/**
 * A read-only command whose output says whether the command's effect is still in place on the host: a refresh
 * compares its trimmed standard output with `expect`.
 */
export interface RemoteCheck {
  command: string;
  expect: string;
  /** What a mismatch means, for the drift message ("/etc/nixmox differs from the pushed configuration"). */
  meaning: string;
}

/** How a command reaches its host: root over SSH with the deploy key, the host key pinned. */
export interface SshTarget {
  host: string;
  port: number;
  /** @default "root" */
  user?: string;
  /** The deploy key (secret). */
  privateKey: string;
  /** The host key recorded on first contact (`ssh-ed25519 AAAA…`). */
  hostKey: string;
}

export interface RemoteCommandArgs {
  /** Service name, for messages. */
  service: pulumi.Input<string>;
  /** What the command is, for messages ("config push", "activation", …). */
  description: pulumi.Input<string>;
  connection: pulumi.Input<pulumi.Unwrap<SshTarget>>;
  /** The command line: validated names and quoted values only, never a secret (the secret goes on stdin). */
  command: pulumi.Input<string>;
  /** Written to the command's standard input. @default "" */
  stdin?: pulumi.Input<string>;
  /** Kill the command and fail after this long. @default 600 */
  timeoutSeconds?: pulumi.Input<number>;
  /** Keep retrying a connection that is refused or unreachable for this long. @default 60 */
  connectTimeoutSeconds?: pulumi.Input<number>;
  /** Values masked (as `***`) in the failure message. @default [] */
  maskValues?: pulumi.Input<pulumi.Input<string>[]>;
  /** Checked on refresh; drift re-runs the command on the next up. @default none (a refresh reads nothing) */
  check?: pulumi.Input<RemoteCheck>;
}

export interface RemoteCommandInputs {
  service: string;
  description: string;
  connection: SshTarget;
  command: string;
  stdin: string;
  timeoutSeconds: number;
  connectTimeoutSeconds: number;
  maskValues: string[];
  check: RemoteCheck | null;
}

export interface RemoteCommandOutputs {
  service: string;
  description: string;
  command: string;
  stdinSha256: string;
  /** The last 64 KiB of each stream of the last run. */
  stdout: string;
  stderr: string;
  /** With a check: how a refresh reconnects (secret), and what it found changed on the host (null: nothing). */
  check?: RemoteCheck | null;
  connection?: SshTarget | null;
  drift?: string | null;
}

/** The engine's unknown sentinel (components/unknown.ts), repeated so the serialized provider captures no module. */
const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function resolveInputs(raw: RemoteCommandInputs): RemoteCommandInputs {
  return {
    service: raw.service,
    description: raw.description,
    connection: raw.connection,
    command: raw.command,
    stdin: raw.stdin ?? "",
    timeoutSeconds: raw.timeoutSeconds ?? 600,
    connectTimeoutSeconds: raw.connectTimeoutSeconds ?? 60,
    maskValues: raw.maskValues ?? [],
    check: raw.check ?? null,
  };
}

function sha256(text: string): string {
  const { createHash } = require("node:crypto") as typeof import("node:crypto");
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** The failure text: what ran where, how it ended, and the last lines of its output with the secrets masked. */
export function describeCommandFailure(inputs: Pick<RemoteCommandInputs, "service" | "description" | "connection" | "maskValues">, result: { code: number | null; signal: string | null; stdout: string; stderr: string; timedOut: boolean; connectionLost: boolean }, timeoutSeconds: number): string {
  const where = `${inputs.connection.host}:${inputs.connection.port}`;
  const how = result.timedOut
    ? `did not finish within ${timeoutSeconds} s and was killed`
    : result.connectionLost
      ? "lost its SSH connection before it finished (the host may have rebooted; run the deploy again)"
      : result.code !== null
        ? `exited with ${result.code}`
        : `was killed by signal ${result.signal ?? "unknown"}`;
  let output = [result.stderr.trim(), result.stdout.trim()].filter((text) => text !== "").join("\n");
  for (const value of [...inputs.maskValues].filter((value) => value.length >= 4).sort((a, b) => b.length - a.length)) {
    output = output.split(value).join("***");
  }
  const lines = output.split("\n");
  const shown = lines.slice(-30).join("\n");
  return `service "${inputs.service}": the ${inputs.description} on ${where} ${how}` + (shown === "" ? "" : `; its last output${lines.length > 30 ? " (last 30 lines)" : ""}:\n${shown}`);
}

async function connect(inputs: RemoteCommandInputs): Promise<SshSession> {
  const deadline = Date.now() + inputs.connectTimeoutSeconds * 1000;
  for (;;) {
    try {
      return await connectTarget(inputs.connection);
    } catch (error) {
      if (isHostKeyMismatch(error) || Date.now() + 2000 >= deadline) {
        throw new Error(`service "${inputs.service}": the ${inputs.description} could not connect: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

async function run(raw: RemoteCommandInputs): Promise<RemoteCommandOutputs> {
  const inputs = resolveInputs(raw);
  const session = await connect(inputs);
  try {
    const result = await session.exec(inputs.command, { stdin: inputs.stdin, timeoutMs: inputs.timeoutSeconds * 1000 });
    if (result.code !== 0) throw new Error(describeCommandFailure(inputs, result, inputs.timeoutSeconds));
    return {
      service: inputs.service,
      description: inputs.description,
      command: inputs.command,
      stdinSha256: sha256(inputs.stdin),
      stdout: result.stdout,
      stderr: result.stderr,
      ...(inputs.check ? { check: inputs.check, connection: inputs.connection, drift: null } : {}),
    };
  } finally {
    session.close();
  }
}

export const remoteCommandProvider = {
  async create(raw: RemoteCommandInputs): Promise<{ id: string; outs: RemoteCommandOutputs }> {
    const outs = await run(raw);
    const { randomUUID } = require("node:crypto") as typeof import("node:crypto");
    return { id: randomUUID(), outs };
  },

  async diff(_id: string, olds: RemoteCommandOutputs, raw: RemoteCommandInputs): Promise<pulumi.dynamic.DiffResult> {
    const news = resolveInputs(raw);
    const commandChanged = news.command === unknown || news.command !== olds.command;
    const stdinChanged = news.stdin === unknown || sha256(news.stdin) !== olds.stdinSha256;
    // Descriptions are for messages; a reworded one is recorded without running.
    const changed = commandChanged || stdinChanged || news.description !== olds.description;
    const drifted = (olds.drift ?? null) !== null;
    const checkChanged = JSON.stringify(news.check ?? null) !== JSON.stringify(olds.check ?? null);
    return { changes: changed || drifted || checkChanged, replaces: [], deleteBeforeReplace: false };
  },

  async update(_id: string, olds: RemoteCommandOutputs, raw: RemoteCommandInputs): Promise<{ outs: RemoteCommandOutputs }> {
    const news = resolveInputs(raw);
    if (news.command === olds.command && sha256(news.stdin) === olds.stdinSha256 && (olds.drift ?? null) === null) {
      return { outs: { ...olds, description: news.description, ...(news.check ? { check: news.check, connection: news.connection, drift: null } : {}) } };
    }
    return { outs: await run(raw) };
  },

  async read(id: string, props: RemoteCommandOutputs): Promise<pulumi.dynamic.ReadResult<RemoteCommandOutputs>> {
    if (!props?.check || !props.connection) return { id, props };
    const { check, connection } = props;
    let session: SshSession;
    try {
      session = await connectTarget(connection);
    } catch {
      return { id, props };
    }
    try {
      const result = await session.exec(check.command, { timeoutMs: 60_000 });
      if (result.code === null && (result.connectionLost || result.timedOut)) return { id, props };
      const found = result.stdout.trim();
      const drift = result.code === 0 && found === check.expect ? null
        : `service "${props.service}": ${check.meaning} (the ${props.description} check on ${connection.host}:${connection.port} ${result.code === 0 ? `found ${found.slice(0, 80)}, not ${check.expect}` : `exited with ${result.code}`}); the next up runs the ${props.description} again`;
      return { id, props: { ...props, drift } };
    } finally {
      session.close();
    }
  },

  async delete(): Promise<void> {
    return;
  },
};

export class RemoteCommand extends pulumi.dynamic.Resource {
  declare public readonly stdout: pulumi.Output<string>;
  declare public readonly stderr: pulumi.Output<string>;

  constructor(name: string, args: RemoteCommandArgs, opts?: pulumi.CustomResourceOptions) {
    const connection = pulumi.secret(args.connection);
    const maskValues = pulumi.secret(args.maskValues ?? []);
    // With a check, `read` (refresh) reconnects with the stored outputs, so they keep the connection: secret.
    const secretOutputs = args.check === undefined ? [] : ["connection"];
    const options = secretOutputs.length === 0 ? opts : { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), ...secretOutputs] };
    super(remoteCommandProvider, name, { stdout: undefined, stderr: undefined, stdinSha256: undefined, ...(args.check === undefined ? {} : { drift: undefined }), ...args, connection, maskValues }, options, "nixmox", "RemoteCommand");
  }
}
