/**
 * Build placement in the homelab twin: the example homelab deployed by NixMox's own program under the real engine
 * (tools/engine, bpg) into the twin, once per mode, three deploys each: the first, the same again, and an edit of one
 * host's module (homepage).
 *
 *   npm run bench:twin-build            (as root; NIXMOX_ENGINE_CACHE for a prebuilt engine)
 *
 * - builder: the manifest plus a builder service (tests/support/twin-build.ts); real Nix on the builder evaluates each
 *   host's flake against the twin's stand-in nixpkgs, signs the closure, and `nix copy`s it into the host's own store;
 *   the hosts only switch.
 * - target: the same manifest without the builder; every host runs the twin's stand-in nixos-rebuild, which evaluates
 *   NixMox's config builders with nix-instantiate on the host.
 *
 * Prints, per mode and deploy: evaluations on the builder (HostBuild steps that ran) and on the hosts (stand-in
 * nixos-rebuild runs, /var/log/twin-nixos-rebuild.log), the NAR bytes the closure copies sent (ClosureCopy outputs of
 * the copies that ran), each host's peak memory during the deploy (the sum of VmRSS of the processes in the host's
 * network namespace, sampled every 250 ms: the twin has no memory cgroup, so page cache is not counted and a spike
 * shorter than the interval can be missed), and the makespan (the engine's wall time of the up) against the critical
 * path (the longest chain of step durations through the state's dependency graph; the engine's event timestamps
 * have one-second resolution). Without nixpkgs the evaluations are tiny: the figures show where evaluations run and
 * what moves, not what a NixOS evaluation costs. No assertions: figures only.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { standInNixpkgsConfig } from "../twin/system";
import { builderManifest, exampleHosts } from "../tests/support/twin-build";
import { engineEvents, startHomelab, type Homelab } from "../tests/support/twin-homelab";

type Mode = "builder" | "target";

interface Figures {
  mode: Mode;
  deploy: string;
  status: number | null;
  builderEvaluations: number;
  hostEvaluations: number;
  copiedPaths: number;
  copiedBytes: number;
  peakMiB: Record<string, number | null>;
  makespanSeconds: number;
  criticalPathSeconds: number;
}

/** Peak RSS (MiB) of the processes in each host's network namespace, sampled until stopped. */
function sampleMemory(netns: Record<string, string>): { stop(): Record<string, number | null> } {
  const peaks: Record<string, number | null> = Object.fromEntries(Object.keys(netns).map((name) => [name, null]));
  const sample = () => {
    const inodes = new Map<number, string>();
    for (const [name, ns] of Object.entries(netns)) {
      try {
        inodes.set(statSync(`/run/netns/${ns}`).ino, name);
      } catch {
        // Not running (yet).
      }
    }
    const totals = new Map<string, number>();
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const name = inodes.get(statSync(`/proc/${entry}/ns/net`).ino);
        if (name === undefined) continue;
        const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${entry}/status`, "utf8"));
        if (rss) totals.set(name, (totals.get(name) ?? 0) + Number(rss[1]) / 1024);
      } catch {
        // The process ended while it was read.
      }
    }
    for (const [name, mib] of totals) peaks[name] = Math.max(peaks[name] ?? 0, mib);
  };
  const timer = setInterval(sample, 250);
  return {
    stop: () => {
      clearInterval(timer);
      return peaks;
    },
  };
}

interface Resource {
  urn: string;
  type: string;
  outputs?: any;
  dependencies?: string[];
}

/** Each resource's step (start → end, seconds) from an up's JSON events, for the steps that did something. */
function stepTimes(stdout: string): Map<string, { start: number; end: number; op: string }> {
  const times = new Map<string, { start: number; end: number; op: string }>();
  for (const event of engineEvents(stdout)) {
    const pre = event.resourcePreEvent?.metadata;
    if (pre) times.set(pre.urn, { start: event.timestamp, end: event.timestamp, op: pre.op });
    const done = event.resOutputsEvent?.metadata;
    if (done && times.has(done.urn)) times.get(done.urn)!.end = event.timestamp;
  }
  return times;
}

/** The longest chain of step durations through the dependency graph (seconds). */
function criticalPath(resources: Resource[], times: Map<string, { start: number; end: number; op: string }>): number {
  const byUrn = new Map(resources.map((resource) => [resource.urn, resource]));
  const memo = new Map<string, number>();
  const longest = (urn: string): number => {
    if (memo.has(urn)) return memo.get(urn)!;
    memo.set(urn, 0);
    const step = times.get(urn);
    const own = step && step.op !== "same" ? step.end - step.start : 0;
    const before = Math.max(0, ...(byUrn.get(urn)?.dependencies ?? []).map(longest));
    memo.set(urn, own + before);
    return own + before;
  };
  return Math.max(0, ...resources.map((resource) => longest(resource.urn)));
}

function rebuildRuns(homelab: Homelab, names: string[]): number {
  return names.reduce((sum, name) => {
    const vmid = homelab.service(name).vmid;
    if (!homelab.twin.cluster.node("pve").containers.has(vmid)) return sum;
    const log = path.join(homelab.rootfs(vmid), "var/log/twin-nixos-rebuild.log");
    return sum + (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((line) => line.trim() !== "").length : 0);
  }, 0);
}

async function deploy(homelab: Homelab, mode: Mode, label: string, names: string[]): Promise<Figures> {
  const prefix = homelab.twin.world.netns.replace(/-world$/, "");
  const netns = Object.fromEntries(names.map((name) => [name, `${prefix}-ct${homelab.service(name).vmid}`]));
  const evaluationsBefore = rebuildRuns(homelab, names);
  const memory = sampleMemory(netns);
  const up = await homelab.up([], { allowFailure: true });
  const peakMiB = memory.stop();
  const resources = (await homelab.resources()) as Resource[];
  const times = stepTimes(up.run.stdout);
  const ran = (urn: string) => {
    const op = times.get(urn)?.op;
    return op === "create" || op === "update" || op === "replace" || op === "create-replacement";
  };
  const builds = resources.filter((resource) => resource.type === "pulumi-nodejs:dynamic/nixmox:HostBuild" && ran(resource.urn));
  const copies = resources.filter((resource) => resource.type === "pulumi-nodejs:dynamic/nixmox:ClosureCopy" && ran(resource.urn));
  return {
    mode,
    deploy: label,
    status: up.run.status,
    builderEvaluations: builds.length,
    hostEvaluations: rebuildRuns(homelab, names) - evaluationsBefore,
    copiedPaths: copies.reduce((sum, copy) => sum + Number(copy.outputs?.copiedPaths ?? 0), 0),
    copiedBytes: copies.reduce((sum, copy) => sum + Number(copy.outputs?.copiedBytes ?? 0), 0),
    peakMiB,
    makespanSeconds: up.run.ms / 1000,
    criticalPathSeconds: criticalPath(resources, times),
  };
}

async function runMode(mode: Mode): Promise<Figures[]> {
  const source = mkdtempSync(path.join(tmpdir(), "nixmox-bench-twin-build-"));
  const homelab = await startHomelab({ manifest: await builderManifest(source, { builder: mode === "builder" }), config: standInNixpkgsConfig() });
  const names = mode === "builder" ? [...exampleHosts, "builder"] : exampleHosts;
  try {
    const figures = [await deploy(homelab, mode, "first", names), await deploy(homelab, mode, "same again", names)];
    const module = path.join(homelab.work, "manifest", "modules", "homepage.nix");
    writeFileSync(module, `${readFileSync(module, "utf8")}# edited\n`);
    figures.push(await deploy(homelab, mode, "edit homepage", names));
    return figures;
  } finally {
    await homelab.stop({ remove: true });
    rmSync(source, { recursive: true, force: true });
    rmSync(homelab.work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("bench/twin-build.ts runs the twin: run it as root");
  const all: Figures[] = [];
  for (const mode of ["builder", "target"] as const) all.push(...(await runMode(mode)));
  const hostColumns = [...exampleHosts, "builder"];
  const kib = (bytes: number) => (bytes / 1024).toFixed(1);
  console.log("mode     deploy          exit  evals(builder) evals(hosts)  copied paths  copied KiB  makespan s  critical path s");
  for (const row of all) {
    console.log(
      `${row.mode.padEnd(8)} ${row.deploy.padEnd(15)} ${String(row.status).padEnd(5)} ${String(row.builderEvaluations).padEnd(14)} ${String(row.hostEvaluations).padEnd(13)} ` +
        `${String(row.copiedPaths).padEnd(13)} ${kib(row.copiedBytes).padEnd(11)} ${row.makespanSeconds.toFixed(1).padEnd(11)} ${row.criticalPathSeconds}`,
    );
  }
  console.log("\npeak memory of each host's processes during the deploy, MiB (VmRSS sum, 250 ms samples; n/a: no such host)");
  console.log(`mode     deploy          ${hostColumns.map((name) => name.padEnd(11)).join(" ")}`);
  for (const row of all) {
    console.log(`${row.mode.padEnd(8)} ${row.deploy.padEnd(15)} ${hostColumns.map((name) => (row.peakMiB[name] == null ? "n/a" : row.peakMiB[name]!.toFixed(1)).padEnd(11)).join(" ")}`);
  }
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : String(error));
  process.exit(1);
});
