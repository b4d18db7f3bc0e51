/**
 * Manifest scale benchmark: generated manifests of 10, 100, 1,000, 5,000 and 10,000 services, as .json and .nix,
 * each loaded, validated and planned in a fresh child process (so its peak RSS is its own). Prints time per phase,
 * peak RSS and the growth between sizes. Target on a 2-core machine: validate + plan of 10,000 services under 1 s,
 * growing linearly (×2 when the size doubles).
 *
 *   npx tsx bench/manifest-scale.ts            # every size and format
 *   npx tsx bench/manifest-scale.ts 1000 json  # one case
 *
 * `.nix` includes the nix-instantiate child (its time, not its memory: RSS is this process's).
 *
 * Wall time swells when other processes share the cores; CPU time (user + system of this process, V8's compiler and
 * garbage-collector threads included) much less, so both are printed, with the load average before and after.
 */
import { fork } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { performance } from "node:perf_hooks";
import { loadManifestData, planManifest, type ManifestInput } from "../manifest";
import { checkManifest } from "../manifest/validate";

export const benchSizes = [10, 100, 1000, 5000, 10000];
export const benchFormats = ["json", "nix"] as const;
export type BenchFormat = (typeof benchFormats)[number];

/** The module every generated app imports (the loader checks it exists). */
export const benchModule = "modules/app.nix";

/**
 * A valid manifest of `count` services (at least 4): dns, caddy, postgresql and authentik, then apps whose
 * depends_on form a binary tree (app-n depends on app-⌊n/2⌋), so the plan has about log2(n) waves. Every app has a
 * route; every 3rd a database, every 5th forward auth, every 7th an OIDC client.
 */
export function generateManifest(count: number): ManifestInput {
  if (count < 4) throw new Error(`generateManifest: count must be at least 4, got ${count}`);
  const name = (index: number) => `app-${String(index).padStart(5, "0")}`;
  const ipOf = (index: number) => `10.20.${1 + Math.floor(index / 200)}.${10 + (index % 200)}`;
  const services: NonNullable<ManifestInput["services"]> = {};
  for (let index = 1; index <= count - 4; index += 1) {
    const ip = ipOf(index);
    services[name(index)] = {
      kind: "custom",
      ip,
      vmid: 1000 + index,
      depends_on: index > 1 ? [name(Math.floor(index / 2))] : ["caddy"],
      nixos_modules: [benchModule],
      ports: [8080],
      interface: {
        proxy: { domain: `${name(index)}.apps.bench.test`, upstream: `${ip}:8080`, authz: index % 5 === 0 },
        ...(index % 3 === 0 ? { db: { host: "postgresql" } } : {}),
        ...(index % 7 === 0 ? { auth: { type: "oidc" as const, oidc: { redirect_uris: [`https://${name(index)}.apps.bench.test/oauth2/callback`] } } } : {}),
        health: { checks: [{ type: "tcp" as const, port: 8080 }] },
      },
    };
  }
  return {
    network: { domain: "bench.test", dns_server: "10.20.0.2", gateway: "10.20.0.1", network_cidr: "10.20.0.0/16" },
    core_services: {
      dns: { ip: "10.20.0.2", vmid: 902 },
      caddy: { ip: "10.20.0.3", vmid: 903, ports: [80, 443] },
      postgresql: { ip: "10.20.0.4", vmid: 904, ports: [5432] },
      authentik: { ip: "10.20.0.5", vmid: 905, interface: { db: { host: "postgresql" }, proxy: { domain: "auth.bench.test", upstream: "10.20.0.5:9000" } } },
    },
    services,
  };
}

