/**
 * A twin container as a real host: its own network namespace (its NICs are veth pairs to the world's bridges, with
 * the addresses of its `netN` entries), its own mount, UTS, IPC and PID namespaces, and a root filesystem of its
 * own (boot.sh), running an init (init.sh) that makes the SSH host key at the first start and runs sshd.
 *
 * What Proxmox does at each step, and what the twin does instead:
 * - start (`lxc-start`): the twin creates the container's network namespace, plugs its NICs
 *   (pve-container src/PVE/LXC.pm `net_tap_plug`: the host side `veth<vmid>i<n>` on the bridge, or on its VLAN `tag`) and
 *   configures the addresses from the host side, as LXC does with `lxc.net.N.ipv4.address`, then boots the init;
 * - stop / shutdown: the init gets SIGTERM and ends every process of the container; the namespace is removed;
 * - a NIC edit on a running container (LXC.pm `update_net` → `update_ipconfig`): the addresses and the gateway
 *   change in place, the MAC address or the name replace the NIC.
 * - memory: Proxmox writes the container's cgroup limit (LXC/Config.pm `vmconfig_hotplug_pending`); the twin records
 *   the limit it would have set (`appliedMemoryMiB`) and does not enforce it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import type { HostSystem } from "../system";
import { packageFile } from "../../manifest/package-root";
import { ip, netnsExists } from "./run";
import { worldCommand, type World } from "./world";

export interface NicSpec {
  /** N of `netN` */
  index: number;
  /** Interface name inside the container (`name=eth0`). */
  name: string;
  bridge: string;
  hwaddr: string;
  /** `192.168.1.10/24`; `dhcp`, `manual` or absent leave the NIC without an address. */
  ip?: string;
  gw?: string;
  tag?: number;
  mtu?: number;
}

export interface HostSpec {
  vmid: number;
  hostname: string;
  nics: NicSpec[];
  memoryMiB: number;
  /** `nameserver` / `searchdomain`: written to /etc/resolv.conf at start, as Proxmox's setup does. */
  nameserver?: string;
  searchdomain?: string;
}

export interface HostInterface {
  name: string;
  "hardware-address": string;
  hwaddr: string;
  inet?: string;
  inet6?: string;
  "ip-addresses": { "ip-address": string; "ip-address-type": "inet" | "inet6"; prefix: number }[];
}

// From the package folder, also when running compiled from dist/ (manifest/package-root.ts).
const bootScript = packageFile("twin", "hosts", "boot.sh");
const initScript = packageFile("twin", "hosts", "init.sh");

export class ContainerHost {
  private runtime: ChildProcess | null = null;
  /** Set from the first step of a start: Proxmox reads a container as running once lxc-start has begun. */
  private starting = false;
  private exited: Promise<void> = Promise.resolve();
  private bootLog = "";
  /** The NICs as configured on the running host. */
  private nics: NicSpec[] = [];
  /** The memory limit the last start or hotplug applied (MiB). */
  appliedMemoryMiB: number | null = null;

  constructor(
    private readonly world: World,
    readonly vmid: number,
    /** The container's root filesystem (the extracted template plus what it wrote); set when its disk exists. */
    public rootfs: string,
    /** The stand-in NixOS system put into the host before each start (twin/system); none: a bare host with sshd. */
    private readonly system: HostSystem | null = null,
  ) {}

  get netns(): string {
    return this.world.containerNetns(this.vmid);
  }

  get running(): boolean {
    return this.starting || (this.runtime !== null && this.runtime.exitCode === null && this.runtime.signalCode === null);
  }

  /** Boots the host; resolves when its init runs, rejects with the boot log when it cannot start. */
  async start(spec: HostSpec): Promise<void> {
    if (this.running) throw new Error(`CT ${this.vmid} already running`);
    for (const nic of spec.nics) {
      if (!this.world.bridge(nic.bridge)) throw new Error(`bridge '${nic.bridge}' does not exist`);
    }
    this.starting = true;
    try {
      await this.startHost(spec);
    } finally {
      this.starting = false;
    }
  }

