/**
 * The real Pulumi engine for tests: the CLI, language host and plugins that tools/engine/build.sh builds from the Go
 * module proxy (built here when missing: the first call can take minutes; a build failure fails the test loudly,
 * never skips it), and throwaway projects that run NixMox's own index.ts under it.
 *
 * A project is a temp folder holding only a copy of Pulumi.yaml whose `main` points at this repository's index.ts,
 * its own file backend, PULUMI_HOME and stack files: what `pulumi preview -s NAME` in a user's project folder sees.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";

export const repoDir = path.resolve(__dirname, "..", "..");

let engineBin: string | null = null;

/** The folder holding `pulumi` and the plugins, built if missing (tools/engine/build.sh prints it last). */
export function realEngineBin(): string {
  if (engineBin !== null) return engineBin;
  const result = spawnSync("bash", [path.join(repoDir, "tools", "engine", "build.sh")], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const lines = (result.stdout ?? "").trim().split("\n");
  if (result.status !== 0 || lines.length === 0 || !lines[lines.length - 1].startsWith("/")) {
    throw new Error(`the real Pulumi engine could not be built (tools/engine/build.sh exited ${result.status}); these tests need it:\n${result.stderr}`);
  }
  engineBin = lines[lines.length - 1];
  return engineBin;
}

/** The folder holding the Pulumi CLI 3.206.0, the release before NixMox's minimum (`build.sh old-cli`). */
export function oldPulumiCliBin(): string {
  const result = spawnSync("bash", [path.join(repoDir, "tools", "engine", "build.sh"), "old-cli"], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  const last = (result.stdout ?? "").trim().split("\n").pop() ?? "";
  if (result.status !== 0 || !last.startsWith("/")) throw new Error(`the older Pulumi CLI could not be built (tools/engine/build.sh old-cli exited ${result.status}):\n${result.stderr}`);
  return last;
}

/** The environment every engine run gets: our binaries and Node 22 first on PATH, no network for plugins. */
export function engineEnvironment(home: string, backend: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { PULUMI_BACKEND_URL: _backend, PULUMI_CONFIG_PASSPHRASE_FILE: _file, ...inherited } = process.env;
  return {
    ...inherited,
    PATH: [realEngineBin(), path.join(repoDir, "node_modules", ".bin"), process.env.PATH ?? ""].join(path.delimiter),
    PULUMI_HOME: home,
    PULUMI_BACKEND_URL: backend,
    PULUMI_CONFIG_PASSPHRASE: "nixmox-engine-test",
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    // tsc already type-checks the program in `npm test`; the language host only transpiles.
    PULUMI_NODEJS_TRANSPILE_ONLY: "true",
    NO_COLOR: "1",
    ...extra,
  };
}

/** Writes `dir`/Pulumi.yaml: this repository's, whose `main` points at this repository's index.ts. */
export function writeProjectFile(dir: string): void {
  const pulumiYaml = readFileSync(path.join(repoDir, "Pulumi.yaml"), "utf8").replace(/^main: index\.ts$/m, `main: ${path.relative(dir, path.join(repoDir, "index.ts"))}`);
  if (!/^main: \.\.\//m.test(pulumiYaml)) throw new Error("Pulumi.yaml has no `main: index.ts` line to point at the repository");
  writeFileSync(path.join(dir, "Pulumi.yaml"), pulumiYaml);
}

export interface EngineProject {
  dir: string;
  stack: string;
  env: NodeJS.ProcessEnv;
  /** Runs the compiled `nixmox` CLI (bin/nixmox.js) in the project folder with the engine's environment. */
  nixmox(args: string[], options?: { input?: string }): SpawnSyncReturns<string>;
  /** Runs `pulumi ARGS` in the project folder; throws with its output unless it exits 0 (or `allowFailure`). */
  pulumi(args: string[], options?: { input?: string; allowFailure?: boolean }): SpawnSyncReturns<string>;
  /** Sets the stack config NixMox needs; `secrets` are `nixmox:secrets.<service>.<name>` values. */
  configure(settings: { manifest: string; endpoint: string; secrets?: Record<string, Record<string, string>>; extra?: Record<string, string> }): void;
  remove(): void;
}

/**
 * A throwaway project folder and file backend with one stack, `stack`, initialised by the real CLI (or none, when
 * `initStack` is false: the test creates it).
 */
export function createEngineProject(stack = "homelab", initStack = true): EngineProject {
  const root = mkdtempSync(path.join(tmpdir(), "nixmox-engine-"));
  const dir = path.join(root, "project");
  for (const sub of ["project", "state", "home"]) mkdirSync(path.join(root, sub));
  writeProjectFile(dir);
  const env = engineEnvironment(path.join(root, "home"), `file://${path.join(root, "state")}`);
  const pulumi = (args: string[], options: { input?: string; allowFailure?: boolean } = {}) => {
    const result = spawnSync("pulumi", args, { cwd: dir, env, encoding: "utf8", input: options.input, maxBuffer: 256 * 1024 * 1024, timeout: 600_000 });
    if (result.status !== 0 && !options.allowFailure) {
      throw new Error(`pulumi ${args.join(" ")} exited ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`);
    }
    return result;
  };
  if (initStack) pulumi(["stack", "init", stack, "--non-interactive"]);
  const deployKey = path.join(root, "deploy");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "nixmox-engine-test", "-f", deployKey]);
  return {
    dir,
    stack,
    env,
    pulumi,
    nixmox: (args, options = {}) =>
      spawnSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), ...args], { cwd: dir, env, encoding: "utf8", input: options.input, maxBuffer: 256 * 1024 * 1024, timeout: 600_000 }),
    configure(settings) {
      const set = (key: string, value: string, secret = false, usePath = false) =>
        pulumi(["config", "set", "--stack", stack, ...(secret ? ["--secret"] : ["--plaintext"]), ...(usePath ? ["--path"] : []), key], { input: value });
      set("nixmox:manifest", settings.manifest);
      set("nixmox:proxmoxEndpoint", settings.endpoint);
      set("nixmox:proxmoxInsecure", "true");
      set("nixmox:proxmoxNode", "pve");
      set("nixmox:templateSha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
      set("nixmox:proxmoxApiToken", "nixmox@pve!deploy=00000000-0000-0000-0000-000000000000", true);
      set("nixmox:sshPrivateKey", readFileSync(deployKey, "utf8"), true);
      // These stacks deploy the example manifests (their placeholder admin key, a throwaway deploy key they do not
      // list): the override of up's refusal. The refusal itself: tests/homelab-package.test.ts, tests/deploy-key.test.ts.
      set("nixmox:deployKeyCheck", "false");
      for (const [key, value] of Object.entries(settings.extra ?? {})) set(key, value);
      for (const [service, values] of Object.entries(settings.secrets ?? {})) {
        for (const [name, value] of Object.entries(values)) set(`nixmox:secrets.${service}.${name}`, value, true, true);
      }
    },
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** A `pulumi preview --json` step's new state, as the engine reports it (the fields NixMox's records carry). */
export interface EngineState {
  urn: string;
  type: string;
  custom?: boolean;
  parent?: string;
  provider?: string;
  dependencies?: string[];
  protect?: boolean;
  deleteBeforeReplace?: boolean;
  retainOnDelete?: boolean;
  ignoreChanges?: string[];
  replaceOnChanges?: string[];
  replaceWith?: string[];
  customTimeouts?: { create?: string; update?: string; delete?: string };
  additionalSecretOutputs?: string[];
}

