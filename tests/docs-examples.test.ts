// Real processes, no mocks: every example the docs give, through the compiled CLI (bin/nixmox.js running dist/), as a
// user copies it. The worked example of docs/custom-apps.md once passed under the tests' tsx and failed compiled
// (newcomer-2 #3). Not run here: the commands that need a stack or a deployed homelab (tests/homelab-package.test.ts
// and the engine tests run those).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const root = path.resolve(__dirname, "..");
const bin = path.join(root, "bin", "nixmox.js");
const docs = ["README.md", ...readdirSync(path.join(root, "docs")).filter((file) => file.endsWith(".md")).map((file) => path.join("docs", file))];

/** The `npx nixmox …` lines of a Markdown file's sh code blocks, without their trailing comments. */
function documentedCommands(markdown: string): string[] {
  const commands: string[] = [];
  let inShell = false;
  for (const line of markdown.split("\n")) {
    if (/^```/.test(line)) {
      inShell = !inShell && /^```(sh|bash|shell)\s*$/.test(line);
      continue;
    }
    if (!inShell) continue;
    const command = line.replace(/\s+#.*$/, "").trim();
    if (command.startsWith("npx nixmox ")) commands.push(command);
  }
  return commands;
}

/**
 * A command runs here when it needs neither a stack nor hosts, and is an example rather than a usage line: no
 * `[optional]`, `a|b` or UPPER-CASE placeholder.
 */
function offlineExample(command: string): boolean {
  const args = command.split(/\s+/).slice(2);
  if (/[[\]|<>…]|\b[A-Z][A-Z_]{2,}\b/.test(command)) return false;
  const [name] = args;
  if (["validate", "plan", "graph", "render", "schema", "--version", "--help", "init"].includes(name)) return true;
  return name === "preview" && args.includes("--offline");
}

describe("docs: every example runs through the compiled CLI", function () {
  this.timeout(300_000);
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(path.join(tmpdir(), "nixmox-docs-"));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  /** Runs `npx nixmox ARGS` as `node bin/nixmox.js ARGS` from the repository root, output folders moved to scratch. */
  function run(command: string) {
    const args = command.split(/\s+/).slice(2).map((arg, index, all) => (all[index - 1] === "--out" || all[index - 1] === "init" ? path.join(scratch, `${index}-${arg.replace(/\W/g, "_")}`) : arg));
    return spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: "utf8", timeout: 120_000, env: { ...process.env, NIXMOX_FROM_SOURCE: "" } });
  }

  it("finds the worked examples it is meant to run (a parser that finds none would prove nothing)", () => {
    const all = docs.flatMap((file) => documentedCommands(readFileSync(path.join(root, file), "utf8")));
    assert.ok(all.includes("npx nixmox validate docs/examples/custom-app.nix"), all.join("\n"));
    assert.ok(all.includes("npx nixmox render docs/examples/custom-app.nix --out out"), all.join("\n"));
    assert.ok(all.filter(offlineExample).length >= 8, all.filter(offlineExample).join("\n"));
  });

  for (const file of docs) {
    const commands = documentedCommands(readFileSync(path.join(root, file), "utf8")).filter(offlineExample);
    for (const command of [...new Set(commands)]) {
      it(`${file}: ${command}`, () => {
        const result = run(command);
        assert.equal(result.status, 0, `${command}\n${result.stdout}\n${result.stderr}`);
        assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
      });
    }
  }

  for (const manifest of ["docs/examples/custom-app.nix", "manifest/examples/seed-homelab.nix", "manifest/service-manifest.nix", "templates/homelab/service-manifest.nix"]) {
    it(`${manifest}: validate, plan --json, render --configs and preview --offline, compiled`, () => {
      for (const args of [["validate", manifest], ["plan", "--json", manifest], ["render", manifest, "--out", path.join(scratch, manifest.replace(/\W/g, "_")), "--configs"], ["preview", "--offline", manifest]]) {
        const result = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: "utf8", timeout: 120_000, env: { ...process.env, NIXMOX_FROM_SOURCE: "" } });
        assert.equal(result.status, 0, `nixmox ${args.join(" ")}\n${result.stderr}`);
      }
    });
  }
});
