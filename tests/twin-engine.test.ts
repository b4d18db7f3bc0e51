// The real Pulumi engine and bpg's provider (v0.112.0 through Pulumi's bridge, tools/engine) against the homelab
// twin: a download.FileLegacy and a ContainerLegacy (tests/fixtures/twin-program) created, edited, refused and
// deleted through the Proxmox VE API twin, whose container is a real host (its own network namespace, filesystem
// and sshd) inside a network namespace with no route out. Needs root (namespaces, mounts), iproute2, util-linux,
// openssh-server and openssl.
// What the twin does not prove: Proxmox's kernel, LXC id maps, cgroup limits and storage drivers; the template is
// the twin's Debian-userland stand-in for the NixOS image (twin/hosts/template.ts).
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { buildTemplate, startTwin, type Twin } from "../twin";
import { createTwinStack, hostKeyOf, readmeRolePrivileges, runInWorld, sshInWorld, sshKeyPair, twinPrefix, type TwinStack } from "./support/twin-engine";

const fixture = path.join(__dirname, "fixtures", "twin-program");
const templateUrl = "https://hydra.nixos.org/build/1/download/1/nixos-twin-lxc.tar.xz";
const deploySecret = "0a1b2c3d-1111-4222-8333-444455556666";
const limitedSecret = "9f8e7d6c-1111-4222-8333-444455556666";

