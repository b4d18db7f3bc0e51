// The shipped NixOS modules and every rendered .nix file, checked with the real nix-instantiate --parse,
// plus the contract between render/ and nixos/: every host.json key is an option the host's modules declare,
// and every file a module imports is shipped with it. Evaluation against nixpkgs is NOT done here (no
// nixpkgs on these machines): option names and values were checked against the NixOS 25.11 sources cited
// at the top of each module.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { loadPlan } from "../manifest";
import { fileSources, hostShippedFiles, renderAll, type HostData, type RenderedHost } from "../render";
import { exampleManifestData, renderData } from "./golden/render-fixtures";
import { moduleAssertionFailures } from "./support/deployable";

const seedExample = path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix");
const olderExample = path.join(__dirname, "..", "manifest", "examples", "older-homelab.nix");

const nixosDir = path.join(__dirname, "..", "nixos");

function nixFiles(dir: string, prefix = ""): string[] {
  return readdirSync(dir).sort().flatMap((name) => {
    const full = path.join(dir, name);
    const relative = prefix ? `${prefix}/${name}` : name;
    if (statSync(full).isDirectory()) return nixFiles(full, relative);
    return name.endsWith(".nix") ? [relative] : [];
  });
}

function parseNix(text: string, label: string): void {
  try {
    execFileSync("nix-instantiate", ["--parse", "-"], { input: text, encoding: "utf8", timeout: 30_000, stdio: ["pipe", "pipe", "pipe"] });
  } catch (error) {
    assert.fail(`${label} does not parse: ${(error as { stderr?: string }).stderr ?? String(error)}`);
  }
}

/** Option names declared in a module's text: `name = mkOption …` and option groups `name = {` whose body
 * declares options (e.g. `listen = { address = mkOption …; }`). */
function declaredOptionNames(text: string): Set<string> {
  const options = [...text.matchAll(/([A-Za-z][A-Za-z0-9]*) = mkOption\b/g)].map((match) => match[1]);
  const groups = [...text.matchAll(/([A-Za-z][A-Za-z0-9]*) = \{\n(\s+)[A-Za-z][A-Za-z0-9]* = mkOption\b/g)].map((match) => match[1]);
  return new Set([...options, ...groups]);
}

/**
 * Every key that appears in a JSON value (object keys at any depth). The keys of a free-form map (an `attrsOf`
 * option such as `secrets`, `databases`, `routes`, `apps`) are names, not options: they are skipped, and the
 * entries below them are checked.
 */
function leafKeys(value: unknown, freeForm: Set<string>, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) for (const item of value) leafKeys(item, freeForm, out);
  else if (value !== null && typeof value === "object") {
    for (const [key, child] of Object.entries(value)) {
      out.add(key);
      if (freeForm.has(key) && child !== null && typeof child === "object") for (const entry of Object.values(child)) leafKeys(entry, freeForm, out);
      else leafKeys(child, freeForm, out);
    }
  }
  return out;
}

