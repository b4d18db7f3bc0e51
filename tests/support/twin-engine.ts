/**
 * The real Pulumi engine against the homelab twin, for tests: the engine that tools/engine/build.sh builds (built
 * when missing; a build failure fails the test loudly, never skips it), run inside the twin's world with its own
 * PULUMI_HOME, file backend and passphrase, on a copy of a fixture project.
 *
 * Engine runs are asynchronous on purpose: the twin's API answers from this very process, so a synchronous spawn
 * would block it and the engine would wait forever.
 */
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Twin } from "../../twin";
import { engineEnvironment, readmeRolePrivileges as readmeRole } from "../../twin/homelab";
import { realEngineBin, repoDir } from "./real-engine";

export { repoDir };

/** The folder holding `pulumi` and the plugins (tests/support/real-engine.ts builds it when missing). */
export const engineBin = realEngineBin;

export interface EngineRun {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Wall-clock duration of the run. */
  ms: number;
}

export interface TwinStack {
  /** The project folder (a copy of the fixture, with the repository's node_modules linked in). */
  dir: string;
  env: NodeJS.ProcessEnv;
  /** `pulumi ARGS` inside the twin's world; rejects with the output unless it exits 0 or `allowFailure`. */
  pulumi(args: string[], options?: { input?: string; allowFailure?: boolean }): Promise<EngineRun>;
  /** `pulumi config set` of each value (secrets with `--secret`). */
  configure(values: Record<string, string>, secrets?: Record<string, string>): Promise<void>;
  remove(): void;
}

/** A throwaway copy of `fixtureDir` with its own engine home, file backend and one initialised stack. */
export async function createTwinStack(twin: Twin, fixtureDir: string, stack = "twin"): Promise<TwinStack> {
  const root = mkdtempSync(path.join(tmpdir(), "nixmox-twin-stack-"));
  const dir = path.join(root, "project");
  for (const sub of ["project", "state", "home"]) mkdirSync(path.join(root, sub));
  for (const file of readdirSync(fixtureDir)) copyFileSync(path.join(fixtureDir, file), path.join(dir, file));
  symlinkSync(path.join(repoDir, "node_modules"), path.join(dir, "node_modules"));
  const env: NodeJS.ProcessEnv = engineEnvironment({ engineBin: engineBin(), stateRoot: root, passphrase: "nixmox-twin-test", certificateFile: twin.certificateFile });
  const pulumi = (args: string[], options: { input?: string; allowFailure?: boolean } = {}) =>
    new Promise<EngineRun>((resolve, reject) => {
      const started = Date.now();
      const [command, ...argv] = twin.command(["pulumi", ...args]);
      const child = spawn(command!, argv, { cwd: dir, env, stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdin.end(options.input ?? "");
      const timer = setTimeout(() => child.kill("SIGKILL"), 600_000);
      child.on("error", reject);
      child.on("close", (status) => {
        clearTimeout(timer);
        const run = { status, stdout, stderr, ms: Date.now() - started };
        if (status !== 0 && !options.allowFailure) reject(new Error(`pulumi ${args.join(" ")} exited ${status}:\n${stdout}\n${stderr}`));
        else resolve(run);
      });
    });
  await pulumi(["stack", "init", stack, "--non-interactive"]);
  return {
    dir,
    env,
    pulumi,
    configure: async (values, secrets = {}) => {
      for (const [key, value] of Object.entries(values)) await pulumi(["config", "set", "--plaintext", key], { input: value });
      for (const [key, value] of Object.entries(secrets)) await pulumi(["config", "set", "--secret", key], { input: value });
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A fresh ed25519 key pair in `dir`: `{ privateKeyFile, publicKey }`. */
export function sshKeyPair(dir: string, name: string): { privateKeyFile: string; publicKey: string } {
  const file = path.join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
  return { privateKeyFile: file, publicKey: readFileSync(`${file}.pub`, "utf8").trim() };
}

/** `argv` inside the twin's world, from the repository folder; resolves with its exit code and output. */
export function runInWorld(twin: Twin, argv: string[], env: Record<string, string> = {}): Promise<EngineRun> {
  return new Promise((resolve) => {
    const started = Date.now();
    const [program, ...args] = twin.command(argv);
    const child = spawn(program!, args, { cwd: repoDir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => resolve({ status, stdout, stderr, ms: Date.now() - started }));
  });
}

/**
 * `ssh root@address command` from inside the twin's world with the host key pinned (`StrictHostKeyChecking yes`
 * against `knownHost`, a `ssh-ed25519 AAAA…` line); resolves with the exit code and output.
 */
export function sshInWorld(twin: Twin, address: string, privateKeyFile: string, knownHost: string, command: string): Promise<EngineRun> {
  const knownHosts = path.join(path.dirname(privateKeyFile), `known_hosts-${address}`);
  writeFileSync(knownHosts, `${address} ${knownHost}\n`);
  return runInWorld(twin, ["ssh", "-F", "/dev/null", "-i", privateKeyFile, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=5", `root@${address}`, command]);
}

/**
 * The SSH host key of container `vmid` as read on the node (`pct exec <vmid> -- cat
 * /etc/ssh/ssh_host_ed25519_key.pub`): `ssh-ed25519 AAAA…`. Waits up to 10 s for the init to make it (the start
 * task ends when the init runs, before sshd is up, as on Proxmox).
 */
export async function hostKeyOf(twin: Twin, vmid: number, node = "pve"): Promise<string> {
  const file = path.join(twin.cluster.node(node).container(vmid).host.rootfs, "etc/ssh/ssh_host_ed25519_key.pub");
  for (let waited = 0; waited < 10_000; waited += 100) {
    if (existsSync(file)) return readFileSync(file, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`container ${vmid} has no SSH host key after 10 s`);
}

/** The privileges of the README's `pveum role add NixMox -privs "…"` line (the one list users grant). */
export function readmeRolePrivileges(): string[] {
  return readmeRole(repoDir);
}

/** A per-run prefix for the twin's network namespaces (`tw` + 6 hex digits). */
export function twinPrefix(): string {
  return `tw${process.pid.toString(16).slice(-3)}${Math.floor(Math.random() * 0xfff).toString(16).padStart(3, "0")}`;
}
