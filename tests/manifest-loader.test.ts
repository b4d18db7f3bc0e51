// Real processes, no mocks: .nix manifests go through the installed nix-instantiate; .json and .yaml through the parsers.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { renderPlanJson } from "../cli/views";
import { ManifestError, defaultManifestPath, formatProblem, loadManifest, loadManifestData, loadPlan, validateManifest } from "../manifest";
import { planOf, seedManifest, seedModuleFiles, smallManifest } from "./support/manifests";

/** Renders plain JSON data as a Nix expression (attribute names quoted, `${` escaped), to write test manifests. */
function toNix(value: unknown, indent = ""): string {
  const inner = `${indent}  `;
  const nixString = (text: string) => JSON.stringify(text).replace(/\$\{/g, "\\${");
  if (value === null) return "null";
  if (typeof value === "string") return nixString(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.length === 0 ? "[ ]" : `[\n${value.map((item) => `${inner}${toNix(item, inner)}`).join("\n")}\n${indent}]`;
  const entries = Object.entries(value as Record<string, unknown>);
  return entries.length === 0 ? "{ }" : `{\n${entries.map(([key, item]) => `${inner}${nixString(key)} = ${toNix(item, inner)};`).join("\n")}\n${indent}}`;
}

/** The ManifestError a promise rejects with (fails the test when it resolves or rejects with anything else). */
async function rejection(promise: Promise<unknown>): Promise<ManifestError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ManifestError) return error;
    throw error;
  }
  assert.fail("expected a ManifestError");
}

