/**
 * The homelab twin: a Proxmox VE API twin whose containers are real network hosts, all inside one network namespace
 * with no route out (README of twin/ and ARCHITECTURE.md, "The homelab twin").
 *
 *   const twin = await startTwin({ prefix: "tw1a2b", stateDir, tokens: [{ authid, secret, acl }] });
 *   spawn(...twin.command(["pulumi", "up", "--yes"]));   // the engine runs inside the twin's world
 *   await twin.stop();                                     // stops every host, removes every namespace
 *
 * Must run as root (network namespaces, mounts). Everything it makes carries the prefix and is removed by `stop`,
 * also after a failed start.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { World, worldCommand } from "./hosts/world";
import { AccessControl, type ApiToken } from "./pve/access";
import { ApiServer } from "./pve/api";
import { Cluster, type InternetFile, type NodeSpec } from "./pve/cluster";
import { lxcRoutes } from "./pve/routes-lxc";
import { nodeRoutes } from "./pve/routes-node";
import type { ContentType } from "./pve/storage";
import { HostSystem, type Knob } from "./system";
import type { FakeAuthentik } from "./authentik/fake-api";

export { buildTemplate } from "./hosts/template";
export type { ApiToken, AclEntry } from "./pve/access";
export type { InternetFile, NodeSpec } from "./pve/cluster";
export type { Knob } from "./system";
export type { FakeAuthentik } from "./authentik/fake-api";

export interface TwinOptions {
  /** Names every network namespace the twin makes (`<prefix>-world`, `<prefix>-ct<vmid>`): unique per run. */
  prefix: string;
  /** Where storages, container disks and the TLS certificate live; removed by `stop`. */
  stateDir: string;
  /** @default [{ name: "pve" }] with Proxmox's default storages */
  nodes?: NodeSpec[];
  /** The bridges of every node. @default ["vmbr0"] */
  bridges?: string[];
  /** The API tokens the twin accepts, with their users' ACLs. */
  tokens: ApiToken[];
  /** URL → file: the only downloads the nodes can make (`download-url`, `query-url-metadata`). */
  internet?: Record<string, InternetFile>;
  /** Where the API listens inside the world. @default { address: "127.0.0.1", port: 8006 } */
  api?: { address?: string; port?: number };
  /**
   * Whether containers get the stand-in NixOS system (twin/system: nixos-rebuild, systemctl, the hosts' daemons, the
   * fake Authentik API), so NixMox's activation runs in them. @default true
   */
  system?: boolean;
}

export interface Twin {
  /** `https://<address>:<port>/`, reachable inside the world only. */
  endpoint: string;
  /** The API's self-signed certificate (PEM), and its file: `SSL_CERT_FILE` for Go clients, `ca` for Node. */
  certificate: string;
  certificateFile: string;
  /** The API's Unix socket on this machine (what the world's forwarder relays to): for tests and tools outside it. */
  socketPath: string;
  world: World;
  cluster: Cluster;
  api: ApiServer;
  /** `argv` run inside the world (`ip netns exec <world> …`). */
  command(argv: string[]): string[];
  /** The fake Authentik API of container `vmid` (twin/authentik), once that container has started. */
  authentik(vmid: number): FakeAuthentik | undefined;
  /** Makes the next `nixos-rebuild` in container `vmid` fail (twin/system/bin/nixos-rebuild, "Knobs"). */
  failNext(vmid: number, knob: Knob, node?: string): void;
  /** Puts a file on a node's storage as Proxmox would list it (a template uploaded beforehand). */
  addFile(node: string, storage: string, content: ContentType, fileName: string, source: string): string;
  /** Stops every host, the API and the forwarder, removes every namespace and the state folder. */
  stop(): Promise<void>;
}

export async function startTwin(options: TwinOptions): Promise<Twin> {
  const address = options.api?.address ?? "127.0.0.1";
  const port = options.api?.port ?? 8006;
  mkdirSync(options.stateDir, { recursive: true });
  const world = await World.create(options.prefix, (options.bridges ?? ["vmbr0"]).map((name) => ({ name })));
  let cluster: Cluster | null = null;
  let api: ApiServer | null = null;
  const system = options.system === false ? null : new HostSystem(join(options.stateDir, "run"));
  const stop = async () => {
    await cluster?.stopAll().catch(() => undefined);
    await api?.close().catch(() => undefined);
    await system?.close();
    await world.destroy();
    rmSync(options.stateDir, { recursive: true, force: true });
  };
  try {
    cluster = new Cluster(world, options.nodes ?? [{ name: "pve" }], options.stateDir, options.internet ?? {}, system);
    const tls = selfSignedCertificate(options.stateDir, address);
    api = new ApiServer(cluster, new AccessControl(options.tokens), [...nodeRoutes(), ...lxcRoutes()], tls);
    const socketPath = join(options.stateDir, "api.sock");
    await api.listen(socketPath);
    await world.forward({ address, port, socketPath });
    const twinCluster = cluster;
    return {
      endpoint: `https://${address}:${port}/`,
      certificate: tls.cert,
      certificateFile: tls.certFile,
      socketPath,
      world,
      cluster,
      api,
      command: (argv) => worldCommand(world.netns, argv),
      authentik: (vmid) => system?.authentik(vmid),
      failNext: (vmid, knob, node = "pve") => {
        if (!system) throw new Error("twin: started with system: false, so no host runs nixos-rebuild");
        system.failNext(twinCluster.node(node).container(vmid).host.rootfs, knob);
      },
      addFile: (node, storage, content, fileName, source) => {
        const target = twinCluster.node(node).storage(storage);
        const path = content === "vztmpl" ? target.templatePath(fileName) : join(target.dir, content, fileName);
        mkdirSync(join(path, ".."), { recursive: true });
        copyFileSync(source, path);
        return target.addFile(content, fileName, path).volid;
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** A self-signed certificate for the API's address (Proxmox's own is signed by the cluster CA: pve-ssl.pem). */
function selfSignedCertificate(dir: string, address: string): { key: string; cert: string; certFile: string } {
  const keyFile = join(dir, "pve-ssl.key");
  const certFile = join(dir, "pve-ssl.pem");
  const san = /^[\d.]+$|:/.test(address) ? `IP:${address}` : `DNS:${address}`;
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", "/CN=Proxmox VE twin", "-addext", `subjectAltName=${san},DNS:localhost`, "-keyout", keyFile, "-out", certFile], { stdio: "ignore" });
  return { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8"), certFile };
}
