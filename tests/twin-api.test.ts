// The Proxmox VE API twin's behaviour, call by call, over real HTTPS (its Unix socket) against real hosts: what
// Proxmox refuses and how it answers (pve-manager, pve-container, pve-storage, each cited in twin/pve/). Needs root.
// What it does not prove: that bpg sends these calls (tests/twin-engine.test.ts runs bpg), nor Proxmox's kernel side.
import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { buildTemplate, startTwin, type Twin } from "../twin";
import { hostKeyOf, readmeRolePrivileges, sshInWorld, sshKeyPair, twinPrefix } from "./support/twin-engine";

const deploy = "nixmox@pve!deploy=5e1f0c3a-1111-4222-8333-444455556666";
const auditless = "nixmox@pve!noaudit=5e1f0c3a-1111-4222-8333-444455557777";
const templateUrl = "https://hydra.nixos.org/build/2/download/1/nixos-twin-lxc.tar.xz";

interface Answer {
  status: number;
  reason: string;
  body: { data: any; message?: string; errors?: Record<string, string> };
}

describe("the Proxmox VE API twin", function () {
  this.timeout(120_000);
  let work: string;
  let twin: Twin;
  let template: string;
  let key: { privateKeyFile: string; publicKey: string };

  /** One API call over the twin's socket, with the certificate verified. */
  const api = (method: string, apiPath: string, params: Record<string, string> = {}, token: string | null = deploy): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const form = new URLSearchParams(params).toString();
      const query = method === "GET" || method === "DELETE" ? (form ? `?${form}` : "") : "";
      const req = request({
        socketPath: twin.socketPath, path: `/api2/json${apiPath}${query}`, method, ca: twin.certificate, servername: "localhost",
        headers: { ...(token === null ? {} : { Authorization: `PVEAPIToken=${token}` }), ...(query || method === "GET" || method === "DELETE" ? {} : { "Content-Type": "application/x-www-form-urlencoded" }) },
      }, (response) => {
        let text = "";
        response.on("data", (chunk: Buffer) => (text += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, reason: response.statusMessage ?? "", body: JSON.parse(text) }));
      });
      req.on("error", reject);
      req.end(query ? undefined : form);
    });
  /** Waits for a task and returns its status entry. */
  const finished = async (upid: string): Promise<{ status: string; exitstatus: string }> => {
    for (;;) {
      const answer = await api("GET", `/nodes/pve/tasks/${encodeURIComponent(upid)}/status`);
      assert.equal(answer.status, 200, answer.reason);
      if (answer.body.data.status === "stopped") return answer.body.data;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const createParams = (vmid: number, address: string, extra: Record<string, string> = {}) => ({
    vmid: String(vmid), ostemplate: "local:vztmpl/nixos-twin-lxc.tar.xz", rootfs: "local-lvm:4", hostname: `ct${vmid}`, memory: "256",
    net0: `name=eth0,bridge=vmbr0,ip=${address}/24,gw=10.20.0.1`, unprivileged: "1", features: "nesting=1", "ssh-public-keys": key.publicKey, start: "1", ...extra,
  });

  before(async () => {
    if (process.getuid?.() !== 0) throw new Error("the twin tests must run as root (network namespaces and mounts); CI runs them as root");
    work = mkdtempSync(path.join(tmpdir(), "nixmox-twin-api-"));
    template = path.join(work, "nixos-twin-lxc.tar.xz");
    await buildTemplate(template);
    const role = readmeRolePrivileges();
    twin = await startTwin({
      prefix: twinPrefix(),
      stateDir: path.join(work, "twin"),
      tokens: [
        { authid: "nixmox@pve!deploy", secret: deploy.split("=")[1]!, acl: [{ path: "/", privileges: role }] },
        { authid: "nixmox@pve!noaudit", secret: auditless.split("=")[1]!, acl: [{ path: "/", privileges: role.filter((privilege) => privilege !== "Sys.Audit" && privilege !== "VM.Allocate") }] },
      ],
      internet: { [templateUrl]: { path: template } },
      // The API and bpg only: bare hosts with sshd (the stand-in NixOS system is tests/twin-homelab*.test.ts's).
      system: false,
    });
    twin.addFile("pve", "local", "vztmpl", "nixos-twin-lxc.tar.xz", template);
    key = sshKeyPair(work, "deploy");
  });

  after(async () => {
    await twin?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("answers 401 without a valid token and 501 naming the method and path it does not implement", async () => {
    assert.deepEqual(await api("GET", "/version", {}, null), { status: 401, reason: "No ticket", body: { data: null, message: "No ticket\n" } });
    assert.deepEqual(await api("GET", "/version", {}, "nixmox@pve!deploy=wrong"), { status: 401, reason: "Authentication failed!", body: { data: null, message: "Authentication failed!\n" } });
    assert.deepEqual((await api("GET", "/version")).body.data, { version: "9.2.11", release: "9.2", repoid: "14a22df3" });
    const missing = await api("POST", "/nodes/pve/lxc/100/snapshot", { snapname: "x" });
    assert.equal(missing.status, 501);
    assert.equal(missing.reason, "Method 'POST /nodes/pve/lxc/100/snapshot' not implemented");
    assert.ok(twin.api.unimplemented.includes("POST /nodes/pve/lxc/100/snapshot"));
  });

  it("creates and starts a container whose host answers SSH, and refuses its vmid a second time", async () => {
    const created = await api("POST", "/nodes/pve/lxc", createParams(130, "10.20.0.30"));
    assert.equal(created.status, 200, created.reason);
    assert.match(created.body.data, /^UPID:pve:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzcreate:130:nixmox@pve!deploy:$/);
    assert.equal((await finished(created.body.data)).exitstatus, "OK");
    const status = await api("GET", "/nodes/pve/lxc/130/status/current");
    assert.equal(status.body.data.status, "running", "running from the moment its vzstart began");
    assert.equal(status.body.data.maxmem, 256 * 1024 * 1024);
    const ssh = await sshInWorld(twin, "10.20.0.30", key.privateKeyFile, await hostKeyOf(twin, 130), "hostname");
    assert.equal(ssh.stdout.trim(), "ct130", ssh.stderr);
    const again = await api("POST", "/nodes/pve/lxc", createParams(130, "10.20.0.31"));
    assert.deepEqual([again.status, again.reason], [500, "CT 130 already exists on node 'pve'"]);
    assert.deepEqual((await api("GET", "/cluster/nextid", { vmid: "130" })).body, { data: null, message: "Parameter verification failed.\n", errors: { vmid: "VM 130 already exists" } });
    assert.equal((await api("GET", "/cluster/nextid")).body.data, 100);
  });

  it("refuses to destroy a running container, and destroys it once stopped", async () => {
    const running = await api("DELETE", "/nodes/pve/lxc/130");
    assert.deepEqual([running.status, running.reason], [500, "unable to destroy CT 130 - container is running"]);
    const stop = await api("POST", "/nodes/pve/lxc/130/status/stop");
    assert.equal((await finished(stop.body.data)).exitstatus, "OK");
    assert.equal((await api("GET", "/nodes/pve/lxc/130/status/current")).body.data.status, "stopped");
    const destroyed = await api("DELETE", "/nodes/pve/lxc/130");
    assert.equal((await finished(destroyed.body.data)).exitstatus, "OK");
    const gone = await api("GET", "/nodes/pve/lxc/130/status/current");
    assert.deepEqual([gone.status, gone.reason], [500, "Configuration file 'nodes/pve/lxc/130.conf' does not exist"]);
    assert.deepEqual(twin.cluster.node("pve").storage("local-lvm").list(), []);
  });

  it("fails the creation task when the template is not on the storage, and keeps no container", async () => {
    const created = await api("POST", "/nodes/pve/lxc", createParams(131, "10.20.0.31", { ostemplate: "local:vztmpl/missing.tar.xz" }));
    assert.equal(created.status, 200);
    assert.equal((await finished(created.body.data)).exitstatus, "unable to create CT 131 - can't find file 'local:vztmpl/missing.tar.xz'");
    const log = await api("GET", `/nodes/pve/tasks/${encodeURIComponent(created.body.data)}/log`);
    assert.deepEqual(log.body.data.at(-1), { n: log.body.data.length, t: "TASK ERROR: unable to create CT 131 - can't find file 'local:vztmpl/missing.tar.xz'" });
    assert.equal(twin.cluster.node("pve").containers.has(131), false);
  });

  it("checks privileges as Proxmox does: VM.Allocate to create (a bare 403), root@pam for feature flags other than nesting and for any on a privileged container", async () => {
    const noAllocate = await api("POST", "/nodes/pve/lxc", createParams(132, "10.20.0.32"), auditless);
    assert.deepEqual([noAllocate.status, noAllocate.reason], [403, "Permission check failed"]);
    const fuse = await api("POST", "/nodes/pve/lxc", createParams(132, "10.20.0.32", { features: "nesting=1,fuse=1" }));
    assert.deepEqual([fuse.status, fuse.reason], [403, "Permission check failed (changing feature flags (except nesting) is only allowed for root@pam)"]);
    const privilegedFeatures = await api("POST", "/nodes/pve/lxc", createParams(132, "10.20.0.32", { unprivileged: "0" }));
    assert.deepEqual([privilegedFeatures.status, privilegedFeatures.reason], [403, "Permission check failed (changing feature flags for privileged container is only allowed for root@pam)"]);
    const { features: _features, ...withoutFeatures } = createParams(132, "10.20.0.32", { unprivileged: "0" });
    const privileged = await api("POST", "/nodes/pve/lxc", withoutFeatures);
    assert.equal(privileged.status, 200, "Sys.Modify on / (in the README role) allows a privileged container");
    assert.equal((await finished(privileged.body.data)).exitstatus, "OK");
    const stop = await api("POST", "/nodes/pve/lxc/132/status/stop");
    await finished(stop.body.data);
    await finished((await api("DELETE", "/nodes/pve/lxc/132")).body.data);
  });

  it("hot-plugs memory and the address into a running container, keeps a nameserver edit pending until the next start", async () => {
    await finished((await api("POST", "/nodes/pve/lxc", createParams(133, "10.20.0.33"))).body.data);
    const edit = await api("PUT", "/nodes/pve/lxc/133/config", { memory: "384", net0: "name=eth0,bridge=vmbr0,ip=10.20.0.34/24,gw=10.20.0.1", nameserver: "10.20.0.53" });
    assert.equal(edit.status, 200, JSON.stringify(edit.body));
    const host = twin.cluster.node("pve").container(133).host;
    assert.equal(host.appliedMemoryMiB, 384);
    const interfaces = await api("GET", "/nodes/pve/lxc/133/interfaces");
    const eth0 = interfaces.body.data.find((entry: { name: string }) => entry.name === "eth0");
    assert.deepEqual(eth0["ip-addresses"].filter((entry: { "ip-address-type": string }) => entry["ip-address-type"] === "inet"), [{ "ip-address": "10.20.0.34", "ip-address-type": "inet", prefix: 24 }]);
    assert.equal((await api("GET", "/nodes/pve/lxc/133/config")).body.data.nameserver, "10.20.0.53", "GET config shows pending values");
    assert.equal((await api("GET", "/nodes/pve/lxc/133/config", { current: "1" })).body.data.nameserver, undefined, "current=1 shows what runs");
    assert.equal(existsSync(path.join(host.rootfs, "etc/resolv.conf")) && readFileSync(path.join(host.rootfs, "etc/resolv.conf"), "utf8").includes("10.20.0.53"), false);
    await finished((await api("POST", "/nodes/pve/lxc/133/status/reboot")).body.data);
    assert.equal((await api("GET", "/nodes/pve/lxc/133/config", { current: "1" })).body.data.nameserver, "10.20.0.53");
    assert.equal(readFileSync(path.join(host.rootfs, "etc/resolv.conf"), "utf8"), "nameserver 10.20.0.53\n");
  });

  it("lists tasks as Tasks.pm does: archived newest first with a token's user split, running ones RUNNING with the raw user, filters, and a token without Sys.Audit sees only its own", async () => {
    const list = await api("GET", "/nodes/pve/tasks", { vmid: "133", typefilter: "vzcreate", source: "all", limit: "1" });
    assert.equal(list.body.data.length, 1);
    const [entry] = list.body.data;
    assert.deepEqual(
      { type: entry.type, id: entry.id, user: entry.user, tokenid: entry.tokenid, status: entry.status, ended: typeof entry.endtime },
      { type: "vzcreate", id: "133", user: "nixmox@pve", tokenid: "deploy", status: "OK", ended: "number" },
    );
    const newestFirst = (await api("GET", "/nodes/pve/tasks", { vmid: "133" })).body.data.map((task: { type: string }) => task.type);
    assert.deepEqual(newestFirst, ["vzreboot", "vzstart", "vzcreate"]);
    const errors = (await api("GET", "/nodes/pve/tasks", { errors: "1" })).body.data.map((task: { status: string }) => task.status);
    assert.deepEqual(errors, ["unable to create CT 131 - can't find file 'local:vztmpl/missing.tar.xz'"]);
    // A running task: a shutdown whose container ignores nothing, so catch it in the active list right away.
    const shutdown = await api("POST", "/nodes/pve/lxc/133/status/shutdown", { timeout: "5" });
    const active = (await api("GET", "/nodes/pve/tasks", { source: "active" })).body.data;
    assert.deepEqual(active.map((task: { upid: string; user: string; status: string; tokenid?: string }) => [task.upid, task.user, task.status, task.tokenid]), [[shutdown.body.data, "nixmox@pve!deploy", "RUNNING", undefined]]);
    await finished(shutdown.body.data);
    assert.deepEqual((await api("GET", "/nodes/pve/tasks", {}, auditless)).body.data, [], "another token without Sys.Audit sees none of these tasks");
  });

  it("download-url: verifies the checksum, keeps an identical file, refuses another or an unchecked overwrite, fails for a URL the twin's internet lacks", async () => {
    const sha256 = createHash("sha256").update(readFileSync(template)).digest("hex");
    const download = async (params: Record<string, string>) => {
      const answer = await api("POST", "/nodes/pve/storage/local/download-url", { url: templateUrl, content: "vztmpl", filename: "fresh.tar.xz", ...params });
      assert.equal(answer.status, 200, answer.reason);
      return (await finished(answer.body.data)).exitstatus;
    };
    const metadata = await api("GET", "/nodes/pve/query-url-metadata", { url: templateUrl });
    assert.deepEqual(metadata.body.data, { filename: "nixos-twin-lxc.tar.xz", size: readFileSync(template).length, mimetype: "application/octet-stream" });
    assert.equal(await download({ checksum: "0".repeat(64), "checksum-algorithm": "sha256" }), `checksum mismatch: got '${sha256}' != expect '${"0".repeat(64)}'`);
    assert.equal(existsSync(twin.cluster.node("pve").storage("local").templatePath("fresh.tar.xz")), false, "a bad download leaves no file");
    assert.equal(await download({ checksum: sha256, "checksum-algorithm": "sha256" }), "OK");
    assert.equal(await download({ checksum: sha256, "checksum-algorithm": "sha256" }), "OK", "the same file again: 'OK, got correct file already'");
    assert.equal(await download({ checksum: "1".repeat(64), "checksum-algorithm": "sha256" }), `checksum mismatch: got '${sha256}' != expect '${"1".repeat(64)}', aborting`);
    assert.match(await download({}), /^refusing to override existing file '.*\/template\/cache\/fresh\.tar\.xz'$/);
    assert.match(await download({ url: "https://example.org/nowhere.tar.xz", filename: "nowhere.tar.xz" }), /^download failed: /);
    const wrongExtension = await api("POST", "/nodes/pve/storage/local/download-url", { url: templateUrl, content: "vztmpl", filename: "fresh.img" });
    assert.deepEqual([wrongExtension.status, wrongExtension.body.errors], [400, { filename: "wrong file extension" }]);
    // Deleting a template needs Datastore.Allocate, which the README role does not grant (review A1).
    const remove = await api("DELETE", `/nodes/pve/storage/local/content/${encodeURIComponent("local:vztmpl/fresh.tar.xz")}`);
    assert.deepEqual([remove.status, remove.reason], [403, "Permission check failed (/storage/local, Datastore.Allocate)"]);
  });
});
