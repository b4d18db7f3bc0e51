/**
 * The day-to-day commands on the homelab's hosts, over SSH with the stack's deploy key and the host keys NixMox pinned
 * (cli/hosts.ts: never trust on first use):
 *
 * - `nixmox logs SERVICE [-f] [-u UNIT]… [--since TIME] [-n LINES]`: the host's journal (`journalctl`), streamed;
 * - `nixmox ssh SERVICE [-- CMD…]`: a login shell (on a terminal: a pseudo-terminal, raw keys, resized with the
 *   window), or one command, whose exit code becomes ours; stdin is passed on when it is not a terminal;
 * - `nixmox exec --on NAME[,NAME|@TAG] -- CMD…`: one command on several hosts in parallel, each output line
 *   prefixed with its host, then the exit codes summarised; exit 0 only when every host exited 0.
 *
 * As with ssh(1), the words of CMD are joined with spaces into one command line for the host's shell: it is the
 * user's own command, run as root. Everything NixMox adds to a command line (units, times) is validated and quoted.
 */
import type { Command } from "commander";
import type { ServicePlan } from "../../manifest/plan-types";
import { hostAccessFailure, openHostAccess, serviceNamed, type HostAccess, type HostAccessFlags } from "../hosts";
import { projectDir } from "../paths";
import { action, allowPathOption, exitCodes } from "../run";

interface RemoteFlags extends HostAccessFlags {
  manifest?: string;
}

/** The options every remote command shares: where the stack, the manifest and the keys come from. */
function hostOptions(command: Command): Command {
  return allowPathOption(command)
    .option("--stack <name>", "the stack whose hosts these are (default: the Pulumi CLI's selected stack)")
    .option("--backend <url>", "state backend URL, or \"local\" for .nixmox/state (default: the Pulumi CLI's current backend)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml and the stack files", projectDir)
    .option("--manifest <file>", "the stack's nixmox:manifest (another file is an error); with --identity and without --stack, the manifest to use without a stack")
    .option("--identity <file>", "SSH private key for root on the hosts (default: $NIXMOX_SSH_IDENTITY, else the stack's nixmox:sshPrivateKey)")
    .option("--known-hosts <file>", "known_hosts file with the pinned host keys (default: the stack's knownHosts output; without a stack, .nixmox/known_hosts in the project)");
}

function usage(command: string, message: string): number {
  process.stderr.write(`nixmox ${command}: ${message}\n`);
  return exitCodes.usage;
}

/** The stack's manifest and keys, or a usage error's exit code (already reported). */
async function access(command: string, flags: RemoteFlags): Promise<HostAccess | number> {
  try {
    return await openHostAccess(flags.manifest, flags, (text) => process.stderr.write(text));
  } catch (error) {
    const message = hostAccessFailure(error);
    if (message === null) throw error;
    return usage(command, message);
  }
}

/** The stack's access and the named service, or a usage error's exit code (already reported). */
async function serviceAccess(command: string, name: string, flags: RemoteFlags): Promise<{ hosts: HostAccess; service: ServicePlan } | number> {
  const hosts = await access(command, flags);
  if (typeof hosts === "number") return hosts;
  try {
    return { hosts, service: serviceNamed(hosts.plan, name) };
  } catch (error) {
    return usage(command, (error as Error).message);
  }
}

/** An SSH session to the service's host with the pinned key, or why there is none. */
async function connect(service: ServicePlan, hosts: HostAccess): Promise<import("../../components/ssh/connection").SshSession> {
  const { connectSsh } = require("../../components/ssh/connection") as typeof import("../../components/ssh/connection");
  const hostKeys = hosts.hostKeysFor(service.ip, service.sshPort);
  if (hostKeys.length === 0) throw new Error(`no pinned host key for ${service.name} (${service.ip}:${service.sshPort}) in ${hosts.knownHostsSource}; NixMox never trusts a key on first use`);
  return connectSsh({ host: service.ip, port: service.sshPort, privateKey: hosts.privateKey, hostKeys, readyTimeoutMs: 10_000 });
}

/** A remote exit status as ours: the code, 128 + a signal's number, or 255 for a lost connection (as ssh(1)). */
function exitStatus(code: number | null, signal: string | null): number {
  if (code !== null) return code;
  const number = signal === null ? undefined : (require("node:os") as typeof import("node:os")).constants.signals[`SIG${signal}` as NodeJS.Signals];
  return number === undefined ? 255 : 128 + number;
}

