/**
 * The twin's world: one network namespace with no route out, holding the node's bridges, the router addresses the
 * containers' gateways name, the Proxmox API's listening address, and (through veth pairs) every container.
 *
 * The manifests' private addresses exist only in here. A process that must reach them (the Pulumi engine, NixMox's
 * SSH commands, a test's probe) runs inside with `worldCommand` (`ip netns exec <world> …`). The world has no default
 * route and no link to this machine's network: a wrong address reaches nothing.
 *
 * VLANs: a NIC with `tag=N` on bridge B is plugged into the bridge `BvN`, as Proxmox does on a bridge that is not
 * VLAN-aware (pve-common src/PVE/Network.pm `activate_bridge_vlan`: a `vmbr0v99` bridge per tag). So NICs of
 * different tags share no link, and no kernel VLAN support is needed (the CI's kernel may lack it).
 *
 * The API server itself runs in the twin's own process and listens on a Unix socket; a small forwarder inside the
 * world relays `address:port` to it, so the API is reached inside the world only, and the twin's process keeps its
 * state in memory for tests to read.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { ip, netnsExists, run } from "./run";

export interface BridgeSpec {
  /** `vmbr0` */
  name: string;
}

export interface ForwardSpec {
  /** An address the world has (`127.0.0.1`, or a router address). */
  address: string;
  port: number;
  /** The Unix socket the connections are relayed to. */
  socketPath: string;
}

/** Checks a per-run prefix: network namespace names are global on this machine. */
export function checkPrefix(prefix: string): string {
  if (!/^[a-z][a-z0-9]{1,11}$/.test(prefix)) throw new Error(`twin: the prefix "${prefix}" must be 2-12 lowercase letters and digits, starting with a letter`);
  return prefix;
}

/** `ip netns exec <netns> argv…`: runs a program inside a network namespace. */
export function worldCommand(netns: string, argv: string[]): string[] {
  return ["ip", "netns", "exec", netns, ...argv];
}

export class World {
  private readonly forwarders: ChildProcess[] = [];
  /** What was made, or is being made (containers start concurrently: the second waits for the first's `ip`). */
  private readonly addresses = new Map<string, Promise<void>>();
  private readonly vlanBridges = new Map<string, Promise<void>>();

  private constructor(
    readonly prefix: string,
    readonly netns: string,
    private readonly bridges: Map<string, BridgeSpec>,
  ) {}

  /** Creates the world namespace and its bridges. Fails when a namespace of this prefix already exists. */
  static async create(prefix: string, bridges: BridgeSpec[]): Promise<World> {
    checkPrefix(prefix);
    const netns = `${prefix}-world`;
    if (await netnsExists(netns)) throw new Error(`twin: the network namespace ${netns} already exists (another twin with the prefix ${prefix}, or one not cleaned up: \`ip netns del ${netns}\`)`);
    await run("ip", ["netns", "add", netns]);
    const world = new World(prefix, netns, new Map(bridges.map((bridge) => [bridge.name, bridge])));
    try {
      await ip(netns, ["link", "set", "lo", "up"]);
      for (const bridge of bridges) {
        await ip(netns, ["link", "add", bridge.name, "type", "bridge"]);
        await ip(netns, ["link", "set", bridge.name, "up"]);
      }
    } catch (error) {
      await world.destroy();
      throw error;
    }
    return world;
  }

  /** The network namespace name of container `vmid`. */
  containerNetns(vmid: number): string {
    return `${this.prefix}-ct${vmid}`;
  }

  bridge(name: string): BridgeSpec | undefined {
    return this.bridges.get(name);
  }

  /** The world's bridge device for NICs on `bridge` with VLAN `tag` (created on first use); throws for an unknown bridge. */
  async bridgeDevice(bridge: string, tag: number | undefined): Promise<string> {
    if (!this.bridges.has(bridge)) throw new Error(`bridge '${bridge}' does not exist`);
    if (tag === undefined) return bridge;
    const device = `${bridge}v${tag}`;
    if (!this.vlanBridges.has(device)) {
      const made = (async () => {
        await ip(this.netns, ["link", "add", device, "type", "bridge"]);
        await ip(this.netns, ["link", "set", device, "up"]);
      })();
      this.vlanBridges.set(device, made);
      made.catch(() => this.vlanBridges.delete(device));
    }
    await this.vlanBridges.get(device);
    return device;
  }

  /**
   * Gives the world `cidr` (the router side of a container's gateway) on `bridge`, on VLAN `tag` when set, so the
   * world reaches that subnet and the containers reach their gateway. Idempotent.
   */
  async ensureRouterAddress(bridge: string, tag: number | undefined, cidr: string): Promise<void> {
    const device = await this.bridgeDevice(bridge, tag);
    const key = `${device} ${cidr}`;
    if (!this.addresses.has(key)) {
      const made = ip(this.netns, ["addr", "add", cidr, "dev", device]).then(() => undefined);
      this.addresses.set(key, made);
      made.catch(() => this.addresses.delete(key));
    }
    await this.addresses.get(key);
  }

  /** Relays `address:port` inside the world to a Unix socket; resolves when it listens. */
  async forward(spec: ForwardSpec): Promise<void> {
    const script = [
      "const net = require('node:net');",
      "const [address, port, socketPath] = process.argv.slice(1);",
      "const server = net.createServer((client) => {",
      "  const upstream = net.connect(socketPath);",
      "  client.pipe(upstream).pipe(client);",
      "  client.on('error', () => upstream.destroy());",
      "  upstream.on('error', () => client.destroy());",
      "});",
      "server.listen(Number(port), address, () => process.stdout.write('listening\\n'));",
      "process.on('SIGTERM', () => process.exit(0));",
    ].join("\n");
    const child = spawn("setpriv", ["--pdeathsig", "SIGTERM", ...worldCommand(this.netns, [process.execPath, "-e", script, spec.address, String(spec.port), spec.socketPath])], { stdio: ["ignore", "pipe", "pipe"] });
    this.forwarders.push(child);
    await new Promise<void>((resolve, reject) => {
      let stderr = "";
      child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout?.on("data", (chunk: Buffer) => {
        if (chunk.toString().includes("listening")) resolve();
      });
      child.once("exit", (code) => reject(new Error(`twin: the API forwarder on ${spec.address}:${spec.port} exited with code ${code}: ${stderr.trim()}`)));
    });
  }

  /** Removes every container namespace of this prefix, the forwarders and the world. */
  async destroy(): Promise<void> {
    for (const child of this.forwarders) child.kill("SIGTERM");
    const { stdout } = await run("ip", ["netns", "list"]);
    const names = stdout.split("\n").map((line) => line.split(" ")[0]!).filter((name) => name === this.netns || name.startsWith(`${this.prefix}-ct`));
    for (const name of names) await run("ip", ["netns", "del", name]).catch(() => undefined);
  }
}
