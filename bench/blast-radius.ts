/**
 * Blast radius, measured: runs the real program under mocks for the example manifest and for one-field edits,
 * and prints per edit how many containers and rebuild commands change their inputs, next to the seed
 * orchestrator's "redeploy everything" (the manifest was injected into every host, so any edit rebuilt all).
 * "consumers" are the hosts whose rendered directory changed (render's content hash) plus created services;
 * the target is rebuilds == consumers, never more.
 *
 *   npx tsx bench/blast-radius.ts
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { offlineStackConfig, recordProgram, type RecordedRun } from "../components/offline-preview";
import { defaultManifestPath, loadManifestData, loadPlan } from "../manifest";
import { fileSources, renderAll } from "../render";

type ManifestData = Record<string, Record<string, Record<string, any>>>;

interface Edit {
  name: string;
  apply(data: ManifestData): void;
}

const edits: Edit[] = [
  { name: "container-only: dns memory 512 → 1024 MiB", apply: (data) => { data.core_services.dns.resources.memory = 1024; } },
  { name: "one route's domain: homepage → start.nixmox.lan", apply: (data) => { data.services.homepage.interface.proxy.domain = "start.nixmox.lan"; } },
  { name: "one service's depends_on: homepage += postgresql", apply: (data) => { data.services.homepage.depends_on = [...data.services.homepage.depends_on, "postgresql"]; } },
  {
    name: "adding a service: whoami (custom, routed)",
    apply: (data) => {
      data.services.whoami = {
        ip: "192.168.99.17",
        hostname: "whoami.nixmox.lan",
        vmid: 917,
        depends_on: ["caddy"],
        nixos_modules: ["modules/homepage.nix"],
        ports: [8082],
        interface: { proxy: { domain: "who.nixmox.lan", upstream: "192.168.99.17:8082" } },
      };
    },
  },
];

function writeManifest(data: unknown): { file: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-bench-"));
  mkdirSync(path.join(dir, "modules"));
  copyFileSync(path.join(path.dirname(defaultManifestPath), "modules", "homepage.nix"), path.join(dir, "modules", "homepage.nix"));
  const file = path.join(dir, "manifest.json");
  writeFileSync(file, JSON.stringify(data));
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

async function run(manifest: string): Promise<RecordedRun> {
  const { config, secretKeys } = offlineStackConfig(manifest);
  return recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys });
}

/** name → JSON of its inputs, for the resources of one type (by the role suffix of the name). */
function inputsByName(result: RecordedRun, type: string, suffix: string): Map<string, string> {
  return new Map(result.resources.filter((resource) => resource.type === type && resource.name.endsWith(suffix)).map((resource) => [resource.name.slice(0, -suffix.length), JSON.stringify(resource.inputs)]));
}

function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...after.keys()].filter((name) => before.get(name) !== after.get(name)).sort();
}

async function hashes(manifest: string): Promise<Map<string, string>> {
  const plan = await loadPlan(manifest);
  return new Map(renderAll(plan, fileSources(plan.manifestDir)).map((host) => [host.service, host.contentHash]));
}

async function main(): Promise<void> {
  const base = (await loadManifestData(defaultManifestPath)) as ManifestData;
  const baseFile = writeManifest(base);
  const baseline = await run(baseFile.file);
  const baseHashes = await hashes(baseFile.file);
  const containerType = "proxmoxve:index/containerLegacy:ContainerLegacy";
  const commandType = "pulumi-nodejs:dynamic/nixmox:RemoteCommand";
  const rows: string[][] = [["edit", "containers changed", "rebuilds changed", "consumers", "seed: redeploy everything", "verdict"]];
  let failures = 0;
  for (const edit of edits) {
    const data = JSON.parse(JSON.stringify(base)) as ManifestData;
    edit.apply(data);
    const edited = writeManifest(data);
    try {
      const result = await run(edited.file);
      const editedHashes = await hashes(edited.file);
      const containers = changed(inputsByName(baseline, containerType, "-container"), inputsByName(result, containerType, "-container"));
      const rebuilds = changed(inputsByName(baseline, commandType, "-rebuild"), inputsByName(result, commandType, "-rebuild"));
      const consumers = [...editedHashes.keys()].filter((name) => baseHashes.get(name) !== editedHashes.get(name)).sort();
      const total = editedHashes.size;
      const ok = JSON.stringify(rebuilds) === JSON.stringify(consumers);
      if (!ok) failures += 1;
      rows.push([
        edit.name,
        `${containers.length} (${containers.join(", ") || "-"})`,
        `${rebuilds.length} (${rebuilds.join(", ") || "-"})`,
        `${consumers.length} (${consumers.join(", ") || "-"})`,
        `${total} containers, ${total} rebuilds`,
        ok ? "exactly the consumers" : "MORE/LESS than the consumers",
      ]);
    } finally {
      edited.remove();
    }
  }
  baseFile.remove();
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  const line = (row: string[]) => row.map((cell, column) => cell.padEnd(widths[column])).join(" | ").trimEnd();
  process.stdout.write(`${[line(rows[0]), widths.map((width) => "-".repeat(width)).join("-|-"), ...rows.slice(1).map(line)].join("\n")}\n`);
  process.stdout.write(`\nbaseline: ${baseline.resources.length} resources for ${baseHashes.size} services\n`);
  process.exitCode = failures === 0 ? 0 : 1;
}

main().catch((error: unknown) => {
  process.stderr.write(`blast-radius: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
});
