/**
 * One SSH connection (ssh2) with a pinned host key, reused for many commands.
 *
 * - `connectSsh` refuses a host whose key is not one of `hostKeys`, naming the host and both fingerprints.
 *   With `hostKeys` empty it refuses too, unless `trustOnFirstUse` is set: then the presented key is accepted
 *   and returned as `session.hostKey` so the caller records it (first contact) and pins it afterwards.
 *   There is no "accept anything" mode (the trap of switching host-key checking off).
 * - `session.exec` runs one command, feeds optional stdin, and resolves with `{ code, stdout, stderr }`
 *   within `timeoutMs`; it never rejects for a non-zero exit, only for transport failures.
 */
import type { Client, ClientChannel, ConnectConfig } from "ssh2";
import {
  HostKey,
  fingerprint,
  formatHostKey,
  hostKeyAlgorithms,
  hostKeyFromBlob,
  parseHostKey,
  sameHostKey,
} from "./host-key";

export interface SshConnectOptions {
  host: string;
  /** @default 22 */
  port?: number;
  /** @default "root" */
  username?: string;
  /** OpenSSH or PEM private key text (a secret: never logged, never put in an error). */
  privateKey: string;
  /** Pinned host keys (`ssh-ed25519 AAAA…`); the server must present one of them. */
  hostKeys: string[];
  /** Accept and report the presented key when `hostKeys` is empty (first contact). @default false */
  trustOnFirstUse?: boolean;
  /** TCP connect + handshake + auth deadline. @default 10000 */
  readyTimeoutMs?: number;
  /** SSH keepalive; a dead peer is detected after about 3 intervals. @default 5000 */
  keepaliveIntervalMs?: number;
  /**
   * An agent to forward to the server's commands (`SSH_AUTH_SOCK` there), e.g. the deploy key's own
   * (components/build/agent.ts), so a builder can `nix copy` to a host without holding the key. @default none
   */
  forwardAgent?: import("ssh2").BaseAgent;
}

export interface ExecResult {
  /** Exit status; null when the command was killed by a signal, timed out or the connection dropped. */
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** True when the connection closed before the command reported an exit status. */
  connectionLost: boolean;
}

export interface ExecOptions {
  /** Kill the channel after this long. @default 30000 */
  timeoutMs?: number;
  /** Written to the command's stdin, then stdin is closed. Use this for secrets, never the command string. */
  stdin?: string | Buffer;
  /** Keep at most this many trailing characters of each stream. @default 65536 */
  maxOutputChars?: number;
}

// The errors below are plain `Error`s built by factory functions and told apart by `name`, not subclasses:
// dynamic providers capture this module, and Pulumi's closure serializer turns a captured `class … extends Error`
// into a function whose `super(…)` becomes `Error.call(this, …)`, so what it throws has no `message` and is not
// `instanceof Error` (@pulumi/pulumi runtime/closure/rewriteSuper.js; STYLE.md §15).

/** Thrown when the server presents a host key other than the pinned ones. */
export interface HostKeyMismatchError extends Error {
  name: "HostKeyMismatchError";
  host: string;
  port: number;
  expected: string[];
  presented: string;
}

/** Thrown for transport failures: unreachable host, refused auth, handshake timeout, dropped connection. */
export interface SshConnectionError extends Error {
  name: "SshConnectionError";
}

export function hostKeyMismatchError(host: string, port: number, expected: string[], presented: string): HostKeyMismatchError {
  const message =
    `host key mismatch for ${host}:${port}: expected ${expected.join(" or ")}, the server presented ${presented}; ` +
    `refusing to connect. If the host was re-created on purpose, record its new key (remove the old one from state or known_hosts).`;
  return Object.assign(new Error(message), { name: "HostKeyMismatchError" as const, host, port, expected, presented });
}

export function sshConnectionError(message: string): SshConnectionError {
  return Object.assign(new Error(message), { name: "SshConnectionError" as const });
}

export function isHostKeyMismatch(error: unknown): error is HostKeyMismatchError {
  return error instanceof Error && error.name === "HostKeyMismatchError";
}