describe("nix: shipped modules and rendered files", function () {
  this.timeout(120_000);
  let hosts: RenderedHost[];

  before(async () => {
    hosts = renderData(await exampleManifestData());
  });

  it("ships the core module, one module per built-in kind, custom, and the pure helpers", () => {
    assert.deepEqual(nixFiles(nixosDir), [
      "core.nix",
      "lib/authentik-outposts.nix",
      "lib/caddy.nix",
      "lib/dns.nix",
      "lib/firewall.nix",
      "lib/forgejo.nix",
      "lib/guacamole.nix",
      "lib/media.nix",
      "lib/monitoring.nix",
      "lib/nextcloud.nix",
      "lib/oidc.nix",
      "lib/openbao.nix",
      "lib/pgadmin.nix",
      "lib/postgresql.nix",
      "lib/resolv.nix",
      "lib/shell.nix",
      "services/app-options.nix",
      "services/authentik-outposts.nix",
      "services/authentik.nix",
      "services/builder.nix",
      "services/caddy.nix",
      "services/custom.nix",
      "services/dns.nix",
      "services/forgejo.nix",
      "services/guacamole.nix",
      "services/mail.nix",
      "services/media.nix",
      "services/monitoring.nix",
      "services/nextcloud.nix",
      "services/openbao.nix",
      "services/pgadmin.nix",
      "services/postgresql.nix",
      "services/vaultwarden.nix",
    ]);
  });

  it("every shipped .nix file passes nix-instantiate --parse", () => {
    for (const file of nixFiles(nixosDir)) parseNix(readFileSync(path.join(nixosDir, file), "utf8"), `nixos/${file}`);
  });

  it("every rendered .nix file passes nix-instantiate --parse", () => {
    let count = 0;
    for (const host of hosts) {
      for (const [file, content] of Object.entries(host.files)) {
        if (!file.endsWith(".nix")) continue;
        parseNix(content, `${host.service}/${file}`);
        count += 1;
      }
    }
    // 7 hosts: 44 before nixos/lib/firewall.nix joined every host's core files.
    assert.equal(count, 51);
  });

  it("says at the top of every shipped module which NixOS release or upstream docs it was checked against", () => {
    for (const file of nixFiles(nixosDir)) {
      const header = readFileSync(path.join(nixosDir, file), "utf8").split("\n").slice(0, 30).join("\n");
      assert.match(header, /Checked against/, `nixos/${file}`);
    }
  });

  describe("the three examples: the NixMox example, the seed-format homelab (pgAdmin on PostgreSQL, outposts on authentik) and the older homelab", () => {
    let all: Array<{ example: string; hosts: RenderedHost[] }>;
    before(async () => {
      const seedPlan = await loadPlan(seedExample);
      const olderPlan = await loadPlan(olderExample);
      all = [
        { example: "example", hosts },
        { example: "seed-homelab", hosts: renderAll(seedPlan, fileSources(seedPlan.manifestDir)) },
        { example: "older-homelab", hosts: renderAll(olderPlan, fileSources(olderPlan.manifestDir)) },
      ];
    });

    it("renders the older homelab's hosts, each .nix file passing nix-instantiate --parse, the shipped modules' checks passing", () => {
      assert.deepEqual(all[2].hosts.map((host) => host.service), ["authentik", "caddy", "dns", "media", "monitoring", "postgresql", "vaultwarden"]);
      for (const host of all[2].hosts) {
        for (const [file, content] of Object.entries(host.files)) if (file.endsWith(".nix")) parseNix(content, `older-homelab/${host.service}/${file}`);
      }
      assert.deepEqual(moduleAssertionFailures(all[2].hosts), []);
    });

    it("renders one flake per enabled host, each .nix file passing nix-instantiate --parse", () => {
      assert.deepEqual(all[1].hosts.map((host) => host.service), [
        "authentik", "caddy", "dns", "forgejo", "guacamole", "media", "monitoring", "nextcloud", "openbao", "postgresql", "vaultwarden",
      ]);
      for (const host of all[1].hosts) {
        for (const [file, content] of Object.entries(host.files)) if (file.endsWith(".nix")) parseNix(content, `seed-homelab/${host.service}/${file}`);
      }
      const flake = (service: string) => all[1].hosts.find((host) => host.service === service)!.files["flake.nix"];
      assert.match(flake("postgresql"), /\.\/nixos\/services\/postgresql\.nix\n {8}\.\/nixos\/services\/pgadmin\.nix\n/);
      assert.match(flake("authentik"), /\.\/nixos\/services\/authentik\.nix\n {8}\.\/nixos\/services\/authentik-outposts\.nix\n/);
    });

    it("ships with each host every file its modules import, and only those", () => {
      for (const { example, hosts: rendered } of all) {
        for (const host of rendered) {
          for (const [file, content] of Object.entries(host.files)) {
            if (!file.startsWith("nixos/")) continue;
            for (const match of content.matchAll(/import (\.\.?\/[A-Za-z0-9_./-]+\.nix)/g)) {
              const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), match[1]));
              assert.ok(target in host.files, `${example}/${host.service}: ${file} imports ${target}, which is not shipped`);
            }
          }
          const data = JSON.parse(host.files["host.json"]) as HostData;
          const expected = hostShippedFiles(data).map((file) => `nixos/${file}`);
          assert.deepEqual(Object.keys(host.files).filter((file) => file.startsWith("nixos/")), expected, `${example}/${host.service}`);
        }
      }
    });

    it("declares an option for every key of every rendered host.json (the module system rejects unknown keys)", () => {
      for (const { example, hosts: rendered } of all) {
        for (const host of rendered) {
          const data = JSON.parse(host.files["host.json"]) as Record<string, unknown>;
          const moduleTexts = Object.entries(host.files).filter(([file]) => file.startsWith("nixos/")).map(([, text]) => text);
          const declared = new Set(moduleTexts.flatMap((text) => [...declaredOptionNames(text)]));
          // Top-level sections are option groups (nixmox.host, nixmox.<kind>, pgadmin, outposts), `secrets` a free-form map.
          const sections = new Set(["host", "schemaVersion", "secrets", (data.host as { kind: string }).kind, "pgadmin", "outposts"]);
          for (const key of Object.keys(data)) assert.ok(sections.has(key), `${example}/${host.service}: unexpected section ${key}`);
          for (const key of leafKeys({ ...data, secrets: {} }, new Set(["secrets", "databases", "routes", "apps", "tokenFiles"]))) {
            if (sections.has(key)) continue;
            assert.ok(declared.has(key), `${example}/${host.service}: host.json key "${key}" has no mkOption in its modules`);
          }
        }
      }
    });
  });

  it("imports in each flake.nix the core module, the host's kind module and its custom modules, in that order", () => {
    const homepage = hosts.find((host) => host.service === "homepage")!;
    assert.match(homepage.files["flake.nix"], /modules = \[\n {8}\.\/nixos\/core\.nix\n {8}\.\/nixos\/services\/custom\.nix\n {8}\.\/custom\/modules\/homepage\.nix\n {8}\{ nixmox = builtins\.fromJSON \(builtins\.readFile \.\/host\.json\); \}\n {6}\];/);
    assert.equal(homepage.files["custom/modules/homepage.nix"], readFileSync(path.join(__dirname, "..", "manifest", "modules", "homepage.nix"), "utf8"));
  });
});
