// Real processes, no mocks: `node bin/nixmox.js validate|plan|graph|schema` run as a user runs them.
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { loadManifestData, loadPlan } from "../manifest";
import { stringify } from "yaml";
import { customAppHomelab, customAppModules, exampleBuildWarning, shuffleKeys, smallManifest } from "./support/manifests";

const root = path.resolve(__dirname, "..");
const exampleRelative = "manifest/service-manifest.nix";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with the Node that runs the tests (Node 22 from the npm devDependency), from the project root. */
function nixmox(...args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(root, "bin/nixmox.js"), ...args], { cwd: root, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") return reject(error);
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

const stackTraceLine = /^\s+at /m;

describe("cli: validate, plan, graph, schema", function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-cli-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("validate exits 0 on the example with its summary", async () => {
    const run = await nixmox("validate", exampleRelative);
    assert.deepEqual(run, { code: 0, stdout: `${exampleRelative}: valid: 7 enabled services, 4 waves, 4 routes\n${exampleBuildWarning}`, stderr: "" });
  });

  it("validate and plan the older homelab (manifest/examples/older-homelab.nix) with its notes, its warning and no vmids", async () => {
    const older = "manifest/examples/older-homelab.nix";
    const validate = await nixmox("validate", older);
    assert.equal(validate.code, 0, validate.stderr);
    const lines = validate.stdout.trimEnd().split("\n");
    assert.equal(lines[0], `${older}: valid: 7 enabled services, 4 waves, 9 routes`);
    assert.equal(lines.filter((line) => line.startsWith("  note: ")).length, 5);
    // Jellyfin's unused database (issue 19), Alertmanager's port that nothing reaches (the firewall of issue 20), and the
    // hosts that build themselves with too little memory (issue 18).
    assert.deepEqual(lines.filter((line) => line.startsWith("  warning: ")).map((line) => line.slice(0, 70)), ['  warning: service "media": interface.dbs.jellyfin is used by no built', '  warning: service "monitoring": port 9093 is open to no other host (n', "  warning: builds on the host itself with less memory than a NixOS eva"]);
    const plan = await nixmox("plan", older);
    assert.equal(plan.code, 0, plan.stderr);
    assert.ok(plan.stdout.includes("  vaultwarden [vaultwarden] ct (assigned at first deploy)  10.77.0.14/24  vaultwarden.homelab.lan\n"), plan.stdout);
  });

  it("validate --allow-path DIR lets a .nix manifest import from DIR, which it may not read otherwise", async () => {
    const shared = mkdtempSync(path.join(tmpdir(), "nixmox-cli-shared-"));
    try {
      writeFileSync(path.join(shared, "network.nix"), `${JSON.stringify(JSON.stringify(smallManifest().network))}\n`);
      const manifest = smallManifest();
      const file = path.join(dir, "shared.nix");
      writeFileSync(file, `let network = builtins.fromJSON (import ${path.join(shared, "network.nix")}); in builtins.fromJSON ''${JSON.stringify({ ...manifest, network: "@" })}'' // { inherit network; }\n`);
      const refused = await nixmox("validate", file);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, new RegExp(`access to absolute path '${shared}/network\\.nix' is forbidden in restricted mode \\(a \\.nix manifest may read only files inside its own directory, `));
      const allowed = await nixmox("validate", file, "--allow-path", shared);
      assert.deepEqual([allowed.code, allowed.stderr], [0, ""]);
    } finally {
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it("fails validate with exit 1 and every problem, without a stack trace", async () => {
    const manifest = smallManifest();
    manifest.services.app.depend_on = ["caddy"];
    manifest.core_services.caddy.hostname = "a;rm -rf /";
    manifest.services.app.interface.db.host = "postgres";
    const file = path.join(dir, "bad.json");
    writeFileSync(file, JSON.stringify(manifest));
    const run = await nixmox("validate", file);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, "");
    assert.equal(
      run.stderr,
      [
        `${file}: 3 problems`,
        `  - service "caddy": hostname must be a valid DNS name (lower-case letters, digits, '-' and '.'), got "a;rm -rf /"`,
        '  - service "app": depend_on is not a known field (did you mean "depends_on"?)',
        '  - service "app": interface.db.host "postgres" is not the ip, hostname or name of a service of this manifest (did you mean "postgresql"?)',
        "",
      ].join("\n"),
    );
    assert.doesNotMatch(run.stderr, stackTraceLine);
  });

  it("fails validate with exit 1 and file:line:col on a Nix syntax error, without a stack trace", async () => {
    const file = path.join(dir, "broken.nix");
    writeFileSync(file, "{ network = { domain = \"x\" }; }\n");
    const run = await nixmox("validate", file);
    assert.equal(run.code, 1);
    assert.equal(run.stderr, `${file}: 1 problem\n  - manifest: Nix evaluation failed: ${file}:1:28: syntax error, unexpected '}', expecting ';'\n`);
    assert.doesNotMatch(run.stderr, stackTraceLine);
  });

  it("fails validate and render through the compiled CLI with a custom module's syntax error (file:line:col) and its missing import, without a stack trace", async () => {
    // The compiled CLI in dist/, as users run it (npm test builds it first; NIXMOX_FROM_SOURCE would run the sources).
    assert.ok(existsSync(path.join(root, "dist", "manifest", "module-check.js")), "dist/ is not built: run `node bin/build.js` (npm test does)");
    const env = { ...process.env };
    delete env.NIXMOX_FROM_SOURCE;
    const compiled = (...args: string[]) => new Promise<Run>((resolve, reject) => {
      execFile(process.execPath, [path.join(root, "bin/nixmox.js"), ...args], { cwd: root, env, timeout: 60_000 }, (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") return reject(error);
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      });
    });
    const home = mkdtempSync(path.join(dir, "homelab-"));
    mkdirSync(path.join(home, "modules"));
    // customAppModules' mealie.nix with its ';' after `enable = true` lost, and without the mealie-tuning.nix it imports.
    const module = customAppModules()["modules/mealie.nix"].replace("enable = true;", "enable = true");
    writeFileSync(path.join(home, "modules", "mealie.nix"), module);
    const file = path.join(home, "homelab.yaml");
    writeFileSync(file, stringify(customAppHomelab()));
    const expected = [
      `${file}: 2 problems`,
      '  - service "mealie": nixos_modules[0] "modules/mealie.nix" names ./mealie-tuning.nix, which does not exist (relative to modules/mealie.nix)',
      `  - service "mealie": nixos_modules[0] "modules/mealie.nix" is not valid Nix (nix-instantiate --parse): ${home}/modules/mealie.nix:6:19: syntax error, unexpected '=', expecting ';'`,
      "",
    ].join("\n");
    const validate = await compiled("validate", file);
    assert.deepEqual(validate, { code: 1, stdout: "", stderr: expected });
    const out = path.join(home, "out");
    const render = await compiled("render", file, "--out", out);
    assert.deepEqual(render, { code: 1, stdout: "", stderr: expected });
    assert.equal(existsSync(out), false);
    assert.doesNotMatch(validate.stderr + render.stderr, stackTraceLine);
  });

  it("fails with exit 2 and a usage message on an unknown graph format", async () => {
    const run = await nixmox("graph", "--format", "png", exampleRelative);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^error: option '--format <format>' argument 'png' is invalid\. Allowed choices are mermaid, dot, svg\.\n/);
    assert.doesNotMatch(run.stderr, stackTraceLine);
  });

  it("prints plan --json byte-identically across runs and for a JSON copy with shuffled key order", async () => {
    const copyDir = path.join(dir, "copy");
    mkdirSync(path.join(copyDir, "modules"), { recursive: true });
    copyFileSync(path.join(root, "manifest/modules/homepage.nix"), path.join(copyDir, "modules/homepage.nix"));
    const shuffledFile = path.join(copyDir, "manifest.json");
    writeFileSync(shuffledFile, JSON.stringify(shuffleKeys(await loadManifestData(path.join(root, exampleRelative)), 42), null, 2));
    const [first, second, shuffled] = await Promise.all([
      nixmox("plan", "--json", exampleRelative),
      nixmox("plan", "--json", exampleRelative),
      nixmox("plan", "--json", shuffledFile),
    ]);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.stdout, first.stdout);
    assert.equal(shuffled.stdout, first.stdout);
    const plan = JSON.parse(first.stdout) as { waves: string[][]; services: Array<{ name: string }> };
    assert.deepEqual(plan.waves, [["dns"], ["caddy", "postgresql"], ["authentik", "homepage"], ["guacamole", "vaultwarden"]]);
    assert.ok(!first.stdout.includes(root), "the JSON plan must not carry paths of the machine that made it");
  });

  describe("graph", () => {
    let file: string;
    before(() => {
      const manifest = smallManifest();
      manifest.services["web-ui"] = { ip: "10.9.0.30", vmid: 130, nixos_modules: ["modules/web-ui.nix"], depends_on: ["app"] };
      mkdirSync(path.join(dir, "graph/modules"), { recursive: true });
      writeFileSync(path.join(dir, "graph/modules/web-ui.nix"), "{ ... }: { }\n");
      file = path.join(dir, "graph/manifest.json");
      writeFileSync(file, JSON.stringify(manifest));
    });

    it("prints the dependency graph in Mermaid, edges labelled with their reasons, SSO edges dashed", async () => {
      const run = await nixmox("graph", "--format", "mermaid", file);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stdout,
        [
          "graph LR",
          '  app["app"]',
          '  authentik["authentik"]',
          '  caddy["caddy"]',
          '  postgresql["postgresql"]',
          '  web_ui["web-ui"]',
          '  app -.->|"interface.auth.provider"| authentik',
          '  app -->|"depends_on"| caddy',
          `  app -->|"interface.db.host is postgresql's address"| postgresql`,
          `  authentik -->|"interface.db.host is postgresql's address"| postgresql`,
          '  web_ui -->|"depends_on"| app',
          "",
        ].join("\n"),
      );
    });

    it("prints the dependency graph in DOT", async () => {
      const run = await nixmox("graph", "--format", "dot", file);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(
        run.stdout,
        [
          "digraph nixmox {",
          "  rankdir=LR;",
          '  "app";',
          '  "authentik";',
          '  "caddy";',
          '  "postgresql";',
          '  "web-ui";',
          '  "app" -> "authentik" [label="interface.auth.provider", style=dashed];',
          '  "app" -> "caddy" [label="depends_on"];',
          `  "app" -> "postgresql" [label="interface.db.host is postgresql's address"];`,
          `  "authentik" -> "postgresql" [label="interface.db.host is postgresql's address"];`,
          '  "web-ui" -> "app" [label="depends_on"];',
          "}",
          "",
        ].join("\n"),
      );
    });
  });

  it("schema --out writes the file and says so on stderr", async () => {
    const file = path.join(dir, "schema.json");
    const run = await nixmox("schema", "--out", file);
    assert.deepEqual([run.code, run.stdout, run.stderr], [0, "", `wrote the manifest JSON Schema to ${file}\n`]);
    assert.equal(readFileSync(file, "utf8"), (await nixmox("schema")).stdout);
  });

  it("prints a schema equal to the committed manifest/manifest.schema.json", async () => {
    const run = await nixmox("schema");
    assert.equal(run.code, 0, run.stderr);
    const committed = readFileSync(path.join(root, "manifest/manifest.schema.json"), "utf8");
    assert.ok(
      run.stdout === committed,
      "manifest/manifest.schema.json is out of date with manifest/schema.ts; regenerate it with `npx nixmox schema --out manifest/manifest.schema.json`",
    );
  });
});