export interface SshSession {
  readonly host: string;
  readonly port: number;
  /** The key the server presented (`ssh-ed25519 AAAA…`): pin this after first contact. */
  readonly hostKey: string;
  readonly hostKeyFingerprint: string;
  /** True until the connection closes (dropped or `close()`). */
  isOpen(): boolean;
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /**
   * A TCP connection opened by the server to `host:port` (an SSH direct-tcpip channel): traffic between here and
   * the server travels inside the encrypted SSH connection, so a service the server reaches on its own addresses
   * is reached without crossing the network in clear.
   */
  forward(host: string, port: number): Promise<import("node:stream").Duplex>;
  /**
   * A channel whose output the caller streams: a command, or with `command` null a login shell, on a pseudo-terminal
   * when `pty` is given (`nixmox ssh`, `logs -f`, `exec`). The caller reads, writes and ends it.
   */
  channel(command: string | null, options?: { pty?: { term: string; rows: number; cols: number } }): Promise<ClientChannel>;
  close(): void;
}

/**
 * One pinned connection to a deploy target (components/ssh/remote-command.ts `SshTarget`: root unless `user`, its one
 * recorded host key), with the 15 s handshake the deploy's commands use; `extra` adds an agent to forward.
 */
export function connectTarget(
  target: { host: string; port: number; user?: string; privateKey: string; hostKey: string },
  extra: Pick<SshConnectOptions, "forwardAgent"> = {},
): Promise<SshSession> {
  return connectSsh({ host: target.host, port: target.port, username: target.user ?? "root", privateKey: target.privateKey, hostKeys: [target.hostKey], readyTimeoutMs: 15_000, ...extra });
}

