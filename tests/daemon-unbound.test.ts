// The DNS host's unbound.conf from `nixmox render --configs`, fed to the real Debian unbound: unbound-checkconf
// accepts it, and a live unbound started from it on the DNS host's (loopback) address answers every host and
// route name, the PTR records, NXDOMAIN for unknown names under the homelab domain, forwards outside names to
// the configured forwarder (a tiny DNS stub on the gateway's address) and refuses networks the manifest does
// not allow. The manifests (the example and the seed layout) are moved onto a random 127.x.y.0/24 so the
// config binds its own addresses unchanged. Needs root (the forwarder stub listens on port 53, as unbound
// forwards there) and Debian's unbound + bind9-dnsutils (.ci/run installs them).
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { createSocket, type Socket } from "node:dgram";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { loadManifestData } from "../manifest";
import { exampleManifestData, exampleManifestDir } from "./golden/render-fixtures";
import { freePort, moveToSubnet, randomLoopbackSubnet, renderWithConfigs, startDaemon, waitFor, type Daemon } from "./support/daemons";
import { seedManifest } from "./support/manifests";

/** A DNS server that answers `outside.example. A 192.0.2.7` and NXDOMAIN for everything else. */
function startForwarderStub(address: string): Promise<Socket> {
  const socket = createSocket("udp4");
  socket.on("message", (query, peer) => {
    let offset = 12;
    const labels: string[] = [];
    while (query[offset] !== 0) {
      labels.push(query.subarray(offset + 1, offset + 1 + query[offset]).toString("ascii"));
      offset += query[offset] + 1;
    }
    const questionEnd = offset + 5;
    const qtype = query.readUInt16BE(offset + 1);
    const known = labels.join(".").toLowerCase() === "outside.example" && qtype === 1;
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    header.writeUInt16BE(known ? 0x8180 : 0x8183, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(known ? 1 : 0, 6);
    const answer = known ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 7]) : Buffer.alloc(0);
    socket.send(Buffer.concat([header, query.subarray(12, questionEnd), answer]), peer.port, peer.address);
  });
  return new Promise((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(53, address, () => resolve(socket));
  });
}

interface Answer {
  status: string;
  answers: string[];
}

// Asynchronous: the forwarder stub answers from this process's event loop.
async function dig(server: string, port: number, args: string[], source?: string): Promise<Answer> {
  const { stdout: out } = await promisify(execFile)("dig", [`@${server}`, "-p", String(port), ...(source ? ["-b", source] : []), "+time=3", "+tries=1", "+noall", "+comments", "+answer", ...args], {
    encoding: "utf8",
    timeout: 20_000,
  });
  const status = /status: ([A-Z]+)/.exec(out)?.[1] ?? "NONE";
  const answers = out
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith(";"))
    .map((line) => line.split(/\s+/).slice(3).join(" "));
  return { status, answers };
}

