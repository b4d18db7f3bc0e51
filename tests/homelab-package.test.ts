// Real processes, no mocks: NixMox as a dependency of a homelab of its own, as a user gets it. `npm pack` of this
// repository, `nixmox init` into a temp folder, `npm install` there (from the npm registry's cache: the same
// packages NixMox's own lock file installs), then the installed CLI, `tsc` and the real Pulumi engine
// (tools/engine) in that folder. Not proven here: a git dependency (npm's own build of a clone), a real Proxmox.
import { strict as assert } from "node:assert";
import { execFileSync, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { parse } from "yaml";
import { engineEnvironment, repoDir, startRecordingEndpoint } from "./support/real-engine";

const bin = path.join(repoDir, "bin", "nixmox.js");

describe("a homelab of its own: nixmox init, NixMox installed from npm pack", function () {
  this.timeout(600_000);
  let root: string;
  let homelab: string;
  let tarball: string;
  /** How many resources the offline preview of the starter manifest registers (the stack included). */
  let offlineCount = 0;

  /** The installed CLI in the homelab folder as `npx nixmox` runs it: its node_modules/.bin (and Node 22) first on PATH. */
  const nixmox = (args: string[], env: NodeJS.ProcessEnv = process.env): SpawnSyncReturns<string> =>
    spawnSync("nixmox", args, {
      cwd: homelab,
      env: { ...env, PATH: [path.join(homelab, "node_modules", ".bin"), env.PATH ?? ""].join(path.delimiter) },
      encoding: "utf8",
      timeout: 300_000,
      maxBuffer: 64 * 1024 * 1024,
    });

  before(() => {
    root = mkdtempSync(path.join(tmpdir(), "nixmox-homelab-"));
    const packed = spawnSync("npm", ["pack", "--silent", "--pack-destination", root], { cwd: repoDir, encoding: "utf8", timeout: 300_000 });
    assert.equal(packed.status, 0, packed.stderr);
    tarball = path.join(root, packed.stdout.trim().split("\n").pop()!);
    homelab = path.join(root, "my-homelab");
    const init = spawnSync(process.execPath, [bin, "init", homelab, "--nixmox", `file:${tarball}`], { encoding: "utf8" });
    assert.equal(init.status, 0, init.stderr);
    assert.match(init.stdout, /^created homelab project "my-homelab" in .*my-homelab: Pulumi\.yaml, package\.json, index\.ts, tsconfig\.json, service-manifest\.nix, README\.md, \.gitignore\n/);
    const install = spawnSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], { cwd: homelab, encoding: "utf8", timeout: 600_000 });
    assert.equal(install.status, 0, `${install.stdout}\n${install.stderr}`);
  });
  after(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("scaffolds Pulumi.yaml with NixMox's whole config schema, the starter manifest as nixmox:manifest's default", () => {
    const own = parse(readFileSync(path.join(repoDir, "Pulumi.yaml"), "utf8")) as { name: string; runtime: unknown; main: string; config: Record<string, { default?: unknown }> };
    const scaffolded = parse(readFileSync(path.join(homelab, "Pulumi.yaml"), "utf8")) as typeof own;
    // Pulumi types config keys only in the project's own namespace: the project keeps NixMox's name.
    assert.equal(scaffolded.name, "nixmox");
    assert.equal(scaffolded.main, "index.ts");
    assert.deepEqual(scaffolded.runtime, own.runtime);
    assert.deepEqual(Object.keys(scaffolded.config), Object.keys(own.config));
    assert.deepEqual({ ...scaffolded.config, "nixmox:manifest": undefined }, { ...own.config, "nixmox:manifest": undefined });
    assert.equal(scaffolded.config["nixmox:manifest"].default, "service-manifest.nix");
    assert.match(readFileSync(path.join(homelab, "index.ts"), "utf8"), /^import \{ nixmox \} from "nixmox";\n\nexport = nixmox;\n$/m);
    const pkg = JSON.parse(readFileSync(path.join(homelab, "package.json"), "utf8")) as { name: string; dependencies: Record<string, string> };
    const nixmoxPackage = JSON.parse(readFileSync(path.join(repoDir, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    assert.deepEqual(pkg.dependencies, { nixmox: `file:${tarball}`, "@pulumi/pulumi": nixmoxPackage.dependencies["@pulumi/pulumi"], typescript: nixmoxPackage.dependencies.typescript });
    assert.equal(pkg.name, "my-homelab");
    assert.deepEqual(readFileSync(path.join(homelab, ".gitignore"), "utf8").split("\n").filter((line) => line && !line.startsWith("#")), ["node_modules/", "/.nixmox/", "/out/", "*.log"]);
  });

  it("installs NixMox as a copy holding compiled JavaScript, its declarations and its data files, no link and no TypeScript source", () => {
    const installed = path.join(homelab, "node_modules", "nixmox");
    assert.ok(!lstatSync(installed).isSymbolicLink());
    const walk = (dir: string): string[] => readdirSync(dir, { withFileTypes: true }).flatMap((entry) => (entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]));
    const files = walk(installed).map((file) => path.relative(installed, file));
    assert.deepEqual(files.filter((file) => lstatSync(path.join(installed, file)).isSymbolicLink()), []);
    assert.deepEqual(files.filter((file) => file.endsWith(".ts") && !file.endsWith(".d.ts") && !file.startsWith("templates/")), []);
    for (const file of ["dist/program.js", "dist/program.d.ts", "manifest/service-manifest.nix", "nixos/core.nix", "components/activation/nixmox-activate.sh", "components/secrets/deliver-secrets.sh", "templates/homelab/gitignore"]) {
      assert.ok(files.includes(file), file);
    }
    assert.ok(!files.some((file) => file.startsWith("tests/")), "no tests in the package");
  });

  it("runs validate, plan, graph (also as SVG), render and preview --offline from the homelab folder on its own manifest", () => {
    const validate = nixmox(["validate"]);
    assert.equal(validate.status, 0, validate.stderr);
    // The starter has no builder service, so its small hosts build NixOS themselves: validate says so (issue 18).
    assert.equal(validate.stdout,
      "service-manifest.nix: valid: 4 enabled services, 3 waves, 1 route\n" +
      "  warning: builds on the host itself with less memory than a NixOS evaluation needs (2048 MiB of memory + swap; nixpkgs#85148, nix#2664): " +
      "caddy (1024 MiB + 512 MiB swap), dns (512 MiB + 512 MiB swap), vaultwarden (1024 MiB + 512 MiB swap); add a service of kind builder, set build.on = \"controller\", or give them more memory\n");
    const plan = nixmox(["plan", "--json"]);
    assert.equal(plan.status, 0, plan.stderr);
    assert.deepEqual((JSON.parse(plan.stdout) as { services: Array<{ name: string }> }).services.map((service) => service.name).sort(), ["caddy", "dns", "postgresql", "vaultwarden"]);
    const graph = nixmox(["graph", "--format", "dot"]);
    assert.equal(graph.status, 0, graph.stderr);
    assert.match(graph.stdout, /"vaultwarden" -> "postgresql"/);
    const svg = nixmox(["graph", "--format", "svg"]);
    assert.equal(svg.status, 0, svg.stderr);
    assert.match(svg.stdout, /^<\?xml [^\n]*\n[\s\S]*<title>vaultwarden&#45;&gt;postgresql<\/title>[\s\S]*<\/svg>\n$/);
    const render = nixmox(["render", "--out", path.join(root, "out")]);
    assert.equal(render.status, 0, render.stderr);
    assert.ok(existsSync(path.join(root, "out", "vaultwarden", "flake.nix")));
    const preview = nixmox(["preview", "--offline"]);
    assert.equal(preview.status, 0, preview.stderr);
    const summary = /^(\d+) resources: \d+ custom, 5 components, 1 stack; nothing was deployed \(offline preview under mocks\)\.$/m.exec(preview.stdout);
    assert.ok(summary, preview.stdout.slice(-300));
    offlineCount = Number(summary[1]);
    // 4 services × 6 children, their components, the stack, provider, template, CA and generated secrets.
    assert.ok(offlineCount > 4 * 7, String(offlineCount));
  });

  it("type-checks index.ts against the installed package's declarations with tsc", () => {
    const tsc = spawnSync(process.execPath, [path.join(homelab, "node_modules", "typescript", "bin", "tsc"), "-p", homelab], { encoding: "utf8" });
    assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
  });

  it("refuses to scaffold over files that exist, naming them and writing nothing", () => {
    const result = spawnSync(process.execPath, [bin, "init", homelab, "--nixmox", `file:${tarball}`], { encoding: "utf8" });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /^nixmox init: .*my-homelab already holds Pulumi\.yaml, package\.json, index\.ts, tsconfig\.json, service-manifest\.nix, README\.md, \.gitignore; nothing was written \(choose an empty folder\)\n$/);
  });

  describe("with the real engine (tools/engine)", () => {
    let env: NodeJS.ProcessEnv;
    let endpoint: Awaited<ReturnType<typeof startRecordingEndpoint>>;
    const pulumi = (args: string[], input?: string) => {
      const result = spawnSync("pulumi", args, { cwd: homelab, env, encoding: "utf8", input, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
      return result;
    };
    const must = (args: string[], input?: string) => {
      const result = pulumi(args, input);
      assert.equal(result.status, 0, `pulumi ${args.join(" ")}: ${result.stdout}\n${result.stderr}`);
      return result;
    };

    before(async () => {
      for (const dir of ["state", "home"]) mkdirSync(path.join(root, dir));
      env = engineEnvironment(path.join(root, "home"), `file://${path.join(root, "state")}`);
      endpoint = await startRecordingEndpoint();
      must(["stack", "init", "homelab", "--non-interactive"]);
      const key = path.join(root, "deploy");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "homelab-test", "-f", key]);
      must(["config", "set", "nixmox:proxmoxEndpoint", endpoint.url]);
      must(["config", "set", "nixmox:proxmoxInsecure", "true"]);
      must(["config", "set", "nixmox:proxmoxNode", "pve"]);
      must(["config", "set", "nixmox:templateSha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]);
      must(["config", "set", "--secret", "nixmox:proxmoxApiToken"], "nixmox@pve!deploy=00000000-0000-0000-0000-000000000000");
      must(["config", "set", "--secret", "nixmox:sshPrivateKey"], readFileSync(key, "utf8"));
    });
    after(async () => {
      await endpoint?.stop();
    });

    it("runs plain `pulumi preview` there: NixMox's program on the homelab's manifest (nixmox:manifest's default)", () => {
      const preview = must(["preview", "--json"]);
      const steps = (JSON.parse(preview.stdout) as { steps: Array<{ op: string; urn: string }> }).steps;
      // The engine creates exactly what the offline preview registers.
      assert.equal(steps.filter((step) => step.op === "create").length, offlineCount);
      assert.ok(steps.some((step) => step.urn.endsWith("::vaultwarden-rebuild")));
      // The preview warns that up will refuse the placeholder key and the unlisted deploy key.
      assert.match(preview.stdout, /network\.ssh_keys\.root still holds the example's placeholder key/);
    });

    it("`pulumi up` refuses the starter manifest's placeholder key before Proxmox is asked anything, without a stack trace", () => {
      const up = pulumi(["up", "--yes", "--skip-preview"]);
      assert.notEqual(up.status, 0);
      assert.match(up.stdout, /error: deploy key: 2 problems\n\s+- network: ssh_keys\.root does not list the deploy key/);
      assert.doesNotMatch(up.stdout, /unhandled exception|at checkDeployKey/);
      assert.deepEqual(endpoint.requests, []);
    });

    it("`nixmox secrets check` and `nixmox preview` act on the selected stack there, and refuse another manifest showing both paths", () => {
      const check = nixmox(["secrets", "check"], env);
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /^stack homelab, manifest service-manifest\.nix:\n/);
      assert.match(check.stdout, /^vaultwarden\/db_password +generated +postgresql,vaultwarden /m);
      const example = path.join(homelab, "node_modules", "nixmox", "manifest", "service-manifest.nix");
      const refused = nixmox(["preview", example], env);
      assert.equal(refused.status, 2);
      assert.equal(
        refused.stderr,
        `nixmox: the manifest argument node_modules/nixmox/manifest/service-manifest.nix is not the manifest of stack "homelab", which deploys service-manifest.nix (its nixmox:manifest): ` +
          `drop the argument to use the stack's, or point the stack at this file with \`pulumi config set --stack homelab nixmox:manifest ${example}\`\n`,
      );
      const engine = nixmox(["preview"], env);
      assert.equal(engine.status, 0, engine.stderr);
      // The refused up above left the stack resource itself: everything else is still to create.
      assert.match(engine.stdout, new RegExp(`^Resources:\\n +\\+ ${offlineCount - 1} to create\\n +1 unchanged\\n`, "m"), engine.stdout.slice(-600));
    });
  });
});
