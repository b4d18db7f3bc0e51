// Pure: the container plan's rebootRevision, and (under mocks) that the health gate of the same service receives it
// and the host-key record does not (so a preview of such an edit keeps the host key known, review B3). Not proven here: that Proxmox reboots exactly on these edits (read from bpg's container.go).
import { strict as assert } from "node:assert";
import { planContainer } from "../components/container";
import { resolveStackSettings } from "../components/stack-config";
import { defaultManifestPath, loadPlan } from "../manifest";
import type { Plan, ServicePlan } from "../manifest/plan-types";
import { resourceNamed, runNixmoxProgram } from "./support/pulumi-mocks";

describe("containers that Proxmox reboots to apply an edit", function () {
  this.timeout(60_000);
  let plan: Plan;
  let dns: ServicePlan;
  const settings = resolveStackSettings({ proxmoxEndpoint: "https://pve.lan:8006/", proxmoxNode: "pve", templateSha256: "ab".repeat(32) }, "/project");
  const revision = (service: ServicePlan, edited: Plan = plan) =>
    planContainer({ service, plan: edited, settings, templateFileId: "local:vztmpl/t.tar.xz", deployPublicKey: "ssh-ed25519 AAAA" }).rebootRevision;

  before(async () => {
    plan = await loadPlan(defaultManifestPath);
    dns = plan.services.find((service) => service.name === "dns")!;
  });

  it("changes rebootRevision exactly for the edits bpg applies by rebooting: memory, swap, hostname, IP, DNS, VLAN", () => {
    const base = revision(dns);
    assert.match(base, /^[0-9a-f]{16}$/);
    const rebooting: [string, string][] = [
      ["memory", revision({ ...dns, resources: { ...dns.resources, memoryMiB: dns.resources.memoryMiB + 256 } })],
      ["swap", revision({ ...dns, resources: { ...dns.resources, swapMiB: dns.resources.swapMiB + 256 } })],
      ["hostname", revision({ ...dns, hostName: `${dns.hostName}2` })],
      ["ip", revision({ ...dns, ip: "10.99.0.99" })],
      ["dns server", revision(dns, { ...plan, network: { ...plan.network, dnsServer: "10.99.0.53" } })],
      ["vlan", revision(dns, { ...plan, network: { ...plan.network, vlanTag: (plan.network.vlanTag ?? 1) + 1 } })],
    ];
    for (const [edit, changed] of rebooting) assert.notEqual(changed, base, edit);
    assert.equal(revision({ ...dns, resources: { ...dns.resources, cores: dns.resources.cores + 1 } }), base, "cores");
    assert.equal(revision({ ...dns, tags: [...dns.tags, "extra"] }), base, "tags");
  });

  it("hands the revision to the service's health gate, which waits for SSH after a reboot, and not to its host-key record", async () => {
    const run = await runNixmoxProgram();
    const revision = resourceNamed(run, "dns-health").inputs.rebootRevision;
    assert.match(String(revision), /^[0-9a-f]{16}$/);
    assert.notEqual(resourceNamed(run, "caddy-health").inputs.rebootRevision, revision);
    assert.equal("rebootRevision" in resourceNamed(run, "dns-ssh").inputs, false);
  });
});
