// The engine commands through the Automation API with an injected fake Pulumi CLI that records its arguments,
// keeps a list of stacks, and replays recorded engine events into the event log the Automation API reads.
// What the fake does not prove: how the real CLI and engine behave (no Pulumi CLI can be installed here).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { PulumiCommand } from "@pulumi/pulumi/automation";
import { EngineError, initStack, missingCliMessage, openWorkspace, runEngine, setStackSecrets, type EngineOperation } from "../cli/engine";
import { engineAction, type EngineFlags } from "../cli/commands/engine";

// The Automation API reads the CLI version to choose features; semver comes with @pulumi/pulumi.
const { SemVer } = require(require.resolve("semver", { paths: [require.resolve("@pulumi/pulumi")] })) as { SemVer: new (v: string) => unknown };

const root = path.resolve(__dirname, "..");
const exampleManifest = path.join(root, "manifest", "service-manifest.nix");
const upFixture = path.join(__dirname, "fixtures", "engine-events", "up-rebuild-fails.jsonl");

interface Call {
  args: string[];
  env: Record<string, string>;
}

interface FakeState {
  calls: Call[];
  /** Stacks of the backend; `current` is the CLI's selected one. */
  stacks: string[];
  current?: string;
  /** Operation (first argument) that fails with this stderr. */
  failOn?: { command: string; stderr: string; stdout?: string };
  /** The binary is missing: every call fails as execa does (ENOENT). */
  missing?: boolean;
  /** Engine events written into the event log of preview/up/refresh/destroy. */
  events?: string[];
  /** What `stack export` prints. */
  exported?: unknown;
  /** The stack's nixmox:manifest. */
  manifest?: string;
}

function commandError(stderr: string, code = 255, err?: unknown, stdout = ""): Error {
  // The real PulumiCommand.run rejects with a CommandError whose message holds the whole command line.
  return Object.assign(new Error(`code: ${code}\n stdout: ${stdout}\n stderr: ${stderr}\n`), { commandResult: { stdout, stderr, code, err } });
}

function fakeCli(state: FakeState): PulumiCommand {
  return {
    command: "pulumi",
    version: new SemVer("3.200.0"),
    async run(args: string[], _cwd: string, env: Record<string, string>, _onOutput?: (text: string) => void, onError?: (text: string) => void) {
      state.calls.push({ args: args.map((arg) => (arg.endsWith("eventlog.txt") ? "<event log>" : arg)), env });
      if (state.missing) throw commandError("Command failed with ENOENT: pulumi stack ls --json\nspawn pulumi ENOENT", -2, Object.assign(new Error("spawn pulumi ENOENT"), { code: "ENOENT" }));
      const log = args.indexOf("--event-log");
      if (log >= 0) {
        const lines = state.events ?? [JSON.stringify({ sequence: 1, timestamp: 1, summaryEvent: { maybeCorrupt: false, durationSeconds: 1, resourceChanges: {}, policyPacks: {} } })];
        writeFileSync(args[log + 1], `${lines.join("\n")}\n`);
      }
      if (state.failOn && args[0] === state.failOn.command) {
        if (state.failOn.stderr !== "") onError?.(state.failOn.stderr);
        throw commandError(state.failOn.stderr, 255, undefined, state.failOn.stdout);
      }
      const stackArg = args[args.indexOf("--stack") + 1];
      if (args[0] === "stack" && args[1] === "ls") {
        return { stdout: JSON.stringify(state.stacks.map((name) => ({ name, current: name === state.current, updateInProgress: false }))), stderr: "", code: 0 };
      }
      if (args[0] === "stack" && args[1] === "select") {
        if (!state.stacks.includes(stackArg)) throw commandError(`error: no stack named '${stackArg}' found`);
        state.current = stackArg;
      }
      if (args[0] === "stack" && args[1] === "init") {
        if (state.stacks.includes(args[2])) throw commandError(`error: stack '${args[2]}' already exists`);
        state.stacks.push(args[2]);
        state.current = args[2];
      }
      if (args[0] === "stack" && args[1] === "export") return { stdout: JSON.stringify(state.exported ?? { version: 3, deployment: { resources: [] } }), stderr: "", code: 0 };
      if (args[0] === "config" && args.includes("--show-secrets")) {
        return { stdout: JSON.stringify({ "nixmox:proxmoxNode": { value: "pve", secret: false }, "nixmox:secrets": { value: JSON.stringify({ vaultwarden: { admin_token: "hunter2-admin-token-value" } }), secret: true } }), stderr: "", code: 0 };
      }
      if (args[0] === "config" && args[1] === "get") {
        if (state.manifest === undefined) throw commandError(`error: configuration key '${args[2]}' not found for stack '${stackArg}'`);
        return { stdout: JSON.stringify({ value: state.manifest, secret: false }), stderr: "", code: 0 };
      }
      return { stdout: args[0] === "stack" && args[1] === "output" ? "{}" : args[1] === "history" ? "[]" : "", stderr: "", code: 0 };
    },
  } as unknown as PulumiCommand;
}

