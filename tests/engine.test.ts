// The engine commands through the Automation API with an injected fake Pulumi CLI that records its arguments.
// What the fake does not prove: how the real CLI and engine behave (no Pulumi CLI can be installed here).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { PulumiCommand } from "@pulumi/pulumi/automation";
import { EngineError, runEngine, type EngineOperation } from "../cli/engine";

// The Automation API reads the CLI version to choose features; semver comes with @pulumi/pulumi.
const { SemVer } = require(require.resolve("semver", { paths: [require.resolve("@pulumi/pulumi")] })) as { SemVer: new (v: string) => unknown };

interface Call {
  args: string[];
  backend: string | undefined;
}

function fakeCli(calls: Call[], failOn?: string): PulumiCommand {
  return {
    command: "pulumi",
    version: new SemVer("3.200.0"),
    async run(args: string[], _cwd: string, env: Record<string, string>) {
      calls.push({ args: args.map((arg) => (arg.endsWith("eventlog.txt") ? "<event log>" : arg)), backend: env.PULUMI_BACKEND_URL });
      // The engine reports a preview's summary through its event log.
      const log = args.indexOf("--event-log");
      if (log >= 0) writeFileSync(args[log + 1], `${JSON.stringify({ sequence: 1, timestamp: 1, summaryEvent: { maybeCorrupt: false, durationSeconds: 1, resourceChanges: {}, policyPacks: {} } })}\n`);
      // The real PulumiCommand.run rejects with a CommandError whose message holds the whole command line.
      if (args[0] === failOn) throw Object.assign(new Error(`code: 255\n stdout: \n stderr: error: boom\n pulumi ${args.join(" ")}`), { commandResult: { code: 255 } });
      return { stdout: args[0] === "stack" && args[1] === "output" ? "{}" : args[1] === "history" ? "[]" : "", stderr: "", code: 0 };
    },
  } as unknown as PulumiCommand;
}

describe("engine commands (Automation API)", function () {
  this.timeout(30_000);
  let projectDir: string;
  const env = { PULUMI_CONFIG_PASSPHRASE_FILE: "/run/secrets/pulumi-passphrase" };

  beforeEach(() => {
    projectDir = mkdtempSync(path.join(tmpdir(), "nixmox-engine-"));
  });
  afterEach(() => rmSync(projectDir, { recursive: true, force: true }));

  const run = async (operation: EngineOperation, calls: Call[], failOn?: string) =>
    runEngine({ operation, stack: "homelab", projectDir, env, onOutput: () => undefined, pulumiCommand: fakeCli(calls, failOn) });

  it("selects the stack and runs each operation with the local file backend by default (exact CLI arguments)", async () => {
    const expected: Record<EngineOperation, string[]> = {
      preview: ["preview", "--diff", "--exec-kind", "auto.local", "--event-log", "<event log>", "--stack", "homelab"],
      up: ["up", "--yes", "--skip-preview", "--diff", "--exec-kind", "auto.local", "--stack", "homelab"],
      refresh: ["refresh", "--skip-preview", "--yes", "--exec-kind", "auto.local", "--stack", "homelab"],
      destroy: ["destroy", "--yes", "--skip-preview", "--exec-kind", "auto.local", "--stack", "homelab"],
    };
    for (const operation of Object.keys(expected) as EngineOperation[]) {
      const calls: Call[] = [];
      await run(operation, calls);
      assert.deepEqual(calls[0].args, ["stack", "select", "--stack", "homelab"], operation);
      assert.deepEqual(calls[1].args, expected[operation], operation);
      const backend = `file://${path.join(projectDir, ".nixmox", "state")}`;
      assert.ok(calls.every((call) => call.backend === backend), operation);
    }
    assert.ok(existsSync(path.join(projectDir, ".nixmox", "state")));
  });

  it("uses --backend over the default", async () => {
    const calls: Call[] = [];
    await runEngine({ operation: "refresh", stack: "homelab", projectDir, backendUrl: "s3://bucket/nixmox", env: {}, onOutput: () => undefined, pulumiCommand: fakeCli(calls) });
    assert.ok(calls.every((call) => call.backend === "s3://bucket/nixmox"));
  });

  it("fails with exit 1 and no command line when the operation fails", async () => {
    await assert.rejects(run("up", [], "up"), (error: unknown) => {
      assert.ok(error instanceof EngineError);
      assert.equal(error.exitCode, 1);
      assert.equal(error.message, 'pulumi up on stack "homelab" failed (exit 255); the engine\'s messages are above');
      return true;
    });
  });

  it("fails with exit 2 before calling the CLI when the local backend has no passphrase", async () => {
    const calls: Call[] = [];
    await assert.rejects(
      runEngine({ operation: "preview", stack: "homelab", projectDir, env: {}, onOutput: () => undefined, pulumiCommand: fakeCli(calls) }),
      { name: "EngineError", message: `the local state backend (file://${path.join(projectDir, ".nixmox", "state")}) encrypts secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE), or use another backend with --backend` },
    );
    assert.deepEqual(calls, []);
    assert.equal(existsSync(path.join(projectDir, ".nixmox")), false);
  });

  it("fails with exit 2 on a stack name that is not one", async () => {
    await assert.rejects(
      runEngine({ operation: "up", stack: "home lab;rm", projectDir, env, onOutput: () => undefined, pulumiCommand: fakeCli([]) }),
      { name: "EngineError", message: '--stack must be a Pulumi stack name such as "homelab" or "org/nixmox/homelab", got "home lab;rm"' },
    );
  });

  it("nixmox up and destroy refuse to change anything without --yes (exit 2)", () => {
    for (const operation of ["up", "destroy"]) {
      const result = spawnSync(process.execPath, [path.join(__dirname, "..", "bin", "nixmox.js"), operation, "--stack", "homelab"], { encoding: "utf8", timeout: 60_000 });
      assert.equal(result.status, 2, operation);
      assert.equal(result.stderr, `nixmox: ${operation} changes the homelab: run \`nixmox preview --stack homelab\` first, then add --yes\n`);
    }
  });
});
