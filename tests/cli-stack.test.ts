// `nixmox stack init` as a user runs it: on a real pseudo-terminal (util-linux `script`) for the passphrase
// question, and piped. No Pulumi CLI exists here, so a run that gets past the question ends at the missing-CLI
// message; what the CLI then receives is proven with the fake CLI in tests/engine.test.ts (initStack).
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { usesPassphrase } from "../cli/commands/stack";

const root = path.resolve(__dirname, "..");
const bin = path.join(root, "bin", "nixmox.js");

/** Runs `nixmox stack init` on a pseudo-terminal, typing each answer once its prompt has appeared. */
async function onTerminal(dir: string, answers: Array<{ after: string; type: string }>): Promise<{ code: number | null; screen: string }> {
  const screen = path.join(dir, `typescript-${Math.random().toString(16).slice(2)}`);
  const command = `'${process.execPath}' '${bin}' stack init homelab --backend 'file://${dir}' --project-dir '${root}'`;
  const child = spawn("script", ["-qfec", command, screen], { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, PATH: "/usr/bin:/bin" } });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  for (const answer of answers) {
    const deadline = Date.now() + 60_000;
    while (!(existsSync(screen) && readFileSync(screen, "utf8").includes(answer.after))) {
      if (Date.now() > deadline) throw new Error(`no prompt ${JSON.stringify(answer.after)}: ${existsSync(screen) ? readFileSync(screen, "utf8") : ""}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    child.stdin.write(answer.type);
  }
  const code = await exited;
  return { code, screen: readFileSync(screen, "utf8") };
}

describe("nixmox stack init", function () {
  this.timeout(120_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-stack-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("asks for the passphrase twice on a terminal, without echoing it, then goes to the Pulumi CLI", async () => {
    const run = await onTerminal(dir, [
      { after: 'passphrase for stack "homelab": ', type: "correct horse\r" },
      { after: "the same passphrase again: ", type: "correct horse\r" },
    ]);
    assert.equal(run.code, 2, run.screen);
    assert.ok(!run.screen.includes("correct horse"), run.screen);
    assert.match(run.screen, /nixmox: the Pulumi CLI is not installed \(https:\/\/www\.pulumi\.com\/docs\/install\/\); `nixmox preview --offline` needs none/);
  });

  it("fails when the two answers differ, creating nothing", async () => {
    const run = await onTerminal(dir, [
      { after: 'passphrase for stack "homelab": ', type: "one\r" },
      { after: "the same passphrase again: ", type: "two\r" },
    ]);
    assert.equal(run.code, 2);
    assert.match(run.screen, /nixmox: the passphrases are empty or differ; nothing was created/);
    assert.doesNotMatch(run.screen, /Pulumi CLI/);
  });

  it("fails without a terminal, naming the variable to set instead of waiting for an answer", () => {
    const env = { ...process.env };
    delete env.PULUMI_CONFIG_PASSPHRASE;
    delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
    delete env.PULUMI_BACKEND_URL;
    const result = spawnSync(process.execPath, [bin, "stack", "init", "homelab"], { encoding: "utf8", env, input: "" });
    assert.equal(result.status, 2);
    assert.equal(
      result.stderr,
      'nixmox: stack "homelab" will encrypt its secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE), or run this on a terminal to be asked, or choose --secrets-provider\n',
    );
  });

  it("needs a passphrase on self-managed backends, not on the Pulumi Cloud or with a key service", () => {
    assert.equal(usesPassphrase(undefined, undefined, {}), true);
    assert.equal(usesPassphrase(undefined, "s3://bucket/state", {}), true);
    assert.equal(usesPassphrase(undefined, undefined, { PULUMI_BACKEND_URL: "https://api.pulumi.com" }), false);
    assert.equal(usesPassphrase("awskms://alias/nixmox", undefined, {}), false);
    assert.equal(usesPassphrase("passphrase", "https://api.pulumi.com", {}), true);
  });
});
