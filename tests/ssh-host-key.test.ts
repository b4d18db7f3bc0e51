import { strict as assert } from "node:assert";
import { sshHostKeyProvider, type SshHostKeyInputs, type SshHostKeyOutputs } from "../components/ssh/ssh-host-key";
import { startSshd, type TestSshd } from "./support/sshd";

describe("SshHostKey provider against a loopback sshd", function () {
  this.timeout(30_000);
  let host: TestSshd;
  let other: TestSshd;

  before(async () => {
    [host, other] = await Promise.all([startSshd(), startSshd()]);
  });
  after(async () => {
    await Promise.all([host?.stop(), other?.stop()]);
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
    rebootRevision: "r1",
    ...extra,
  });

  it("records the host key the server presents once SSH runs a command", async () => {
    const created = await sshHostKeyProvider.create(inputs(host));
    assert.equal(created.id, `${host.host}:${host.port}/913`);
    assert.equal(created.outs.hostKey, host.hostKey);
    assert.match(created.outs.hostKeyFingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal("privateKey" in created.outs, false);
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

  it("replaces when the container id, host or port changes, and only updates for timing", async () => {
    const olds: SshHostKeyOutputs = { ...inputs(host), hostKey: host.hostKey, hostKeyFingerprint: "SHA256:x" } as SshHostKeyOutputs;
    delete (olds as Partial<SshHostKeyInputs>).privateKey;
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { containerId: "914" })), { changes: true, replaces: ["containerId"], deleteBeforeReplace: false });
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(other)), { changes: true, replaces: ["port"], deleteBeforeReplace: false });
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { timeoutSeconds: 60 })), { changes: true, replaces: [], deleteBeforeReplace: false });
    // Proxmox rebooted the container to apply an edit: wait for SSH again (update), same container, same key.
    assert.deepEqual(await sshHostKeyProvider.diff("id", olds, inputs(host, { rebootRevision: "r2" })), { changes: true, replaces: [], deleteBeforeReplace: false });
    const { rebootRevision: _absent, ...beforeRevisions } = olds;
    assert.deepEqual(await sshHostKeyProvider.diff("id", beforeRevisions as SshHostKeyOutputs, inputs(host, { rebootRevision: "" })), { changes: false, replaces: [], deleteBeforeReplace: false });
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