/** Plain data as a Nix expression: attribute names quoted, `${` escaped. */
export function toNix(value: unknown, indent = ""): string {
  const inner = `${indent}  `;
  const nixString = (text: string) => JSON.stringify(text).replace(/\$\{/g, "\\${");
  if (value === null) return "null";
  if (typeof value === "string") return nixString(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.length === 0 ? "[ ]" : `[ ${value.map((item) => toNix(item, inner)).join(" ")} ]`;
  const entries = Object.entries(value as Record<string, unknown>);
  return entries.length === 0 ? "{ }" : `{\n${entries.map(([key, item]) => `${inner}${nixString(key)} = ${toNix(item, inner)};`).join("\n")}\n${indent}}`;
}

/** Writes the manifest (and its module file) into `dir`; returns the manifest's path. */
export function writeManifest(dir: string, count: number, format: BenchFormat): string {
  mkdirSync(path.join(dir, "modules"), { recursive: true });
  writeFileSync(path.join(dir, benchModule), "{ ... }: { }\n");
  const manifest = generateManifest(count);
  const file = path.join(dir, `manifest-${count}.${format}`);
  writeFileSync(file, format === "json" ? JSON.stringify(manifest, null, 2) : `${toNix(manifest)}\n`);
  return file;
}

interface Measurement {
  services: number;
  format: BenchFormat;
  loadMs: number;
  validateMs: number;
  planMs: number;
  totalMs: number;
  /** CPU time of validate + plan (user + system, this process): what the work costs when other processes share the cores. */
  workCpuMs: number;
  peakRssMiB: number;
  waves: number;
}

/** The loader's own path (loadPlan): parse, validate (the rules resolve every service once), plan from those. */
async function measureOnce(file: string): Promise<Omit<Measurement, "services" | "format" | "peakRssMiB">> {
  const t0 = performance.now();
  const raw = await loadManifestData(file);
  const t1 = performance.now();
  const cpu = process.cpuUsage();
  const { manifest, resolved } = checkManifest(raw, file);
  const t2 = performance.now();
  const plan = planManifest(manifest, { manifestDir: path.dirname(file), resolved });
  const t3 = performance.now();
  const used = process.cpuUsage(cpu);
  return { loadMs: t1 - t0, validateMs: t2 - t1, planMs: t3 - t2, totalMs: t3 - t0, workCpuMs: (used.user + used.system) / 1000, waves: plan.waves.length };
}

/** One case in this process: a warm-up on a small manifest, then the median of 3 runs. */
async function measureCase(count: number, format: BenchFormat): Promise<Measurement> {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-bench-"));
  try {
    await measureOnce(writeManifest(dir, 10, "json"));
    const file = writeManifest(dir, count, format);
    const runs = [];
    for (let run = 0; run < 3; run += 1) runs.push(await measureOnce(file));
    runs.sort((a, b) => a.totalMs - b.totalMs);
    const median = runs[1];
    return { services: count, format, ...median, peakRssMiB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function runChild(count: number, format: BenchFormat): Promise<Measurement> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ["--child", String(count), format], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    child.once("message", (message) => resolve(message as Measurement));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`benchmark child for ${count} ${format} exited with ${code}`));
    });
  });
}

const fixed = (value: number, digits = 1) => value.toFixed(digits);

function printTable(results: Measurement[]): void {
  const header = ["services", "format", "load ms", "validate ms", "plan ms", "total ms", "v+p cpu ms", "peak RSS MiB", "ms/service", "waves"];
  const rows = results.map((r) => [
    String(r.services), r.format, fixed(r.loadMs), fixed(r.validateMs), fixed(r.planMs), fixed(r.totalMs), fixed(r.workCpuMs), fixed(r.peakRssMiB), fixed(r.totalMs / r.services, 3), String(r.waves),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: string[]) => cells.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join("  ");
  console.log(line(header));
  console.log(widths.map((width) => "-".repeat(width)).join("  "));
  for (const row of rows) console.log(line(row));

  console.log("\nGrowth between sizes (in-process validate + plan; load is parsing and, for .nix, nix-instantiate):");
  for (const format of benchFormats) {
    const series = results.filter((r) => r.format === format).sort((a, b) => a.services - b.services);
    for (let index = 1; index < series.length; index += 1) {
      const [small, large] = [series[index - 1], series[index]];
      const work = (r: Measurement) => r.validateMs + r.planMs;
      const nLogN = (large.services * Math.log2(large.services)) / (small.services * Math.log2(small.services));
      console.log(
        `  ${format} ${small.services} → ${large.services}: ×${fixed(large.services / small.services, 0)} services, ` +
          `validate+plan ×${fixed(work(large) / work(small))} wall, ×${fixed(large.workCpuMs / small.workCpuMs)} CPU, total ×${fixed(large.totalMs / small.totalMs)} ` +
          `(linear would be ×${fixed(large.services / small.services, 0)}, n·log n ×${fixed(nLogN)})`,
      );
    }
  }
  const largest = results.find((r) => r.services === 10000 && r.format === "json");
  if (largest) {
    console.log(
      `\n10,000 services (.json), validate + plan: ${fixed(largest.validateMs + largest.planMs)} ms wall (target < 1000 ms), ${fixed(largest.workCpuMs)} ms of CPU ` +
        `(all threads); with load: ${fixed(largest.totalMs)} ms wall.`,
    );
  }
}

/** The 1-minute load average and the cores, for reading the wall-clock figures. */
const loadText = () => `load average ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores`;

async function main(argv: string[]): Promise<void> {
  if (argv[0] === "--child") {
    const result = await measureCase(Number(argv[1]), argv[2] as BenchFormat);
    process.send!(result, () => process.exit(0));
    return;
  }
  const sizes = argv[0] ? [Number(argv[0])] : benchSizes;
  const formats = argv[1] ? [argv[1] as BenchFormat] : [...benchFormats];
  const results: Measurement[] = [];
  const loadBefore = loadText();
  for (const format of formats) {
    for (const count of sizes) results.push(await runChild(count, format));
  }
  printTable(results);
  console.log(`Before: ${loadBefore}; after: ${loadText()} (other processes slow the wall-clock figures, the CPU ones much less).`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    console.error(`manifest-scale: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
