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

/**
 * The `npx nixmox …` commands of a Markdown file's sh code blocks: each part of a `&&` chain on its own, without the
 * line's trailing comment or an output redirection (`> homelab.svg`).
 */
function documentedCommands(markdown: string): string[] {
  const commands: string[] = [];
  let inShell = false;
  for (const line of markdown.split("\n")) {
    if (/^```/.test(line)) {
      inShell = !inShell && /^```(sh|bash|shell)\s*$/.test(line);
      continue;
    }
    if (!inShell) continue;
    for (const part of line.replace(/\s+#.*$/, "").split("&&")) {
      const command = part.replace(/\s+>\s*\S+$/, "").trim();
      if (command.startsWith("npx nixmox ")) commands.push(command);
    }
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

  it(".ci/run runs exactly the README's two Quick start commands, and the first installs only nix-bin", () => {
    const readme = readFileSync(path.join(root, "README.md"), "utf8");
    const quickStart = readme.slice(readme.indexOf("## Quick start"), readme.indexOf("## Your own homelab"));
    const block = quickStart.slice(quickStart.indexOf("```sh\n") + 6, quickStart.indexOf("\n```", quickStart.indexOf("```sh\n")));
    const commands = (text: string) => text.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"));
    const ci = commands(readFileSync(path.join(root, ".ci", "run"), "utf8")).filter((line) => line !== "set -euo pipefail" && line !== 'cd "$(dirname "$0")/.."');
    assert.deepEqual(ci, commands(block));
    assert.equal(ci.length, 2);
    assert.match(ci[0], /^apt-get update && apt-get install -y nix-bin && npm ci && npx nixmox preview --offline$/);
    assert.match(ci[1], /^bash tools\/test-deps\.sh && npm test$/);
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
