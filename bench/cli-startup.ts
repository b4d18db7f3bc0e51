/**
 * `npm run bench:cli`: how fast the built `nixmox` starts, against a bare `node -e 0` of the same Node.
 *
 * Runs each command RUNS times (default 15), interleaved so that load from other processes hits all of them
 * alike, and prints the median and minimum wall time of each and the ratio of medians to `node -e 0`. The
 * target (issue 12) is `validate` on the example within 6x of `node -e 0`; `--help` and `--version` should be
 * close to it. Needs a build (`npm run build`; `npm ci` makes one). No timing is asserted in the tests: this
 * script is where the figures come from.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";

const root = path.resolve(__dirname, "..");
const runs = Number(process.env.RUNS ?? 15);
const bin = path.join(root, "bin", "nixmox.js");
const env = { ...process.env };
delete env.NIXMOX_FROM_SOURCE;

const cases: Array<{ label: string; args: string[] }> = [
  { label: "node -e 0", args: ["-e", "0"] },
  { label: "nixmox --version", args: [bin, "--version"] },
  { label: "nixmox --help", args: [bin, "--help"] },
  { label: "nixmox validate (example)", args: [bin, "validate", path.join(root, "manifest", "service-manifest.nix")] },
  { label: "nixmox plan --json (example)", args: [bin, "plan", "--json", path.join(root, "manifest", "service-manifest.nix")] },
];

function once(args: string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd: root, env, encoding: "utf8" });
  const elapsed = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(" ")} exited ${result.status}: ${result.stderr}`);
  return elapsed;
}

const times = new Map<string, number[]>(cases.map((item) => [item.label, []]));
// One warm-up round fills the page cache and V8's compile cache, as any second start would find them.
for (const item of cases) once(item.args);
for (let round = 0; round < runs; round++) {
  for (const item of cases) times.get(item.label)!.push(once(item.args));
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const base = median(times.get("node -e 0")!);
console.log(`node ${process.version}, ${runs} runs each (interleaved), wall time in ms`);
console.log(`${"command".padEnd(30)}${"median".padStart(9)}${"min".padStart(9)}${"x node".padStart(9)}`);
for (const item of cases) {
  const values = times.get(item.label)!;
  const ratio = median(values) / base;
  console.log(`${item.label.padEnd(30)}${median(values).toFixed(1).padStart(9)}${Math.min(...values).toFixed(1).padStart(9)}${ratio.toFixed(1).padStart(9)}`);
}
const validateRatio = median(times.get("nixmox validate (example)")!) / base;
console.log(`validate / node -e 0 = ${validateRatio.toFixed(1)}x (target: at most 6x)`);