for (const [label, load, from] of [
  ["example manifest", async () => exampleManifestData(), "192.168.99."],
  ["seed layout", async () => seedManifest(), "192.168.99."],
  ["seed homelab with the new kinds", async () => loadManifestData(path.join(exampleManifestDir, "examples", "seed-homelab.nix")) as Promise<Record<string, any>>, "10.40.0."],
  ["older homelab (no domain, no vmids)", async () => loadManifestData(path.join(exampleManifestDir, "examples", "older-homelab.nix")) as Promise<Record<string, any>>, "10.77.0."],
] as const) {
  describe(`daemon: unbound runs the DNS host's generated unbound.conf (${label})`, function () {
    this.timeout(120_000);
    const subnet = randomLoopbackSubnet();
    const adminNet = subnet.replace(/\.\d+$/, (last) => `.${(Number(last.slice(1)) % 250) + 1}`) ;
    let dir: string;
    let conf: string;
    let dnsIp: string;
    let port: number;
    let records: Array<{ name: string; value: string; source: string }>;
    let domain: string;
    let unbound: Daemon | undefined;
    let forwarder: Socket | undefined;

    before(async () => {
      const raw = moveToSubnet(await load(), subnet, from) as Record<string, any>;
      raw.network.dns = { allowed_networks: [`${adminNet}.0/24`] };
      const rendered = renderWithConfigs(raw);
      const dnsService = rendered.hosts.find((host) => JSON.parse(host.files["host.json"]).host.kind === "dns")!.service;
      const data = rendered.data(dnsService);
      // The plan's domain: the manifest's, or the one derived from its hostnames (the older homelab sets none).
      domain = data.host.domain;
      dnsIp = data.host.ip;
      records = data.dns.records;
      conf = rendered.configs[dnsService]["unbound.conf"];
      dir = mkdtempSync(path.join(tmpdir(), "nixmox-unbound-"));
      writeFileSync(path.join(dir, "unbound.conf"), conf);
      port = await freePort(dnsIp);
      // Two settings for this test only: a free port instead of 53, and do-not-query-localhost: no because the
      // test's forwarder (the gateway) is a loopback address.
      writeTestConf(dir, [`port: ${port}`, "do-not-query-localhost: no"]);
      forwarder = await startForwarderStub(data.dns.forwarders[0]);
      unbound = startDaemon("unbound", ["-d", "-c", path.join(dir, "test.conf")]);
      await waitFor("unbound to answer", async () => ((await dig(dnsIp, port, [`dns.${data.host.domain}`])).status === "NOERROR" ? true : undefined));
    });

    after(async () => {
      await unbound?.stop();
      forwarder?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("passes unbound-checkconf as generated", () => {
      const out = execFileSync("unbound-checkconf", [path.join(dir, "unbound.conf")], { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe"] });
      assert.match(out, /no errors/);
    });

    it("answers every host name with its IP and every route domain with the proxy's IP", async () => {
      assert.ok(records.some((r) => r.source === "route") && records.some((r) => r.source === "host"));
      for (const record of records) {
        assert.deepEqual(await dig(dnsIp, port, [record.name, "A"]), { status: "NOERROR", answers: [`A ${record.value}`] }, record.name);
      }
    });

    it("answers the PTR record of every host", async () => {
      for (const record of records.filter((r) => r.source === "host")) {
        assert.deepEqual(await dig(dnsIp, port, ["-x", record.value]), { status: "NOERROR", answers: [`PTR ${record.name}.`] }, record.value);
      }
    });

    it("answers NXDOMAIN for unknown names under the homelab domain instead of forwarding them", async () => {
      assert.equal((await dig(dnsIp, port, [`nothing-here.${domain}`, "A"])).status, "NXDOMAIN");
    });

    it("forwards names outside the homelab to the configured forwarder", async () => {
      assert.deepEqual(await dig(dnsIp, port, ["outside.example", "A"]), { status: "NOERROR", answers: ["A 192.0.2.7"] });
    });

    // Unbound always allows 127.0.0.0/8 on top of access-control (unbound.conf(5): the localhost defaults), so
    // refusal cannot be shown from a loopback source here; the namespace test below shows it with real addresses.
    it("allows exactly the containers' subnet and network.dns.allowed_networks besides loopback", () => {
      const lines = conf.split("\n").filter((line) => line.includes("access-control:")).map((line) => line.trim());
      assert.deepEqual(lines, ["access-control: 127.0.0.0/8 allow", `access-control: ${subnet}.0/24 allow`, `access-control: ${adminNet}.0/24 allow`]);
    });
  });
}

// In a network namespace the test creates (unshare: only its own `lo`, so nothing on the machine is touched),
// the DNS host's unbound.conf runs on port 53 as on the host, with non-loopback client addresses added to `lo`:
// Unbound refuses an address outside the allowed networks and answers one inside network.dns.allowed_networks,
// and glibc, given a non-DNS host's rendered /etc/resolv.conf (bind-mounted), resolves short and full names
// through it. Needs root, unshare and ip (util-linux, iproute2).
/**
 * `<dir>/test.conf`: the host's own settings the NixOS module adds (directory, chroot "", username "", pidfile "")
 * and the test's `extra` server settings, then the generated `<dir>/unbound.conf`, included unchanged.
 */
function writeTestConf(dir: string, extra: string[] = []): void {
  writeFileSync(path.join(dir, "test.conf"), [
    "server:",
    `  directory: "${dir}"`,
    '  chroot: ""',
    '  username: ""',
    '  pidfile: ""',
    "  do-daemonize: no",
    "  use-syslog: no",
    "  do-ip6: no",
    ...extra.map((line) => `  ${line}`),
    `include: "${path.join(dir, "unbound.conf")}"`,
    "",
  ].join("\n"));
}

describe("daemon: unbound on port 53 in a private network namespace, with glibc reading the rendered resolv.conf", function () {
  this.timeout(120_000);
  const subnet = randomLoopbackSubnet();
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-unbound-netns-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses clients outside the allowed networks, answers allowed ones, and glibc resolves through resolv.conf", async () => {
    const raw = moveToSubnet(await exampleManifestData(), subnet) as Record<string, any>;
    raw.network.dns = { allowed_networks: ["10.78.0.0/24"] };
    const rendered = renderWithConfigs(raw);
    writeFileSync(path.join(dir, "unbound.conf"), rendered.configs.dns["unbound.conf"]);
    writeFileSync(path.join(dir, "resolv.conf"), rendered.configs.vaultwarden["resolv.conf"]);
    writeTestConf(dir);
    const script = [
      "ip link set lo up",
      "ip addr add 10.77.0.5/32 dev lo",
      "ip addr add 10.78.0.9/32 dev lo",
      'unbound -d -c "$DIR/test.conf" >"$DIR/unbound.log" 2>&1 & pid=$!',
      "trap 'kill $pid' EXIT",
      "i=0",
      'until [ -n "$(dig +short +time=1 +tries=1 @"$DNS" "dns.$DOMAIN" 2>/dev/null)" ]; do i=$((i+1)); [ $i -lt 100 ] || exit 9; sleep 0.1; done',
      'echo "outsider $(dig +time=2 +tries=1 -b 10.77.0.5 @"$DNS" "caddy.$DOMAIN" | grep -o "status: [A-Z]*")"',
      'echo "admin $(dig +time=2 +tries=1 -b 10.78.0.9 @"$DNS" "caddy.$DOMAIN" | grep -o "status: [A-Z]*")"',
      'mount --bind "$DIR/resolv.conf" /etc/resolv.conf',
      'echo "short $(getent hosts caddy)"',
      'echo "full $(getent hosts vault.$DOMAIN)"',
    ].join("\n");
    const { stdout } = await promisify(execFile)("unshare", ["--net", "--mount", "sh", "-ec", script], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, DIR: dir, DNS: rendered.data("dns").host.ip, DOMAIN: "nixmox.lan" },
    });
    const lines = Object.fromEntries(stdout.trim().split("\n").map((line) => [line.split(" ")[0], line.slice(line.indexOf(" ") + 1).replace(/\s+/g, " ").trim()]));
    assert.deepEqual(lines, {
      outsider: "status: REFUSED",
      admin: "status: NOERROR",
      short: `${subnet}.10 caddy.nixmox.lan`,
      full: `${subnet}.10 vault.nixmox.lan`,
    });
  });
});

