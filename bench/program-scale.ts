/**
 * The Pulumi program at scale: the whole program (index.ts) under the offline mocks, in preview mode as
 * `nixmox preview --offline` runs it, for generated manifests of 50, 200 and 1,000 services (bench/manifest-scale.ts's
 * generator: a tree of custom apps with routes, databases, forward auth and OIDC clients). Each size runs in a fresh
 * process (the Pulumi runtime keeps global state). Prints wall time, resources, time per service and the growth
 * ratio between sizes (linear growth: time ratio ≈ size ratio).
 *
 *   npm run bench:program [-- 50,200,1000]
 */
import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { writeManifest } from "./manifest-scale";

interface Measurement {
  services: number;
  resources: number;
  ms: number;
  peakRssMiB: number;
}

async function measure(count: number): Promise<Measurement> {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-program-scale-"));
  try {
    const file = writeManifest(dir, count, "json");
    const { offlineStackConfig, recordProgram } = await import("../components/offline-preview");
    const { config, secretKeys } = offlineStackConfig(file);
    const program = (await import("../index")).default as unknown as () => Promise<unknown>;
    const started = performance.now();
    const run = await recordProgram(program, { config, secretKeys, preview: true });
    const ms = performance.now() - started;
    return { services: count, resources: run.resources.length, ms, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function inChild(count: number): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ["--child", String(count)], { execArgv: process.execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
    child.once("message", (message) => resolve(message as Measurement));
    child.once("exit", (code) => (code === 0 ? undefined : reject(new Error(`size ${count}: the measuring process exited with ${code}`))));
  });
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--child") {
    const result = await measure(Number(argv[1]));
    process.send!(result, () => process.exit(0));
    return;
  }
  const sizes = (argv[0] ?? "50,200,1000").split(",").map(Number);
  const results: Measurement[] = [];
  for (const size of sizes) results.push(await inChild(size));
  console.log("services  resources  wall ms  ms/service  peak RSS MiB  growth (time ratio / size ratio)");
  results.forEach((result, index) => {
    const previous = results[index - 1];
    const growth = previous ? `${(result.ms / previous.ms).toFixed(2)} / ${(result.services / previous.services).toFixed(2)}` : "-";
    console.log(
      `${String(result.services).padStart(8)}  ${String(result.resources).padStart(9)}  ${result.ms.toFixed(0).padStart(7)}  ${(result.ms / result.services).toFixed(1).padStart(10)}  ${result.peakRssMiB.toFixed(0).padStart(12)}  ${growth}`,
    );
  });
  const twoHundred = results.find((result) => result.services === 200);
  if (twoHundred) console.log(`\n200 services: ${(twoHundred.ms / 1000).toFixed(1)} s (target < 6 s)`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`program-scale: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
