// Pure tests plus the real nix-instantiate: a manifest's NixOS modules bring the files they name by relative path
// (sibling modules, data files) into the host's flake, and those paths resolve there for real.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { loadPlan, ManifestError } from "../manifest";
import { fileSources, renderHost, writeRenderedHosts, type HostData } from "../render";
import { moduleClosure, relativePathLiterals, stripNixCommentsAndStrings } from "../manifest/module-files";
import { planFromData, exampleManifestData } from "./golden/render-fixtures";

describe("render: files a manifest module names by relative path", () => {
  describe("scanning Nix source", () => {
    const cases: Array<[string, string, string[]]> = [
      ["an imports list", "{ imports = [ ./common.nix ../lib/x.nix ]; }", ["./common.nix", "../lib/x.nix"]],
      ["a readFile of a data file", "{ x = builtins.readFile ./dashboards/node.json; }", ["./dashboards/node.json"]],
      ["a directory import", "import ./lib", ["./lib"]],
      ["nothing inside a string", '{ script = "./configure && ../run.sh"; }', []],
      ["nothing inside an indented string, even with antiquotes and escapes", "{ s = ''\n  ./x.sh ''${y} '''./z'\n''; t = ./real.nix; }", ["./real.nix"]],
      ["nothing inside comments", "# imports = [ ./old.nix ];\n/* ./also-old.nix */ { }", []],
      ["each path once", "[ ./a.nix ./a.nix ]", ["./a.nix"]],
      ["not a URL or an attribute path", '{ url = https://example.org/./x; a.b = c./d; }', []],
    ];
    for (const [what, text, expected] of cases) {
      it(`finds ${what}`, () => assert.deepEqual(relativePathLiterals(text), expected));
    }

    it("keeps code and line breaks when it drops comments and strings", () => {
      assert.equal(stripNixCommentsAndStrings('a = "x # y"; # z\nb = 1;'), 'a = ""; \nb = 1;');
    });
  });

  describe("the closure of a module", () => {
    const tree: Record<string, string> = {
      "modules/app.nix": "{ imports = [ ./common.nix ./helpers ]; data = builtins.readFile ../data/app.json; }",
      "modules/common.nix": "{ imports = [ ./app.nix ]; }",
      "modules/helpers/default.nix": "{ }",
      "data/app.json": "{}",
    };
    const read = (relative: string) => tree[relative] ?? null;

    it("follows imports recursively, a directory to its default.nix, and data files, each once", () => {
      const { files, problems } = moduleClosure(["modules/app.nix"], read);
      assert.deepEqual([...files.keys()], ["modules/app.nix", "modules/common.nix", "modules/helpers/default.nix", "data/app.json"]);
      assert.deepEqual(problems, []);
    });

    it("fails a path that leaves the manifest's directory or does not exist, naming the module", () => {
      const { problems } = moduleClosure(["app.nix"], (relative) => (relative === "app.nix" ? "{ imports = [ ../../etc/passwd ./gone.nix ]; }" : null));
      assert.deepEqual(problems, [
        { module: "app.nix", literal: "../../etc/passwd", message: "names ../../etc/passwd, which is outside the manifest's directory; the host's flake only holds files inside it" },
        { module: "app.nix", literal: "./gone.nix", message: "names ./gone.nix, which does not exist (relative to app.nix)" },
      ]);
    });
  });

  describe("a rendered host", function () {
    this.timeout(60_000);
    let dir: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), "nixmox-modfiles-"));
      mkdirSync(path.join(dir, "modules", "lib"), { recursive: true });
      mkdirSync(path.join(dir, "data"));
      writeFileSync(path.join(dir, "modules", "homepage.nix"), "{ ... }: { imports = [ ./lib/common.nix ]; greeting = builtins.readFile ../data/greeting.txt; }\n");
      writeFileSync(path.join(dir, "modules", "lib", "common.nix"), "{ ... }: { common = true; }\n");
      writeFileSync(path.join(dir, "data", "greeting.txt"), "hello from the manifest's directory\n");
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("carries the sibling module and the data file, and they resolve in the written flake directory", async () => {
      const plan = { ...planFromData(await exampleManifestData()), manifestDir: dir };
      const host = renderHost(plan, "homepage", fileSources(dir));
      assert.deepEqual(Object.keys(host.files).filter((file) => file.startsWith("custom/")), ["custom/data/greeting.txt", "custom/modules/homepage.nix", "custom/modules/lib/common.nix"]);
      const out = path.join(dir, "out");
      writeRenderedHosts(out, [host]);
      const module = path.join(out, "homepage", "custom", "modules", "homepage.nix");
      const evaluated = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--expr", `let m = import ${module} {}; in { greeting = m.greeting; imported = (import (builtins.head m.imports) {}).common; }`], { encoding: "utf8", timeout: 30_000 });
      assert.deepEqual(JSON.parse(evaluated), { greeting: "hello from the manifest's directory\n", imported: true });
    });

    it("fails naming the service when a module reaches outside the manifest's directory", async () => {
      writeFileSync(path.join(dir, "modules", "homepage.nix"), "{ ... }: { imports = [ ../../outside.nix ]; }\n");
      const plan = { ...planFromData(await exampleManifestData()), manifestDir: dir };
      assert.throws(() => renderHost(plan, "homepage", fileSources(dir)), (error: unknown) => {
        assert.ok(error instanceof ManifestError);
        assert.deepEqual(error.problems, [{
          subject: 'service "homepage"',
          field: "nixos_modules",
          message: '"modules/homepage.nix" names ../../outside.nix, which is outside the manifest\'s directory; the host\'s flake only holds files inside it',
        }]);
        return true;
      });
    });
  });
});

describe("docs: the worked custom-app example (docs/custom-apps.md)", function () {
  this.timeout(60_000);

  it("validates, renders Miniflux with its database, OIDC client and sibling module, and every file parses", async () => {
    const example = path.join(__dirname, "..", "docs", "examples", "custom-app.nix");
    const plan = await loadPlan(example);
    const host = renderHost(plan, "miniflux", fileSources(plan.manifestDir));
    assert.deepEqual(Object.keys(host.files).filter((file) => file.startsWith("custom/")), ["custom/modules/hardening.nix", "custom/modules/miniflux.nix"]);
    const data = JSON.parse(host.files["host.json"]) as HostData;
    assert.deepEqual(data.custom!.listen, { address: "192.168.99.17", port: 8080 });
    assert.equal(data.custom!.database!.passwordFile, "/var/lib/nixmox/secrets/miniflux/db_password");
    assert.deepEqual([data.custom!.oidc!.clientId, data.custom!.oidc!.redirectUris], ["miniflux", ["https://rss.nixmox.lan/oauth2/oidc/callback"]]);
    assert.deepEqual(plan.databases.filter((db) => db.service === "miniflux").map((db) => `${db.server}:${db.name}:${db.owner}:${db.clientIp}`), ["postgresql:miniflux:miniflux:192.168.99.17"]);
    assert.ok(plan.services.find((service) => service.name === "miniflux")!.ports.includes(8080));
    for (const [file, content] of Object.entries(host.files)) {
      if (file.endsWith(".nix")) execFileSync("nix-instantiate", ["--parse", "-"], { input: content, stdio: ["pipe", "pipe", "pipe"], timeout: 30_000 });
    }
  });
});
