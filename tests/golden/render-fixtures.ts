/**
 * Shared fixtures for the render tests: the example manifest's raw data (evaluated once with the real
 * nix-instantiate) and helpers that plan and render edited copies of it.
 */
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { defaultManifestPath, loadManifestData, planManifest, validateManifest } from "../../manifest";
import type { Plan } from "../../manifest/plan-types";
import { fileSources, renderAll, type RenderedHost, type RenderOptions } from "../../render";

export const exampleManifestDir = path.dirname(defaultManifestPath);

let cached: Promise<unknown> | undefined;

/** A fresh deep copy of the example manifest's data. */
export async function exampleManifestData(): Promise<Record<string, any>> {
  cached ??= loadManifestData(defaultManifestPath);
  return structuredClone(await cached) as Record<string, any>;
}

export function planFromData(data: unknown): Plan {
  return planManifest(validateManifest(data, "test manifest"), { manifestDir: exampleManifestDir });
}

export function renderData(data: unknown, options: RenderOptions = {}): RenderedHost[] {
  const plan = planFromData(data);
  return renderAll(plan, fileSources(plan.manifestDir), options);
}

export function hashes(hosts: RenderedHost[]): Record<string, string> {
  return Object.fromEntries(hosts.map((host) => [host.service, host.contentHash]));
}

/** Services whose content hash differs (or that exist on one side only), sorted. */
export function changedHosts(before: RenderedHost[], after: RenderedHost[]): string[] {
  const a = hashes(before);
  const b = hashes(after);
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((name) => a[name] !== b[name]).sort();
}

/** Evaluates a Nix expression with the real nix-instantiate and returns its JSON value. */
export function nixEval(expression: string): unknown {
  const out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--expr", expression], {
    encoding: "utf8",
    timeout: 30_000,
  });
  return JSON.parse(out);
}

/** Path of a file shipped under nixos/, as a Nix path literal. */
export function shippedNix(relative: string): string {
  return path.join(__dirname, "..", "..", "nixos", relative);
}
