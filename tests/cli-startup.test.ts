// Real processes: the build (`npm run build` = bin/build.js, which `npm ci` runs as `prepare`) and the built
// `nixmox` as a user runs it, plain JavaScript from dist/. Which modules each command loads is read from the
// child's own require.cache at exit. No timing is asserted here: bench/cli-startup.ts measures it.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { exampleBuildWarning } from "./support/manifests";

const root = path.resolve(__dirname, "..");
const bin = path.join(root, "bin", "nixmox.js");
const example = path.join(root, "manifest", "service-manifest.nix");

interface Loaded {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Files in the child's require.cache when it exited, relative to the project. */
  modules: string[];
}

describe("cli start-up: compiled once, loading only what a command needs", function () {
  this.timeout(180_000);
  let dir: string;
  let recorder: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-startup-"));
    recorder = path.join(dir, "record-modules.js");
    // Preloaded into the child: writes its require.cache keys to the file named by NIXMOX_TEST_MODULES at exit.
    writeFileSync(recorder, 'process.on("exit", () => require("node:fs").writeFileSync(process.env.NIXMOX_TEST_MODULES, JSON.stringify(Object.keys(require.cache))));\n');
    const build = spawnSync(process.execPath, [path.join(root, "bin", "build.js")], { cwd: root, encoding: "utf8" });
    assert.equal(build.status, 0, build.stderr);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function run(args: string[], fromSource = false): Loaded {
    const record = path.join(dir, `modules-${Math.random().toString(16).slice(2)}.json`);
    const env: NodeJS.ProcessEnv = { ...process.env, NIXMOX_TEST_MODULES: record };
    if (fromSource) env.NIXMOX_FROM_SOURCE = "1";
    else delete env.NIXMOX_FROM_SOURCE;
    const result = spawnSync(process.execPath, ["--require", recorder, bin, ...args], { cwd: root, env, encoding: "utf8", timeout: 120_000 });
    const modules = existsSync(record) ? (JSON.parse(readFileSync(record, "utf8")) as string[]).map((file) => path.relative(root, file)) : [];
    return { status: result.status, stdout: result.stdout, stderr: result.stderr, modules };
  }

  const pulumiSdk = (modules: string[]) => modules.filter((file) => file.startsWith("node_modules/@pulumi/"));

  it("builds the program, its type declarations and the CLI into dist/, and no data file or link: the compiled code reads them from the package folder", () => {
    for (const file of ["dist/cli/main.js", "dist/index.js", "dist/program.js", "dist/program.d.ts", "dist/manifest/load.js", "dist/components/nixos-service.js"]) assert.ok(existsSync(path.join(root, file)), file);
    const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]));
    const other = walk(path.join(root, "dist")).filter((file) => lstatSync(file).isSymbolicLink() || !/\.(js|d\.ts)$|\/\.(tsbuildinfo|built)$/.test(file));
    assert.deepEqual(other.map((file) => path.relative(root, file)), []);
    assert.ok(readFileSync(path.join(root, ".gitignore"), "utf8").split("\n").includes("/dist/"), "dist/ is gitignored");
  });

  it("runs the built JavaScript without tsx, and validate never loads the Pulumi SDK", () => {
    const result = run(["validate", example]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${example}: valid: 7 enabled services, 4 waves, 4 routes\n${exampleBuildWarning}`);
    assert.ok(result.modules.includes("dist/cli/main.js"));
    assert.ok(!result.modules.some((file) => file.startsWith("cli/") || file.endsWith(".ts")), "no TypeScript source is loaded");
    assert.deepEqual(result.modules.filter((file) => file.includes("node_modules/tsx/")), []);
    assert.deepEqual(pulumiSdk(result.modules), []);
    // Only the invoked command's file registers.
    assert.deepEqual(result.modules.filter((file) => file.startsWith("dist/cli/commands/")), ["dist/cli/commands/validate.js"]);
    // The YAML parser loads only for .yaml manifests (manifest/load.ts requires it where it parses).
    assert.deepEqual(result.modules.filter((file) => file.includes("node_modules/yaml/")), []);
  });

  it("--help and --version load neither the manifest code nor the Pulumi SDK", () => {
    const version = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")).version as string;
    const versionRun = run(["--version"]);
    assert.deepEqual([versionRun.status, versionRun.stdout, versionRun.stderr], [0, `${version}\n`, ""]);
    const help = run(["--help"]);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: nixmox \[options\] \[command\]/);
    for (const result of [versionRun, help]) {
      assert.deepEqual(pulumiSdk(result.modules), []);
      assert.deepEqual(result.modules.filter((file) => /node_modules\/(zod|yaml|ssh2)\//.test(file)), []);
    }
  });

  it("loads the Pulumi SDK for the commands that need it (preview --offline), also from the sources", () => {
    const built = run(["preview", "--offline", "--json", example]);
    assert.equal(built.status, 0, built.stderr);
    assert.ok(pulumiSdk(built.modules).length > 0);
    const source = run(["validate", example], true);
    assert.equal(source.status, 0, source.stderr);
    assert.ok(source.modules.includes("cli/main.ts"));
    assert.deepEqual(pulumiSdk(source.modules), []);
  });

  it("fails without a build, in one line naming the command that makes it", () => {
    const copy = path.join(dir, "checkout");
    spawnSync("mkdir", ["-p", path.join(copy, "bin")]);
    writeFileSync(path.join(copy, "bin", "nixmox.js"), readFileSync(bin));
    const result = spawnSync(process.execPath, [path.join(copy, "bin", "nixmox.js"), "--help"], { encoding: "utf8", env: { ...process.env, NIXMOX_FROM_SOURCE: "" } });
    assert.equal(result.status, 2);
    assert.equal(result.stderr, `nixmox: not built yet: run \`npm run build\` in ${copy} (npm ci does it)\n`);
  });

  it("fails a usage error in one line and a pointer to the help, not the whole help", () => {
    const result = run(["valdate"]);
    assert.equal(result.status, 2);
    assert.equal(result.stderr, "error: unknown command 'valdate'\n(Did you mean validate?)\n(run `nixmox --help` or `nixmox <command> --help` for usage)\n");
  });

  it("fails on a missing manifest in at most 3 lines on stderr, exit 1", () => {
    const missing = "/nonexistent/homelab.yaml";
    // A stack "t" whose nixmox:manifest is the missing file: secrets check reads the stack's manifest.
    const project = path.join(dir, "project");
    spawnSync("mkdir", ["-p", project]);
    writeFileSync(path.join(project, "Pulumi.yaml"), "name: t\nruntime: nodejs\n");
    writeFileSync(path.join(project, "Pulumi.t.yaml"), `config:\n  nixmox:manifest: ${missing}\n`);
    const commands: Record<string, string[]> = {
      validate: ["validate", missing],
      plan: ["plan", missing],
      graph: ["graph", missing],
      render: ["render", missing, "--out", dir],
      status: ["status", missing, "--identity", recorder, "--known-hosts", recorder],
      "secrets check": ["secrets", "check", missing, "--stack", "t", "--project-dir", project],
      "secrets import": ["secrets", "import", recorder, "--manifest", missing],
      "preview --offline": ["preview", "--offline", missing],
    };
    for (const [command, args] of Object.entries(commands)) {
      const result = run(args);
      assert.equal(result.status, 1, `${command}: ${result.stderr}`);
      assert.equal(result.stderr, "/nonexistent/homelab.yaml: 1 problem\n  - manifest: file not found; give the path of a .nix, .json or .yaml manifest\n", command);
    }
  });
});
