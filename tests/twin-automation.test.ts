// Scenario 10 of issue 21: the Automation API script of the docs (docs/automation/twin-deploy.ts), run as it is,
// deploys a small manifest into the twin and destroys it, with the real engine (tools/engine) and NixMox's index.ts.
// The script calls the test back after its `stack.up` and after its `stack.destroy`, while the twin still runs: the
// test asserts the twin's state (containers, the hosts' daemons) and the stack's (outputs, resources) at both points.
// Needs root (network namespaces, mounts).
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { twinDeploy } from "../docs/automation/twin-deploy";
import { realEngineBin } from "./support/real-engine";
import { writeSmallTwinManifest } from "./support/twin-small";

describe("scenario 10: the docs' Automation API script deploys and tears down the twin", function () {
  this.timeout(600_000);
  let dir: string;

  before(() => {
    if (process.getuid?.() !== 0) throw new Error("the twin tests must run as root (network namespaces and mounts); CI runs them as root");
    process.env.PATH = [realEngineBin(), path.dirname(process.execPath), process.env.PATH ?? ""].join(path.delimiter);
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-twin-automation-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("up makes every container and a healthy service each; destroy leaves no container, and in the stack only the protected CA root", async () => {
    const { manifest } = await writeSmallTwinManifest(dir);
    let output = "";
    const seen: string[] = [];
    const result = await twinDeploy({
      manifest,
      stateDir: path.join(dir, "twin"),
      prefix: `nxa${process.pid.toString(36)}`,
      onOutput: (text) => (output += text),
      afterUp: async (homelab, stack) => {
        const node = homelab.twin.cluster.node("pve");
        assert.deepEqual([...node.containers.keys()].sort(), [910, 913, 916]);
        for (const vmid of [910, 913, 916]) assert.equal(node.container(vmid).host.running, true, `container ${vmid} runs`);
        const dig = await homelab.command(["dig", "+short", "+time=2", "@192.168.99.13", "home.nixmox.lan", "A"]);
        assert.equal(dig.stdout.trim(), "192.168.99.10", "unbound on the dns host answers with caddy's address");
        const services = (await stack.outputs()).services?.value as Record<string, { healthy: boolean }>;
        assert.deepEqual(Object.keys(services).sort(), ["caddy", "dns", "homepage"]);
        for (const [name, state] of Object.entries(services)) assert.equal(state.healthy, true, name);
        seen.push("up");
      },
      afterDestroy: async (homelab, stack) => {
        assert.deepEqual([...homelab.twin.cluster.node("pve").containers.keys()], [], "every container was deleted in the twin");
        const state = await stack.exportStack();
        // What NixMox protects stays (destroy with excludeProtected): the managed CA's root, and the component that
        // holds it; nothing else.
        const left = (state.deployment.resources ?? []).filter((resource: { type: string }) => resource.type !== "pulumi:pulumi:Stack" && resource.type !== "pulumi:providers:pulumi-nodejs");
        assert.deepEqual(left.map((resource: { urn: string; protect?: boolean }) => `${resource.urn.split("::").pop()} protect=${resource.protect}`), ["nixmox-ca protect=undefined", "nixmox-ca-root protect=true"]);
        seen.push("destroy");
      },
    });
    assert.deepEqual(seen, ["up", "destroy"], "both call-backs ran");
    assert.deepEqual(Object.keys(result.changes), ["create"]);
    assert.ok(result.destroyed.delete! >= result.changes.create! - 3, `destroy deleted what up created but the protected root: ${JSON.stringify(result)}`);
    assert.match(output, /Resources:\n\s+\+ \d+ created/, "the engine's own output reached onOutput");
  });
});