export interface EnginePreview {
  steps: Array<{ op: string; urn: string; newState?: EngineState; oldState?: EngineState; diffReasons?: string[]; replaceReasons?: string[] }>;
  diagnostics?: Array<{ urn?: string; message: string; severity: string }>;
  changeSummary?: Record<string, number>;
}

/** Parses `pulumi preview --json` (its stdout is one JSON document). */
export function parsePreview(stdout: string): EnginePreview {
  return JSON.parse(stdout) as EnginePreview;
}

/** The goals of an update plan (`pulumi preview --save-plan FILE`), by URN: the options the engine was asked for. */
export function readPlanGoals(file: string): Record<string, { deleteBeforeReplace?: boolean; protect?: boolean; ignoreChanges?: string[] }> {
  const saved = JSON.parse(readFileSync(file, "utf8")) as { plan?: { resourcePlans?: Record<string, { goal?: Record<string, unknown> }> }; resourcePlans?: Record<string, { goal?: Record<string, unknown> }> };
  const plans = saved.plan?.resourcePlans ?? saved.resourcePlans ?? {};
  return Object.fromEntries(Object.entries(plans).map(([urn, plan]) => [urn, (plan.goal ?? {}) as { deleteBeforeReplace?: boolean }]));
}

/**
 * An HTTPS listener standing in for the Proxmox API that answers 501 to everything and records what it was asked:
 * a test asserts what a command needs from Proxmox by what lands here.
 */
export async function startRecordingEndpoint(): Promise<{ url: string; requests: string[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-endpoint-"));
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1", "-days", "1", "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")], { stdio: "ignore" });
  const requests: string[] = [];
  const server: Server = createServer({ key: readFileSync(path.join(dir, "key.pem")), cert: readFileSync(path.join(dir, "cert.pem")) }, (req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.writeHead(501, { "content-type": "application/json" });
    res.end(JSON.stringify({ errors: { request: "not implemented by this test's endpoint" } }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}/`,
    requests,
    stop: () => new Promise<void>((resolve) => server.close(() => { rmSync(dir, { recursive: true, force: true }); resolve(); })),
  };
}
