// Live progress from a recorded engine event stream (tests/fixtures/engine-events, in the shapes of
// @pulumi/pulumi/automation/events.d.ts), and the terminal-only status line of `preview --offline`, shown through
// a real pseudo-terminal (util-linux `script`). Not proven: the exact event order a real engine produces.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ProgressTracker, maskSecrets, serviceOf, ttyStatusLine } from "../cli/progress";

const root = path.resolve(__dirname, "..");
const fixture = path.join(__dirname, "fixtures", "engine-events", "up-rebuild-fails.jsonl");
const events = () => readFileSync(fixture, "utf8").trim().split("\n").map((line) => JSON.parse(line));

describe("cli progress", () => {
  it("follows each service through its phases from the engine's events, side by side", () => {
    const tracker = new ProgressTracker();
    const snapshots: string[] = [];
    for (const event of events()) if (tracker.handle(event)) snapshots.push(tracker.lines().join(" | ").replace(/\s+/g, " "));
    // Both caddy and vaultwarden are mid-way at the same time: independent services run in parallel.
    assert.ok(snapshots.includes("caddy rebuild (replace) 12s | dns unchanged 0s | vaultwarden ssh (create) 12s"), snapshots.join("\n"));
    assert.deepEqual(tracker.lines(), [
      "caddy        ready                    29s",
      "dns          unchanged                 0s",
      "vaultwarden  failed at rebuild        56s",
    ]);
  });

  it("summarises with each failure's step, host and message, secrets masked, and engine errors without a resource", () => {
    const tracker = new ProgressTracker(["caddy", "dns", "homepage", "vaultwarden"]);
    for (const event of events()) tracker.handle(event);
    assert.equal(
      tracker.summary({ operation: "up", hostOf: (service) => ({ vaultwarden: "10.0.0.14" })[service], secrets: ["hunter2-admin-token-value"] }),
      [
        "up: 4 services: 1 ready, 1 unchanged, 1 failed, 1 waiting (58s); resources: 5 create, 2 replace, 1 update, 13 same",
        'failed: vaultwarden (10.0.0.14) at rebuild: sdk-v2/provider2.go:572: sdk.helper_schema: Process exited with status 1: running "nixmox-activate switch":',
        '    NIXMOX_RESULT {"status":"rolled-back","reason":"vaultwarden.service failed to start (ADMIN_TOKEN=[secret] rejected)"}',
        "error: update failed",
      ].join("\n"),
    );
  });

  it("walks a destroy backwards through the phases to deleted, and keeps the program's warnings for the summary", () => {
    const tracker = new ProgressTracker();
    const seen: string[] = [];
    const destroy = readFileSync(path.join(__dirname, "fixtures", "engine-events", "destroy-two-services.jsonl"), "utf8").trim().split("\n");
    for (const line of destroy) {
      const changed = tracker.handle(JSON.parse(line));
      if (changed?.service === "dns") seen.push(changed.state);
    }
    assert.deepEqual([...new Set(seen)], ["health", "rebuild", "config", "ssh", "container", "deleted"]);
    assert.equal(
      tracker.summary({ operation: "destroy" }),
      [
        "destroy: 2 services: 2 deleted (14s); resources: 12 delete",
        "warning: nixmox: the deploy key's public half is not in the manifest's network.ssh_keys.root; the first rebuild would remove it",
      ].join("\n"),
    );
  });

  it("counts services still mid-way after a successful run as done (refresh sends no component outputs)", () => {
    const tracker = new ProgressTracker();
    const urn = (name: string) => `urn:pulumi:homelab::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:HealthCheck::${name}-health`;
    const metadata = (name: string, op: string) => ({ op, urn: urn(name), type: "pulumi-nodejs:dynamic/nixmox:HealthCheck", provider: "" });
    tracker.handle({ sequence: 1, timestamp: 10, resourcePreEvent: { metadata: metadata("dns", "refresh") } } as never);
    tracker.handle({ sequence: 2, timestamp: 12, resourcePreEvent: { metadata: metadata("caddy", "same") } } as never);
    tracker.complete();
    assert.deepEqual(tracker.all().map((row) => [row.service, row.state]), [["caddy", "unchanged"], ["dns", "ready"]]);
  });

  it("finds the service and phase of engine URNs and of the mock monitor's (which keep the stack type)", () => {
    assert.deepEqual(serviceOf("urn:pulumi:homelab::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:RemoteCommand::my-app-rebuild"), { service: "my-app", phase: "rebuild" });
    assert.deepEqual(serviceOf("urn:pulumi:offline::nixmox::pulumi:pulumi:Stack$nixmox:index:NixosService::dns"), { service: "dns", phase: null });
    assert.deepEqual(serviceOf("urn:pulumi:homelab::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:ContainerGuard::dns-guard"), { service: "dns", phase: "container" });
    assert.equal(serviceOf("urn:pulumi:homelab::nixmox::pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp::sso-vaultwarden"), null);
  });

  it("masks longer secrets first and leaves values shorter than 4 characters alone", () => {
    assert.equal(maskSecrets("token abcdef and abc", ["abc", "abcdef", "xy"]), "token [secret] and abc");
  });

  it("writes the status line only to a terminal", () => {
    const written: string[] = [];
    const tty = ttyStatusLine({ isTTY: true, write: (text: string) => written.push(text) });
    tty.update("checked 1/3");
    tty.done();
    assert.deepEqual(written, ["\r\u001b[Kchecked 1/3", "\r\u001b[K"]);
    const piped: string[] = [];
    const line = ttyStatusLine({ isTTY: false, write: (text: string) => piped.push(text) });
    line.update("x");
    line.done();
    assert.deepEqual(piped, []);
  });

  describe("preview --offline on a terminal and piped", function () {
    this.timeout(120_000);
    let dir: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), "nixmox-tty-"));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it("counts registered resources on a terminal's stderr, and prints nothing extra when piped", () => {
      const typescript = path.join(dir, "typescript");
      const command = `'${process.execPath}' '${path.join(root, "bin", "nixmox.js")}' preview --offline > '${path.join(dir, "tree.txt")}'`;
      const onTty = spawnSync("script", ["-qec", command, typescript], { encoding: "utf8", env: process.env, timeout: 100_000 });
      assert.equal(onTty.status, 0, onTty.stderr);
      const terminal = readFileSync(typescript, "utf8");
      // The counter reaches the number of resources the tree's closing line reports.
      const total = /^(\d+) resources:/m.exec(readFileSync(path.join(dir, "tree.txt"), "utf8"))![1];
      assert.ok(terminal.includes(`\r\u001b[Kregistering resources: ${total} (`), terminal.slice(-400));
      assert.match(terminal, /\r\u001b\[K$/m);
      // Where the hosts build (issue 18), as the engine's preview says it in an info line.
      assert.ok(terminal.includes("nixmox: builds: on each host itself (nixos-rebuild on the host)"), terminal.slice(0, 400));
      const piped = spawnSync(process.execPath, [path.join(root, "bin", "nixmox.js"), "preview", "--offline"], { encoding: "utf8", timeout: 100_000 });
      assert.equal(piped.status, 0);
      assert.equal(piped.stderr, "");
      assert.equal(piped.stdout, readFileSync(path.join(dir, "tree.txt"), "utf8"));
    });
  });
});