describe("cli: a reader that closes the pipe early (newcomer-2 #8)", function () {
  this.timeout(120_000);

  /** `nixmox ARGS | head -1` in bash, with NixMox's own exit status (PIPESTATUS) and stderr. */
  function piped(args: string[]): { status: number; stdout: string; stderr: string } {
    const command = `"$0" "$1" "\${@:2}" 2>"$ERRORS" | head -1; echo "status=\${PIPESTATUS[0]}"`;
    const errors = path.join(mkdtempSync(path.join(tmpdir(), "nixmox-pipe-")), "stderr");
    const result = spawnSync("bash", ["-c", command, process.execPath, path.join(root, "bin/nixmox.js"), ...args], { cwd: root, encoding: "utf8", env: { ...process.env, ERRORS: errors }, timeout: 60_000 });
    const lines = result.stdout.trimEnd().split("\n");
    const stderr = readFileSync(errors, "utf8");
    rmSync(path.dirname(errors), { recursive: true, force: true });
    return { status: Number(lines.pop()!.replace("status=", "")), stdout: lines.join("\n"), stderr };
  }

  for (const args of [["schema"], ["preview", "--offline", "--json", exampleRelative], ["plan", "--json", exampleRelative]]) {
    it(`ends \`nixmox ${args.join(" ")} | head -1\` quietly with exit 0, no EPIPE stack trace`, () => {
      const result = piped(args);
      assert.equal(result.stdout, "{");
      assert.equal(result.stderr, "");
      assert.equal(result.status, 0);
    });
  }

  it("keeps a failure's exit code and message when the reader goes away", () => {
    const result = piped(["plan", "--json", "/nonexistent/homelab.json"]);
    assert.equal(result.status, 1);
    assert.equal(result.stderr, "/nonexistent/homelab.json: 1 problem\n  - manifest: file not found; give the path of a .nix, .json or .yaml manifest\n");
  });
});

