// The repair of an interrupted deploy (cli/interrupted.ts) with a recording stand-in for the Pulumi CLI and Proxmox:
// which commands it runs for which pending operations, and which locks it removes. Not proven here: that the engine
// accepts those commands and leaves a state the next up converges from (tests/twin-homelab.test.ts, scenario 4, kills
// the real engine in the twin).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { hostname } from "node:os";
import { lockHolder, lockIsStale, repairPendingOperations, withInterruptionRecovery, type RecoveryIo } from "../cli/interrupted";

const lockError = (host: string, pid: number) =>
  `error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end or delete the lock file with \`pulumi cancel\`.\n  file:///state/.pulumi/locks/organization/nixmox/twin/a4a4.json?no_tmp_dir=true: created by root@${host} (pid ${pid}) at 2026-12-06T22:46:03Z`;

function recordingIo(pending: unknown[], existing: number[] = []): RecoveryIo & { calls: string[][]; said: string[]; removed: string[] } {
  const calls: string[][] = [];
  const said: string[] = [];
  const removed: string[] = [];
  return {
    calls,
    said,
    removed,
    cli: async (args) => {
      calls.push(args);
      return { stdout: args[0] === "stack" ? JSON.stringify({ deployment: { pending_operations: calls.length === 1 ? pending : [] } }) : "" };
    },
    say: (text) => said.push(text),
    removeInterruptedContainer: async (service, node, vmid) => {
      if (!existing.includes(vmid)) return "absent";
      removed.push(`${service} ${node}/${vmid}`);
      return "removed";
    },
  };
}

describe("cli: repairing an interrupted deploy", () => {
  it("reads the holder of a diy backend lock, and calls it stale only when it was a process of this machine that is gone", () => {
    const dead = spawnSync("true").pid!;
    assert.deepEqual(lockHolder(lockError("vm", 30289)), { host: "vm", pid: 30289 });
    assert.equal(lockHolder("error: [409] Conflict: Another update is currently in progress."), null);
    assert.equal(lockIsStale({ host: hostname(), pid: dead }), true);
    assert.equal(lockIsStale({ host: hostname(), pid: process.pid }), false, "a live process");
    assert.equal(lockIsStale({ host: `not-${hostname()}`, pid: dead }), false, "another machine");
  });

  it("does nothing when the state has no pending operation", async () => {
    const io = recordingIo([]);
    assert.deepEqual(await repairPendingOperations(io, "twin"), []);
    assert.deepEqual(io.calls, [["stack", "export", "--stack", "twin"]]);
  });

  it("destroys a half-made container of a pending creation that Proxmox has (so the up makes it again), drops every pending create, and refreshes", async () => {
    const urn = (type: string, name: string) => `urn:pulumi:twin::nixmox::nixmox:index:NixosService$${type}::${name}`;
    const container = "proxmoxve:index/containerLegacy:ContainerLegacy";
    const io = recordingIo([
      { type: "creating", resource: { urn: urn(container, "web-container"), type: container, inputs: { vmId: 919, nodeName: "pve" } } },
      { type: "creating", resource: { urn: urn(container, "db-container"), type: container, inputs: { vmId: 920, nodeName: "pve" } } },
      { type: "creating", resource: { urn: urn("pulumi-nodejs:dynamic/nixmox:RemoteCommand", "web-config"), type: "pulumi-nodejs:dynamic/nixmox:RemoteCommand" } },
      { type: "updating", resource: { urn: urn("pulumi-nodejs:dynamic/nixmox:RemoteCommand", "caddy-rebuild"), type: "pulumi-nodejs:dynamic/nixmox:RemoteCommand" } },
    ], [919]);
    assert.deepEqual(await repairPendingOperations(io, "twin"), [
      "web-container: Proxmox had container 919, half made by the interrupted deploy (this stack's token created it); it was destroyed and this deploy creates it again",
      "db-container: Proxmox has no container 920; this deploy creates it",
      "web-config: its interrupted creation is dropped and done again by this deploy",
      "caddy-rebuild: the interrupted update is run again by this deploy",
    ]);
    assert.deepEqual(io.removed, ["web pve/919"]);
    assert.deepEqual(io.calls[1], ["refresh", "--yes", "--skip-preview", "--non-interactive", "--stack", "twin", "--clear-pending-creates"]);
    assert.match(io.said[0]!, /^nixmox: the last deploy of stack "twin" was interrupted with 4 operations under way: creating web-container, creating db-container, creating web-config, updating caddy-rebuild;/);
  });

  it("removes a stale lock of this machine and runs the operation again, and leaves any other lock to the user", async () => {
    const dead = spawnSync("true").pid!;
    let cancelled = 0;
    let runs = 0;
    const stderrOf = (error: unknown) => (error as Error).message;
    const failingOnce = (message: string) => async () => {
      runs += 1;
      if (runs === 1) throw new Error(message);
      return "deployed";
    };
    assert.equal(await withInterruptionRecovery(recordingIo([]), "twin", stderrOf, failingOnce(lockError(hostname(), dead)), async () => void (cancelled += 1)), "deployed");
    assert.deepEqual([runs, cancelled], [2, 1]);
    runs = 0;
    await assert.rejects(withInterruptionRecovery(recordingIo([]), "twin", stderrOf, failingOnce(lockError(hostname(), process.pid)), async () => void (cancelled += 1)), /currently locked/);
    assert.deepEqual([runs, cancelled], [1, 1], "a live holder: no cancel, no second run");
  });
});
