/**
 * `nixmox twin up [manifest] [--json]`, `nixmox twin fail SERVICE KNOB`, `nixmox twin down`: the user's manifest
 * deployed by the real engine into the homelab twin (twin/: a Proxmox VE API twin whose containers are real network
 * hosts), on this machine, as root (docs/twin.md).
 *
 * The twin outlives the command: its API and hosts live in a process of their own (twin/daemon.ts), started by the
 * first `up` and found again by the next ones through the project's `.nixmox/twin/` (gitignored):
 *   request.json   what the daemon was asked to start (project, manifest, namespace prefix, Pulumi CLI)
 *   daemon.json    written by the daemon once the twin runs: its pid, the engine's project, stack and environment
 *   control.sock   the daemon's control socket (status, knobs, stop), root only
 *   daemon.log     the daemon's output
 *   homelab/       the twin's state: template, engine project, state backend, deploy key, passphrase, disks
 *   deployed.json  the manifest the last `up` deployed (for `twin fail`)
 * A daemon that is gone (the machine restarted, it was killed) leaves a state whose containers no longer exist:
 * the next `up` removes it (keeping the built template) and starts a new twin. `down` stops the daemon and removes
 * every namespace, process and file of the twin.
 *
 * Exit codes: 0 every service of the manifest ended healthy; 1 an invalid manifest, a failed deploy or an unhealthy
 * service; 2 bad usage (not root, no Pulumi CLI, no twin for `fail`) or the twin could not start.
 */
import type { Command } from "commander";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, realpathSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import * as path from "node:path";
import type { DaemonInfo, DaemonRequest } from "../../twin/daemon";
import { daemonFiles } from "../../twin/daemon-files";
import { packageRoot, projectDir } from "../paths";
import { action, exitCodes, manifestModule, print } from "../run";
import { offlineLoadOptions, offlineManifest, stackManifestOptions, type ManifestFlags } from "../stack-manifest";

interface TwinUpFlags extends ManifestFlags {
  json?: boolean;
}

/** The twin's state folder in the project. */
export function twinStateDir(project: string): string {
  return path.join(path.resolve(project), ".nixmox", "twin");
}

/** The files of the state folder (twin/daemon-files.ts, which twin/daemon.ts writes). */
const files = daemonFiles;

/** The network namespace prefix of the project's twin: the same folder always gets the same one. */
export function twinPrefix(stateDir: string): string {
  return `nx${createHash("sha256").update(path.resolve(stateDir)).digest("hex").slice(0, 8)}`;
}

function fail(message: string, code: number = exitCodes.usage): number {
  process.stderr.write(`nixmox twin: ${message}\n`);
  return code;
}

/** Root is needed for network namespaces and mounts; null when we are root, else the exit code (reported). */
function requireRoot(command: string): number | null {
  if (process.getuid?.() === 0) return null;
  return fail(`must run as root: the twin makes network namespaces and mounts on this machine (run \`sudo nixmox twin ${command}\`)`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readInfo(stateDir: string): DaemonInfo | null {
  try {
    return JSON.parse(readFileSync(files(stateDir).info, "utf8")) as DaemonInfo;
  } catch {
    return null;
  }
}

/** One call to the daemon's control socket; resolves with the status and the JSON answer. */
function control(stateDir: string, method: "GET" | "POST", route: string, timeoutMs = 10_000): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath: files(stateDir).socket, method, path: route, timeout: timeoutMs }, (res) => {
      let text = "";
      res.on("data", (chunk: Buffer) => (text += chunk.toString()));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch {
          reject(new Error(`the twin's process answered ${res.statusCode} with no JSON`));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("the twin's process did not answer")));
    req.on("error", reject);
    req.end();
  });
}

/** The running twin of this state folder, or null (none started, or its process is gone). */
async function runningTwin(stateDir: string): Promise<DaemonInfo | null> {
  const info = readInfo(stateDir);
  if (info === null || !alive(info.pid)) return null;
  try {
    return (await control(stateDir, "GET", "/status")).status === 200 ? info : null;
  } catch {
    return null;
  }
}