describe("cli: graph --format svg, drawn by Graphviz in WebAssembly", function () {
  this.timeout(120_000);

  /** The SVG read by Python's XML parser (a real parser, not ours): its clusters, nodes and edges with their texts. */
  function parseSvg(svg: string): { clusters: Array<{ title: string; texts: string[] }>; nodes: Array<{ title: string; texts: string[] }>; edges: Array<{ title: string; dashed: boolean; texts: string[] }> } {
    const script = [
      "import json, sys, xml.etree.ElementTree as ET",
      "ns = {'s': 'http://www.w3.org/2000/svg'}",
      "root = ET.fromstring(sys.stdin.read())",
      "out = {'clusters': [], 'nodes': [], 'edges': []}",
      "for g in root.iter('{http://www.w3.org/2000/svg}g'):",
      "    kind = g.get('class')",
      "    if kind not in ('cluster', 'node', 'edge'): continue",
      "    item = {'title': g.find('s:title', ns).text, 'texts': [t.text for t in g.findall('s:text', ns)]}",
      "    if kind == 'edge': item['dashed'] = g.find('s:path', ns).get('stroke-dasharray') is not None",
      "    out[kind + 's'].append(item)",
      "print(json.dumps(out))",
    ].join("\n");
    const result = spawnSync("python3", ["-c", script], { input: svg, encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    return JSON.parse(result.stdout);
  }

  for (const manifest of [exampleRelative, "manifest/examples/seed-homelab.nix"]) {
    it(`draws ${manifest}: it parses as XML, every host in its wave with its routes and databases, every edge, SSO edges dashed`, async () => {
      const run = await nixmox("graph", "--format", "svg", manifest);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stderr, "");
      const svg = parseSvg(run.stdout);
      const plan = await loadPlan(path.join(root, manifest));
      assert.deepEqual(svg.nodes.map((node) => node.title).sort(), plan.services.map((service) => service.name).sort());
      assert.deepEqual(svg.clusters.map((cluster) => [cluster.title, cluster.texts]), plan.waves.map((_, index) => [`cluster_wave_${index}`, [`wave ${index}`]]));
      for (const service of plan.services) {
        const node = svg.nodes.find((candidate) => candidate.title === service.name)!;
        assert.equal(node.texts[0], `${service.name} (${service.kind})`);
        assert.equal(node.texts[1], service.ip);
        for (const route of plan.routes.filter((candidate) => candidate.service === service.name)) assert.ok(node.texts.some((text) => text.startsWith(`route ${route.domain}`)), `${service.name}: ${route.domain}`);
        for (const database of plan.databases.filter((candidate) => candidate.server === service.name)) assert.ok(node.texts.includes(`db ${database.name} (for ${database.service})`), `${service.name}: ${database.name}`);
      }
      assert.deepEqual(
        svg.edges.map((edge) => [edge.title, edge.dashed]).sort(),
        plan.edges.map((edge) => [`${edge.from}->${edge.to}`, !edge.hard]).sort(),
      );
      assert.ok(plan.edges.some((edge) => !edge.hard) && plan.edges.some((edge) => edge.hard), "the manifest has both kinds of edge");
      for (const edge of plan.edges) {
        const drawn = svg.edges.find((candidate) => candidate.title === `${edge.from}->${edge.to}`)!;
        assert.equal(drawn.texts.join(" "), edge.reasons.join("; "));
      }
    });
  }
});

describe("cli: plan and graph read the stack's manifest, --stack or the selected one (issue 22, one manifest everywhere)", function () {
  this.timeout(300_000);
  let top: string;
  let project: string;
  let env: NodeJS.ProcessEnv;
  /** The stack's manifest differs from the project's default by its app's name, which plan and graph both show. */
  const stackManifest = () => {
    const raw = smallManifest();
    raw.services = { vault: raw.services.app };
    return raw;
  };

  /** The compiled CLI in the project folder, with the real Pulumi CLI (tools/engine) on PATH unless `pathless`. */
  const run = (args: string[], pathless = false) =>
    spawnSync(process.execPath, [path.join(root, "bin", "nixmox.js"), ...args], { cwd: project, env: pathless ? { ...env, PATH: "/nonexistent" } : env, encoding: "utf8", timeout: 120_000 });
  const pulumi = (args: string[]) => {
    const result = spawnSync("pulumi", args, { cwd: project, env, encoding: "utf8", timeout: 120_000 });
    assert.equal(result.status, 0, `pulumi ${args.join(" ")}: ${result.stdout}${result.stderr}`);
  };

  before(() => {
    top = mkdtempSync(path.join(tmpdir(), "nixmox-cli-stack-"));
    project = path.join(top, "project");
    for (const dir of [project, path.join(top, "state"), path.join(top, "home")]) mkdirSync(dir);
    writeFileSync(path.join(project, "Pulumi.yaml"), "name: nixmox\nruntime: nodejs\nconfig:\n  nixmox:manifest:\n    type: string\n    default: default.json\n");
    writeFileSync(path.join(project, "default.json"), JSON.stringify(smallManifest()));
    writeFileSync(path.join(project, "mine.json"), JSON.stringify(stackManifest()));
    const { engineEnvironment } = require("./support/real-engine") as typeof import("./support/real-engine");
    env = engineEnvironment(path.join(top, "home"), `file://${path.join(top, "state")}`);
  });
  after(() => rmSync(top, { recursive: true, force: true }));

  it("with no stack selected, or no Pulumi CLI, read the project's manifest (Pulumi.yaml's default)", () => {
    for (const [command, shows] of [["plan", /^  app \[vaultwarden\] ct 120 /m], ["graph", /^  app\["app"\]$/m]] as const) {
      for (const pathless of [false, true]) {
        const result = run([command], pathless);
        assert.equal(result.status, 0, result.stderr);
        assert.equal(result.stderr, "");
        assert.equal(result.stdout, run([command, "default.json"]).stdout);
        assert.match(result.stdout, shows);
      }
    }
  });

  it("with a stack selected and no manifest argument, read that stack's nixmox:manifest, as with --stack", () => {
    pulumi(["stack", "init", "homelab", "--non-interactive"]);
    pulumi(["config", "set", "nixmox:manifest", "mine.json"]);
    for (const command of ["plan", "graph"]) {
      const selected = run([command]);
      assert.equal(selected.status, 0, selected.stderr);
      assert.equal(selected.stderr, "");
      assert.equal(selected.stdout, run([command, "mine.json"]).stdout, command);
      assert.equal(selected.stdout, run([command, "--stack", "homelab"]).stdout, command);
      assert.match(selected.stdout, /vault/);
      assert.doesNotMatch(selected.stdout, /\bapp\b/);
      // A manifest named on the command line is read as given.
      assert.equal(run([command, "default.json"]).stdout, run([command, "default.json"], true).stdout);
    }
    assert.match(run(["plan", "--json"]).stdout, /"name": "vault"/);
  });

  it("refuses a manifest argument that is not the stack's, showing both paths, exit 2", () => {
    for (const command of ["plan", "graph"]) {
      const refused = run([command, "--stack", "homelab", "default.json"]);
      assert.equal(refused.status, 2, refused.stderr);
      assert.equal(refused.stdout, "");
      assert.equal(
        refused.stderr,
        `nixmox: the manifest argument default.json is not the manifest of stack "homelab", which deploys mine.json (its nixmox:manifest): ` +
          `drop the argument to use the stack's, or point the stack at this file with \`pulumi config set --stack homelab nixmox:manifest ${path.join(project, "default.json")}\`\n`,
      );
    }
  });

  it("says which manifest it reads when the Pulumi CLI cannot tell the selected stack", () => {
    const broken = { ...env, PULUMI_BACKEND_URL: `file://${path.join(top, "not-a-folder")}` };
    writeFileSync(path.join(top, "not-a-folder"), "a file, so the backend cannot be opened\n");
    const result = spawnSync(process.execPath, [path.join(root, "bin", "nixmox.js"), "plan"], { cwd: project, env: broken, encoding: "utf8", timeout: 120_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, run(["plan", "default.json"]).stdout);
    assert.match(result.stderr, /\nnixmox: the selected stack is unknown \(listing the stacks \(`pulumi stack ls`\) failed \(exit -?\d+\); the Pulumi CLI's messages are above; check `pulumi whoami` and the backend login\), so this reads the project's manifest default\.json; pass --stack NAME or a manifest to choose\n$/);
    assert.doesNotMatch(result.stderr, /^\s+at /m);
  });
});