  private async startHost(spec: HostSpec): Promise<void> {
    if (await netnsExists(this.netns)) await ip(null, ["netns", "del", this.netns]);
    await ip(null, ["netns", "add", this.netns]);
    try {
      await ip(this.netns, ["link", "set", "lo", "up"]);
      for (const nic of spec.nics) await this.plug(nic);
      this.nics = spec.nics.map((nic) => ({ ...nic }));
      this.prepareRoot(spec);
      this.system?.install(this.rootfs);
      await this.boot(spec.hostname, this.system ? { node: this.system.node, runDir: await this.system.runDir(this.vmid) } : null);
      this.appliedMemoryMiB = spec.memoryMiB;
    } catch (error) {
      await this.stop(5_000).catch(() => undefined);
      await ip(null, ["netns", "del", this.netns]).catch(() => undefined);
      throw error;
    }
  }

  /** Stops every process of the host (SIGTERM to its init, SIGKILL after `timeoutMs`) and removes its network. */
  async stop(timeoutMs: number): Promise<void> {
    const runtime = this.runtime;
    if (runtime && runtime.exitCode === null && runtime.signalCode === null) {
      const init = initPid(runtime.pid);
      if (init) process.kill(init, "SIGTERM");
      else runtime.kill("SIGTERM");
      const timer = setTimeout(() => runtime.kill("SIGKILL"), timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.runtime = null;
    this.appliedMemoryMiB = null;
    if (await netnsExists(this.netns)) await ip(null, ["netns", "del", this.netns]);
  }

  /** Applies NIC edits to the running host (LXC.pm `update_net`). */
  async updateNics(nics: NicSpec[]): Promise<void> {
    for (const nic of nics) {
      const old = this.nics.find((entry) => entry.index === nic.index);
      if (old && old.hwaddr === nic.hwaddr && old.name === nic.name && old.bridge === nic.bridge && old.tag === nic.tag) {
        if (old.ip !== nic.ip || old.gw !== nic.gw) await this.readdress(old, nic);
      } else {
        if (old) await ip(this.world.netns, ["link", "del", `veth${this.vmid}i${old.index}`]).catch(() => undefined);
        await this.plug(nic);
      }
    }
    for (const old of this.nics.filter((entry) => !nics.some((nic) => nic.index === entry.index))) {
      await ip(this.world.netns, ["link", "del", `veth${this.vmid}i${old.index}`]).catch(() => undefined);
    }
    this.nics = nics.map((nic) => ({ ...nic }));
  }

  /** The host's interfaces as the API reports them (`GET …/interfaces`, read with `ip -j addr` inside it). */
  async interfaces(): Promise<HostInterface[]> {
    const { stdout } = await ip(this.netns, ["-j", "addr", "show"]);
    const links = JSON.parse(stdout) as { ifname: string; address?: string; addr_info?: { family: string; local: string; prefixlen: number }[] }[];
    return links.map((link) => {
      const addresses = (link.addr_info ?? []).map((info) => ({ "ip-address": info.local, "ip-address-type": info.family === "inet6" ? ("inet6" as const) : ("inet" as const), prefix: info.prefixlen }));
      const inet = addresses.find((entry) => entry["ip-address-type"] === "inet");
      const inet6 = addresses.find((entry) => entry["ip-address-type"] === "inet6");
      return {
        name: link.ifname,
        "hardware-address": link.address ?? "00:00:00:00:00:00",
        hwaddr: link.address ?? "00:00:00:00:00:00",
        ...(inet ? { inet: `${inet["ip-address"]}/${inet.prefix}` } : {}),
        ...(inet6 ? { inet6: `${inet6["ip-address"]}/${inet6.prefix}` } : {}),
        "ip-addresses": addresses,
      };
    });
  }

  private async plug(nic: NicSpec): Promise<void> {
    const veth = `veth${this.vmid}i${nic.index}`;
    const world = this.world.netns;
    await ip(world, ["link", "add", veth, ...(nic.mtu ? ["mtu", String(nic.mtu)] : []), "type", "veth", "peer", "name", nic.name, "netns", this.netns]);
    await ip(world, ["link", "set", veth, "master", await this.world.bridgeDevice(nic.bridge, nic.tag)]);
    await ip(world, ["link", "set", veth, "up"]);
    await ip(this.netns, ["link", "set", nic.name, "address", nic.hwaddr.toLowerCase()]);
    await ip(this.netns, ["link", "set", nic.name, "up"]);
    await this.readdress(null, nic);
  }

  private async readdress(old: NicSpec | null, nic: NicSpec): Promise<void> {
    if (old?.ip && isAddress(old.ip)) await ip(this.netns, ["addr", "del", old.ip, "dev", nic.name]).catch(() => undefined);
    if (old?.gw) await ip(this.netns, ["route", "del", "default", "via", old.gw]).catch(() => undefined);
    if (nic.ip && isAddress(nic.ip)) {
      await ip(this.netns, ["addr", "add", nic.ip, "dev", nic.name]);
      if (nic.gw) {
        await this.world.ensureRouterAddress(nic.bridge, nic.tag, `${nic.gw}/${nic.ip.split("/")[1]}`);
        await ip(this.netns, ["route", "replace", "default", "via", nic.gw, "dev", nic.name]);
      }
    }
  }

  /** Writes what Proxmox writes into a container before it starts (hostname, DNS) and the twin's init. */
  private prepareRoot(spec: HostSpec): void {
    mkdirSync(join(this.rootfs, ".twin"), { recursive: true });
    copyFileSync(initScript, join(this.rootfs, ".twin/init"));
    chmodSync(join(this.rootfs, ".twin/init"), 0o755);
    writeFileSync(join(this.rootfs, "etc/hostname"), `${spec.hostname}\n`);
    if (spec.nameserver || spec.searchdomain) {
      const lines = [...(spec.searchdomain ? [`search ${spec.searchdomain.split(/[\s,;]+/).join(" ")}`] : []), ...(spec.nameserver ?? "").split(/[\s,;]+/).filter(Boolean).map((server) => `nameserver ${server}`)];
      writeFileSync(join(this.rootfs, "etc/resolv.conf"), `${lines.join("\n")}\n`);
    }
  }

  private async boot(hostname: string, mounts: { node: string; runDir: string } | null): Promise<void> {
    this.bootLog = "";
    const argv = ["setpriv", "--pdeathsig", "SIGKILL", "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child=SIGTERM", "--propagation", "private", "bash", bootScript, this.rootfs, hostname, mounts?.node ?? "", mounts?.runDir ?? ""];
    const [command, ...args] = worldCommand(this.netns, argv);
    const runtime = spawn(command!, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.runtime = runtime;
    this.exited = new Promise((resolve) => runtime.once("exit", () => resolve()));
    runtime.stderr?.on("data", (chunk: Buffer) => (this.bootLog += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`startup for container '${this.vmid}' failed: no init after 20 s: ${this.bootLog.trim()}`)), 20_000);
      runtime.stdout?.on("data", (chunk: Buffer) => {
        this.bootLog += chunk.toString();
        if (this.bootLog.includes("twin-init: up")) {
          clearTimeout(timer);
          resolve();
        }
      });
      runtime.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`startup for container '${this.vmid}' failed (exit code ${code}): ${this.bootLog.trim()}`));
      });
    });
  }

  /** The init's log (the container's /var/log/twin-init.log), for error messages and tests. */
  initLog(): string {
    const file = join(this.rootfs, "var/log/twin-init.log");
    return existsSync(file) ? readFileSync(file, "utf8") : "";
  }
}

function isAddress(value: string): boolean {
  return /^[0-9a-fA-F:.]+\/\d+$/.test(value);
}

/** The container's init: the child of the `unshare --fork` runtime process. */
function initPid(runtimePid: number | undefined): number | null {
  if (runtimePid === undefined) return null;
  try {
    const children = readFileSync(`/proc/${runtimePid}/task/${runtimePid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    return children.length ? Number(children[0]) : null;
  } catch {
    return null;
  }
}
