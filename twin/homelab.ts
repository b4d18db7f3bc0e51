/**
 * A NixMox homelab in the twin: the twin (Proxmox VE API, hosts with the stand-in system, the fake Authentik API), a
 * Pulumi project whose program is NixMox's own index.ts, its own file backend, engine home, passphrase and deploy
 * key, and one stack configured for the twin. What `nixmox twin up` runs, what the end-to-end tests run, and what an
 * Automation API script can use (docs/twin-automation.ts):
 *
 *   const homelab = await startTwinHomelab({ projectRoot, manifest, stateDir, prefix: "twhl1" });
 *   const pulumi = await PulumiCommand.get({ root: homelab.pulumiRoot });      // the engine, inside the twin's world
 *   const stack = await LocalWorkspace.selectStack({ stackName: homelab.stack, workDir: homelab.projectDir }, { pulumiCommand: pulumi, envVars: homelab.env });
 *   await stack.up();
 *   await homelab.stop();
 *
 * The stack's config points at the twin: its API endpoint and a token holding exactly the role README.md tells users
 * to create, the template the twin serves at the template URL (with its checksum), and a deploy key made for the
 * twin. The manifest is the user's, unchanged. Runs as root (network namespaces, mounts).
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { buildTemplate, startTwin, type Twin } from "./index";
import { run } from "./hosts/run";

/** The template URL and file name a twin stack uses (nixmox:templateUrl, nixmox:templateFileName). */
export const twinTemplate = {
  url: "https://hydra.nixos.org/job/nixos/twin/nixos.proxmoxLXC.x86_64-linux/latest/download-by-type/file/system-tarball",
  fileName: "nixos-twin-proxmox-lxc-x86_64-linux.tar.xz",
};

export interface TwinHomelabOptions {
  /** The NixMox project: the folder holding Pulumi.yaml and index.ts. */
  projectRoot: string;
  /** The service manifest to deploy (absolute, or relative to the working directory). */
  manifest: string;
  /** Where everything of this homelab lives (twin state, engine project, state backend, keys). */
  stateDir: string;
  /** Names the twin's network namespaces (2-12 lowercase letters and digits). */
  prefix: string;
  /** @default "twin" */
  stack?: string;
  /** The Pulumi CLI (an absolute path). @default the `pulumi` on PATH */
  pulumi?: string;
  /** More plain stack config, `nixmox:<key>` → value. @default {} */
  config?: Record<string, string>;
}

export interface EngineRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall-clock duration (ms). */
  ms: number;
}

export interface RunOptions {
  input?: string;
  /** Resolve instead of rejecting when the command fails. */
  allowFailure?: boolean;
  /** Called with the child once it runs (a test that kills the engine mid-run). */
  onSpawn?: (pid: number) => void;
  /** Runs the child in a process group of its own (its pid is the group's), so its whole tree can be ended. */
  detached?: boolean;
  onStdout?: (text: string) => void;
  onStderr?: (text: string) => void;
  env?: Record<string, string>;
}

export interface TwinHomelab {
  twin: Twin;
  /** The engine's project folder (Pulumi.yaml whose `main` is NixMox's index.ts). */
  projectDir: string;
  stack: string;
  /** The environment the engine runs with (backend, engine home, passphrase, the twin's certificate). */
  env: Record<string, string>;
  /** A folder whose `bin/pulumi` runs the real CLI inside the twin's world: `PulumiCommand.get({ root })`. */
  pulumiRoot: string;
  /** The deploy key (private key file, public key line). */
  deployKey: { privateKeyFile: string; publicKey: string };
  /** The manifest the stack deploys (absolute). */
  manifest: string;
  /** The stack's Proxmox API token (`nixmox@pve!twin=<secret>`), holding README.md's role. */
  apiToken: string;
  /** `pulumi ARGS` in the project folder, inside the world. */
  pulumi(args: string[], options?: RunOptions): Promise<EngineRun>;
  /** `argv` inside the world (an SSH client, a probe), from the project folder, with the engine's environment. */
  command(argv: string[], options?: RunOptions): Promise<EngineRun>;
  /** `pulumi config set` of plain values and secrets (`--path` for keys with dots after the namespace). */
  configure(values: Record<string, string>, secrets?: Record<string, string>, stack?: string): Promise<void>;
  /** Another stack of the same project on the same twin, configured like the first one, deploying `manifest`. */
  initStack(stack: string, manifest: string): Promise<void>;
  /** Stops the twin (every host, every namespace); the state folder stays unless `remove`. */
  stop(options?: { remove?: boolean }): Promise<void>;
}