describe("the homelab twin under the real engine and bpg's provider", function () {
  this.timeout(600_000);
  let work: string;
  let twin: Twin;
  let stack: TwinStack;
  let key: { privateKeyFile: string; publicKey: string };
  let stackConfig: Record<string, string>;
  /** The README's role, and the same role without VM.Config.Memory. */
  const role = readmeRolePrivileges();

  const node = () => twin.cluster.node("pve");
  const container = () => node().container(120);
  const hostKey = () => hostKeyOf(twin, 120);

  before(async function () {
    if (process.getuid?.() !== 0) throw new Error("the twin tests must run as root (network namespaces and mounts); CI runs them as root");
    work = mkdtempSync(path.join(tmpdir(), "nixmox-twin-test-"));
    const template = path.join(work, "nixos-twin-lxc.tar.xz");
    await buildTemplate(template);
    twin = await startTwin({
      prefix: twinPrefix(),
      stateDir: path.join(work, "twin"),
      tokens: [
        { authid: "nixmox@pve!deploy", secret: deploySecret, acl: [{ path: "/", privileges: role }] },
        { authid: "limited@pve!deploy", secret: limitedSecret, acl: [{ path: "/", privileges: role.filter((privilege) => privilege !== "VM.Config.Memory") }] },
      ],
      internet: { [templateUrl]: { path: template } },
      // The API and bpg only: bare hosts with sshd (the stand-in NixOS system is tests/twin-homelab*.test.ts's).
      system: false,
    });
    key = sshKeyPair(work, "deploy");
    stackConfig = {
      "twin:node": "pve",
      "twin:endpoint": twin.endpoint,
      "twin:templateUrl": templateUrl,
      "twin:templateFileName": "nixos-twin-lxc.tar.xz",
      "twin:templateSha256": createHash("sha256").update(readFileSync(template)).digest("hex"),
      "twin:retainTemplate": "true",
      "twin:vmid": "120",
      "twin:memory": "512",
      "twin:hostname": "ct120.twin.lan",
      "twin:address": "192.168.99.20/24",
      "twin:gateway": "192.168.99.1",
      "twin:vlan": "99",
      "twin:sshPublicKey": key.publicKey,
    };
    stack = await createTwinStack(twin, fixture);
    await stack.configure(stackConfig, { "twin:apiToken": `nixmox@pve!deploy=${deploySecret}` });
  });

  after(async () => {
    stack?.remove();
    await twin?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("creates the template download and the container: the twin holds both, and the host answers SSH at its IP with a key made at its first start", async () => {
    await stack.pulumi(["up", "--yes", "--skip-preview", "--non-interactive"]);
    await node().tasks.idle();
    const template = node().storage("local").list("vztmpl").map((volume) => volume.volid);
    assert.deepEqual(template, ["local:vztmpl/nixos-twin-lxc.tar.xz"]);
    const conf = container().conf;
    assert.equal(container().host.running, true);
    assert.match(String(conf.net0), /^name=eth0,bridge=vmbr0,gw=192\.168\.99\.1,host-managed=0,hwaddr=[0-9A-F:]{17},ip=192\.168\.99\.20\/24,tag=99,type=veth$/);
    assert.deepEqual(
      { memory: conf.memory, swap: conf.swap, cores: conf.cores, features: conf.features, startup: conf.startup, onboot: conf.onboot, tags: conf.tags, unprivileged: conf.unprivileged, ostype: conf.ostype, hostname: conf.hostname, rootfs: conf.rootfs },
      { memory: 512, swap: 0, cores: 1, features: "nesting=1", startup: "order=2", onboot: 1, tags: "nixmox;twin", unprivileged: 1, ostype: "nixos", hostname: "ct120.twin.lan", rootfs: "local-lvm:vm-120-disk-0,size=4G" },
    );
    const tasks = node().tasks.all().map((task) => `${task.type}:${task.id}:${task.user}:${task.exitstatus}`);
    assert.deepEqual(tasks, ["download:nixos-twin-lxc.tar.xz:nixmox@pve!deploy:OK", "vzcreate:120:nixmox@pve!deploy:OK", "vzstart:120:nixmox@pve!deploy:OK"]);
    // Proxmox wrote the user_account keys into root's authorized_keys (LXC/Setup/Base.pm, a PVE block).
    assert.equal(readFileSync(path.join(container().host.rootfs, "root/.ssh/authorized_keys"), "utf8"), `# --- BEGIN PVE ---\n${key.publicKey}\n# --- END PVE ---\n`);
    // The template has no host key; the init made one at the first start.
    const key120 = await hostKey();
    const ssh = await sshInWorld(twin, "192.168.99.20", key.privateKeyFile, key120, "hostname; cat /etc/hostname; ip -4 -o addr show eth0; ip route show default; touch /usr/twin-probe 2>&1; ls /work 2>&1; nsenter --mount=/proc/self/ns/mnt ls /work 2>&1 | head -1; true");
    assert.equal(ssh.status, 0, ssh.stderr);
    // Read once sshd answers: the init logs the key after ssh-keygen has written it, so the key file alone is too early.
    assert.match(container().host.initLog(), /generated the SSH host key/);
    const [hostname, etcHostname, address, route, readOnly, noWork, noWorkAfterSetns] = ssh.stdout.trim().split("\n");
    assert.deepEqual([hostname, etcHostname], ["ct120", "ct120"]);
    assert.match(address!, /eth0\s+inet 192\.168\.99\.20\/24/);
    assert.match(route!, /^default via 192\.168\.99\.1 dev eth0/);
    assert.match(readOnly!, /Read-only file system/, "this machine's /usr is read-only in a container");
    assert.match(noWork!, /No such file or directory/, "nothing of this machine outside /usr is visible in a container");
    // Re-entering its own mount namespace (Nix does, before it starts ssh) keeps the container's root.
    assert.match(noWorkAfterSetns!, /No such file or directory/, "a process that re-enters its mount namespace still sees only the container");
    assert.equal(existsSync("/usr/twin-probe"), false);
  });

  it("lets NixMox's first-contact check trust the container this stack's token has just created, and no other token (Tasks.pm's task list)", async () => {
    const check = (token: string) => runInWorld(twin, [process.execPath, "-r", "tsx/cjs", "-e", [
      "const { checkFirstContact } = require('./components/ssh/first-contact.ts');",
      `checkFirstContact('web', { endpoint: ${JSON.stringify(twin.endpoint)}, apiToken: ${JSON.stringify(token)}, insecure: false, node: 'pve', vmid: 120, windowSeconds: 900 })`,
      "  .then(() => console.log('trusted'), (error) => { console.log(error.message); process.exitCode = 1; });",
    ].join("\n")], { NODE_EXTRA_CA_CERTS: twin.certificateFile });
    const trusted = await check(`nixmox@pve!deploy=${deploySecret}`);
    assert.equal(trusted.stdout.trim(), "trusted", trusted.stderr);
    const other = await check(`limited@pve!deploy=${limitedSecret}`);
    assert.equal(other.status, 1);
    assert.match(other.stdout, /it was created by nixmox@pve!deploy, not by this stack's API token \(limited@pve!deploy\)/);
  });

  it("applies a memory and IP edit: bpg updates the config and reboots the host, which keeps its key and answers at the new address only", async () => {
    const keyBefore = await hostKey();
    const first = twin.api.calls.length;
    await stack.configure({ "twin:memory": "768", "twin:address": "192.168.99.21/24" });
    await stack.pulumi(["up", "--yes", "--skip-preview", "--non-interactive"]);
    await node().tasks.idle();
    const calls = twin.api.calls.slice(first).map((call) => `${call.method} ${call.route}`);
    assert.ok(calls.includes("PUT /nodes/{node}/lxc/{vmid}/config"), calls.join("\n"));
    assert.ok(calls.includes("POST /nodes/{node}/lxc/{vmid}/status/reboot"), calls.join("\n"));
    assert.equal(container().conf.memory, 768);
    assert.match(String(container().conf.net0), /,ip=192\.168\.99\.21\/24,/);
    assert.equal(container().host.appliedMemoryMiB, 768);
    assert.equal(node().tasks.all().filter((task) => task.type === "vzreboot" && task.exitstatus === "OK").length, 1);
    assert.equal((container().host.initLog().match(/twin-init: starting/g) ?? []).length, 2, "the host was really restarted");
    assert.equal(await hostKey(), keyBefore, "a restart keeps the host key");
    const moved = await sshInWorld(twin, "192.168.99.21", key.privateKeyFile, keyBefore, "ip -4 -o addr show eth0");
    assert.equal(moved.status, 0, moved.stderr);
    assert.match(moved.stdout, /inet 192\.168\.99\.21\/24/);
    const old = await sshInWorld(twin, "192.168.99.20", key.privateKeyFile, keyBefore, "true");
    assert.notEqual(old.status, 0, "nothing answers at the old address");
  });

  it("refuses an edit the token has no privilege for with Proxmox's 403, which the engine reports; nothing changes", async () => {
    await stack.configure({ "twin:memory": "1024" }, { "twin:apiToken": `limited@pve!deploy=${limitedSecret}` });
    const refused = await stack.pulumi(["up", "--yes", "--skip-preview", "--non-interactive"], { allowFailure: true });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stdout, /403/);
    assert.match(refused.stdout, /Permission check failed \(\/vms\/120, VM\.Config\.Memory\)/);
    assert.equal(container().conf.memory, 768);
    assert.ok(twin.api.calls.some((call) => call.status === 403 && call.method === "PUT" && call.authid === "limited@pve!deploy"));
    await stack.configure({ "twin:memory": "768" }, { "twin:apiToken": `nixmox@pve!deploy=${deploySecret}` });
  });

  it("a second stack asking for the same vmid: the twin refuses it, and bpg v0.112.0 takes its refused retry as done and adopts the other stack's container", async () => {
    // bpg proxmox/nodes/containers/containers.go CreateContainer: a 5xx is retried, and on a retry an error with
    // "already exists" counts as success (retry.WithAlreadyDoneCheck). NixMox must guard vmids itself.
    const other = await createTwinStack(twin, fixture, "other");
    try {
      await other.configure({ ...stackConfig, "twin:hostname": "other", "twin:address": "192.168.99.40/24", "twin:memory": "256" }, { "twin:apiToken": `nixmox@pve!deploy=${deploySecret}` });
      const first = twin.api.calls.length;
      await other.pulumi(["up", "--yes", "--skip-preview", "--non-interactive"]);
      const creates = twin.api.calls.slice(first).filter((call) => call.method === "POST" && call.route === "/nodes/{node}/lxc");
      assert.deepEqual(creates.map((call) => call.status), [500, 500], "refused: CT 120 already exists on node 'pve'");
      const outputs = JSON.parse((await other.pulumi(["stack", "output", "--json"])).stdout);
      assert.deepEqual({ vmId: outputs.vmId, ipv4: outputs.ipv4 }, { vmId: 120, ipv4: { eth0: "192.168.99.21" } }, "the second stack's state holds the first stack's container");
      assert.deepEqual([...node().containers.keys()], [120]);
      // The template download of the second stack found the file with the right checksum and kept it
      // (pve-common Tools.pm download_file_from_url: "OK, got correct file already"), so it did not fail (review A1).
      const downloads = node().tasks.all().filter((task) => task.type === "download");
      assert.deepEqual(downloads.map((task) => task.exitstatus), ["OK", "OK"]);
      assert.match(downloads[1]!.lines.join("\n"), /OK, got correct file already, no need to download/);
    } finally {
      // Never destroy this stack: its state claims the first stack's container.
      other.remove();
    }
  });

  it("a container without a vmid gets the cluster's next free id (GET /cluster/nextid), and a destroy removes it", async () => {
    const third = await createTwinStack(twin, fixture, "third");
    try {
      const { "twin:vmid": _vmid, ...withoutVmid } = stackConfig;
      await third.configure({ ...withoutVmid, "twin:hostname": "third", "twin:address": "192.168.99.50/24" }, { "twin:apiToken": `nixmox@pve!deploy=${deploySecret}` });
      const first = twin.api.calls.length;
      await third.pulumi(["up", "--yes", "--skip-preview", "--non-interactive"]);
      const outputs = JSON.parse((await third.pulumi(["stack", "output", "--json"])).stdout);
      assert.ok(twin.api.calls.slice(first).some((call) => call.route === "/cluster/nextid" && call.status === 200));
      assert.equal(outputs.vmId, 100, "the lowest free id");
      assert.equal(node().container(100).conf.hostname, "third");
      await node().tasks.idle();
      await third.pulumi(["destroy", "--yes", "--skip-preview", "--non-interactive"]);
      assert.deepEqual([...node().containers.keys()], [120]);
    } finally {
      third.remove();
    }
  });

  it("deletes the container on destroy: its host, network namespace and disk are gone; the retained template stays", async () => {
    const rootfs = container().host.rootfs;
    await stack.pulumi(["destroy", "--yes", "--skip-preview", "--non-interactive"]);
    assert.equal(node().containers.has(120), false);
    assert.equal(existsSync(rootfs), false);
    assert.deepEqual(node().storage("local-lvm").list(), []);
    assert.deepEqual(node().storage("local").list("vztmpl").map((volume) => volume.volid), ["local:vztmpl/nixos-twin-lxc.tar.xz"]);
    const namespaces = await runInWorld(twin, ["ip", "netns", "list"]);
    assert.doesNotMatch(namespaces.stdout, new RegExp(`^${twin.world.prefix}-ct120\\b`, "m"));
    assert.deepEqual(node().tasks.all().filter((task) => task.id === "120" && (task.type === "vzshutdown" || task.type === "vzdestroy")).map((task) => `${task.type}:${task.exitstatus}`), ["vzshutdown:OK", "vzdestroy:OK"]);
  });

  it("logging pass: bpg called only endpoints the twin implements (no 501), and exactly these", () => {
    assert.deepEqual(twin.api.unimplemented, []);
    assert.deepEqual(twin.api.calls.filter((call) => call.status === 501), []);
    // bpg's Go client; the first-contact check above is NixMox's own (Node) call of GET /nodes/{node}/tasks.
    const bpg = twin.api.calls.filter((call) => call.userAgent.startsWith("Go-http-client"));
    assert.deepEqual([...new Set(twin.api.calls.filter((call) => !bpg.includes(call)).map((call) => `${call.method} ${call.route}`))], ["GET /nodes/{node}/tasks"]);
    const routes = [...new Set(bpg.map((call) => `${call.method} ${call.route}`))].sort();
    if (routes.includes("POST /nodes/{node}/lxc/{vmid}/status/start")) console.log(bpg.map((call) => `${call.method} ${call.path} ${call.status}`).join("\n"));
    assert.deepEqual(routes, [
      "DELETE /nodes/{node}/lxc/{vmid}",
      "GET /cluster/nextid",
      "GET /nodes/{node}/lxc/{vmid}/config",
      "GET /nodes/{node}/lxc/{vmid}/interfaces",
      "GET /nodes/{node}/lxc/{vmid}/status/current",
      "GET /nodes/{node}/query-url-metadata",
      "GET /nodes/{node}/storage/{storage}/content",
      "GET /nodes/{node}/tasks/{upid}/status",
      "GET /version",
      "POST /nodes/{node}/lxc",
      "POST /nodes/{node}/lxc/{vmid}/status/reboot",
      "POST /nodes/{node}/lxc/{vmid}/status/shutdown",
      "POST /nodes/{node}/storage/{storage}/download-url",
      "PUT /nodes/{node}/lxc/{vmid}/config",
    ]);
  });
});
