import { strict as assert } from "node:assert";
import type { FirstContactProxmox } from "../components/ssh/first-contact";
import { sshHostKeyProvider, type SshHostKeyInputs, type SshHostKeyOutputs } from "../components/ssh/ssh-host-key";
import { creationTask, startFakeProxmoxApi, type FakeProxmoxApi } from "./support/proxmox-api";
import { startSshd, type TestSshd } from "./support/sshd";

describe("SshHostKey provider against a loopback sshd and a fake Proxmox task list", function () {
  this.timeout(30_000);
  let host: TestSshd;
  let other: TestSshd;
  let proxmox: FakeProxmoxApi;

  before(async () => {
    [host, other, proxmox] = await Promise.all([startSshd(), startSshd(), startFakeProxmoxApi()]);
  });
  after(async () => {
    await Promise.all([host?.stop(), other?.stop(), proxmox?.stop()]);
  });
  beforeEach(() => {
    // Container 913 on node "pve" was created by this stack's token a minute ago.
    proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!deploy", 60)];
    proxmox.requests = [];
  });

  const firstContact = (extra: Partial<FirstContactProxmox> = {}): FirstContactProxmox => ({
    endpoint: proxmox.endpoint, apiToken: proxmox.token, insecure: true, node: "pve", vmid: 913, windowSeconds: 900, ...extra,
  });

  const inputs = (server: TestSshd, extra: Partial<SshHostKeyInputs> = {}): SshHostKeyInputs => ({
    service: "dns",
    host: server.host,
    port: server.port,
    user: "root",
    privateKey: server.clientPrivateKey,
    containerId: "913",
    timeoutSeconds: 10,
    intervalSeconds: 1,
    firstContact: firstContact(),
    pinnedHostKey: "",
    ...extra,
  });

  it("records the host key the server presents once SSH runs a command, right after this stack created the container", async () => {
    const created = await sshHostKeyProvider.create(inputs(host));
    assert.equal(created.id, `${host.host}:${host.port}/913`);
    assert.equal(created.outs.hostKey, host.hostKey);
    assert.match(created.outs.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal("privateKey" in created.outs, false);
    assert.equal("firstContact" in created.outs, false, "the API token is never an output");
    assert.deepEqual(proxmox.requests, [{ path: "/api2/json/nodes/pve/tasks", query: { vmid: "913", typefilter: "vzcreate", source: "all", limit: "1" }, authorized: true }]);
  });

  describe("first contact is trusted only right after this stack created the container (security review M9)", () => {
    const pin = "pulumi config set --path 'nixmox:hostKeys.dns' 'ssh-ed25519 AAAA…'";
    const refused = (reason: string) => `service "dns": the SSH host key of container 913 on node pve is not trusted on first use: ${reason}. ` +
      `Read its key on the node with \`pct exec 913 -- cat /etc/ssh/ssh_host_ed25519_key.pub\` and pin it with \`${pin}\``;

    it("refuses a container Proxmox has no creation task for (adopted, or its record deleted from state)", async () => {
      proxmox.tasks = [creationTask("pve", 914, "nixmox@pve!deploy", 60), creationTask("other-node", 913, "nixmox@pve!deploy", 60)];
      await assert.rejects(sshHostKeyProvider.create(inputs(host)), { message: refused("Proxmox has no creation task (vzcreate) for it: it was not created by this stack, or its task log was rotated") });
    });

    it("refuses a container another user or token created", async () => {
      proxmox.tasks = [creationTask("pve", 913, "root@pam", 60)];
      await assert.rejects(sshHostKeyProvider.create(inputs(host)), { message: refused("it was created by root@pam, not by this stack's API token (nixmox@pve!deploy)") });
      proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!other", 60)];
      await assert.rejects(sshHostKeyProvider.create(inputs(host)), { message: refused("it was created by nixmox@pve!other, not by this stack's API token (nixmox@pve!deploy)") });
    });

    it("refuses a container created longer ago than the window, and one whose creation failed", async () => {
      proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!deploy", 3600)];
      await assert.rejects(sshHostKeyProvider.create(inputs(host)), (error: Error) => {
        // 3600 s, or 3601 when the second turned over during the call.
        const age = /created (\d+) s ago/.exec(error.message)?.[1] ?? "";
        assert.ok(age === "3600" || age === "3601", error.message);
        assert.equal(error.message, refused(`it was created ${age} s ago, more than the 900 s in which a new container's key is trusted on first use`));
        return true;
      });
      // The newest creation counts: a re-creation a minute ago after an old one is trusted.
      proxmox.tasks.push(creationTask("pve", 913, "nixmox@pve!deploy", 60));
      assert.equal((await sshHostKeyProvider.create(inputs(host))).outs.hostKey, host.hostKey);
      proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!deploy", 60, "unable to create CT 913 - disk full")];
      await assert.rejects(sshHostKeyProvider.create(inputs(host)), { message: refused("its creation task has not finished successfully (status unable to create CT 913 - disk full)") });
      // A creation that ended with warnings succeeded (Tasks.pm normalises "WARNINGS: n" to a warning, not an error).
      proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!deploy", 60, "WARNINGS: 1")];
      assert.equal((await sshHostKeyProvider.create(inputs(host))).outs.hostKey, host.hostKey);
    });

    it("reads a task still in the active list, whose user holds the token id, as the archived ones (review C1)", () => {
      const { firstContactRefusal } = require("../components/ssh/first-contact") as typeof import("../components/ssh/first-contact");
      const now = 1_800_000_000;
      const identity = { user: "nixmox@pve", tokenid: "deploy" };
      assert.equal(firstContactRefusal([{ type: "vzcreate", user: "nixmox@pve!deploy", status: "OK", starttime: now - 20, endtime: now - 10 }], identity, now, 900), null);
      assert.equal(firstContactRefusal([{ type: "vzcreate", user: "nixmox@pve!deploy", status: "RUNNING", starttime: now - 20 }], identity, now, 900), "its creation task has not finished successfully (status RUNNING)");
      assert.equal(firstContactRefusal([{ type: "vzcreate", user: "nixmox@pve!other", status: "OK", starttime: now - 20, endtime: now - 10 }], identity, now, 900), "it was created by nixmox@pve!other, not by this stack's API token (nixmox@pve!deploy)");
    });

    it("refuses when the Proxmox API cannot be checked: an untrusted certificate, a rejected token; the token never appears", async () => {
      const untrusted = sshHostKeyProvider.create(inputs(host, { firstContact: firstContact({ insecure: false }) }));
      await assert.rejects(untrusted, (error: Error) => {
        assert.ok(error.message.startsWith(`service "dns": the SSH host key of container 913 on node pve is not trusted on first use: its creation could not be checked (cannot reach the Proxmox API for GET ${proxmox.endpoint}api2/json/nodes/pve/tasks: `), error.message);
        return true;
      });
      const wrongToken = "nixmox@pve!deploy=99999999-1111-4222-8333-444444444444";
      await assert.rejects(sshHostKeyProvider.create(inputs(host, { firstContact: firstContact({ apiToken: wrongToken }) })), (error: Error) => {
        assert.ok(error.message.includes(`its creation could not be checked (the Proxmox API answered 401 Unauthorized for GET ${proxmox.endpoint}api2/json/nodes/pve/tasks)`), error.message);
        assert.ok(!error.message.includes("99999999"), "the token's secret half is not in the message");
        return true;
      });
    });

    it("uses a key pinned out of band instead, without asking Proxmox, and refuses a server that presents another", async () => {
      proxmox.tasks = [];
      const created = await sshHostKeyProvider.create(inputs(host, { firstContact: null, pinnedHostKey: host.hostKey }));
      assert.equal(created.outs.hostKey, host.hostKey);
      assert.equal(created.outs.pinnedHostKey, host.hostKey);
      assert.deepEqual(proxmox.requests, []);
      await assert.rejects(sshHostKeyProvider.create(inputs(host, { pinnedHostKey: other.hostKey, timeoutSeconds: 5 })), (error: Error) => {
        assert.ok(error.message.startsWith(`service "dns": host key mismatch for ${host.host}:${host.port}: expected SHA256:`), error.message);
        return true;
      });
    });

    it("refuses first contact with neither a pinned key nor a Proxmox API to check", async () => {
      await assert.rejects(sshHostKeyProvider.create(inputs(host, { firstContact: null })), {
        message: `service "dns": no host key is pinned and no Proxmox API is given to check that this stack just created the container; pin its key with \`${pin}\``,
      });
    });

    it("a new address of the same container is checked with the pinned key, never trusted a second time", async () => {
      const olds = (await sshHostKeyProvider.create(inputs(host))).outs;
      const moved = inputs(other);
      assert.deepEqual(await sshHostKeyProvider.diff("id", olds, moved), { changes: true, replaces: [], deleteBeforeReplace: false });
      // Whoever answers at the new address presents another key than the container's: refused, even though Proxmox
      // would still vouch for a fresh creation.
      await assert.rejects(sshHostKeyProvider.update("id", olds, { ...moved, timeoutSeconds: 5 }), (error: Error) => {
        assert.ok(error.message.startsWith(`service "dns": host key mismatch for ${other.host}:${other.port}: expected SHA256:`), error.message);
        return true;
      });
      // Re-pinning by hand is an update that requires the new key.
      const repinned = await sshHostKeyProvider.update("id", olds, { ...moved, pinnedHostKey: other.hostKey, timeoutSeconds: 5 });
      assert.equal(repinned.outs.hostKey, other.hostKey);
    });
  });

  it("fails after the timeout when the port answers but commands do not succeed", async () => {
    const refusing = await startSshd({ extraConfig: ["ForceCommand /bin/false"] });
    try {
      const started = Date.now();
      await assert.rejects(sshHostKeyProvider.create(inputs(refusing, { timeoutSeconds: 2 })), {
        message: `service "dns": SSH on ${refusing.host}:${refusing.port} did not run a command within 2 s (last error: the command \`true\` exited with 1); ` +
          "check that the container started and that the deploy key is in network.ssh_keys.root",
      });
      assert.ok(Date.now() - started < 8000);
    } finally {
      await refusing.stop();
    }
  });

  it("fails naming the service when nothing listens", async () => {
    const gone = await startSshd();
    await gone.stop();
    await assert.rejects(sshHostKeyProvider.create(inputs(gone, { timeoutSeconds: 1 })), (error: Error) => {
      assert.ok(error.message.startsWith(`service "dns": SSH on ${gone.host}:${gone.port} did not run a command within 1 s (last error: cannot reach SSH on ${gone.host}:${gone.port} (ECONNREFUSED))`), error.message);
      return true;
    });
  });

  it("replaces when the container id changes, and only updates for an address, a pin or timing", async () => {
    const olds: SshHostKeyOutputs = { ...inputs(host), hostKey: host.hostKey, hostKeyFingerprint: "SHA256:x" } as SshHostKeyOutputs;
    delete (olds as Partial<SshHostKeyInputs>).privateKey;
    delete (olds as Partial<SshHostKeyInputs>).firstContact;
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { containerId: "914" })), { changes: true, replaces: ["containerId"], deleteBeforeReplace: false });
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(other)), { changes: true, replaces: [], deleteBeforeReplace: false });
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { pinnedHostKey: other.hostKey })), { changes: true, replaces: [], deleteBeforeReplace: false });
    // The API token is read on create only: rotating it changes nothing.
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { firstContact: firstContact({ apiToken: "nixmox@pve!deploy=rotated" }) })), { changes: false, replaces: [], deleteBeforeReplace: false });
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { timeoutSeconds: 60 })), { changes: true, replaces: [], deleteBeforeReplace: false });
    // A reboot that applies an edit is not this resource's change (the health gate waits for SSH after it): state
    // written when rebootRevision was an input still diffs clean.
    assert.deepEqual(await sshHostKeyProvider.diff("id", { ...olds, rebootRevision: "r1" } as SshHostKeyOutputs, inputs(host)), { changes: false, replaces: [], deleteBeforeReplace: false });
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { privateKey: "rotated" })), { changes: false, replaces: [], deleteBeforeReplace: false });
  });

  it("keeps the pinned key on update and refuses a host that presents another key", async () => {
    const olds = (await sshHostKeyProvider.create(inputs(host))).outs;
    const updated = await sshHostKeyProvider.update("id", olds, inputs(host, { timeoutSeconds: 5 }));
    assert.equal(updated.outs.hostKey, host.hostKey);
    const impostor = { ...olds, hostKey: other.hostKey };
    await assert.rejects(sshHostKeyProvider.update("id", impostor, inputs(host, { timeoutSeconds: 5 })), (error: Error) => {
      assert.ok(error.message.startsWith(`service "dns": host key mismatch for ${host.host}:${host.port}: expected SHA256:`), error.message);
      return true;
    });
  });

  it("returns the stored state on refresh (the pin never changes there)", async () => {
    const props = (await sshHostKeyProvider.create(inputs(host))).outs;
    assert.deepEqual(await sshHostKeyProvider.read("id", props), { id: "id", props });
  });
});