/** The processes whose root directory lies in the state folder (the twin's hosts), by pid. */
function hostProcesses(stateDir: string): number[] {
  const pids: number[] = [];
  const root = existsSync(stateDir) ? realpathSync(stateDir) : path.resolve(stateDir);
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const dir = readlinkSync(`/proc/${entry}/root`);
      if (dir === root || dir.startsWith(`${root}/`)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** The network namespaces of a prefix (`<prefix>-world`, `<prefix>-ct<vmid>`). */
async function namespaces(prefix: string): Promise<string[]> {
  const { run } = require("../../twin/hosts/run") as typeof import("../../twin/hosts/run");
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").map((line) => line.split(" ")[0]!).filter((name) => name.startsWith(`${prefix}-`));
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const end = Date.now() + timeoutMs; Date.now() < end; await new Promise((resolve) => setTimeout(resolve, 200))) {
    if (condition()) return true;
  }
  return condition();
}

/**
 * Stops the twin of the state folder and removes what it made: its process (asked to stop, then signalled), any
 * host left (by pid), its namespaces, then the folder, except the paths in `keep` (relative to it).
 */
async function removeTwin(stateDir: string, keep: string[] = []): Promise<{ stopped: boolean }> {
  const info = readInfo(stateDir);
  let stopped = false;
  if (info !== null && alive(info.pid)) {
    await control(stateDir, "POST", "/stop").catch(() => undefined);
    if (!(await waitFor(() => !alive(info.pid), 60_000))) {
      process.kill(info.pid, "SIGTERM");
      if (!(await waitFor(() => !alive(info.pid), 10_000))) process.kill(info.pid, "SIGKILL");
    }
    stopped = true;
  }
  for (const pid of hostProcesses(stateDir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const { run } = require("../../twin/hosts/run") as typeof import("../../twin/hosts/run");
  for (const name of await namespaces(twinPrefix(stateDir))) await run("ip", ["netns", "del", name]).catch(() => undefined);
  const kept = keep.filter((file) => existsSync(path.join(stateDir, file))).map((file) => ({ file, aside: path.join(path.dirname(stateDir), `.twin-keep-${path.basename(file)}`) }));
  for (const { file, aside } of kept) renameSync(path.join(stateDir, file), aside);
  rmSync(stateDir, { recursive: true, force: true });
  for (const { file, aside } of kept) {
    mkdirSync(path.dirname(path.join(stateDir, file)), { recursive: true });
    renameSync(aside, path.join(stateDir, file));
  }
  return { stopped };
}

/** The script that runs the daemon: the compiled one, or the source through tsx when the CLI runs from sources. */
function daemonArgv(): string[] {
  if (__filename.endsWith(".ts")) return ["--require", require.resolve("tsx/cjs"), path.join(__dirname, "..", "..", "twin", "daemon.ts")];
  return [path.join(__dirname, "..", "..", "twin", "daemon.js")];
}

/** Starts the twin's process and waits until the twin runs (or its start failed, said in one message). */
async function startDaemon(stateDir: string, request: DaemonRequest): Promise<DaemonInfo> {
  const f = files(stateDir);
  for (const file of [f.info, f.error, f.socket]) rmSync(file, { force: true });
  writeFileSync(f.request, `${JSON.stringify(request, null, 2)}\n`, { mode: 0o600 });
  const log = openSync(f.log, "a", 0o600);
  const child = spawn(process.execPath, [...daemonArgv(), stateDir], { detached: true, stdio: ["ignore", log, log], cwd: stateDir });
  closeSync(log);
  let exited = false;
  child.on("exit", () => (exited = true));
  child.unref();
  process.stderr.write(`nixmox twin: starting the twin (its process ${child.pid}, log ${path.relative(process.cwd(), f.log) || f.log}; the first start builds the container template)\n`);
  await waitFor(() => exited || existsSync(f.info) || existsSync(f.error), 15 * 60_000);
  const info = readInfo(stateDir);
  if (info !== null) return info;
  const reason = existsSync(f.error) ? readFileSync(f.error, "utf8").trim().split("\n").slice(0, 5).join("\n") : exited ? `its process ended (see ${f.log})` : `it did not start within 15 minutes (see ${f.log})`;
  await removeTwin(stateDir, ["homelab/template.tar.xz"]);
  throw new TwinError(`the twin could not start: ${reason}`);
}

class TwinError extends Error {}

/** Finds `name` on PATH (absolute path), or null. */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/** One holder of the state folder at a time: a second `up` or `down` waits for none, it refuses. */
function lock(stateDir: string): () => void {
  const file = files(stateDir).lock;
  mkdirSync(stateDir, { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      return () => rmSync(file, { force: true });
    } catch {
      const holder = Number(readFileSync(file, "utf8").trim());
      if (Number.isInteger(holder) && holder > 0 && alive(holder)) throw new TwinError(`another nixmox twin command (pid ${holder}) is using ${stateDir}; wait for it to end`);
      rmSync(file, { force: true });
    }
  }
  throw new TwinError(`cannot lock ${stateDir}`);
}

async function twinUp(argument: string | undefined, flags: TwinUpFlags): Promise<number> {
  const notRoot = requireRoot("up");
  if (notRoot !== null) return notRoot;
  const manifest = path.resolve(offlineManifest(argument, flags));
  const loadOptions = offlineLoadOptions(flags);
  // Bad input is reported before anything starts (a ManifestError: every problem, exit 1).
  const plan = await manifestModule().loadPlan(manifest, loadOptions);
  const pulumi = onPath("pulumi");
  if (pulumi === null) return fail("the Pulumi CLI is not on PATH (https://www.pulumi.com/docs/install/; in a NixMox clone, `export PATH=\"$(npm run -s engine:bin):$PATH\"`)");
  const stateDir = twinStateDir(flags.projectDir);
  let unlock: () => void;
  try {
    unlock = lock(stateDir);
  } catch (error) {
    return fail((error as Error).message);
  }
  try {
    let info = await runningTwin(stateDir);
    if (info === null) {
      if (existsSync(files(stateDir).request)) {
        process.stderr.write("nixmox twin: the previous twin's process is gone, and its containers with it: starting a new twin\n");
        await removeTwin(stateDir, ["homelab/template.tar.xz", "lock"]);
      }
      info = await startDaemon(stateDir, { projectRoot: packageRoot, manifest, prefix: twinPrefix(stateDir), pulumi });
    } else {
      process.stderr.write(`nixmox twin: using the running twin (its process ${info.pid})\n`);
    }
    writeFileSync(files(stateDir).deployed, `${JSON.stringify({ manifest, allowPaths: loadOptions.allowPaths })}\n`);
    return await deploy(info, manifest, loadOptions.allowPaths, plan.services.map((service) => service.name), flags.json ?? false);
  } catch (error) {
    if (error instanceof TwinError) return fail(error.message);
    throw error;
  } finally {
    unlock();
  }
}

/**
 * `nixmox up --yes` of the twin's stack, pointed at `manifest`, run inside the twin's world (as the engine's own
 * event stream needs: the Automation API listens on 127.0.0.1 of the process that asks, and the engine, which must
 * reach the twin's private addresses, connects to it from the world); then the health of every service and, with
 * `--json`, the update's summary.
 */
async function deploy(info: DaemonInfo, manifest: string, allowPaths: string[], services: string[], json: boolean): Promise<number> {
  // The engine's environment: the twin's backend and home, its certificate, its passphrase file, the engine on PATH.
  const env = { ...process.env, ...info.env };
  Object.assign(process.env, info.env);
  const { PulumiCommand } = require("@pulumi/pulumi/automation") as typeof import("@pulumi/pulumi/automation");
  const engine = require("../engine") as typeof import("../engine");
  // From this machine's side, the CLI through the world's wrapper (config, outputs, history: no event stream).
  const pulumiCommand = await PulumiCommand.get({ root: info.pulumiRoot, skipVersionCheck: true });
  const onError = (text: string) => process.stderr.write(text);
  const options = { projectDir: info.projectDir, stack: info.stack, onError, pulumiCommand };
  const { workspace } = await engine.openWorkspace(options);
  const stack = await engine.selectExistingStack(workspace, options);
  try {
    await stack.setConfig("nixmox:manifest", { value: manifest, secret: false });
    if (allowPaths.length > 0) await stack.setConfig("nixmox:manifestAllowPaths", { value: JSON.stringify(allowPaths), secret: false });
    else await stack.removeConfig("nixmox:manifestAllowPaths").catch(() => undefined);
  } catch (error) {
    throw engine.engineFailure(error, "pointing the twin's stack at the manifest", { streamed: false, onError });
  }
  const argv = [process.execPath, path.join(packageRoot, "bin", "nixmox.js"), "up", "--yes", ...(json ? ["--json"] : []), "--stack", info.stack, "--project-dir", info.projectDir];
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn("ip", ["netns", "exec", info.world, ...argv], { env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("close", (status, signal) => resolve(status ?? (signal ? 128 : exitCodes.usage)));
  });
  let result = code;
  if (code === exitCodes.ok) {
    const outputs = ((await engine.stackOutputValue(stack, "services", onError)) ?? {}) as Record<string, { healthy?: boolean }>;
    const unhealthy = services.filter((name) => outputs[name]?.healthy !== true);
    if (unhealthy.length > 0) {
      process.stderr.write(`nixmox twin: not healthy after the deploy: ${unhealthy.join(", ")}\n`);
      result = exitCodes.problems;
    }
  }
  if (json) {
    // The update's summary as the Automation API reports it (`stack.up()`'s `summary`: the last history entry),
    // read without secrets; the config it was run with is left out.
    const [summary] = await stack.history(1, 1, false).catch(() => []);
    if (summary) {
      const { config: _config, environment: _environment, ...rest } = summary;
      print(JSON.stringify(rest));
    }
  }
  return result;
}

async function twinFail(service: string, knob: string, flags: { projectDir: string }): Promise<number> {
  const notRoot = requireRoot("fail");
  if (notRoot !== null) return notRoot;
  const stateDir = twinStateDir(flags.projectDir);
  if ((await runningTwin(stateDir)) === null) return fail(`no twin runs for ${flags.projectDir}: start one with \`nixmox twin up\``);
  const deployed = JSON.parse(readFileSync(files(stateDir).deployed, "utf8")) as { manifest: string; allowPaths: string[] };
  const plan = await manifestModule().loadPlan(deployed.manifest, { allowPaths: deployed.allowPaths });
  const entry = plan.services.find((candidate) => candidate.name === service);
  if (!entry) return fail(`no service "${service}" in ${deployed.manifest} (services: ${plan.services.map((candidate) => candidate.name).join(", ")})`);
  if (entry.vmid == null) return fail(`service "${service}" has no vmid in the manifest, so its container cannot be named; give it one`);
  const answer = await control(stateDir, "POST", `/fail?vmid=${entry.vmid}&knob=${encodeURIComponent(knob)}`);
  if (answer.status !== 200) return fail(`${service}: ${answer.body.error}${answer.status === 404 ? " (deploy it first with `nixmox twin up`)" : ""}`);
  print(`nixmox twin: the next switch of ${service} (container ${entry.vmid}) fails: ${knob}`);
  return exitCodes.ok;
}

async function twinDown(flags: { projectDir: string }): Promise<number> {
  const notRoot = requireRoot("down");
  if (notRoot !== null) return notRoot;
  const stateDir = twinStateDir(flags.projectDir);
  if (!existsSync(stateDir) && (await namespaces(twinPrefix(stateDir))).length === 0) {
    print("nixmox twin: no twin here: nothing to remove");
    return exitCodes.ok;
  }
  // Not while an `up` deploys: its engine would go on writing the stack's state into the folder a new twin makes.
  if (existsSync(stateDir)) {
    try {
      lock(stateDir);
    } catch (error) {
      return fail(`${(error as Error).message}, or stop it first; then run \`nixmox twin down\` again (nothing was removed)`);
    }
  }
  const { stopped } = await removeTwin(stateDir);
  const left = await namespaces(twinPrefix(stateDir));
  if (left.length > 0) return fail(`could not remove the network namespaces ${left.join(", ")}: remove them with \`ip netns del NAME\``);
  print(`nixmox twin: ${stopped ? "stopped the twin and removed" : "removed"} its namespaces, processes and ${stateDir}`);
  return exitCodes.ok;
}

export function register(program: Command): void {
  const twin = program.command("twin").description("Deploy a manifest into the homelab twin on this machine (as root): a Proxmox VE API twin whose containers are real network hosts (docs/twin.md).");
  const up = twin
    .command("up")
    .description("Start the twin (or reuse the running one) and deploy the manifest into it with the real engine; exit 0 only when every service ends healthy.")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml); default: the stack's nixmox:manifest with --stack, else the project's (Pulumi.yaml)")
    .option("--json", "stream the engine's events as JSON lines; the last line is the update's summary (resourceChanges)");
  stackManifestOptions(up, projectDir).action(action(async (manifest: string | undefined, flags: TwinUpFlags) => twinUp(manifest, flags)));
  twin
    .command("fail")
    .description("Make the next switch of a service's host in the twin fail, to rehearse a rollback: switch (the build fails), activation (a unit fails), check:<name> (that check's unit or listener is left out), slow:<seconds>.")
    .argument("<service>", "a service of the deployed manifest")
    .argument("<knob>", "switch | activation | check:<check name> | slow:<seconds>")
    .option("--project-dir <dir>", "directory holding the twin's .nixmox/twin", projectDir)
    .action(action(async (service: string, knob: string, flags: { projectDir: string }) => twinFail(service, knob, flags)));
  twin
    .command("down")
    .description("Stop the twin and remove everything it made: network namespaces, processes, state (.nixmox/twin).")
    .option("--project-dir <dir>", "directory holding the twin's .nixmox/twin", projectDir)
    .action(action(async (flags: { projectDir: string }) => twinDown(flags)));
}
