/**
 * The twin's Proxmox VE cluster: nodes, their storages, containers and tasks, and what Proxmox does to them.
 * Each operation follows the pve-container / pve-storage code it names; the API layer (api-*.ts) checks parameters
 * and privileges first, as the API handlers do, then calls these.
 */
import { randomBytes, createHash } from "node:crypto";
import { chmodSync, createReadStream, existsSync, mkdirSync, renameSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { join } from "node:path";
import type { ContainerHost, HostSpec, NicSpec } from "../hosts/container-host";
import type { HostSystem } from "../system";
import { run } from "../hosts/run";
import type { World } from "../hosts/world";
import { dieError, parameterError, PveError } from "./errors";
import { featuresFormat, formatSize, netFormat, normalizeConfig, parseSize, rootfsFormat, type ConfigValue, type ContainerConfig } from "./lxc-config";
import { Mutex } from "./mutex";
import { parsePropertyString, printPropertyString } from "./property-string";
import { defaultStorages, parseVolumeId, Storage, type StorageSpec } from "./storage";
import { TaskList, type WorkerLog } from "./tasks";

export interface NodeSpec {
  name: string;
  /** @default defaultStorages (`local` for files, `local-lvm` for disks) */
  storages?: StorageSpec[];
}

/** A file of the twin's stand-in internet (what `download-url` and `query-url-metadata` reach). */
export interface InternetFile {
  /** The file on this machine served for the URL. */
  path: string;
  /** @default "application/octet-stream" */
  mimetype?: string;
}

export interface Container {
  vmid: number;
  node: string;
  /** The current configuration (what `GET …/config?current=1` shows). */
  conf: ContainerConfig;
  /** Edits that wait for the next start (`[pve:pending]` of the config file). */
  pending: ContainerConfig;
  pendingDelete: Set<string>;
  host: ContainerHost;
  mutex: Mutex;
}

/** pve-container src/PVE/LXC/Config.pm `$LXC_FASTPLUG_OPTIONS`: applied at once even while running. */
const fastplugOptions = new Set(["description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags", "lock"]);

export class PveNode {
  readonly storages = new Map<string, Storage>();
  readonly containers = new Map<number, Container>();
  readonly tasks: TaskList;
  /** Seconds the next creation of a vmid takes first (a test that interrupts the engine while a container is made). */
  readonly slowCreates = new Map<number, number>();

  constructor(
    readonly cluster: Cluster,
    readonly name: string,
    storages: StorageSpec[],
    stateDir: string,
  ) {
    this.tasks = new TaskList(name);
    for (const spec of storages) this.storages.set(spec.id, new Storage(spec, join(stateDir, "storage", spec.id)));
  }

  /** PVE::Storage `storage_check_enabled`. */
  storage(id: string): Storage {
    const storage = this.storages.get(id);
    if (!storage) throw dieError(`storage '${id}' does not exist`);
    return storage;
  }

  /** AbstractConfig.pm `load_config`. */
  container(vmid: number): Container {
    const container = this.containers.get(vmid);
    if (!container) throw dieError(`Configuration file 'nodes/${this.name}/lxc/${vmid}.conf' does not exist`);
    return container;
  }

  /**
   * The vzcreate worker (pve-container src/PVE/API2/LXC.pm `create_vm` `$code`, under the config lock): allocates
   * the root disk, extracts the template into it (LXC/Create.pm `restore_archive`: "can't find file" when it is
   * missing), runs the setup's `post_create_hook` (root's SSH keys in a `# --- BEGIN PVE ---` block), sets the
   * defaults and drops the `create` lock; on failure it removes what it made. With `start`, it forks a `vzstart`
   * task and ends (`PVE::API2::LXC::Status->vm_start`). The start is under way (the container reads "running", as
   * lxc-start's does) before the end of this task shows, so a client that polls the create task and then starts the
   * container finds it running.
   */
  createWorker(container: Container, ostemplate: string, rootfsParam: string, sshKeys: string | undefined, start: boolean, authid: string) {
    return async (log: WorkerLog): Promise<void> => {
      await container.mutex.run(() => this.createContainerFiles(container, ostemplate, rootfsParam, sshKeys, log));
      if (start) this.tasks.fork("vzstart", String(container.vmid), authid, (startLog) => container.mutex.run(() => this.start(container, startLog)), true);
    };
  }

  private async createContainerFiles(container: Container, ostemplate: string, rootfsParam: string, sshKeys: string | undefined, log: WorkerLog): Promise<void> {
    const { vmid } = container;
    let disk: { storage: Storage; volid: string } | null = null;
    const delay = this.slowCreates.get(vmid);
    if (delay !== undefined) {
      this.slowCreates.delete(vmid);
      await new Promise((resolve) => setTimeout(resolve, delay * 1000));
    }
    try {
      const archive = this.templateFile(ostemplate);
      const { storage: storageId, sizeGiB } = newDiskRequest(rootfsParam);
      const storage = this.storage(storageId);
      const volume = storage.allocateDisk(vmid, sizeGiB * 1024 ** 3);
      disk = { storage, volid: volume.volid };
      const rootfs = parsePropertyString(rootfsParam, rootfsFormat);
      container.conf.rootfs = printPropertyString({ ...rootfs, volume: volume.volid, size: formatSize(volume.size) }, rootfsFormat);
      container.host.rootfs = volume.path;
      log.print(`extracting archive '${archive}'`);
      await run("tar", ["--numeric-owner", "-xpf", archive, "-C", volume.path], { timeoutMs: 600_000 });
      log.print(`Total bytes written: ${volume.size}`);
      if (sshKeys) writePveBlock(join(volume.path, "root/.ssh/authorized_keys"), sshKeys, 0o700);
      container.conf.hostname ??= `CT${vmid}`;
      container.conf.memory ??= 512;
      container.conf.swap ??= 512;
      delete container.conf.lock;
    } catch (error) {
      if (disk) disk.storage.free(disk.volid);
      this.containers.delete(vmid);
      throw new Error(`unable to create CT ${vmid} - ${(error as Error).message}`);
    }
  }

  /** A `vztmpl` volume's file (PVE::Storage `abs_filesystem_path`): "can't find file" when absent. */
  templateFile(volid: string): string {
    const parsed = parseVolumeId(volid);
    const storage = parsed ? this.storages.get(parsed.storage) : undefined;
    const volume = storage?.volumes.get(volid);
    if (!volume || !existsSync(volume.path)) throw new Error(`can't find file '${volid}'`);
    return volume.path;
  }

  /**
   * LXC.pm `vm_start`: applies pending changes first, then starts the host (the twin's `lxc-start`).
   * A template cannot be started (Status.pm `vm_start`).
   */
  async start(container: Container, log: WorkerLog): Promise<void> {
    if (container.host.running) throw new Error(`CT ${container.vmid} already running`);
    if (container.conf.template) throw new Error("you can't start a CT if it's a template");
    if (container.conf.lock) throw new Error(`CT is locked (${container.conf.lock})`);
    if (Object.keys(container.pending).length || container.pendingDelete.size) this.applyPending(container);
    log.print(`starting CT ${container.vmid}`);
    await container.host.start(hostSpec(container));
  }

  /** LXC.pm `vm_stop` (shutdown with a timeout, or at once). */
  async stop(container: Container, timeoutSeconds: number): Promise<void> {
    await container.host.stop(timeoutSeconds * 1000);
  }

  /** Config.pm `vmconfig_apply_pending`: pending values and deletions become the configuration. */
  applyPending(container: Container): void {
    for (const key of container.pendingDelete) delete container.conf[key];
    Object.assign(container.conf, container.pending);
    const errors = normalizeConfig(container.conf, () => this.cluster.newMac());
    if (Object.keys(errors).length) throw parameterError(errors);
    container.pending = {};
    container.pendingDelete.clear();
  }

  /**
   * Config.pm `update_pct_config`: every change is written as pending, then applied at once when the container is
   * stopped (`vmconfig_apply_pending`) or, when it runs, hot-plugged where Proxmox can (`vmconfig_hotplug_pending`:
   * the fast-plug options, memory and swap, CPU limits, NICs); the rest stays pending until the next start.
   */
  async updateConfig(container: Container, values: ContainerConfig, deletes: string[]): Promise<void> {
    for (const key of deletes) {
      if (container.conf[key] === undefined && container.pending[key] === undefined) continue;
      if (key === "memory" || key === "rootfs" || key === "ostype") throw dieError(`unable to delete required option '${key}'`);
      if (key === "unprivileged") throw dieError(`unable to delete read-only option: '${key}'`);
      container.pendingDelete.add(key);
      delete container.pending[key];
    }
    for (const [key, value] of Object.entries(values)) {
      if (key === "unprivileged") throw dieError(`unable to modify read-only option: '${key}'`);
      if ((key === "rootfs" || /^mp\d+$/.test(key)) && container.conf.protection) throw dieError(`can't update CT ${container.vmid} drive '${key}' - protection mode enabled`);
      container.pending[key] = value;
      container.pendingDelete.delete(key);
    }
    if (!container.host.running) {
      this.applyPending(container);
      return;
    }
    const errors: Record<string, string> = {};
    for (const key of [...container.pendingDelete]) {
      if (fastplugOptions.has(key) || key === "swap" || key === "cpulimit" || key === "cpuunits" || /^net\d+$/.test(key)) {
        delete container.conf[key];
        container.pendingDelete.delete(key);
      }
    }
    for (const [key, value] of Object.entries(container.pending).sort(([a], [b]) => a.localeCompare(b))) {
      if (fastplugOptions.has(key) || key === "memory" || key === "swap" || key === "cpulimit" || key === "cpuunits") {
        container.conf[key] = value;
        delete container.pending[key];
      } else if (/^net\d+$/.test(key)) {
        const next: ContainerConfig = { ...container.conf, [key]: value };
        const problems = normalizeConfig(next, () => this.cluster.newMac());
        if (problems[key]) {
          errors[key] = `unable to hotplug ${key}: ${problems[key]}`;
          continue;
        }
        try {
          await container.host.updateNics(nicsOf(next));
          container.conf[key] = next[key]!;
          delete container.pending[key];
        } catch (error) {
          errors[key] = `unable to hotplug ${key}: ${(error as Error).message}`;
        }
      }
    }
    if (container.host.running && typeof container.conf.memory === "number") container.host.appliedMemoryMiB = container.conf.memory;
    if (Object.keys(errors).length) throw parameterError(errors);
  }

  /** LXC.pm `destroy_vm` worker: frees the disks and removes the configuration. */
  async destroy(container: Container, log: WorkerLog): Promise<void> {
    if (container.host.running) throw new Error(`unable to destroy CT ${container.vmid} - container is running`);
    await container.host.stop(1000);
    const rootfs = typeof container.conf.rootfs === "string" ? parsePropertyString(container.conf.rootfs, rootfsFormat).volume : undefined;
    for (const storage of this.storages.values()) {
      for (const volume of storage.list(undefined, container.vmid)) {
        storage.free(volume.volid);
        log.print(`Logical volume "${volume.volid.split(":")[1]}" successfully removed.`);
      }
    }
    if (rootfs && !rootfs.includes(`vm-${container.vmid}-`)) log.warn(`volume ${rootfs} is not owned by CT ${container.vmid}; left in place`);
    this.containers.delete(container.vmid);
  }

  /** LXC.pm `resize_vm`: grows the root disk (the twin records the size; the directory has no size). */
  resizeWorker(container: Container, disk: string, sizeText: string) {
    return async (log: WorkerLog): Promise<void> => {
      const mountpoint = parsePropertyString(String(container.conf[disk]), rootfsFormat);
      const parsed = parseVolumeId(mountpoint.volume ?? "");
      const volume = parsed ? this.storages.get(parsed.storage)?.volumes.get(mountpoint.volume!) : undefined;
      if (!volume) throw new Error(`Could not determine current size of volume '${mountpoint.volume}'`);
      const extend = sizeText.startsWith("+");
      const requested = parseSizeBytes(sizeText.replace(/^\+/, ""));
      if (requested === null) throw new Error("invalid size string");
      const size = extend ? volume.size + requested : requested;
      if (size < volume.size) throw new Error("unable to shrink disk size");
      if (size === volume.size) throw new Error("disk is already at specified size");
      volume.size = size;
      container.conf[disk] = printPropertyString({ ...mountpoint, size: formatSize(size) }, rootfsFormat);
      log.print(`Size of logical volume ${volume.volid} changed to ${formatSize(size)}.`);
    };
  }

  /**
   * pve-common src/PVE/Tools.pm `download_file_from_url`, the `download-url` worker (pve-storage
   * src/PVE/API2/Storage/Status.pm): an existing file with the right checksum is kept ("OK, got correct file
   * already"), with another checksum it is an error, and without a checksum an existing file is refused
   * ("refusing to override existing file"). The file comes from the twin's stand-in internet; the checksum is
   * computed on the bytes.
   */
  downloadWorker(storage: Storage, content: "vztmpl" | "iso" | "import", fileName: string, url: string, checksum: { algorithm: string; value: string } | null) {
    return async (log: WorkerLog): Promise<void> => {
      const dest = content === "vztmpl" ? storage.templatePath(fileName) : join(storage.dir, content, fileName);
      log.print(`downloading ${url} to ${dest}`);
      if (existsSync(dest)) {
        if (checksum) {
          const got = await fileHash(checksum.algorithm, dest);
          if (got.toLowerCase() === checksum.value.toLowerCase()) {
            log.print("calculating checksum of existing file...OK, got correct file already, no need to download");
            storage.addFile(content, fileName, dest);
            return;
          }
          throw new Error(`checksum mismatch: got '${got}' != expect '${checksum.value}', aborting`);
        }
        throw new Error(`refusing to override existing file '${dest}'`);
      }
      const source = this.cluster.internet[url];
      if (!source || !existsSync(source.path)) throw new Error(`download failed: wget -O '${dest}.tmp_dwnl.${process.pid}' '${url}' failed: exit code 8`);
      mkdirSync(join(dest, ".."), { recursive: true });
      const temporary = `${dest}.tmp_dwnl.${process.pid}`;
      copyFileSync(source.path, temporary);
      if (checksum) {
        const got = await fileHash(checksum.algorithm, temporary);
        if (got.toLowerCase() !== checksum.value.toLowerCase()) {
          rmSync(temporary, { force: true });
          throw new Error(`checksum mismatch: got '${got}' != expect '${checksum.value}'`);
        }
        log.print("calculating checksum...OK, checksum verified");
      }
      renameSync(temporary, dest);
      storage.addFile(content, fileName, dest);
      log.print(`download of '${url}' to '${dest}' finished`);
    };
  }
}

export class Cluster {
  readonly nodes = new Map<string, PveNode>();

  constructor(
    readonly world: World,
    specs: NodeSpec[],
    stateDir: string,
    /** URL → file: the only "internet" the twin's nodes reach. */
    readonly internet: Record<string, InternetFile>,
    /** The stand-in NixOS system every container gets (twin/system); null: bare hosts with sshd only. */
    readonly system: HostSystem | null = null,
  ) {
    for (const spec of specs) this.nodes.set(spec.name, new PveNode(this, spec.name, spec.storages ?? defaultStorages, join(stateDir, "nodes", spec.name)));
  }

  /** A node by name; an unknown one fails as the API's proxy to it does (pve-manager PVE/HTTPServer.pm). */
  node(name: string): PveNode {
    const node = this.nodes.get(name);
    if (!node) throw new PveError(500, `hostname lookup '${name}' failed - failed to get address info for: ${name}: Name or service not known`);
    return node;
  }

  /** The node holding guest `vmid` (the cluster's vmlist), if any. */
  owner(vmid: number): PveNode | undefined {
    return [...this.nodes.values()].find((node) => node.containers.has(vmid));
  }

  /** pve-manager PVE/API2/Cluster.pm `nextid`: the lowest free id from 100. */
  nextFreeVmid(): number {
    for (let vmid = 100; vmid < 1_000_000; vmid++) if (!this.owner(vmid)) return vmid;
    throw dieError("unable to get any free VMID in range [100, 1000000]");
  }

  /** pve-common src/PVE/Tools.pm `random_ether_addr` with Proxmox's prefix BC:24:11 (locally administered). */
  newMac(): string {
    const bytes = randomBytes(3);
    return ["BC", "24", "11", ...[...bytes].map((byte) => byte.toString(16).toUpperCase().padStart(2, "0"))].join(":");
  }

  /** Stops every host (for the twin's shutdown). */
  async stopAll(): Promise<void> {
    for (const node of this.nodes.values()) {
      await node.tasks.idle();
      for (const container of node.containers.values()) await container.host.stop(2000);
    }
  }
}

/** The host the configuration describes (for a start). */
export function hostSpec(container: Container): HostSpec {
  const conf = container.conf;
  return {
    vmid: container.vmid,
    hostname: String(conf.hostname ?? `CT${container.vmid}`).replace(/\..*$/, ""),
    nics: nicsOf(conf),
    memoryMiB: Number(conf.memory ?? 512),
    ...(conf.nameserver === undefined ? {} : { nameserver: String(conf.nameserver) }),
    ...(conf.searchdomain === undefined ? {} : { searchdomain: String(conf.searchdomain) }),
  };
}

function nicsOf(conf: ContainerConfig): NicSpec[] {
  return Object.keys(conf)
    .filter((key) => /^net\d+$/.test(key))
    .sort()
    .map((key) => {
      const nic = parsePropertyString(String(conf[key]), netFormat);
      return {
        index: Number(key.slice(3)),
        name: nic.name!,
        bridge: nic.bridge ?? "",
        hwaddr: nic.hwaddr!,
        ...(nic.ip === undefined ? {} : { ip: nic.ip }),
        ...(nic.gw === undefined ? {} : { gw: nic.gw }),
        ...(nic.tag === undefined ? {} : { tag: Number(nic.tag) }),
        ...(nic.mtu === undefined ? {} : { mtu: Number(nic.mtu) }),
      };
    });
}

/** `local-lvm:8` (a new disk of 8 GiB, LXC.pm `$NEW_DISK_RE`) → storage and size. */
export function newDiskRequest(rootfs: string): { storage: string; sizeGiB: number } {
  const volume = parsePropertyString(rootfs, rootfsFormat).volume ?? "";
  const match = /^([^:\s]+):(\d+(?:\.\d+)?)$/.exec(volume);
  if (!match) throw new Error(`rootfs '${volume}' is not a new volume (STORAGE:SIZE_IN_GiB): the twin creates containers on new disks only`);
  return { storage: match[1]!, sizeGiB: Number(match[2]) };
}

/** A features string's flags. */
export function featuresOf(value: ConfigValue | undefined): Record<string, string> {
  return value === undefined ? {} : parsePropertyString(String(value), featuresFormat);
}

/** `ct_modify_file` (LXC/Setup/Base.pm): the data inside a `# --- BEGIN PVE ---` … `# --- END PVE ---` block. */
function writePveBlock(file: string, data: string, mode: number): void {
  mkdirSync(join(file, ".."), { recursive: true, mode: 0o700 });
  chmodSync(join(file, ".."), 0o700);
  writeFileSync(file, `# --- BEGIN PVE ---\n${data.endsWith("\n") ? data : `${data}\n`}# --- END PVE ---\n`, { mode });
  chmodSync(file, mode);
}

function parseSizeBytes(text: string): number | null {
  // A size without a unit is bytes here (JSONSchema.pm `parse_size`), unlike a new disk's GiB.
  return /^\d+$/.test(text) ? Number(text) : parseSize(text);
}

function fileHash(algorithm: string, file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash(algorithm);
    createReadStream(file).on("error", reject).on("data", (chunk) => hash.update(chunk)).on("end", () => resolve(hash.digest("hex")));
  });
}