export async function connectSsh(options: SshConnectOptions): Promise<SshSession> {
  // Required here, not at module top, so dynamic providers that import this module serialize small.
  const { Client: SshClient } = require("ssh2") as typeof import("ssh2");
  const port = options.port ?? 22;
  const where = `${options.host}:${port}`;
  const pinned: HostKey[] = options.hostKeys.map((text, index) => parseHostKey(text, `hostKeys[${index}] for ${where}`));
  if (pinned.length === 0 && !options.trustOnFirstUse) {
    throw sshConnectionError(`no pinned host key for ${where}: record it on first contact (trustOnFirstUse) or pass a known_hosts file`);
  }
  let presented: HostKey | null = null;
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const client: Client = new SshClient();
  const config: ConnectConfig = {
    host: options.host,
    port,
    username: options.username ?? "root",
    privateKey: options.privateKey,
    readyTimeout: readyTimeoutMs,
    keepaliveInterval: options.keepaliveIntervalMs ?? 5_000,
    keepaliveCountMax: 3,
    hostVerifier: (blob: Buffer) => {
      presented = hostKeyFromBlob(blob);
      if (pinned.length === 0) return true;
      return pinned.some((key) => sameHostKey(key, presented as HostKey));
    },
  };
  if (pinned.length > 0) config.algorithms = { serverHostKey: hostKeyAlgorithms(pinned) as never };
  if (options.forwardAgent) {
    config.agent = options.forwardAgent;
    config.agentForward = true;
  }

  // No forward references between these closures: Pulumi's function serializer (dynamic providers) rejects them.
  // Every way out settles: "ready", "error", a "close" before ready (ssh2 emits only "close" when the peer hangs
  // up after its banner, and its readyTimeout timer is gone by then), and an overall deadline that destroys the
  // socket (security review M4).
  await new Promise<void>((resolve, reject) => {
    const state = { settled: false, deadline: undefined as NodeJS.Timeout | undefined };
    const fail = (message: string) => {
      if (state.settled) return;
      state.settled = true;
      clearTimeout(state.deadline);
      client.destroy();
      const key = presented as HostKey | null;
      if (key && pinned.length > 0 && !pinned.some((pin) => sameHostKey(pin, key))) {
        reject(hostKeyMismatchError(options.host, port, pinned.map(fingerprint), fingerprint(key)));
        return;
      }
      reject(sshConnectionError(message));
    };
    state.deadline = setTimeout(() => fail(`SSH handshake with ${where} did not finish within ${readyTimeoutMs + 1000} ms`), readyTimeoutMs + 1000);
    client.once("ready", () => {
      if (state.settled) return;
      state.settled = true;
      clearTimeout(state.deadline);
      resolve();
    });
    client.on("error", (error: Error & { level?: string; code?: string }) => fail(describeConnectError(where, error)));
    client.once("close", () => fail(`SSH connection to ${where} closed before the handshake finished (the server hung up)`));
    client.connect(config);
  });

  // Probes are small request/response exchanges: without TCP_NODELAY, Nagle + delayed ACK add ~40 ms stalls.
  client.setNoDelay(true);
  const hostKey = presented as unknown as HostKey;
  let open = true;
  const closeWaiters = new Set<() => void>();
  const markClosed = () => {
    open = false;
    for (const waiter of closeWaiters) waiter();
    closeWaiters.clear();
  };
  client.on("close", markClosed);
  client.on("end", markClosed);
  // After "ready", transport errors surface through the affected exec calls (the listener above keeps them
  // from crashing the process).
  client.on("error", markClosed);

  const exec = (command: string, execOptions: ExecOptions = {}): Promise<ExecResult> => {
    const timeoutMs = execOptions.timeoutMs ?? 30_000;
    const maxChars = execOptions.maxOutputChars ?? 65_536;
    if (!open) {
      return Promise.resolve(lostResult(`SSH connection to ${where} is closed`));
    }
    return new Promise<ExecResult>((resolve) => {
      const state = { stdout: "", stderr: "", settled: false, exitCode: null as number | null, exitSignal: null as string | null };
      let channel: ClientChannel | null = null;
      let timer: NodeJS.Timeout | undefined;
      const waiter = { onClose: () => undefined as void };
      const finish = (extra: Partial<ExecResult>) => {
        if (state.settled) return;
        state.settled = true;
        clearTimeout(timer);
        closeWaiters.delete(waiter.onClose);
        resolve({ code: state.exitCode, signal: state.exitSignal, stdout: state.stdout, stderr: state.stderr, timedOut: false, connectionLost: false, ...extra });
      };
      waiter.onClose = () =>
        finish({ code: null, connectionLost: true, stderr: tail(`${state.stderr}\nSSH connection to ${where} lost`, maxChars) });
      closeWaiters.add(waiter.onClose);
      timer = setTimeout(() => {
        if (channel) {
          // OpenSSH honours "signal" requests since 7.9; close() ends the channel either way.
          try {
            channel.signal("KILL");
          } catch {
            // The channel may already be gone; close() below is what matters.
          }
          channel.close();
        }
        finish({ code: null, timedOut: true });
      }, timeoutMs);
      try {
        client.exec(command, (error, stream) => {
          if (error) {
            finish({ code: null, connectionLost: !open, stderr: `cannot start command on ${where}: ${error.message}` });
            return;
          }
          channel = stream;
          stream.on("data", (chunk: Buffer) => (state.stdout = tail(state.stdout + chunk.toString("utf8"), maxChars)));
          stream.stderr.on("data", (chunk: Buffer) => (state.stderr = tail(state.stderr + chunk.toString("utf8"), maxChars)));
          stream.on("exit", (code: number | null, signal?: string) => {
            state.exitCode = typeof code === "number" ? code : null;
            state.exitSignal = signal ?? null;
          });
          stream.on("close", () => finish({}));
          if (execOptions.stdin !== undefined) stream.end(execOptions.stdin);
          else stream.end();
        });
      } catch (error) {
        finish({ code: null, connectionLost: true, stderr: `cannot start command on ${where}: ${(error as Error).message}` });
      }
    });
  };

  const forward = (targetHost: string, targetPort: number) =>
    new Promise<import("node:stream").Duplex>((resolve, reject) => {
      if (!open) {
        reject(new Error(`SSH connection to ${where} is closed`));
        return;
      }
      client.forwardOut("127.0.0.1", 0, targetHost, targetPort, (error, stream) => {
        if (error) reject(new Error(`${where} could not open a connection to ${targetHost}:${targetPort} through SSH: ${error.message}`));
        else resolve(stream);
      });
    });

  const channel = (command: string | null, channelOptions: { pty?: { term: string; rows: number; cols: number } } = {}) =>
    new Promise<ClientChannel>((resolve, reject) => {
      if (!open) {
        reject(new Error(`SSH connection to ${where} is closed`));
        return;
      }
      const done = (error: Error | undefined, stream: ClientChannel) =>
        error ? reject(new Error(`cannot start ${command === null ? "a shell" : "the command"} on ${where}: ${error.message}`)) : resolve(stream);
      const pty = channelOptions.pty;
      if (command === null) client.shell(pty ?? false, done);
      else client.exec(command, pty ? { pty } : {}, done);
    });

  return {
    host: options.host,
    port,
    hostKey: formatHostKey(hostKey),
    hostKeyFingerprint: fingerprint(hostKey),
    isOpen: () => open,
    exec,
    forward,
    channel,
    close: () => {
      client.end();
      markClosed();
    },
  };
}

export interface WaitForSshOptions {
  /** Service name, for messages. */
  service: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  /** The key the server must present; null to accept and report whatever it presents (first contact). */
  pinnedHostKey: string | null;
  timeoutSeconds: number;
  intervalSeconds: number;
}

