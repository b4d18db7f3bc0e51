// `nixmox twin up|fail|down` as a user runs them: the compiled CLI (tests/support/compiled-cli.js), as root, with the
// real engine (tools/engine) on PATH, on a small manifest (dns, caddy and homepage, whose custom module is recorded,
// not built) in a project folder of its own. The twin runs in its own process between the commands; each case
// asserts what the command printed and exited with, and the twin's state (its namespaces, its hosts' real daemons,
// its process). Needs root (network namespaces, mounts) and the daemons .ci/run installs.
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { realEngineBin, repoDir } from "./support/real-engine";
import { writeSmallTwinManifest } from "./support/twin-small";

const bin = path.join(repoDir, "bin", "nixmox.js");

interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** `nixmox ARGS` in `cwd`, asynchronously (a twin up takes tens of seconds), with the real engine first on PATH. */
function nixmox(args: string[], cwd: string, prefix: string[] = []): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const argv = [...prefix, process.execPath, bin, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { cwd, env: { ...process.env, PATH: [realEngineBin(), process.env.PATH ?? ""].join(path.delimiter) }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

function lastJson(stdout: string): any {
  const lines = stdout.trimEnd().split("\n");
  return JSON.parse(lines[lines.length - 1]!);
}

function namespacesOf(prefix: string): string[] {
  return spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").map((line) => line.split(" ")[0]!).filter((name) => name.startsWith(`${prefix}-`));
}

/** Processes whose root directory lies in `dir`: the twin's hosts. */
function processesRootedIn(dir: string): number[] {
  return readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).filter((pid) => {
    try {
      const root = readlinkSync(`/proc/${pid}/root`);
      return root === dir || root.startsWith(`${dir}/`);
    } catch {
      return false;
    }
  }).map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("nixmox twin up|fail|down (compiled CLI, real engine, a 3-service manifest)", function () {
  this.timeout(600_000);
  let project: string;
  let manifest: string;
  let data: Record<string, any>;
  let writeManifest: () => void;
  let stateDir: string;
  let daemon: { pid: number; prefix: string; world: string };

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error("the twin tests must run as root (network namespaces and mounts); CI runs them as root");
    realEngineBin(); // built when missing (minutes), found at once otherwise
    project = mkdtempSync(path.join(tmpdir(), "nixmox-twin-cli-"));
    stateDir = path.join(project, ".nixmox", "twin");
    ({ manifest, data, write: writeManifest } = await writeSmallTwinManifest(project));
  });

  after(async () => {
    if (project && existsSync(stateDir)) await nixmox(["twin", "down", "--project-dir", project], project);
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it("refuses to run as another user than root, saying why, with exit 2", async () => {
    const run = await nixmox(["twin", "up", manifest, "--project-dir", project], project, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr, /^nixmox twin: must run as root: the twin makes network namespaces/);
    assert.equal(existsSync(stateDir), false, "nothing was started");
  });

  it("up --json starts the twin, deploys every service healthy, exits 0 and ends with the update summary", async () => {
    const run = await nixmox(["twin", "up", manifest, "--json", "--project-dir", project], project);
    assert.equal(run.status, 0, `${run.stdout.slice(-3000)}\n${run.stderr}`);
    const summary = lastJson(run.stdout);
    assert.equal(summary.kind, "update");
    assert.equal(summary.result, "succeeded");
    assert.deepEqual(Object.keys(summary.resourceChanges), ["create"]);
    assert.ok(summary.resourceChanges.create > 10, JSON.stringify(summary));
    assert.equal(summary.config, undefined, "the summary carries no config values");
    // The engine's events came before it: each service's health gate ended (created).
    const healthGates = run.stdout.split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line)).filter((event) => event.resOutputsEvent?.metadata?.type === "pulumi-nodejs:dynamic/nixmox:HealthCheck" && event.resOutputsEvent.metadata.op === "create").map((event) => event.resOutputsEvent.metadata.urn.split("::").pop()).sort();
    assert.deepEqual(healthGates, ["caddy-health", "dns-health", "homepage-health"]);
    // The twin runs on: its process, a namespace per container, and the hosts' real daemons answer in its world.
    daemon = JSON.parse(readFileSync(path.join(stateDir, "daemon.json"), "utf8"));
    assert.ok(alive(daemon.pid), "the twin's process outlives the command");
    assert.deepEqual(namespacesOf(daemon.prefix).sort(), [`${daemon.prefix}-ct910`, `${daemon.prefix}-ct913`, `${daemon.prefix}-ct916`, `${daemon.prefix}-world`]);
    const dig = spawnSync("ip", ["netns", "exec", daemon.world, "dig", "+short", "+time=2", "@192.168.99.13", "home.nixmox.lan", "A"], { encoding: "utf8" });
    assert.equal(dig.stdout.trim(), "192.168.99.10", "unbound on dns answers the route's name with caddy's address");
  });

  it("a second up of the same manifest reuses the twin and reports only `same`", async () => {
    const run = await nixmox(["twin", "up", manifest, "--json", "--project-dir", project], project);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`using the running twin \\(its process ${daemon.pid}\\)`));
    assert.deepEqual(Object.keys(lastJson(run.stdout).resourceChanges), ["same"]);
  });

  it("an unknown service for `twin fail` is a usage error naming the services", async () => {
    const run = await nixmox(["twin", "fail", "nextcloud", "switch", "--project-dir", project], project);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /no service "nextcloud" in .*manifest\.json \(services: .*caddy.*\)/);
  });

  it("a health check that fails (the twin's knob) rolls the host back and makes up exit non-zero", async () => {
    const knob = await nixmox(["twin", "fail", "caddy", "check:systemd:caddy.service", "--project-dir", project], project);
    assert.equal(knob.status, 0, knob.stderr);
    // An edit every host's configuration has (another admin key), so caddy switches and its startup check runs.
    data.network.ssh_keys.root = [...data.network.ssh_keys.root, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHR3aW4tY2xpLWFkbWluLWtleS0wMDAwMDAwMDAwMDAwMDAw twin@cli"];
    writeManifest();
    const run = await nixmox(["twin", "up", manifest, "--project-dir", project], project);
    assert.equal(run.status, 1, run.stdout);
    assert.match(run.stdout, /failed: caddy \(192\.168\.99\.10\) at rebuild: .*startup check "startup" \(command\) failed.*rolled back to the previous generation/s);
  });

  it("down refuses while another twin command (an up that deploys) holds the twin, and removes nothing", async () => {
    const holder = spawn("sleep", ["60"]);
    try {
      writeFileSync(path.join(stateDir, "lock"), `${holder.pid}\n`);
      const run = await nixmox(["twin", "down", "--project-dir", project], project);
      assert.equal(run.status, 2, run.stderr);
      assert.match(run.stderr, new RegExp(`another nixmox twin command \\(pid ${holder.pid}\\) is using .*; wait for it to end, or stop it first; then run \`nixmox twin down\` again \\(nothing was removed\\)`));
      assert.equal(alive(daemon.pid), true, "the twin still runs");
      assert.ok(namespacesOf(daemon.prefix).length > 0);
    } finally {
      holder.kill();
      rmSync(path.join(stateDir, "lock"), { force: true });
    }
  });

  it("down stops the twin and leaves no namespace, process or state behind", async () => {
    const run = await nixmox(["twin", "down", "--project-dir", project], project);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(namespacesOf(daemon.prefix), []);
    assert.equal(alive(daemon.pid), false, "the twin's process ended");
    assert.deepEqual(processesRootedIn(path.join(stateDir, "homelab")), [], "no host process is left");
    assert.equal(existsSync(stateDir), false);
  });
});
