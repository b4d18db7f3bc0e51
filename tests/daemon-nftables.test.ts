// The gate behind forward auth, on the real Linux firewall: each host's configs/nftables.conf from
// `nixmox render --configs` (the table the NixOS nftables firewall loads, nixos/lib/firewall.nix) is loaded with
// Debian's `nft` into a network namespace that holds the host's address, with listeners on its ports. A second
// namespace, joined by a veth pair, holds the other homelab addresses (the proxy, a database client, another host)
// and an address of the LAN that is no homelab host, and connects from each. Both namespaces are created by the
// test and have no route out. Needs root, iproute2 and nftables (.ci/run installs them).
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { loadManifestData } from "../manifest";
import { exampleManifestDir } from "./golden/render-fixtures";
import { renderWithConfigs, waitFor, type RenderedWithConfigs } from "./support/daemons";

const run = promisify(execFile);

/** A TCP listener on `ip`:`ports` that answers "ok" to every connection (stands in for the host's apps). */
const listenerScript = `
const net = require("node:net");
const [ip, ...ports] = process.argv.slice(1);
let left = ports.length;
for (const port of ports) net.createServer((socket) => socket.end("ok")).listen(Number(port), ip, () => { if (--left === 0) console.log("listening"); });
`;

/** Connects to each ip:port from a source address; prints one JSON object: "<source> <port>" → "open" | "closed". */
const probeScript = `
const net = require("node:net");
const [ip, specs] = process.argv.slice(1);
const probes = JSON.parse(specs).map(([source, port]) => new Promise((resolve) => {
  const socket = net.connect({ host: ip, port, localAddress: source });
  const done = (result) => { socket.destroy(); resolve([source + " " + port, result]); };
  socket.setTimeout(1500, () => done("closed"));
  socket.on("data", () => done("open"));
  socket.on("error", () => done("closed"));
}));
Promise.all(probes).then((results) => console.log(JSON.stringify(Object.fromEntries(results))));
`;