describe("manifest loader", function () {
  this.timeout(60_000);
  let dir: string;
  const file = (name: string, text: string) => {
    const target = path.join(dir, name);
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, text);
    return target;
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-loader-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe(".nix through nix-instantiate", () => {
    it("loads and plans the example manifest shipped with NixMox", async () => {
      const plan = await loadPlan(defaultManifestPath);
      // homepage's forward-auth edge to authentik is soft (SSO never orders hosts), so it deploys beside authentik.
      assert.deepEqual(plan.waves, [["dns"], ["caddy", "postgresql"], ["authentik", "homepage"], ["guacamole", "vaultwarden"]]);
      assert.deepEqual(plan.disabled, []);
      assert.deepEqual(
        plan.routes.map((route) => `${route.domain}${route.path} → ${route.upstream} ${route.auth ?? "public"}`),
        [
          "auth.nixmox.lan/ → 192.168.99.12:9000 public",
          "guac.nixmox.lan/ → 192.168.99.15:8280 oidc",
          "home.nixmox.lan/ → 192.168.99.16:8082 forward_auth",
          "vault.nixmox.lan/ → 192.168.99.14:8080 oidc",
        ],
      );
      assert.deepEqual(
        plan.dnsRecords.filter((record) => record.source === "route").map((record) => `${record.name} ${record.value}`),
        ["auth.nixmox.lan 192.168.99.10", "guac.nixmox.lan 192.168.99.10", "home.nixmox.lan 192.168.99.10", "vault.nixmox.lan 192.168.99.10"],
      );
      assert.deepEqual(plan.databases.map((database) => `${database.name}@${database.server}`), ["authentik@postgresql", "guacamole@postgresql", "vaultwarden@postgresql"]);
      assert.equal(plan.manifestDir, path.dirname(defaultManifestPath));
    });

    it("evaluates let bindings, a function with default arguments and an import of a relative file", async () => {
      file("lib/addresses.nix", '{ subnet ? "10.9.0" }: { ip = host: "${subnet}.${toString host}"; }\n');
      file("services.nix", "ip: {\n  app = {\n    kind = \"vaultwarden\";\n    ip = ip 20;\n    vmid = 120;\n    depends_on = [ \"caddy\" ];\n" +
        "    interface = {\n      proxy = { domain = \"web.lab.test\"; upstream = \"${ip 20}:8080\"; };\n      auth.type = \"oidc\";\n      db.host = \"postgresql\";\n    };\n  };\n}\n");
      const manifest = file("manifest.nix", [
        '{ domain ? "lab.test" }:',
        "let",
        "  inherit (import ./lib/addresses.nix { }) ip;",
        "  vmid = host: 100 + host;",
        "in {",
        "  network = { inherit domain; dns_server = ip 1; gateway = ip 1; network_cidr = \"10.9.0.0/24\"; };",
        "  core_services = {",
        "    caddy = { ip = ip 10; vmid = vmid 10; ports = [ 80 443 ]; };",
        "    postgresql = { ip = ip 11; vmid = vmid 11; ports = [ 5432 ]; };",
        "    authentik = { ip = ip 12; vmid = vmid 12; interface.db.host = \"postgresql\"; };",
        "  };",
        "  services = import ./services.nix ip;",
        "}",
        "",
      ].join("\n"));
      assert.deepEqual(await loadManifestData(manifest), smallManifest());
      assert.equal(renderPlanJson(await loadPlan(manifest)), renderPlanJson(planOf(smallManifest())));
    });

    it("fails on a syntax error with file.nix:LINE:COL and nix's message", async () => {
      const manifest = file("broken.nix", '{\n  network = {\n    domain = "lab.test"\n  };\n}\n');
      const error = await rejection(loadManifestData(manifest));
      assert.deepEqual(error.problems.map(formatProblem), [`manifest: Nix evaluation failed: ${manifest}:4:3: syntax error, unexpected '}', expecting ';'`]);
      assert.equal(error.source, manifest);
    });

    it("fails when an imported file does not exist, naming it", async () => {
      const manifest = file("manifest.nix", "{ network = import ./network.nix; }\n");
      const error = await rejection(loadManifestData(manifest));
      assert.deepEqual(error.problems.map(formatProblem), [`manifest: Nix evaluation failed: getting status of '${path.join(dir, "network.nix")}': No such file or directory`]);
    });

    it("fails with nix's message when the manifest throws", async () => {
      const manifest = file("manifest.nix", '{ network = throw "set network.domain first"; }\n');
      const error = await rejection(loadManifestData(manifest));
      assert.deepEqual(error.problems.map(formatProblem), ["manifest: Nix evaluation failed: set network.domain first"]);
    });

    describe("confinement (security review M5)", () => {
      const forbidden = (what: string) =>
        `manifest: Nix evaluation failed: access to ${what} is forbidden in restricted mode (a .nix manifest may read only files inside its own directory, ${realpathSync(dir)})`;

      it("evaluates with a clean environment: builtins.getEnv sees nothing of the deploy's", async () => {
        const saved = { config: process.env.PULUMI_CONFIG, pass: process.env.PULUMI_CONFIG_PASSPHRASE };
        process.env.PULUMI_CONFIG = '{"nixmox:sshPrivateKey":"canary-key"}';
        process.env.PULUMI_CONFIG_PASSPHRASE = "canary-pass";
        try {
          const manifest = file("manifest.nix", '{ config = builtins.getEnv "PULUMI_CONFIG"; pass = builtins.getEnv "PULUMI_CONFIG_PASSPHRASE"; path = builtins.getEnv "PATH"; }\n');
          assert.deepEqual(await loadManifestData(manifest), { config: "", pass: "", path: "" });
        } finally {
          for (const [key, value] of [["PULUMI_CONFIG", saved.config], ["PULUMI_CONFIG_PASSPHRASE", saved.pass]] as const) {
            if (value === undefined) delete process.env[key];
            else process.env[key] = value;
          }
        }
      });

      it("fails to read a file outside the manifest's directory: absolute, ../ and through a symlink", async () => {
        const outside = mkdtempSync(path.join(tmpdir(), "nixmox-outside-"));
        try {
          writeFileSync(path.join(outside, "secret.nix"), '{ key = "canary"; }\n');
          symlinkSync(path.join(outside, "secret.nix"), path.join(dir, "linked.nix"));
          const cases: Array<[string, string]> = [
            ["{ p = builtins.readFile /etc/passwd; }", forbidden("absolute path '/etc/passwd'")],
            [`{ p = import ${path.relative(dir, path.join(outside, "secret.nix"))}; }`, forbidden(`absolute path '${realpathSync(outside)}/secret.nix'`)],
            ["{ p = import ./linked.nix; }", forbidden(`canonical path '${realpathSync(outside)}/secret.nix'`)],
            ['{ p = builtins.readDir "/etc"; }', forbidden("absolute path '/etc'")],
          ];
          for (const [text, expected] of cases) {
            const error = await rejection(loadManifestData(file("manifest.nix", `${text}\n`)));
            assert.deepEqual(error.problems.map(formatProblem), [expected], text);
          }
        } finally {
          rmSync(outside, { recursive: true, force: true });
        }
      });

      it("fails an evaluation that runs out of its memory limit, naming the file and the limit", async () => {
        const manifest = file("hog.nix", "{ n = builtins.length (builtins.genList (x: toString x) 50000000); }\n");
        const error = await rejection(loadManifestData(manifest, { memoryMiB: 512 }));
        assert.deepEqual(error.problems.map(formatProblem), [`manifest: Nix evaluation of ${manifest} ran out of memory (the limit is 512 MiB)`]);
      });

      it("stops an evaluation that runs past the timeout, naming the file and the time, and leaves no evaluator behind", async () => {
        const manifest = file("slow.nix", "let f = builtins.foldl' (a: i: builtins.foldl' (b: j: b + j) a (builtins.genList (x: x) 100000)) 0 (builtins.genList (x: x) 100000); in { n = f; }\n");
        const started = Date.now();
        const error = await rejection(loadManifestData(manifest, { timeoutSeconds: 2 }));
        assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
        assert.equal(error.problems.length, 1);
        assert.match(formatProblem(error.problems[0]), new RegExp(`^manifest: Nix evaluation of ${manifest.replace(/[.]/g, "\\.")} was stopped after [0-9.]+ s \\(the limit is 2 s\\); does the manifest loop\\?$`));
        const survivors = readdirSync("/proc").filter((pid) => {
          try {
            return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(manifest);
          } catch {
            return false;
          }
        });
        assert.deepEqual(survivors, []);
      });
    });

    describe("in a git repository: the files git tracks, the boundary a flake has", () => {
      const git = (...args: string[]) => execFileSync("git", ["-C", dir, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      const setUp = () => {
        git("init", "-q");
        file(".gitignore", "secrets.nix\nstate/\n");
        file("lib/common.nix", '{ domain = "lab.test"; }\n');
        file("lib/helpers/ip.nix", 'n: "10.9.0.${toString n}"\n');
        file("secrets.nix", '{ token = "canary-ignored"; }\n');
        file("state/cache.nix", '{ token = "canary-state"; }\n');
        file("notes/draft.nix", '{ token = "canary-untracked"; }\n');
        git("add", ".gitignore", "lib", "notes");
        git("rm", "-q", "--cached", "notes/draft.nix");
      };
      const readable = (expression: string) => file("hosts/prod.nix", `${expression}\n`);
      const boundary = () => `the files git tracks in its repository ${realpathSync(dir)}, as a flake does (git add a file to let it be read)`;

      it("imports tracked files anywhere in the repository, such as ../lib, while the manifest itself is not yet added", async () => {
        setUp();
        const manifest = readable('let common = import ../lib/common.nix; ip = import ../lib/helpers/ip.nix; in { inherit (common) domain; dns = ip 13; }');
        assert.deepEqual(await loadManifestData(manifest), { domain: "lab.test", dns: "10.9.0.13" });
      });

      it("fails to read an ignored, an untracked or a .git file of the repository, and anything outside it, saying what may be read", async () => {
        setUp();
        const cases: Array<[string, string]> = [
          ["import ../secrets.nix", "secrets.nix"],
          ["import ../state/cache.nix", "state/cache.nix"],
          ["import ../notes/draft.nix", "notes/draft.nix"],
          ["builtins.readFile ../.git/HEAD", ".git/HEAD"],
        ];
        for (const [expression, target] of cases) {
          const error = await rejection(loadManifestData(readable(`{ x = ${expression}; }`)));
          assert.deepEqual(error.problems.map(formatProblem), [
            `manifest: Nix evaluation failed: access to absolute path '${path.join(realpathSync(dir), target)}' is forbidden in restricted mode (a .nix manifest may read only ${boundary()})`,
          ], expression);
        }
        const outside = await rejection(loadManifestData(readable("{ x = builtins.readFile /etc/hostname; }")));
        assert.match(formatProblem(outside.problems[0]), /access to absolute path '\/etc\/hostname' is forbidden in restricted mode \(a \.nix manifest may read only the files git tracks/);
      });

      it("reads a directory named with allowPaths (--allow-path, nixmox:manifestAllowPaths) on purpose, and says so when something else is refused", async () => {
        setUp();
        const shared = mkdtempSync(path.join(tmpdir(), "nixmox-shared-"));
        try {
          writeFileSync(path.join(shared, "keys.nix"), '[ "ssh-ed25519 AAAA shared" ]\n');
          const manifest = readable(`{ keys = import ${path.join(shared, "keys.nix")}; local = import ../state/cache.nix; }`);
          const error = await rejection(loadManifestData(manifest, { allowPaths: [shared] }));
          assert.match(formatProblem(error.problems[0]), new RegExp(`cache\\.nix' is forbidden .*, or the directories given with --allow-path / nixmox:manifestAllowPaths \\(${realpathSync(shared)}\\)\\)$`));
          const ok = readable(`{ keys = import ${path.join(shared, "keys.nix")}; local = import ../state/cache.nix; }`);
          assert.deepEqual(await loadManifestData(ok, { allowPaths: [shared, path.join(dir, "state")] }), { keys: ["ssh-ed25519 AAAA shared"], local: { token: "canary-state" } });
        } finally {
          rmSync(shared, { recursive: true, force: true });
        }
      });
    });

    it("fails with the install hint when nix-instantiate is not on PATH", async () => {
      const manifest = file("manifest.nix", "{ }\n");
      const emptyBin = mkdtempSync(path.join(tmpdir(), "nixmox-empty-bin-"));
      const savedPath = process.env.PATH;
      process.env.PATH = emptyBin;
      try {
        const error = await rejection(loadManifestData(manifest));
        assert.deepEqual(error.problems.map(formatProblem), [
          "manifest: cannot evaluate a .nix manifest: nix-instantiate is not installed. Install Nix (Debian/Ubuntu: `sudo apt-get install nix-bin`, " +
            "elsewhere https://nixos.org/download), or give a .json or .yaml manifest",
        ]);
      } finally {
        process.env.PATH = savedPath;
        rmSync(emptyBin, { recursive: true, force: true });
      }
    });
  });

  describe(".json and .yaml", () => {
    it("plans the seed layout identically from .nix, .json and .yaml, with its module files present", async () => {
      for (const module of seedModuleFiles) file(module, "{ ... }: { }\n");
      const expected = renderPlanJson(planOf(seedManifest()));
      for (const [name, text] of [
        ["seed.nix", `${toNix(seedManifest())}\n`],
        ["seed.json", JSON.stringify(seedManifest(), null, 2)],
        ["seed.yaml", stringify(seedManifest())],
        ["seed.yml", stringify(seedManifest())],
      ] as const) {
        const plan = await loadPlan(file(name, text));
        assert.equal(renderPlanJson(plan), expected, name);
        assert.equal(plan.manifestDir, dir);
      }
    });

    it("fails when nixos_modules files do not exist next to the manifest, listing each", async () => {
      file("modules/media.nix", "{ ... }: { }\n");
      const manifest = file("seed.json", JSON.stringify(seedManifest()));
      const error = await rejection(loadManifest(manifest));
      // In manifest order: core_services, then services, each as written; the disabled mail service needs none.
      assert.deepEqual(error.problems.map(formatProblem), [
        `service "nextcloud": nixos_modules[0] "modules/nextcloud.nix" does not exist in ${dir}`,
        `service "monitoring": nixos_modules[0] "modules/monitoring.nix" does not exist in ${dir}`,
        `service "homeassistant": nixos_modules[0] "./modules/homeassistant.nix" does not exist in ${dir}`,
        `service "openbao": nixos_modules[0] "modules/openbao.nix" does not exist in ${dir}`,
      ]);
    });

    it("fails when a module symlink leaves the manifest's directory, naming the service and the path (security review M8)", async () => {
      const outside = mkdtempSync(path.join(tmpdir(), "nixmox-outside-"));
      try {
        writeFileSync(path.join(outside, "key.nix"), "canary\n");
        for (const name of ["media", "nextcloud", "monitoring", "homeassistant", "openbao"]) file(`modules/${name}.nix`, "{ ... }: { }\n");
        rmSync(path.join(dir, "modules", "monitoring.nix"));
        symlinkSync(path.join(outside, "key.nix"), path.join(dir, "modules", "monitoring.nix"));
        const manifest = file("seed.json", JSON.stringify(seedManifest()));
        const error = await rejection(loadManifest(manifest));
        assert.deepEqual(error.problems.map(formatProblem), [
          `service "monitoring": nixos_modules[0] "modules/monitoring.nix": it resolves to ${realpathSync(outside)}/key.nix, outside the manifest's directory ${realpathSync(dir)}; ` +
            "a module (or a symlink to it) must stay inside that directory",
        ]);
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    });

    it("fails on a YAML syntax error naming file:line:col", async () => {
      const manifest = file("bad.yaml", "network:\n  domain: lab.test\n  gateway: [10.9.0.1\n");
      const error = await rejection(loadManifestData(manifest));
      assert.deepEqual(error.problems.map(formatProblem), [
        `manifest: YAML syntax error: ${manifest}:4:1: Flow sequence in block collection must be sufficiently indented and end with a ]`,
      ]);
    });

    it("fails on a duplicate YAML key naming its line", async () => {
      const manifest = file("dup.yaml", "network:\n  domain: a.test\n  domain: b.test\n");
      const error = await rejection(loadManifestData(manifest));
      assert.deepEqual(error.problems.map(formatProblem), [`manifest: YAML syntax error: ${manifest}:3:3: Map keys must be unique`]);
    });

    it("fails on a JSON syntax error", async () => {
      const manifest = file("bad.json", '{"network": ');
      const error = await rejection(loadManifestData(manifest));
      assert.deepEqual(error.problems.map(formatProblem), ["manifest: JSON syntax error: Unexpected end of JSON input"]);
    });

    it("fails on a missing file and on an unknown extension", async () => {
      const missing = path.join(dir, "absent.nix");
      assert.deepEqual((await rejection(loadManifestData(missing))).problems.map(formatProblem), ["manifest: file not found; give the path of a .nix, .json or .yaml manifest"]);
      const toml = file("manifest.toml", "[network]\n");
      assert.deepEqual((await rejection(loadManifestData(toml))).problems.map(formatProblem), ['manifest: unknown manifest format ".toml"; use .nix, .json, .yaml or .yml']);
    });

    describe("robustness (security review L9): a clear problem, never \"unexpected\"", () => {
      const deep = "[".repeat(200_000) + "]".repeat(200_000);
      const tooDeep = "manifest: is nested more than 64 levels deep, far beyond any manifest (about 10 levels); is this the right file?";

      it("fails on JSON nested 200,000 levels deep, and so does validateManifest given such data", async () => {
        assert.deepEqual((await rejection(loadManifestData(file("deep.json", deep)))).problems.map(formatProblem), [tooDeep]);
        let nested: unknown = {};
        for (let level = 0; level < 200_000; level += 1) nested = { network: nested };
        assert.throws(() => validateManifest(nested, "deep"), (error: unknown) => error instanceof ManifestError && formatProblem(error.problems[0]) === tooDeep);
      });

      it("fails on YAML nested 200,000 levels deep, naming the place", async () => {
        const manifest = file("deep.yaml", deep);
        const problems = (await rejection(loadManifestData(manifest))).problems.map(formatProblem);
        assert.equal(problems.length, 1);
        assert.match(problems[0], new RegExp(`^manifest: YAML syntax error: ${manifest.replace(/[.]/g, "\\.")}:1:\\d+: is nested more than 64 levels deep`));
      });

      it("fails on a YAML alias bomb without expanding it", async () => {
        const levels = ["a: &a [x, x, x, x, x, x, x, x, x]"];
        for (let index = 1; index < 10; index += 1) {
          const [name, previous] = [String.fromCharCode(97 + index), String.fromCharCode(96 + index)];
          levels.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
        }
        const started = Date.now();
        const error = await rejection(loadManifestData(file("bomb.yaml", `${levels.join("\n")}\n`)));
        assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
        assert.deepEqual(error.problems.map(formatProblem), [
          "manifest: YAML: its aliases (*name) expand to too many copies (an alias bomb?); it was not expanded. A manifest reuses an anchor a few thousand times at most",
        ]);
      });

      it("fails on a YAML alias whose anchor is never set, naming it", async () => {
        const error = await rejection(loadManifestData(file("alias.yaml", "network: *shared\n")));
        assert.deepEqual(error.problems.map(formatProblem), [
          "manifest: YAML: Unresolved alias (the anchor must be set before the alias): shared; define the anchor (&name) before any alias (*name) that uses it",
        ]);
      });

      it("loads YAML that uses one anchor 5,000 times, as a large manifest's services might", async () => {
        const text = `health: &health { checks: [ { type: tcp, port: 8080 } ] }\nservices:\n${Array.from({ length: 5000 }, (_, index) => `  app${index}: { health: *health }\n`).join("")}`;
        const data = (await loadManifestData(file("anchors.yaml", text))) as { services: Record<string, { health: unknown }> };
        assert.equal(Object.keys(data.services).length, 5000);
        assert.deepEqual(data.services.app4999.health, { checks: [{ type: "tcp", port: 8080 }] });
      });
    });

    it("fails validation with the file as the error's source", async () => {
      const manifest = smallManifest();
      manifest.services.app.vmid = "120";
      const target = file("small.json", JSON.stringify(manifest));
      const error = await rejection(loadManifest(target));
      assert.equal(error.message, `${target}: 1 problem\n  - service "app": vmid must be a number, got "120"`);
    });
  });
});
