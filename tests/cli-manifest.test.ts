// Real processes, no mocks: `node bin/nixmox.js validate|plan|graph|schema` run as a user runs them.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { loadManifestData } from "../manifest";
import { exampleBuildWarning, shuffleKeys, smallManifest } from "./support/manifests";

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

  it("fails with exit 2 and a usage message on an unknown graph format", async () => {
    const run = await nixmox("graph", "--format", "svg", exampleRelative);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /^error: option '--format <format>' argument 'svg' is invalid\. Allowed choices are mermaid, dot\.\n/);
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