// Review D3: a second resolver. The example homelab gets a second DNS service (dns2) and lists it in
// network.fallback_dns_servers. Three network namespaces made by the test, joined by veth pairs and with no route
// out: the two DNS hosts, each running the real unbound from its own rendered unbound.conf, and a client holding
// vaultwarden's address, whose glibc reads vaultwarden's rendered resolv.conf (`ip netns exec` bind-mounts
// /etc/netns/<name>/resolv.conf). Stopping the first unbound, or cutting its whole host off, leaves names resolving.
// Needs root, iproute2, unbound and getent (libc-bin).
describe("daemon: two unbounds in network namespaces, a client with the rendered resolv.conf (second resolver, review D3)", function () {
  this.timeout(120_000);
  const tag = `nxdns${process.pid % 1000}${Math.floor(Math.random() * 1000)}`;
  const namespaces = { first: `${tag}-a`, second: `${tag}-b`, client: `${tag}-c` };
  const daemons: Daemon[] = [];
  let dir: string;
  let rendered: ReturnType<typeof renderWithConfigs>;
  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
  const getent = async (name: string) => {
    const started = Date.now();
    try {
      const { stdout } = await promisify(execFile)("ip", ["netns", "exec", namespaces.client, "getent", "hosts", name], { encoding: "utf8", timeout: 30_000 });
      return { answer: stdout.trim().split(/\s+/)[0], seconds: (Date.now() - started) / 1000 };
    } catch {
      return { answer: "", seconds: (Date.now() - started) / 1000 };
    }
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-dns-fallback-"));
    const raw = await exampleManifestData();
    raw.core_services.dns2 = { kind: "dns", ip: "192.168.99.23", vmid: 923, resources: { cores: 1, memory: 512, disk_gb: 4 } };
    raw.network.fallback_dns_servers = ["192.168.99.23"];
    rendered = renderWithConfigs(raw);
    const client = rendered.data("vaultwarden").host.ip as string;
    for (const ns of Object.values(namespaces)) {
      ip("netns", "add", ns);
      ip("-n", ns, "link", "set", "lo", "up");
    }
    for (const [side, service] of [["first", "dns"], ["second", "dns2"]] as const) {
      const address = rendered.data(service).host.ip as string;
      const here = `${tag}${side[0]}1`;
      const there = `${tag}${side[0]}2`;
      ip("link", "add", here, "type", "veth", "peer", "name", there);
      ip("link", "set", here, "netns", namespaces[side]);
      ip("link", "set", there, "netns", namespaces.client);
      ip("-n", namespaces[side], "addr", "add", `${address}/32`, "dev", here);
      ip("-n", namespaces.client, "addr", "add", `${client}/32`, "dev", there);
      ip("-n", namespaces[side], "link", "set", here, "up");
      ip("-n", namespaces.client, "link", "set", there, "up");
      ip("-n", namespaces[side], "route", "add", `${client}/32`, "dev", here);
      ip("-n", namespaces.client, "route", "add", `${address}/32`, "dev", there);
      const serviceDir = path.join(dir, service);
      mkdirSync(serviceDir);
      writeFileSync(path.join(serviceDir, "unbound.conf"), rendered.configs[service]["unbound.conf"]);
      writeTestConf(serviceDir);
      const daemon = startDaemon("ip", ["netns", "exec", namespaces[side], "unbound", "-d", "-c", path.join(serviceDir, "test.conf")]);
      daemons.push(daemon);
      await waitFor(`${here} up`, () => (ip("-n", namespaces[side], "-o", "link", "show", here).toString().includes("state UP") ? true : undefined));
    }
    mkdirSync(`/etc/netns/${namespaces.client}`, { recursive: true });
    writeFileSync(`/etc/netns/${namespaces.client}/resolv.conf`, rendered.configs.vaultwarden["resolv.conf"]);
    await waitFor("both unbounds to answer", async () => ((await getent("caddy.nixmox.lan")).answer === "192.168.99.10" ? true : undefined), 30_000);
  });

  after(async () => {
    for (const daemon of daemons) await daemon.stop();
    for (const ns of Object.values(namespaces)) {
      try {
        ip("netns", "del", ns);
      } catch {
        // already gone
      }
    }
    rmSync(`/etc/netns/${namespaces.client}`, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("renders both resolvers into every other host's resolv.conf, each DNS host asking itself first", () => {
    assert.equal(rendered.configs.vaultwarden["resolv.conf"], "# Generated by NixMox (nixos/lib/resolv.nix).\nsearch nixmox.lan\nnameserver 192.168.99.13\nnameserver 192.168.99.23\noptions edns0 timeout:2 attempts:2\n");
    assert.match(rendered.configs.dns2["resolv.conf"], /^nameserver 127\.0\.0\.1\nnameserver 192\.168\.99\.13\nnameserver 192\.168\.99\.1\n/m);
    assert.match(rendered.configs.dns["resolv.conf"], /^nameserver 127\.0\.0\.1\nnameserver 192\.168\.99\.23\nnameserver 192\.168\.99\.1\n/m);
  });

  it("still resolves the homelab's names when the first unbound is stopped, and when its whole host is cut off", async () => {
    assert.equal((await getent("vault.nixmox.lan")).answer, "192.168.99.10");
    await daemons[0].stop();
    const stopped = await getent("vault.nixmox.lan");
    assert.equal(stopped.answer, "192.168.99.10", "no answer with the first unbound stopped");
    assert.equal((await getent("postgresql.nixmox.lan")).answer, "192.168.99.11");
    // The first DNS host gone entirely (no ICMP answer either): glibc waits its timeout, then asks the second.
    ip("-n", namespaces.first, "link", "set", `${tag}f1`, "down");
    const gone = await getent("guacamole.nixmox.lan");
    assert.equal(gone.answer, "192.168.99.15");
    assert.ok(gone.seconds < 10, `took ${gone.seconds}s`);
    // The control: with the first resolver alone (what a manifest without fallback_dns_servers renders), nothing resolves.
    writeFileSync(`/etc/netns/${namespaces.client}/resolv.conf`, "search nixmox.lan\nnameserver 192.168.99.13\noptions edns0 timeout:1 attempts:1\n");
    assert.equal((await getent("vault.nixmox.lan")).answer, "");
  });
});