/** The privileges of README.md's `pveum role add NixMox -privs "…"`: the one role users grant NixMox. */
export function readmeRolePrivileges(projectRoot: string): string[] {
  const match = /pveum role add NixMox -privs "([^"]+)"/.exec(readFileSync(path.join(projectRoot, "README.md"), "utf8"));
  if (!match) throw new Error("README.md has no `pveum role add NixMox -privs \"…\"` line");
  return match[1]!.split(/\s+/).filter(Boolean);
}

/** Runs `argv` to its end, asynchronously (the twin's API answers from this very process). */
export function runProcess(argv: string[], options: RunOptions & { cwd?: string; env?: NodeJS.ProcessEnv | Record<string, string> } = {}): Promise<EngineRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const [command, ...args] = argv;
    const child = spawn(command!, args, { cwd: options.cwd, env: options.env as NodeJS.ProcessEnv, stdio: ["pipe", "pipe", "pipe"], detached: options.detached ?? false });
    if (child.pid !== undefined) options.onSpawn?.(child.pid);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      options.onStdout?.(chunk.toString());
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      options.onStderr?.(chunk.toString());
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(options.input ?? "");
    child.on("error", reject);
    child.on("close", (status, signal) => {
      const result = { status, signal, stdout, stderr, ms: Date.now() - started };
      if (status !== 0 && !options.allowFailure) reject(new Error(`${argv.join(" ")} exited ${status ?? signal}:\n${tail(stdout)}\n${tail(stderr)}`));
      else resolve(result);
    });
  });
}

/** The end of a long output, for an error message. */
function tail(text: string, chars = 6000): string {
  return text.length > chars ? `…${text.slice(-chars)}` : text;
}

/** Finds `name` on PATH (absolute path), or null. */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return null;
}

/**
 * The environment the real engine runs with against a twin: the engine's folder, then the Node that runs the program
 * (the language host runs the `node` on PATH); a file backend and engine home under `stateRoot`; no update check, no
 * plugin download (the world has no route out); bpg (Go) and NixMox's own Proxmox calls (Node) verifying the twin's
 * certificate, as with nixmox:proxmoxInsecure false. This process's backend, passphrase file and access token are
 * left out.
 */
export function engineEnvironment(options: { engineBin: string; stateRoot: string; passphrase: string; certificateFile: string }): Record<string, string> {
  const { PULUMI_BACKEND_URL: _backend, PULUMI_CONFIG_PASSPHRASE_FILE: _file, PULUMI_ACCESS_TOKEN: _token, ...inherited } = process.env;
  return {
    ...(inherited as Record<string, string>),
    PATH: [options.engineBin, path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter),
    PULUMI_HOME: path.join(options.stateRoot, "home"),
    PULUMI_BACKEND_URL: `file://${path.join(options.stateRoot, "state")}`,
    PULUMI_CONFIG_PASSPHRASE: options.passphrase,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_NODEJS_TRANSPILE_ONLY: "true",
    SSL_CERT_FILE: options.certificateFile,
    NODE_EXTRA_CA_CERTS: options.certificateFile,
    NO_COLOR: "1",
  };
}

/** Reads `file`, or writes `make()` to it first (mode 0600): what must stay the same from one run to the next. */
function kept(file: string, make: () => string): string {
  if (!existsSync(file)) writeFileSync(file, make(), { mode: 0o600 });
  return readFileSync(file, "utf8");
}

