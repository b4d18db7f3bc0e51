/**
 * Support for the tests that feed `nixmox render --configs` output to the real daemons (Debian's caddy,
 * unbound, postgresql): a manifest moved onto a random loopback /24 (the whole of 127.0.0.0/8 is routed to
 * `lo` on Linux, so every address of it can be bound without creating anything), the configs evaluated with
 * the real nix-instantiate, free ports, child processes that are always stopped.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { createServer } from "node:net";
import { fileSources, renderAll, renderConfigs, type HostConfigs, type RenderedHost, type RenderOptions } from "../../render";
import { planFromData } from "../golden/render-fixtures";

/** A /24 inside 127.0.0.0/8, e.g. "127.83.17", different per run so parallel runs do not collide. */
export function randomLoopbackSubnet(): string {
  const octet = (min: number, max: number) => min + Math.floor(Math.random() * (max - min + 1));
  return `127.${octet(20, 250)}.${octet(1, 250)}`;
}

/** A deep copy of `data` with every `from` (a /24 prefix with its dot) inside a string replaced by "<subnet>.". */
export function moveToSubnet<T>(data: T, subnet: string, from = "192.168.99."): T {
  const walk = (value: unknown): unknown => {
    if (typeof value === "string") return value.split(from).join(`${subnet}.`);
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v)]));
    return value;
  };
  return walk(data) as T;
}

export interface RenderedWithConfigs {
  hosts: RenderedHost[];
  configs: Record<string, HostConfigs>;
  /** host.json of a service, parsed. */
  data(service: string): any;
}

/** Renders a raw manifest and evaluates its daemon configs (the `render --configs` code path). The manifest's
 * own modules of custom services are replaced by an empty module (they play no part in these configs). */
export function renderWithConfigs(raw: unknown, options: RenderOptions = {}): RenderedWithConfigs {
  const plan = planFromData(raw);
  const hosts = renderAll(plan, { shipped: fileSources(plan.manifestDir).shipped, manifest: () => "{ ... }: { }\n" }, options);
  const configs = renderConfigs(hosts);
  return {
    hosts,
    configs,
    data: (service) => JSON.parse(hosts.find((host) => host.service === service)!.files["host.json"]),
  };
}

export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

export interface Daemon {
  child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts a long-running process; `stop` sends SIGTERM (SIGKILL after 5 s) and waits for it to exit. */
export function startDaemon(command: string, args: string[], options: SpawnOptions = {}): Daemon {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], ...options });
  let output = "";
  child.stdout?.on("data", (chunk) => (output += chunk));
  child.stderr?.on("data", (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
