/**
 * The example homelab's first deploy in the twin (issue 21's budget): its makespan against its critical path.
 *
 *   sudo npm run bench:twin                (as root: the twin makes network namespaces; MANIFEST=… for another one)
 *
 * Starts a new twin (twin/homelab.ts) with the real engine (tools/engine), runs `pulumi up --json` of NixMox's
 * index.ts on the manifest, and times every resource from the engine's event stream as it arrives: a resource's step
 * time runs from its `resourcePreEvent` to its `resOutputsEvent`. A host's steps split in two: its preparation
 * (`<service>-guard`, `-container`, `-ssh`, `-secrets`, `-config`: they wait for no other host) and its gated steps
 * (`-build`, `-copy`, `-rebuild`, `-health`: its switch waits until every host it depends on is healthy). The critical
 * path is the longest chain through `depends_on`: a host's gated steps start when its own preparation and the chains
 * of all the hosts it depends on have ended, so no deploy can be shorter than it (steps of one host are summed, which
 * errs long where they overlap). Prints each host's steps, the critical path, the makespan (the whole `pulumi up`,
 * with the program's start and the shared resources) and their ratio. Figures only, no asserts.
 */
import * as path from "node:path";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadPlan } from "../manifest";
import { startTwinHomelab } from "../twin/homelab";
import { realEngineBin, repoDir } from "../tests/support/real-engine";

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    process.stderr.write("bench:twin: run as root (the twin makes network namespaces and mounts)\n");
    process.exit(2);
  }
  const manifest = path.resolve(process.env.MANIFEST ?? path.join(repoDir, "manifest", "service-manifest.nix"));
  const plan = await loadPlan(manifest);
  const stateDir = mkdtempSync(path.join(tmpdir(), "nixmox-bench-twin-"));
  const startTwin = Date.now();
  const homelab = await startTwinHomelab({ projectRoot: repoDir, manifest, stateDir, prefix: `nxb${process.pid.toString(36)}`, pulumi: path.join(realEngineBin(), "pulumi") });
  const twinMs = Date.now() - startTwin;
  const started = new Map<string, number>();
  const took = new Map<string, number>();
  let buffer = "";
  try {
    const run = await homelab.pulumi(["up", "--yes", "--skip-preview", "--json", "--non-interactive", "--stack", homelab.stack], {
      allowFailure: true,
      onStdout: (text) => {
        const now = Date.now();
        buffer += text;
        const lines = buffer.split("\n");
        buffer = lines.pop() ?? "";
        for (const line of lines) {
          if (!line.startsWith("{")) continue;
          let event: any;
          try {
            event = JSON.parse(line);
          } catch {
            continue;
          }
          const pre = event.resourcePreEvent?.metadata;
          if (pre?.op === "create") started.set(pre.urn, now);
          const done = event.resOutputsEvent?.metadata;
          if (done?.op === "create" && started.has(done.urn)) took.set(done.urn, now - started.get(done.urn)!);
        }
      },
    });
    const name = (urn: string) => urn.split("::").pop()!;
    const gatedSteps = new Set(["build", "copy", "rebuild", "health"]);
    const hostMs = new Map<string, { prepare: number; gated: number }>();
    const hostSteps = new Map<string, string[]>();
    for (const service of plan.services) {
      const own = [...took.entries()].filter(([urn]) => name(urn).startsWith(`${service.name}-`)).map(([urn, ms]) => ({ step: name(urn).slice(service.name.length + 1), ms }));
      const sum = (steps: typeof own) => steps.reduce((total, step) => total + step.ms, 0);
      hostMs.set(service.name, { prepare: sum(own.filter((step) => !gatedSteps.has(step.step))), gated: sum(own.filter((step) => gatedSteps.has(step.step))) });
      hostSteps.set(service.name, own.map((step) => `${step.step} ${(step.ms / 1000).toFixed(1)}s`));
    }
    // Longest health-gated chain: a host's gated steps after the later of its own preparation and its dependencies' chains.
    const longest = new Map<string, { ms: number; chain: string[] }>();
    const chainOf = (service: string): { ms: number; chain: string[] } => {
      const known = longest.get(service);
      if (known) return known;
      const entry = plan.services.find((candidate) => candidate.name === service)!;
      const own = hostMs.get(service) ?? { prepare: 0, gated: 0 };
      const before = [...entry.dependsOn.map(chainOf), { ms: own.prepare, chain: [`(${service}'s preparation)`] }].sort((a, b) => b.ms - a.ms)[0]!;
      const result = { ms: before.ms + own.gated, chain: [...before.chain, service] };
      longest.set(service, result);
      return result;
    };
    const critical = plan.services.map((service) => chainOf(service.name)).sort((a, b) => b.ms - a.ms)[0]!;
    process.stdout.write(`manifest: ${path.relative(process.cwd(), manifest) || manifest} (${plan.services.length} hosts, ${plan.waves.length} waves)\n`);
    process.stdout.write(`twin start (template, stack): ${(twinMs / 1000).toFixed(1)}s\n`);
    process.stdout.write(`pulumi up: exit ${run.status}, ${took.size} resources created\n\nper host (preparation + gated steps; each resource's step time):\n`);
    for (const service of plan.services) {
      const own = hostMs.get(service.name)!;
      process.stdout.write(`  ${service.name.padEnd(12)} ${(own.prepare / 1000).toFixed(1).padStart(5)}s + ${(own.gated / 1000).toFixed(1).padStart(5)}s  ${hostSteps.get(service.name)!.join(", ")}\n`);
    }
    process.stdout.write(`\ncritical path: ${critical.chain.join(" → ")} = ${(critical.ms / 1000).toFixed(1)}s\n`);
    process.stdout.write(`makespan:      ${(run.ms / 1000).toFixed(1)}s (the whole pulumi up, with the program's start and the shared resources)\n`);
    process.stdout.write(`makespan / critical path: ${(run.ms / Math.max(critical.ms, 1)).toFixed(2)}\n`);
  } finally {
    await homelab.stop({ remove: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:twin: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