export async function startTwinHomelab(options: TwinHomelabOptions): Promise<TwinHomelab> {
  const stateDir = path.resolve(options.stateDir);
  const manifest = path.resolve(options.manifest);
  const stack = options.stack ?? "twin";
  const pulumiBinary = options.pulumi ?? onPath("pulumi");
  if (!pulumiBinary) throw new Error("twin: the Pulumi CLI is not on PATH (`export PATH=\"$(npm run -s engine:bin):$PATH\"` gives the one NixMox tests with)");
  for (const dir of ["project", "state", "home", "engine/bin", "twin"]) mkdirSync(path.join(stateDir, dir), { recursive: true });

  // What stays the same across runs of this homelab: the template, the token, the passphrase, the deploy key.
  const template = path.join(stateDir, "template.tar.xz");
  if (!existsSync(template)) await buildTemplate(template);
  const templateSha256 = createHash("sha256").update(readFileSync(template)).digest("hex");
  const tokenSecret = kept(path.join(stateDir, "token"), () => randomUUID()).trim();
  const passphrase = kept(path.join(stateDir, "passphrase"), () => randomBytes(24).toString("hex")).trim();
  const privateKeyFile = path.join(stateDir, "deploy");
  if (!existsSync(privateKeyFile)) await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nixmox-twin", "-f", privateKeyFile]);
  const deployKey = { privateKeyFile, publicKey: readFileSync(`${privateKeyFile}.pub`, "utf8").trim() };
  const authid = "nixmox@pve!twin";

  const twin = await startTwin({
    prefix: options.prefix,
    stateDir: path.join(stateDir, "twin"),
    tokens: [{ authid, secret: tokenSecret, acl: [{ path: "/", privileges: readmeRolePrivileges(options.projectRoot) }] }],
    internet: { [twinTemplate.url]: { path: template } },
  });
  try {
    const projectDir = path.join(stateDir, "project");
    const pulumiYaml = readFileSync(path.join(options.projectRoot, "Pulumi.yaml"), "utf8").replace(/^main: index\.ts$/m, `main: ${path.join(options.projectRoot, "index.ts")}`);
    if (!/^main: \//m.test(pulumiYaml)) throw new Error(`${options.projectRoot}/Pulumi.yaml has no \`main: index.ts\` line`);
    writeFileSync(path.join(projectDir, "Pulumi.yaml"), pulumiYaml);

    const env = engineEnvironment({ engineBin: path.dirname(pulumiBinary), stateRoot: stateDir, passphrase, certificateFile: twin.certificateFile });
    const pulumiRoot = path.join(stateDir, "engine");
    const wrapper = path.join(pulumiRoot, "bin", "pulumi");
    writeFileSync(wrapper, `#!/bin/sh\n# The real Pulumi CLI inside the twin's world (${twin.world.netns}).\nexec ${twin.command([pulumiBinary]).map((word) => `'${word}'`).join(" ")} "$@"\n`);
    chmodSync(wrapper, 0o755);

    const command = (argv: string[], runOptions: RunOptions = {}) => runProcess(twin.command(argv), { ...runOptions, cwd: projectDir, env: { ...env, ...(runOptions.env ?? {}) } });
    const pulumi = (args: string[], runOptions: RunOptions = {}) => command([pulumiBinary, ...args], runOptions);
    const configure = async (values: Record<string, string>, secrets: Record<string, string> = {}, onStack = stack) => {
      const set = (key: string, value: string, secret: boolean) =>
        pulumi(["config", "set", "--stack", onStack, secret ? "--secret" : "--plaintext", ...(key.split(":")[1]!.includes(".") ? ["--path"] : []), key], { input: value });
      for (const [key, value] of Object.entries(values)) await set(key, value, false);
      for (const [key, value] of Object.entries(secrets)) await set(key, value, true);
    };
    const initStack = async (name: string, stackManifest: string) => {
      const stacks = await pulumi(["stack", "ls", "--json"]);
      if (!(JSON.parse(stacks.stdout) as Array<{ name: string }>).some((entry) => entry.name === name)) {
        await pulumi(["stack", "init", name, "--non-interactive"]);
      }
      await configure({
        "nixmox:manifest": path.resolve(stackManifest),
        "nixmox:proxmoxEndpoint": twin.endpoint,
        "nixmox:proxmoxNode": "pve",
        "nixmox:templateUrl": twinTemplate.url,
        "nixmox:templateFileName": twinTemplate.fileName,
        "nixmox:templateSha256": templateSha256,
        // The deploy key is the twin's own, which the user's manifest cannot list in network.ssh_keys.root.
        "nixmox:deployKeyCheck": "false",
        ...(options.config ?? {}),
      }, {
        "nixmox:proxmoxApiToken": `${authid}=${tokenSecret}`,
        "nixmox:sshPrivateKey": readFileSync(privateKeyFile, "utf8"),
      }, name);
    };
    await initStack(stack, manifest);

    return {
      twin,
      projectDir,
      stack,
      env,
      pulumiRoot,
      deployKey,
      manifest,
      apiToken: `${authid}=${tokenSecret}`,
      pulumi,
      command,
      configure,
      initStack,
      stop: async (stopOptions = {}) => {
        await twin.stop();
        if (stopOptions.remove) await run("rm", ["-rf", "--", stateDir]);
      },
    };
  } catch (error) {
    await twin.stop();
    throw error;
  }
}