describe("daemon: nftables runs each host's generated firewall (seed homelab in two network namespaces)", function () {
  this.timeout(120_000);
  const tag = `nxfw${process.pid % 10000}${Math.floor(Math.random() * 1000)}`;
  const hostNs = `${tag}-h`;
  const lanNs = `${tag}-l`;
  let dir: string;
  let rendered: RenderedWithConfigs;
  let listener: ChildProcess | undefined;

  const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"], timeout: 20_000 });
  const inNs = (ns: string, command: string, args: string[]) => run("ip", ["netns", "exec", ns, command, ...args], { encoding: "utf8", timeout: 60_000 });

  const lan = "10.40.0.99"; // a LAN address that is no homelab host
  const proxy = "10.40.0.10";
  const vaultwarden = "10.40.0.14"; // a homelab host with a database on postgresql
  const monitoring = "10.40.0.18";

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-nftables-"));
    rendered = renderWithConfigs(await loadManifestData(path.join(exampleManifestDir, "examples", "seed-homelab.nix")));
    ip("netns", "add", hostNs);
    ip("netns", "add", lanNs);
    ip("link", "add", `${tag}a`, "type", "veth", "peer", "name", `${tag}b`);
    ip("link", "set", `${tag}a`, "netns", hostNs);
    ip("link", "set", `${tag}b`, "netns", lanNs);
    for (const ns of [hostNs, lanNs]) ip("-n", ns, "link", "set", "lo", "up");
    ip("-n", hostNs, "link", "set", `${tag}a`, "up");
    ip("-n", lanNs, "link", "set", `${tag}b`, "up");
    // The proxy's address last: it is removed for the caddy test, and removing an interface's first (primary)
    // address would remove the others with it.
    for (const address of [lan, vaultwarden, proxy]) ip("-n", lanNs, "addr", "add", `${address}/24`, "dev", `${tag}b`);
    // A veth pair carries packets only once both ends report carrier.
    for (const [ns, end] of [[hostNs, `${tag}a`], [lanNs, `${tag}b`]]) {
      await waitFor(`${end} up`, () => (ip("-n", ns, "-o", "link", "show", end).toString().includes("state UP") ? true : undefined));
    }
  });

  after(async () => {
    listener?.kill("SIGKILL");
    for (const ns of [hostNs, lanNs]) {
      try {
        ip("netns", "del", ns);
      } catch {
        // already gone
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Makes the host namespace host `service`: its address, its rendered table (or none), listeners on `ports`. */
  async function becomeHost(service: string, ports: number[], withRules = true): Promise<string> {
    listener?.kill("SIGKILL");
    const address = rendered.data(service).host.ip as string;
    ip("-n", hostNs, "addr", "flush", "dev", `${tag}a`);
    ip("-n", hostNs, "addr", "add", `${address}/24`, "dev", `${tag}a`);
    await inNs(hostNs, "nft", ["flush", "ruleset"]);
    if (withRules) {
      const file = path.join(dir, `${service}.nft`);
      writeFileSync(file, rendered.configs[service]["nftables.conf"]);
      await inNs(hostNs, "nft", ["-f", file]);
    }
    const child = spawn("ip", ["netns", "exec", hostNs, process.execPath, "-e", listenerScript, address, ...ports.map(String)], { stdio: ["ignore", "pipe", "inherit"] });
    listener = child;
    let out = "";
    child.stdout!.on("data", (chunk) => (out += chunk));
    await waitFor(`listeners on ${address}`, () => (out.includes("listening") ? true : undefined));
    return address;
  }

  async function probe(address: string, specs: Array<[string, number]>): Promise<Record<string, string>> {
    const { stdout } = await inNs(lanNs, process.execPath, ["-e", probeScript, address, JSON.stringify(specs)]);
    return JSON.parse(stdout);
  }

  it("lets the LAN reach every port when no rules are loaded (the control: the listeners answer through the veth pair)", async () => {
    const address = await becomeHost("monitoring", [9090, 3100], false);
    assert.deepEqual(await probe(address, [[lan, 9090], [lan, 3100]]), { [`${lan} 9090`]: "open", [`${lan} 3100`]: "open" });
  });

  it("monitoring: Prometheus answers the proxy only; Loki answers the homelab's hosts and not the LAN; SSH stays open", async () => {
    const address = await becomeHost("monitoring", [9090, 9093, 3100, 3000, 22]);
    assert.equal(address, monitoring);
    assert.deepEqual(await probe(address, [[proxy, 9090], [lan, 9090], [vaultwarden, 9090], [lan, 9093], [proxy, 3000], [lan, 3000], [vaultwarden, 3100], [lan, 3100], [lan, 22]]), {
      [`${proxy} 9090`]: "open",
      [`${lan} 9090`]: "closed",
      [`${vaultwarden} 9090`]: "closed",
      [`${lan} 9093`]: "closed",
      [`${proxy} 3000`]: "open",
      [`${lan} 3000`]: "closed",
      [`${vaultwarden} 3100`]: "open",
      [`${lan} 3100`]: "closed",
      [`${lan} 22`]: "open",
    });
  });

  it("postgresql: the database port answers its clients only, pgAdmin's port the proxy only", async () => {
    const address = await becomeHost("postgresql", [5432, 5050]);
    assert.deepEqual(await probe(address, [[vaultwarden, 5432], [proxy, 5432], [lan, 5432], [proxy, 5050], [lan, 5050], [vaultwarden, 5050]]), {
      [`${vaultwarden} 5432`]: "open",
      [`${proxy} 5432`]: "closed",
      [`${lan} 5432`]: "closed",
      [`${proxy} 5050`]: "open",
      [`${lan} 5050`]: "closed",
      [`${vaultwarden} 5050`]: "closed",
    });
  });

  it("media: an app behind forward auth (Transmission, no login of its own) answers the proxy only", async () => {
    const address = await becomeHost("media", [9091, 8989]);
    assert.deepEqual(await probe(address, [[proxy, 9091], [lan, 9091], [proxy, 8989], [lan, 8989]]), {
      [`${proxy} 9091`]: "open",
      [`${lan} 9091`]: "closed",
      [`${proxy} 8989`]: "open",
      [`${lan} 8989`]: "closed",
    });
  });

  it("caddy: the proxy's own ports answer the whole LAN", async () => {
    // The host namespace is the proxy now, so the LAN side gives up the proxy's address.
    ip("-n", lanNs, "addr", "del", `${proxy}/24`, "dev", `${tag}b`);
    const address = await becomeHost("caddy", [443, 80]);
    assert.equal(address, proxy);
    assert.deepEqual(await probe(address, [[lan, 443], [lan, 80], [vaultwarden, 443]]), { [`${lan} 443`]: "open", [`${lan} 80`]: "open", [`${vaultwarden} 443`]: "open" });
  });
});