/** Runs a channel to its end, its output handed on as it comes; resolves with the remote exit status. */
function streamChannel(channel: import("ssh2").ClientChannel, options: { stdin: boolean; onStdout: (chunk: Buffer) => void; onStderr: (chunk: Buffer) => void }): Promise<number> {
  return new Promise((resolve) => {
    let code: number | null = null;
    let signal: string | null = null;
    channel.on("data", options.onStdout);
    channel.stderr.on("data", options.onStderr);
    channel.on("exit", (exitCode: number | null, exitSignal?: string) => {
      code = typeof exitCode === "number" ? exitCode : null;
      signal = exitSignal ?? null;
    });
    channel.on("close", () => resolve(exitStatus(code, signal)));
    if (options.stdin) process.stdin.pipe(channel);
    else channel.end();
  });
}

const unitPattern = /^[A-Za-z0-9@._:\\-]+$/;
const sincePattern = /^[A-Za-z0-9 :.+-]+$/;

function registerLogs(program: Command): void {
  hostOptions(
    program
      .command("logs")
      .description("Print a service's journal from its host (journalctl), over SSH with the stack's pinned host key; -f follows it.")
      .argument("<service>", "the service whose host's journal to read")
      .option("-f, --follow", "keep printing new entries until interrupted")
      .option("-u, --unit <unit>", "only this systemd unit (repeatable), e.g. -u caddy.service", (value: string, previous: string[] = []) => [...previous, value])
      .option("--since <time>", "entries since this time, as journalctl reads it: \"10 min ago\", \"2026-12-01 08:00\", today")
      .option("-n, --lines <count>", "how many of the last entries (default 100; all since --since when it is given)"),
  ).action(action(async (name: string, flags: RemoteFlags & { follow?: boolean; unit?: string[]; since?: string; lines?: string }) => {
    const units = flags.unit ?? [];
    const bad = units.find((unit) => !unitPattern.test(unit));
    if (bad !== undefined) return usage("logs", `--unit must be a systemd unit name such as caddy.service, got ${JSON.stringify(bad)}`);
    if (flags.since !== undefined && !sincePattern.test(flags.since)) return usage("logs", `--since must be a time journalctl reads (letters, digits, spaces, ':', '.', '+', '-'), got ${JSON.stringify(flags.since)}`);
    if (flags.lines !== undefined && !/^[1-9][0-9]{0,6}$/.test(flags.lines)) return usage("logs", `--lines must be a positive number, got ${JSON.stringify(flags.lines)}`);
    const target = await serviceAccess("logs", name, flags);
    if (typeof target === "number") return target;
    const { shellCommand } = require("../../components/ssh/quote") as typeof import("../../components/ssh/quote");
    const lines = flags.lines ?? (flags.since === undefined ? "100" : undefined);
    const command = shellCommand([
      "journalctl", "--no-pager",
      ...(flags.follow ? ["--follow"] : []),
      ...units.flatMap((unit) => ["--unit", unit]),
      ...(flags.since !== undefined ? ["--since", flags.since] : []),
      ...(lines !== undefined ? ["--lines", lines] : []),
    ]);
    return runOne("logs", target.service, target.hosts, command, { stdin: false });
  }));
}

/** One command (or a shell, `command` null) on one host, attached to this terminal; our exit code is the host's. */
async function runOne(what: string, service: ServicePlan, hosts: HostAccess, command: string | null, options: { stdin: boolean; pty?: boolean }): Promise<number> {
  let session;
  try {
    session = await connect(service, hosts);
  } catch (error) {
    process.stderr.write(`nixmox ${what}: ${service.name}: ${(error as Error).message}\n`);
    return 255;
  }
  const stdin = process.stdin;
  const pty = options.pty === true && stdin.isTTY === true && process.stdout.isTTY === true;
  try {
    const channel = await session.channel(command, pty ? { pty: { term: process.env.TERM || "xterm-256color", rows: process.stdout.rows, cols: process.stdout.columns } } : {});
    const onResize = () => channel.setWindow(process.stdout.rows, process.stdout.columns, 0, 0);
    // Interrupted: the remote side gets the signal (journalctl -f, a long command), then the channel closes.
    const onInterrupt = () => {
      try {
        channel.signal("INT");
      } catch {
        // The channel may be gone already.
      }
      channel.close();
    };
    if (pty) {
      stdin.setRawMode(true);
      process.stdout.on("resize", onResize);
    } else {
      process.on("SIGINT", onInterrupt);
    }
    try {
      return await streamChannel(channel, { stdin: options.stdin || pty, onStdout: (chunk) => process.stdout.write(chunk), onStderr: (chunk) => process.stderr.write(chunk) });
    } finally {
      if (pty) {
        stdin.setRawMode(false);
        process.stdout.off("resize", onResize);
      } else {
        process.off("SIGINT", onInterrupt);
      }
      stdin.unpipe();
      stdin.pause();
    }
  } finally {
    session.close();
  }
}

