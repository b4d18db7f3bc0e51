/**
 * Where a build or copy command runs: on the builder service over the pinned SSH connection (ssh2, the deploy key,
 * the builder's recorded host key), or here, on the machine that runs Pulumi (`bash -c`). Both return the same
 * outcome, so the providers do not care which. Node's modules are required inside, local ones imported at the top (the
 * providers that use this are serialized, STYLE.md §15).
 */
import { connectTarget, type ExecResult } from "../ssh/connection";
import type { SshTarget } from "../ssh/remote-command";
import { deployKeyAgent, listenDeployKeyAgent } from "./agent";

/** Where a host's system is built: the manifest's builder service, or the controller. */
export type BuildLocation = { kind: "builder"; service: string; connection: SshTarget } | { kind: "controller" };

/** What a command run on the builder or here gave: the same fields as an SSH command's. */
export type RunOutcome = ExecResult;

export interface RunOptions {
  stdin: string;
  timeoutSeconds: number;
  /** Forward an agent holding this key (the deploy key) to the command: SSH_AUTH_SOCK. @default none */
  agentKey?: string;
}

const maxChars = 65_536;

/** Runs `command` (a bash command line) on the builder or here; never rejects for a non-zero exit. */
export async function runAt(location: BuildLocation, command: string, options: RunOptions): Promise<RunOutcome> {
  if (location.kind === "builder") {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        const session = await connectTarget(location.connection, options.agentKey === undefined ? {} : { forwardAgent: deployKeyAgent(options.agentKey) });
        try {
          return await session.exec(command, { stdin: options.stdin, timeoutMs: options.timeoutSeconds * 1000 });
        } finally {
          session.close();
        }
      } catch (error) {
        if ((error as Error).name === "HostKeyMismatchError" || Date.now() + 2000 >= deadline) {
          throw new Error(`the builder "${location.service}" could not be reached: ${(error as Error).message}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 2000));
      }
    }
  }
  const { spawn } = require("node:child_process") as typeof import("node:child_process");
  const agent = options.agentKey === undefined ? undefined : await listenDeployKeyAgent(options.agentKey);
  try {
    return await new Promise<RunOutcome>((resolve) => {
      const env = { ...process.env, ...(agent ? { SSH_AUTH_SOCK: agent.socketPath } : {}) };
      const child = spawn("bash", ["-c", command], { env, stdio: ["pipe", "pipe", "pipe"], detached: true });
      const state = { stdout: "", stderr: "", timedOut: false };
      const tail = (text: string) => (text.length > maxChars ? text.slice(-maxChars) : text);
      child.stdout.on("data", (chunk: Buffer) => (state.stdout = tail(state.stdout + chunk.toString("utf8"))));
      child.stderr.on("data", (chunk: Buffer) => (state.stderr = tail(state.stderr + chunk.toString("utf8"))));
      const timer = setTimeout(() => {
        state.timedOut = true;
        try {
          process.kill(-(child.pid as number), "SIGKILL");
        } catch {
          child.kill("SIGKILL");
        }
      }, options.timeoutSeconds * 1000);
      child.on("error", (error) => {
        clearTimeout(timer);
        resolve({ code: null, signal: null, stdout: state.stdout, stderr: `${state.stderr}\ncannot run bash: ${error.message}`, timedOut: false, connectionLost: false });
      });
      child.on("close", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout: state.stdout, stderr: state.stderr, timedOut: state.timedOut, connectionLost: false });
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.stdin);
    });
  } finally {
    await agent?.close();
  }
}

/** "the build of dns on the builder "builder"" / "… on this machine". */
export function describeLocation(location: BuildLocation): string {
  return location.kind === "builder" ? `on the builder "${location.service}" (${location.connection.host})` : "on this machine (the controller)";
}

/** The failure text: what ran where, how it ended, and its last output lines (nothing secret is ever printed by it). */
export function describeRunFailure(service: string, what: string, location: BuildLocation, outcome: RunOutcome, timeoutSeconds: number): string {
  const how = outcome.timedOut
    ? `did not finish within ${timeoutSeconds} s and was stopped`
    : outcome.connectionLost
      ? "lost its SSH connection before it finished; run the deploy again"
      : outcome.code !== null
        ? `exited with ${outcome.code}`
        : `was killed by signal ${outcome.signal ?? "unknown"}`;
  const output = [outcome.stderr.trim(), outcome.stdout.trim()].filter((text) => text !== "").join("\n");
  const lines = output.split("\n");
  const shown = lines.slice(-30).join("\n");
  return `service "${service}": the ${what} ${describeLocation(location)} ${how}` + (shown === "" ? "" : `; its last output${lines.length > 30 ? " (last 30 lines)" : ""}:\n${shown}`);
}
