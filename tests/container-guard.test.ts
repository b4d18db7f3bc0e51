// Pure tests of the replacement guard's check, plus the same check run from the serialized provider is in
// tests/engine-dynamic-providers.test.ts. Not proven here: which edits bpg's provider really replaces (read from its
// source: vmid and node force a new container; Proxmox cannot shrink a root disk).
import assert from "node:assert/strict";
import { containerGuardProvider, replacementProblems, type ContainerGuardInputs } from "../components/container-guard";
import { unknownValue } from "../components/unknown";

const deployed: ContainerGuardInputs = { service: "postgresql", vmid: 911, node: "pve", diskGiB: 32, allowReplace: false };

describe("container guard: a re-created container is refused at preview unless allowed", () => {
  it("passes the first deploy, unchanged fields, a grown disk and edits it does not guard", async () => {
    assert.deepEqual(replacementProblems({}, deployed), []);
    assert.deepEqual(replacementProblems(deployed, { ...deployed }), []);
    assert.deepEqual(replacementProblems(deployed, { ...deployed, diskGiB: 64 }), []);
    assert.deepEqual((await containerGuardProvider.check!(deployed, { ...deployed, diskGiB: 40 })).failures, []);
  });

  it("fails a vmid change, a node change and a smaller disk, naming the service, both values, the data loss and the opt-in", () => {
    const allow = "if that is what you want (move or back up the data first), run `pulumi config set --path 'nixmox:allowReplace[0]' postgresql` for this deploy";
    const loss = "re-creates its container: the old container and every file on its disk are deleted, and a new, empty container takes its place";
    assert.deepEqual(replacementProblems(deployed, { ...deployed, vmid: 912, node: "pve2", diskGiB: 16 }), [
      { property: "vmid", reason: `service "postgresql": vmid 911 → 912 ${loss}; ${allow}` },
      { property: "node", reason: `service "postgresql": node "pve" → "pve2" ${loss}; ${allow}` },
      { property: "diskGiB", reason: `service "postgresql": resources.disk_gb 32 → 16: Proxmox cannot shrink a disk, so this ${loss}; keep 32 or more, or ${allow}` },
    ]);
  });

  it("lets the edit through when the service is in nixmox:allowReplace, and passes unknown values of a preview", () => {
    assert.deepEqual(replacementProblems(deployed, { ...deployed, vmid: 912, allowReplace: true }), []);
    assert.deepEqual(replacementProblems(deployed, { ...deployed, vmid: unknownValue as unknown as number }), []);
  });

  it("passes a service whose vmid Proxmox assigns (null), and the removal of a manifest vmid (the provider keeps the id)", () => {
    const assigned = { ...deployed, vmid: null };
    assert.deepEqual(replacementProblems({}, assigned), []);
    assert.deepEqual(replacementProblems(assigned, { ...assigned }), []);
    assert.deepEqual(replacementProblems(deployed, assigned), []);
  });

  it("fails a vmid given to a container Proxmox numbered, which it cannot compare, unless allowed", () => {
    const assigned = { ...deployed, vmid: null };
    assert.deepEqual(replacementProblems(assigned, { ...deployed, vmid: 950 }), [{
      property: "vmid",
      reason: "service \"postgresql\": vmid 950 is new, and Proxmox assigned this container's id at its first deploy (`pulumi stack output services` shows it): unless 950 is that id, " +
        "this re-creates its container: the old container and every file on its disk are deleted, and a new, empty container takes its place; remove vmid again to keep the container, " +
        "or if that is what you want (move or back up the data first), run `pulumi config set --path 'nixmox:allowReplace[0]' postgresql` for this deploy",
    }]);
    assert.deepEqual(replacementProblems(assigned, { ...deployed, vmid: 950, allowReplace: true }), []);
  });

  it("updates in place and never replaces itself", async () => {
    assert.deepEqual(await containerGuardProvider.diff!("postgresql", deployed, { ...deployed, diskGiB: 40 }), { changes: true, replaces: [] });
    assert.deepEqual(await containerGuardProvider.diff!("postgresql", deployed, { ...deployed }), { changes: false, replaces: [] });
  });
});