function registerSsh(program: Command): void {
  hostOptions(
    program
      .command("ssh")
      .description("Open a shell on a service's host as root, or run one command there (after --), over SSH with the stack's pinned host key.")
      .argument("<service>", "the service whose host to reach")
      .argument("[command...]", "a command to run instead of a shell (after --; its words are joined into one command line, as ssh does)"),
  ).action(action(async (name: string, words: string[], flags: RemoteFlags) => {
    const target = await serviceAccess("ssh", name, flags);
    if (typeof target === "number") return target;
    const command = words.length > 0 ? words.join(" ") : null;
    return runOne("ssh", target.service, target.hosts, command, { stdin: !process.stdin.isTTY, pty: command === null });
  }));
}

/** Writes whole lines of a stream, each prefixed; the rest waits for its newline (or the end). */
function prefixedLines(prefix: string, out: NodeJS.WritableStream): { write(chunk: Buffer): void; end(): void } {
  let pending = "";
  return {
    write(chunk) {
      const lines = (pending + chunk.toString("utf8")).split("\n");
      pending = lines.pop()!;
      for (const line of lines) out.write(`${prefix}${line}\n`);
    },
    end() {
      if (pending !== "") out.write(`${prefix}${pending}\n`);
      pending = "";
    },
  };
}

function registerExec(program: Command): void {
  hostOptions(
    program
      .command("exec")
      .description("Run one command on several services' hosts in parallel (after --), each output line prefixed with its service, then the exit codes; exit 1 when any host failed.")
      .requiredOption("--on <names>", "NAME[,NAME|@TAG] (repeatable): the services, @TAG being every service with that manifest tag or kind", (value: string, previous: string[] = []) => [...previous, value])
      .argument("<command...>", "the command (after --; its words are joined into one command line, as ssh does)"),
  ).action(action(async (words: string[], flags: RemoteFlags & { on: string[] }) => {
    const hosts = await access("exec", flags);
    if (typeof hosts === "number") return hosts;
    const { SelectionError, parseOnly } = require("../select") as typeof import("../select");
    const { expandTags } = require("../tags") as typeof import("../tags");
    let services: ServicePlan[];
    try {
      services = expandTags(hosts.plan, parseOnly(flags.on), "--on").map((name) => serviceNamed(hosts.plan, name));
    } catch (error) {
      if (error instanceof SelectionError || hostAccessFailure(error) !== null) return usage("exec", (error as Error).message);
      throw error;
    }
    const command = words.join(" ");
    const width = Math.max(...services.map((service) => service.name.length));
    const results = await Promise.all(services.map(async (service) => {
      const prefix = `${service.name.padEnd(width)} | `;
      const stdout = prefixedLines(prefix, process.stdout);
      const stderr = prefixedLines(prefix, process.stderr);
      let session;
      try {
        session = await connect(service, hosts);
      } catch (error) {
        process.stderr.write(`${prefix}unreachable: ${(error as Error).message}\n`);
        return { service: service.name, status: "unreachable" as const };
      }
      try {
        const channel = await session.channel(command);
        const status = await streamChannel(channel, { stdin: false, onStdout: stdout.write, onStderr: stderr.write });
        return { service: service.name, status };
      } catch (error) {
        process.stderr.write(`${prefix}${(error as Error).message}\n`);
        return { service: service.name, status: "unreachable" as const };
      } finally {
        stdout.end();
        stderr.end();
        session.close();
      }
    }));
    const failed = results.filter((result) => result.status !== 0);
    process.stderr.write(`exit codes: ${results.map((result) => `${result.service} ${result.status}`).join(", ")}; ${failed.length === 0 ? `all ${results.length} succeeded` : `${failed.length} of ${results.length} failed`}\n`);
    return failed.length === 0 ? exitCodes.ok : exitCodes.problems;
  }));
}

export function register(program: Command): void {
  registerLogs(program);
  registerSsh(program);
  registerExec(program);
}
