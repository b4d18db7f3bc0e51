/**
 * `npm run bench:cli`: how fast the built `nixmox` starts, against a bare `node -e 0` of the same Node.
 *
 * Runs each command RUNS times (default 15), interleaved so that load from other processes hits all of them
 * alike, and prints the median and minimum wall time of each, its median CPU time (user + system, read by a
 * preloaded module at exit: less sensitive to other processes on a shared machine), and the ratios of medians
 * to `node -e 0`. The
 * target (issue 12) is `validate` on the example within 6x of `node -e 0`; `--help` and `--version` should be
 * close to it. Needs a build (`npm run build`; `npm ci` makes one). No timing is asserted in the tests: this
 * script is where the figures come from.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const root = path.resolve(__dirname, "..");
const runs = Number(process.env.RUNS ?? 15);
const bin = path.join(root, "bin", "nixmox.js");
const scratch = mkdtempSync(path.join(tmpdir(), "nixmox-bench-"));
const reporter = path.join(scratch, "cpu.js");
const cpuFile = path.join(scratch, "cpu.txt");
// The child's own CPU time (getrusage of the process, from its start), written when it exits.
writeFileSync(reporter, `process.on("exit", () => { const u = process.cpuUsage(); require("node:fs").writeFileSync(${JSON.stringify(cpuFile)}, String((u.user + u.system) / 1000)); });\n`);
const env = { ...process.env };
delete env.NIXMOX_FROM_SOURCE;

const cases: Array<{ label: string; args: string[] }> = [
  { label: "node -e 0", args: ["-e", "0"] },
  { label: "nixmox --version", args: [bin, "--version"] },
  { label: "nixmox --help", args: [bin, "--help"] },
  { label: "nixmox validate (example)", args: [bin, "validate", path.join(root, "manifest", "service-manifest.nix")] },
  { label: "nixmox plan --json (example)", args: [bin, "plan", "--json", path.join(root, "manifest", "service-manifest.nix")] },
];

/** Wall time of a plain run, then CPU time of a second run with the reporter preloaded (it costs a little). */
function once(args: string[]): { wall: number; cpu: number } {
  const started = process.hrtime.bigint();
  const plain = spawnSync(process.execPath, args, { cwd: root, env, encoding: "utf8" });
  const wall = Number(process.hrtime.bigint() - started) / 1e6;
  if (plain.status !== 0) throw new Error(`${args.join(" ")} exited ${plain.status}: ${plain.stderr}`);
  const measured = spawnSync(process.execPath, ["--require", reporter, ...args], { cwd: root, env, encoding: "utf8" });
  if (measured.status !== 0) throw new Error(`${args.join(" ")} exited ${measured.status}: ${measured.stderr}`);
  return { wall, cpu: Number(readFileSync(cpuFile, "utf8")) };
}

const times = new Map<string, number[]>(cases.map((item) => [item.label, []]));
const cpu = new Map<string, number[]>(cases.map((item) => [item.label, []]));
// One warm-up round fills the page cache and V8's compile cache, as any second start would find them.
for (const item of cases) once(item.args);
for (let round = 0; round < runs; round++) {
  for (const item of cases) {
    const measured = once(item.args);
    times.get(item.label)!.push(measured.wall);
    cpu.get(item.label)!.push(measured.cpu);
  }
}
rmSync(scratch, { recursive: true, force: true });

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const base = median(times.get("node -e 0")!);
const cpuBase = median(cpu.get("node -e 0")!);
console.log(`node ${process.version}, ${runs} runs each (interleaved), milliseconds; load average ${require("node:os").loadavg()[0].toFixed(1)}`);
console.log(`${"command".padEnd(30)}${"wall".padStart(8)}${"min".padStart(8)}${"x node".padStart(8)}${"cpu".padStart(8)}${"x node".padStart(8)}`);
for (const item of cases) {
  const wall = times.get(item.label)!;
  const used = cpu.get(item.label)!;
  console.log(
    `${item.label.padEnd(30)}${median(wall).toFixed(1).padStart(8)}${Math.min(...wall).toFixed(1).padStart(8)}${(median(wall) / base).toFixed(1).padStart(8)}` +
      `${median(used).toFixed(1).padStart(8)}${(median(used) / cpuBase).toFixed(1).padStart(8)}`,
  );
}
const label = "nixmox validate (example)";
console.log(`validate / node -e 0: ${(median(times.get(label)!) / base).toFixed(1)}x wall, ${(median(cpu.get(label)!) / cpuBase).toFixed(1)}x cpu (target: at most 6x)`);
