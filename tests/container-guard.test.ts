// Pure tests of the replacement guard's check, plus the same check run from the serialized provider is in
// tests/engine-dynamic-providers.test.ts. Not proven here: which edits bpg's provider really replaces (read from its
// source: vmid and node force a new container; Proxmox cannot shrink a root disk).
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { containerDescription, containerGuardProvider, replacementProblems, type ContainerGuardInputs } from "../components/container-guard";
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

  it("fails a vmid given to a container Proxmox numbered when there is no Proxmox to compare with, unless allowed", () => {
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

  // A loopback HTTP server stands in for Proxmox: it proves which calls the guard makes and what it decides on the
  // answers, not that a real node answers so (the twin's `lxc/{vmid}/config` follows pve-container for that).
  describe("a vmid given to a container Proxmox numbered, compared with the allocated one", () => {
    let server: Server;
    const asked: string[] = [];
    let proxmox: ContainerGuardInputs["proxmox"];
    const guests: Record<number, string> = { 950: `${containerDescription("postgresql")}\n`, 951: `${containerDescription("grafana")}\n` };
    before(async () => {
      server = createServer((request, response) => {
        asked.push(`${request.method} ${request.url}`);
        const guest = /^\/api2\/json\/nodes\/pve\/lxc\/(\d+)\/config$/.exec(request.url ?? "");
        const nextid = /^\/api2\/json\/cluster\/nextid\?vmid=(\d+)$/.exec(request.url ?? "");
        response.setHeader("Content-Type", "application/json");
        if (guest && guests[Number(guest[1])] !== undefined) return response.end(JSON.stringify({ data: { description: guests[Number(guest[1])], hostname: "x" } }));
        if (nextid && guests[Number(nextid[1])] === undefined) return response.end(JSON.stringify({ data: Number(nextid[1]) }));
        response.statusCode = nextid ? 400 : 500;
        response.end(JSON.stringify({ errors: nextid ? { vmid: `VM ${nextid[1]} already exists` } : undefined, message: "Configuration file does not exist" }));
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      proxmox = { endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, apiToken: "test@pve!guard=00000000-0000-0000-0000-000000000000", insecure: false };
    });
    after(() => server.close());
    beforeEach(() => asked.splice(0));
    const assigned = () => ({ ...deployed, vmid: null, proxmox });

    it("passes the vmid Proxmox allocated to this service's container, and the update does not call it taken", async () => {
      const checked = await containerGuardProvider.check!(assigned(), { ...deployed, vmid: 950, proxmox });
      assert.deepEqual(checked.failures, []);
      assert.deepEqual(asked, ["GET /api2/json/nodes/pve/lxc/950/config"]);
      const updated = await containerGuardProvider.update!("postgresql", assigned(), { ...deployed, vmid: 950, proxmox });
      assert.equal(updated.outs!.vmid, 950);
      assert.equal("proxmox" in updated.outs!, false, "the token stays out of the state");
    });

    it("fails another service's container and a vmid with no guest, as a re-creation", async () => {
      for (const vmid of [951, 952]) {
        const checked = await containerGuardProvider.check!(assigned(), { ...deployed, vmid, proxmox });
        assert.equal(checked.failures!.length, 1, String(vmid));
        assert.equal(checked.failures![0].property, "vmid");
        assert.match(checked.failures![0].reason, new RegExp(`vmid ${vmid} is new, and Proxmox assigned this container's id`));
      }
    });

    it("creates a new service's guard only when its vmid is free on the cluster, naming the guest's owner problem otherwise", async () => {
      const created = await containerGuardProvider.create!({ ...deployed, vmid: 952, proxmox });
      assert.equal(created.outs!.vmid, 952);
      assert.deepEqual(asked, ["GET /api2/json/cluster/nextid?vmid=952"]);
      await assert.rejects(containerGuardProvider.create!({ ...deployed, vmid: 951, proxmox }), /service "postgresql": vmid 951 is already used on the Proxmox cluster of node "pve" by a guest this stack does not manage.*pct destroy 951/);
    });

    it("fails as before when Proxmox cannot be asked", async () => {
      const checked = await containerGuardProvider.check!(assigned(), { ...deployed, vmid: 950, proxmox: { ...proxmox!, endpoint: "http://127.0.0.1:1/" } });
      assert.equal(checked.failures![0]?.property, "vmid");
    });
  });
});