/**
 * Runs `true` over SSH again and again until it exits 0 or `timeoutSeconds` pass; resolves with the presented host
 * key. An open port is not enough (sshd is socket-activated on NixOS LXC, and a container that Proxmox just started or
 * rebooted may still be bringing its network up, bpg #2261/#2349). A host presenting another key than the pinned one
 * fails at once: it is not "not ready yet".
 */
export async function waitForSsh(options: WaitForSshOptions): Promise<{ hostKey: string; hostKeyFingerprint: string }> {
  const deadline = Date.now() + options.timeoutSeconds * 1000;
  let lastError = "no attempt made";
  for (;;) {
    const remainingMs = deadline - Date.now();
    try {
      const session = await connectSsh({
        host: options.host,
        port: options.port,
        username: options.user,
        privateKey: options.privateKey,
        hostKeys: options.pinnedHostKey === null ? [] : [options.pinnedHostKey],
        trustOnFirstUse: options.pinnedHostKey === null,
        readyTimeoutMs: Math.max(1000, Math.min(10_000, remainingMs)),
      });
      try {
        const result = await session.exec("true", { timeoutMs: Math.max(1000, Math.min(15_000, remainingMs)) });
        if (result.code === 0) return { hostKey: session.hostKey, hostKeyFingerprint: session.hostKeyFingerprint };
        lastError = result.timedOut ? "the command `true` timed out" : `the command \`true\` exited with ${result.code ?? result.signal ?? "no status"}`;
      } finally {
        session.close();
      }
    } catch (error) {
      if (isHostKeyMismatch(error)) throw new Error(`service "${options.service}": ${error.message}`);
      lastError = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() + options.intervalSeconds * 1000 >= deadline) {
      throw new Error(
        `service "${options.service}": SSH on ${options.host}:${options.port} did not run a command within ${options.timeoutSeconds} s ` +
          `(last error: ${lastError}); check that the container started and that the deploy key is in network.ssh_keys.root`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalSeconds * 1000));
  }
}

/**
 * Reads the host key a server presents without authenticating (first-contact recording, like ssh-keyscan).
 * Prefer getting the key out-of-band (e.g. `pct exec`); use this only on a network you trust.
 */
export async function scanHostKey(host: string, port = 22, timeoutMs = 10_000): Promise<string> {
  const { Client: SshClient } = require("ssh2") as typeof import("ssh2");
  const where = `${host}:${port}`;
  return new Promise<string>((resolve, reject) => {
    const client: Client = new SshClient();
    const state = { key: null as HostKey | null, settled: false, deadline: undefined as NodeJS.Timeout | undefined };
    const settle = (message: string) => {
      if (state.settled) return;
      state.settled = true;
      clearTimeout(state.deadline);
      client.destroy();
      if (state.key) resolve(formatHostKey(state.key));
      else reject(sshConnectionError(message));
    };
    // Bounded like connectSsh: a peer that closes after its banner emits only "close" (security review M4).
    state.deadline = setTimeout(() => settle(`SSH handshake with ${where} did not finish within ${timeoutMs + 1000} ms`), timeoutMs + 1000);
    client.on("error", (error: Error & { level?: string; code?: string }) => settle(describeConnectError(where, error)));
    client.on("ready", () => settle(`SSH server ${where} presented no host key`));
    client.once("close", () => settle(`SSH connection to ${where} closed before the server presented its host key`));
    client.connect({
      host,
      port,
      username: "nixmox-keyscan",
      readyTimeout: timeoutMs,
      // Returning false aborts the handshake right after the server proved it holds the key.
      hostVerifier: (blob: Buffer) => {
        state.key = hostKeyFromBlob(blob);
        return false;
      },
    });
  });
}

function describeConnectError(where: string, error: Error & { level?: string; code?: string }): string {
  if (error.level === "client-authentication") {
    return `SSH authentication as the deploy user failed on ${where}: the server did not accept the private key (check the authorized key on the host)`;
  }
  if (error.level === "client-timeout" || /Timed out/i.test(error.message)) {
    return `SSH handshake with ${where} timed out`;
  }
  if (error.code) return `cannot reach SSH on ${where} (${error.code})`;
  return `SSH connection to ${where} failed: ${error.message}`;
}

function lostResult(message: string): ExecResult {
  return { code: null, signal: null, stdout: "", stderr: message, timedOut: false, connectionLost: true };
}

function tail(text: string, maxChars: number): string {
  return text.length > maxChars ? text.slice(text.length - maxChars) : text;
}
