/**
 * The shared recording-mock helper for component and program tests: runs code under Pulumi mocks and returns
 * every registered resource with its type, name, parent, dependencies, options and inputs
 * (components/offline-preview.ts is the reusable core, also behind `nixmox preview --offline`).
 *
 * What these mocks do not prove: provider behaviour (Proxmox validation, which fields replace), the engine's
 * diff and update order at run time, and the dynamic providers' and commands' effect on a host.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { offlineStackConfig, recordProgram, type RecordedRun, type ResourceRecord } from "../../components/offline-preview";
import { defaultManifestPath, loadManifestData } from "../../manifest";

export { recordProgram, type RecordedRun, type ResourceRecord };

/** Runs the real program (index.ts) under mocks with the offline stack config plus `overrides`. */
export async function runNixmoxProgram(manifestPath: string = defaultManifestPath, overrides: Record<string, string> = {}): Promise<RecordedRun> {
  const { config, secretKeys } = offlineStackConfig(manifestPath, overrides);
  const program = require("../../index") as () => Promise<unknown>;
  return recordProgram(program, { config, secretKeys });
}

/** The record named `name`; throws (listing the names) when there is none or more than one. */
export function resourceNamed(run: RecordedRun, name: string): ResourceRecord {
  const found = run.resources.filter((resource) => resource.name === name);
  if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length} among ${run.resources.map((r) => r.name).join(", ")}`);
  return found[0];
}

export function childrenOf(run: RecordedRun, parent: ResourceRecord): ResourceRecord[] {
  return run.resources.filter((resource) => resource.parent === parent.urn);
}

/** The example manifest as plain data (through the real nix-instantiate), memoized. */
let exampleData: Promise<Record<string, unknown>> | null = null;
export function exampleManifestData(): Promise<Record<string, unknown>> {
  exampleData ??= loadManifestData(defaultManifestPath) as Promise<Record<string, unknown>>;
  return exampleData.then((data) => JSON.parse(JSON.stringify(data)) as Record<string, unknown>);
}

/** A temp dir holding `manifest.json` (plus the example's module files); call `remove()` when done. */
export function writeManifest(data: unknown): { path: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-manifest-"));
  mkdirSync(path.join(dir, "modules"));
  copyFileSync(path.join(path.dirname(defaultManifestPath), "modules", "homepage.nix"), path.join(dir, "modules", "homepage.nix"));
  const file = path.join(dir, "manifest.json");
  writeFileSync(file, JSON.stringify(data, null, 2));
  return { path: file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