/** Streams that collect what a command prints. */
function captureIo(state: FakeState, env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { stdout: { write: (text: string) => out.push(text), isTTY: false as boolean }, stderr: { write: (text: string) => err.push(text) }, pulumiCommand: fakeCli(state), env },
    stdout: () => out.join(""),
    stderr: () => err.join(""),
  };
}

describe("engine commands (Automation API)", function () {
  this.timeout(60_000);
  let projectDir: string;

  beforeEach(() => {
    projectDir = mkdtempSync(path.join(tmpdir(), "nixmox-engine-"));
    writeFileSync(path.join(projectDir, "Pulumi.yaml"), "name: nixmox\nruntime: nodejs\n");
  });
  afterEach(() => rmSync(projectDir, { recursive: true, force: true }));

  const flags = (extra: Partial<EngineFlags> = {}): EngineFlags => ({ projectDir, yes: true, ...extra });

  it("uses the CLI's current backend and selected stack, selecting it before each operation (exact CLI arguments)", async () => {
    const expected: Record<EngineOperation, string[]> = {
      preview: ["preview", "--diff", "--exec-kind", "auto.local", "--event-log", "<event log>", "--stack", "homelab"],
      up: ["up", "--yes", "--skip-preview", "--diff", "--exec-kind", "auto.local", "--event-log", "<event log>", "--stack", "homelab"],
      refresh: ["refresh", "--skip-preview", "--yes", "--event-log", "<event log>", "--exec-kind", "auto.local", "--stack", "homelab"],
      destroy: ["destroy", "--yes", "--skip-preview", "--event-log", "<event log>", "--exec-kind", "auto.local", "--stack", "homelab"],
    };
    for (const operation of Object.keys(expected) as EngineOperation[]) {
      const state: FakeState = { calls: [], stacks: ["lab", "homelab"], current: "homelab" };
      const run = captureIo(state);
      assert.equal(await engineAction(operation, flags(), run.io), 0, `${operation}: ${run.stderr()}`);
      const commands = state.calls.map((call) => call.args).filter((args) => !(args[0] === "stack" && args[1] === "export"));
      assert.deepEqual(commands[0], ["stack", "ls", "--json"], operation);
      assert.deepEqual(commands[1], ["stack", "select", "--stack", "homelab"], operation);
      assert.deepEqual(commands[2], expected[operation], operation);
      // No backend of its own: the CLI's login (or the user's PULUMI_BACKEND_URL) decides, as for `pulumi up`.
      assert.ok(state.calls.every((call) => call.env.PULUMI_BACKEND_URL === undefined), operation);
      assert.equal(existsSync(path.join(projectDir, ".nixmox")), false, operation);
    }
  });

  it("--stack overrides the selected stack and --backend the current backend; --backend local is .nixmox/state", async () => {
    const state: FakeState = { calls: [], stacks: ["homelab", "lab"], current: "homelab" };
    await runEngine({ operation: "refresh", stack: "lab", backend: "s3://bucket/nixmox", projectDir, env: {}, onError: () => undefined, pulumiCommand: fakeCli(state) });
    assert.deepEqual(state.calls[0].args, ["stack", "select", "--stack", "lab"]);
    assert.ok(state.calls.every((call) => call.env.PULUMI_BACKEND_URL === "s3://bucket/nixmox"));

    const local: FakeState = { calls: [], stacks: ["lab"] };
    await runEngine({ operation: "preview", stack: "lab", backend: "local", projectDir, env: {}, onError: () => undefined, pulumiCommand: fakeCli(local) });
    assert.ok(local.calls.every((call) => call.env.PULUMI_BACKEND_URL === `file://${path.join(projectDir, ".nixmox", "state")}`));
    assert.ok(existsSync(path.join(projectDir, ".nixmox", "state")));
  });

  it("fails with exit 2 for a stack that does not exist or when none is selected, creating none, naming the command that does", async () => {
    const missing: FakeState = { calls: [], stacks: ["lab"] };
    const run = captureIo(missing);
    assert.equal(await engineAction("up", flags({ stack: "homelab" }), run.io), 2);
    assert.equal(run.stderr(), 'nixmox: stack "homelab" does not exist in the current backend: create it with `nixmox stack init homelab`, or pick one from `pulumi stack ls`\n');
    assert.ok(missing.calls.every((call) => call.args[1] !== "init"));

    const none: FakeState = { calls: [], stacks: ["lab"] };
    const second = captureIo(none);
    assert.equal(await engineAction("preview", flags(), second.io), 2);
    assert.equal(second.stderr(), "nixmox: no stack is selected: pass --stack NAME, select one with `pulumi stack select NAME`, or create one with `nixmox stack init NAME`\n");
  });

  it("fails with exit 1 after the CLI's own stderr (onError), without the command line", async () => {
    const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", failOn: { command: "up", stderr: "error: Missing required configuration variable 'nixmox:proxmoxEndpoint'\n" } };
    const run = captureIo(state);
    assert.equal(await engineAction("up", flags(), run.io), 1);
    assert.match(run.stderr(), /^error: Missing required configuration variable 'nixmox:proxmoxEndpoint'\n/);
    assert.match(run.stderr(), /nixmox: pulumi up on stack "homelab" failed \(exit 255\); the Pulumi CLI's messages are above\n$/);
    assert.doesNotMatch(run.stderr(), /--skip-preview/);
  });

  it("fails with the end of the CLI's output when it wrote nothing on stderr and its output was not shown (progress mode)", async () => {
    const stdout = "Updating (homelab):\n\n  pulumi:pulumi:Stack nixmox-homelab  running\nerror: an unhandled error occurred: program exited with non-zero exit code: 1\n";
    const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", failOn: { command: "up", stderr: "", stdout } };
    const run = captureIo(state);
    assert.equal(await engineAction("up", flags(), run.io), 1);
    assert.equal(
      run.stderr(),
      `${stdout.trimEnd()}\nnixmox: pulumi up on stack "homelab" failed (exit 255); the Pulumi CLI's messages are above\n`,
    );
    const silent = captureIo({ calls: [], stacks: ["homelab"], current: "homelab", failOn: { command: "up", stderr: "" } });
    assert.equal(await engineAction("up", flags(), silent.io), 1);
    assert.equal(silent.stderr(), 'nixmox: pulumi up on stack "homelab" failed (exit 255)\n');
  });

  it("fails with the stderr of a workspace command that is not streamed (stack ls)", async () => {
    const state: FakeState = { calls: [], stacks: [], failOn: { command: "stack", stderr: "error: could not load credentials; run `pulumi login`\n" } };
    const run = captureIo(state);
    assert.equal(await engineAction("preview", flags(), run.io), 1);
    assert.equal(
      run.stderr(),
      "error: could not load credentials; run `pulumi login`\n" +
        "nixmox: listing the stacks (`pulumi stack ls`) failed (exit 255); the Pulumi CLI's messages are above; check `pulumi whoami` and the backend login\n",
    );
  });

  it("fails with the same one-line message for a missing Pulumi CLI in every command, secrets import and stack init included", async () => {
    for (const operation of ["preview", "up", "refresh", "destroy"] as EngineOperation[]) {
      const run = captureIo({ calls: [], stacks: [], missing: true });
      assert.equal(await engineAction(operation, flags({ stack: "homelab" }), run.io), 2, operation);
      assert.equal(run.stderr(), `nixmox: ${missingCliMessage}\n`, operation);
    }
    await assert.rejects(
      setStackSecrets({ projectDir, stack: "homelab", onError: () => undefined, pulumiCommand: fakeCli({ calls: [], stacks: [], missing: true }), values: { "nixmox:secrets.a.b": "v" } }),
      (error: unknown) => error instanceof EngineError && error.exitCode === 2 && error.message === missingCliMessage,
    );
    await assert.rejects(
      initStack({ projectDir, stack: "homelab", onError: () => undefined, pulumiCommand: fakeCli({ calls: [], stacks: [], missing: true }) }),
      (error: unknown) => error instanceof EngineError && error.message === missingCliMessage,
    );
  });

  it("fails with one message naming the minimum version when the pulumi on the PATH is older than 3.207.0 (no replaceWith)", async () => {
    // A real PulumiCommand.get against a stub `pulumi` that prints its version, as the real CLI does.
    const root = mkdtempSync(path.join(tmpdir(), "nixmox-old-pulumi-"));
    mkdirSync(path.join(root, "bin"));
    writeFileSync(path.join(root, "bin", "pulumi"), "#!/bin/sh\n[ \"$1\" = version ] && echo v3.206.0\n");
    chmodSync(path.join(root, "bin", "pulumi"), 0o755);
    const savedPath = process.env.PATH;
    process.env.PATH = `${path.join(root, "bin")}:${savedPath}`;
    try {
      await assert.rejects(openWorkspace({ projectDir, onError: () => undefined }), (error: unknown) =>
        error instanceof EngineError && error.exitCode === 2 &&
        /^NixMox needs the Pulumi CLI 3\.207\.0 or newer \(the replaceWith resource option, pulumi\/pulumi#20693\); this one is 3\.206\.0: update it/.test(error.message));
    } finally {
      process.env.PATH = savedPath;
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("fails with the CLI's own message, not 'not installed', when a CLI error mentions a missing file", async () => {
    const stderr = "error: ENOENT: no such file or directory, open '/srv/nixmox/Pulumi.homelab.yaml'\n";
    const run = captureIo({ calls: [], stacks: ["homelab"], current: "homelab", failOn: { command: "preview", stderr } });
    assert.equal(await engineAction("preview", flags(), run.io), 1);
    assert.equal(run.stderr(), `${stderr}nixmox: pulumi preview on stack "homelab" failed (exit 255); the Pulumi CLI's messages are above\n`);
  });

  it("fails before running anything when a passphrase-encrypted stack has no passphrase in the environment", async () => {
    writeFileSync(path.join(projectDir, "Pulumi.homelab.yaml"), "encryptionsalt: v1:abc=:v1:def:ghi==\nconfig: {}\n");
    const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab" };
    const run = captureIo(state, {});
    assert.equal(await engineAction("up", flags(), run.io), 2);
    assert.equal(run.stderr(), 'nixmox: stack "homelab" encrypts its secrets with a passphrase (Pulumi.homelab.yaml has an encryptionsalt): set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE) to it\n');
    assert.ok(state.calls.every((call) => call.args[0] !== "up"));
    const withFile = captureIo({ calls: [], stacks: ["homelab"], current: "homelab" }, { PULUMI_CONFIG_PASSPHRASE_FILE: "/run/secrets/pulumi" });
    assert.equal(await engineAction("up", flags(), withFile.io), 0, withFile.stderr());
  });

  it("fails with exit 2 for up, refresh and destroy without --yes, running nothing", async () => {
    for (const operation of ["up", "refresh", "destroy"] as EngineOperation[]) {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab" };
      const run = captureIo(state);
      assert.equal(await engineAction(operation, { projectDir, stack: "homelab" }, run.io), 2, operation);
      const what = operation === "refresh" ? "refresh writes what it reads into the stack's state" : `${operation} changes the homelab`;
      assert.equal(run.stderr(), `nixmox: ${what}: run \`nixmox preview --stack homelab\` first, then add --yes\n`);
      assert.deepEqual(state.calls, []);
    }
  });

  describe("destroy and protected containers", () => {
    const exported = {
      version: 3,
      deployment: {
        resources: [
          { urn: "urn:pulumi:homelab::nixmox::pulumi:pulumi:Stack::nixmox-homelab", type: "pulumi:pulumi:Stack" },
          { urn: "urn:pulumi:homelab::nixmox::nixmox:index:NixosService$proxmoxve:index/containerLegacy:ContainerLegacy::postgresql-container", type: "proxmoxve:index/containerLegacy:ContainerLegacy", protect: true },
          { urn: "urn:pulumi:homelab::nixmox::nixmox:index:NixosService$proxmoxve:index/containerLegacy:ContainerLegacy::dns-container", type: "proxmoxve:index/containerLegacy:ContainerLegacy" },
        ],
      },
    };

    it("fails with exit 2 naming the protected containers, why, and the two explicit choices", async () => {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", exported, manifest: exampleManifest };
      const run = captureIo(state);
      assert.equal(await engineAction("destroy", flags(), run.io), 2);
      assert.equal(
        run.stderr(),
        [
          "nixmox: destroy stops at 1 protected resource:",
          '  - postgresql-container (ContainerLegacy, vmid 911): stateful: service "postgresql" keeps its data in the container',
          "Add --keep-protected to destroy everything else and leave these in place, or --remove-protected to unprotect and delete them too (their data is lost).",
          "",
        ].join("\n"),
      );
      // Read without --show-secrets, and nothing destroyed.
      assert.ok(state.calls.some((call) => call.args.join(" ") === "stack export --stack homelab"));
      assert.ok(state.calls.every((call) => call.args[0] !== "destroy"));
    });

    it("--keep-protected destroys the rest with --exclude-protected", async () => {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", exported };
      const run = captureIo(state);
      assert.equal(await engineAction("destroy", flags({ keepProtected: true }), run.io), 0, run.stderr());
      assert.deepEqual(state.calls.find((call) => call.args[0] === "destroy")!.args, ["destroy", "--yes", "--skip-preview", "--exclude-protected", "--event-log", "<event log>", "--exec-kind", "auto.local", "--stack", "homelab"]);
    });

    it("--remove-protected unprotects them first, then destroys everything", async () => {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", exported };
      const run = captureIo(state);
      assert.equal(await engineAction("destroy", flags({ removeProtected: true }), run.io), 0, run.stderr());
      const tail = state.calls.map((call) => call.args).filter((args) => args[0] === "state" || args[0] === "destroy");
      assert.deepEqual(tail[0], ["state", "unprotect", "--yes", "--stack", "homelab", exported.deployment.resources[1].urn]);
      assert.equal(tail[1][0], "destroy");
      assert.ok(!tail[1].includes("--exclude-protected"));
    });
  });

  describe("--only", () => {
    it("targets the service's component and children, with its dependencies, as engine URNs", async () => {
      const state: FakeState = { calls: [], stacks: ["org/nixmox/homelab"], current: "org/nixmox/homelab", manifest: exampleManifest };
      const run = captureIo(state);
      assert.equal(await engineAction("up", flags({ only: ["vaultwarden"], withDependencies: true }), run.io), 0, run.stderr());
      const up = state.calls.find((call) => call.args[0] === "up")!.args;
      const targets = up.flatMap((arg, index) => (up[index - 1] === "--target" ? [arg] : []));
      const names = targets.map((urn) => urn.split("::").pop()).sort();
      // vaultwarden depends on postgresql (its database), authentik (its OIDC provider) and, through them, dns.
      assert.deepEqual(
        names.filter((name) => !name!.startsWith("sso-")),
        ["authentik", "caddy", "dns", "postgresql", "vaultwarden"]
          // Only hosts that receive secrets have a secrets step (the engine fails on a target it cannot find); the proxy
          // receives the managed CA.
          .flatMap((service) => [service, ...["config", "container", "guard", "health", "rebuild", "ssh", ...(service === "dns" ? [] : ["secrets"])].map((phase) => `${service}-${phase}`)])
          // What every host is built from (the stack sets no node here, so no template download is named).
          .concat(["nixmox-ca", "nixmox-ca-intermediate", "nixmox-ca-root"])
          .sort(),
      );
      assert.ok(targets.includes("urn:pulumi:homelab::nixmox::nixmox:index:NixosService::vaultwarden"));
      assert.ok(targets.includes("urn:pulumi:homelab::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:RemoteCommand::vaultwarden-rebuild"));
      assert.ok(targets.includes("urn:pulumi:homelab::nixmox::pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp::sso-vaultwarden"));
      assert.match(run.stderr(), /^nixmox: up on stack "org\/nixmox\/homelab" for authentik, caddy, dns, postgresql, vaultwarden \(\d+ targets\)\n$/);
    });

    it("also targets the generated passwords the selected hosts receive, except those the stack sets", async () => {
      writeFileSync(path.join(projectDir, "Pulumi.homelab.yaml"), "config:\n  nixmox:secrets:\n    vaultwarden:\n      db_password:\n        secure: v1:AAAA\n");
      // What vaultwarden needs is deployed already: its dependencies' health gates are in the state.
      const deployedGates = { version: 3, deployment: { resources: ["authentik", "caddy", "dns", "postgresql"].map((service) => ({ urn: `urn:pulumi:homelab::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:HealthCheck::${service}-health`, type: "pulumi-nodejs:dynamic/nixmox:HealthCheck" })) } };
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", manifest: exampleManifest, exported: deployedGates };
      const run = captureIo(state, { PULUMI_CONFIG_PASSPHRASE_FILE: "/run/secrets/pulumi" });
      assert.equal(await engineAction("preview", flags({ only: ["vaultwarden"] }), run.io), 0, run.stderr());
      const preview = state.calls.find((call) => call.args[0] === "preview")!.args;
      const passwords = preview.filter((arg) => arg.includes("GeneratedSecret"));
      assert.deepEqual(passwords, ["urn:pulumi:homelab::nixmox::pulumi-nodejs:dynamic/nixmox:GeneratedSecret::secret-vaultwarden-oidc_client_secret"]);
    });

    it("fails with exit 2 for an unknown or disabled service, listing the enabled ones, running nothing", async () => {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", manifest: exampleManifest };
      const run = captureIo(state);
      assert.equal(await engineAction("preview", flags({ only: ["vaultwarden,nextcloud"] }), run.io), 2);
      assert.equal(run.stderr(), 'nixmox: --only: "nextcloud" is not a service of the manifest; enabled services: authentik, caddy, dns, guacamole, homepage, postgresql, vaultwarden\n');
      assert.ok(state.calls.every((call) => call.args[0] !== "preview"));
    });
  });

  describe("live progress from recorded engine events", () => {
    const events = () => readFileSync(upFixture, "utf8").trim().split("\n");

    it("prints one line per service as its phase changes, then the summary with the failing step and host", async () => {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", events: events(), failOn: { command: "up", stderr: "" }, manifest: exampleManifest };
      const run = captureIo(state);
      assert.equal(await engineAction("up", flags(), run.io), 1);
      const lines = run.stdout().trimEnd().split("\n");
      // The services progress side by side: vaultwarden's container is created while caddy's config is replaced.
      assert.ok(lines.indexOf(lines.find((line) => /^vaultwarden\s+container \(create\)/.test(line))!) < lines.indexOf(lines.find((line) => /^caddy\s+rebuild \(replace\)/.test(line))!));
      assert.match(run.stdout(), /^dns\s+unchanged\s+0s$/m);
      assert.match(run.stdout(), /^caddy\s+ready\s+29s$/m);
      assert.match(run.stdout(), /^vaultwarden\s+failed at rebuild\s+56s$/m);
      const summary = lines.slice(lines.findIndex((line) => line.startsWith("up: ")));
      assert.equal(summary[0], "up: 3 services: 1 ready, 1 unchanged, 1 failed (58s); resources: 5 create, 2 replace, 1 update, 13 same");
      assert.match(summary[1], /^failed: vaultwarden \(192\.168\.99\.14\) at rebuild: sdk-v2\/provider2\.go:572: .*Process exited with status 1/);
      // The engine's message quoted a secret of the stack's config: masked.
      assert.ok(summary.some((line) => line.includes("(ADMIN_TOKEN=[secret] rejected)")), summary.join("\n"));
      assert.doesNotMatch(run.stdout(), /hunter2/);
      assert.ok(summary.some((line) => line === "error: update failed"));
    });

    it("on a terminal, redraws the block of service lines in place (ANSI cursor-up), then prints the summary", async () => {
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", events: events(), failOn: { command: "up", stderr: "" }, manifest: exampleManifest };
      const run = captureIo(state);
      run.io.stdout.isTTY = true;
      assert.equal(await engineAction("up", flags(), run.io), 1);
      const screen = run.stdout();
      // Each redraw moves up over the previous block (CSI n F) and clears to the end of every line (CSI K).
      assert.match(screen, /\u001b\[3F/);
      const lastBlock = screen.slice(screen.lastIndexOf("\u001b[3F") + 4).split("\n").slice(0, 3).map((line) => line.replace(/\u001b\[K$/, ""));
      assert.deepEqual(lastBlock.map((line) => line.replace(/\s+\d+s$/, "").trimEnd()), ["caddy        ready", "dns          unchanged", "vaultwarden  failed at rebuild"]);
      assert.match(screen, /\nup: 3 services: 1 ready, 1 unchanged, 1 failed \(58s\); resources: /);
    });

    it("--json streams every engine event as one JSON line, and nothing else on stdout", async () => {
      const recorded = events();
      const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab", events: recorded };
      const run = captureIo(state);
      assert.equal(await engineAction("up", flags({ json: true }), run.io), 0, run.stderr());
      assert.deepEqual(run.stdout().trimEnd().split("\n").map((line) => JSON.parse(line)), recorded.map((line) => JSON.parse(line)));
    });
  });

  it("stack init creates the stack (with the secrets provider and a passphrase for this call only) and refuses an existing one", async () => {
    const state: FakeState = { calls: [], stacks: ["lab"] };
    await initStack({ projectDir, stack: "homelab", secretsProvider: "passphrase", passphrase: "correct horse", onError: () => undefined, pulumiCommand: fakeCli(state) });
    assert.deepEqual(state.calls[0].args, ["stack", "init", "homelab", "--secrets-provider", "passphrase"]);
    assert.equal(state.calls[0].env.PULUMI_CONFIG_PASSPHRASE, "correct horse");
    await assert.rejects(
      initStack({ projectDir, stack: "lab", onError: () => undefined, pulumiCommand: fakeCli(state) }),
      { name: "EngineError", message: 'stack "lab" already exists in the current backend; select it with `pulumi stack select lab` or pass --stack lab' },
    );
  });

  it("secrets import writes through the same workspace: the selected stack, as secrets, by path", async () => {
    const state: FakeState = { calls: [], stacks: ["homelab"], current: "homelab" };
    const stack = await setStackSecrets({ projectDir, onError: () => undefined, pulumiCommand: fakeCli(state), values: { "nixmox:secrets.vaultwarden.admin_token": "t0ken" } });
    assert.equal(stack, "homelab");
    assert.deepEqual(state.calls.map((call) => call.args), [
      ["stack", "ls", "--json"],
      ["stack", "select", "--stack", "homelab"],
      ["config", "set-all", "--stack", "homelab", "--path", "--secret", "nixmox:secrets.vaultwarden.admin_token=t0ken"],
    ]);
  });

  it("fails with exit 2 on a stack name that is not one", async () => {
    await assert.rejects(
      runEngine({ operation: "up", stack: "home lab;rm", projectDir, env: {}, onError: () => undefined, pulumiCommand: fakeCli({ calls: [], stacks: [] }) }),
      { name: "EngineError", message: '--stack must be a Pulumi stack name such as "homelab" or "org/nixmox/homelab", got "home lab;rm"' },
    );
  });

  it("nixmox up, refresh and destroy refuse to change anything without --yes (exit 2)", () => {
    for (const operation of ["up", "refresh", "destroy"]) {
      const result = spawnSync(process.execPath, [path.join(root, "bin", "nixmox.js"), operation, "--stack", "homelab"], { encoding: "utf8", timeout: 60_000 });
      assert.equal(result.status, 2, operation);
      assert.match(result.stderr, new RegExp(`^nixmox: ${operation} .*: run \`nixmox preview --stack homelab\` first, then add --yes\n$`));
    }
  });
});
