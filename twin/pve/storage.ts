/**
 * A node's storages and their contents, as pve-storage keeps them: volume ids `STORAGE:VOLNAME`
 * (`local:vztmpl/<file>` for templates, `local-lvm:vm-<vmid>-disk-<n>` for container disks), content types, sizes.
 * Files live under the twin's state folder: a template is a real file (its checksum is real), a container disk is
 * the directory holding the container's root filesystem.
 */
import { existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { dieError, parameterError } from "./errors";

export type ContentType = "vztmpl" | "iso" | "backup" | "rootdir" | "images" | "import";

export interface StorageSpec {
  /** `local`, `local-lvm` */
  id: string;
  /** `dir` keeps files (templates, ISOs, backups); `lvmthin` keeps guest disks. */
  type: "dir" | "lvmthin";
  content: ContentType[];
}

export interface Volume {
  volid: string;
  content: ContentType;
  format: string;
  size: number;
  vmid?: number;
  ctime: number;
  /** The file (template) or directory (container disk) on this machine. */
  path: string;
}

/** Proxmox's default storages of a fresh install (`local` for files, `local-lvm` for disks). */
export const defaultStorages: StorageSpec[] = [
  { id: "local", type: "dir", content: ["vztmpl", "iso", "backup", "import"] },
  { id: "local-lvm", type: "lvmthin", content: ["rootdir", "images"] },
];

export class Storage {
  readonly volumes = new Map<string, Volume>();

  constructor(
    readonly spec: StorageSpec,
    /** The storage's folder on this machine. */
    readonly dir: string,
  ) {
    mkdirSync(dir, { recursive: true });
  }

  get id(): string {
    return this.spec.id;
  }

  supports(content: ContentType): boolean {
    return this.spec.content.includes(content);
  }

  /** Where a `vztmpl` file named `fileName` lives (a dir storage's `template/cache`, PVE::Storage `get_vztmpl_dir`). */
  templatePath(fileName: string): string {
    return join(this.dir, "template", "cache", fileName);
  }

  /** Records the file at `path` as volume `content/fileName`. */
  addFile(content: ContentType, fileName: string, path: string): Volume {
    const volid = `${this.id}:${content}/${fileName}`;
    const volume: Volume = { volid, content, format: formatOf(fileName), size: statSync(path).size, ctime: Math.floor(Date.now() / 1000), path };
    this.volumes.set(volid, volume);
    return volume;
  }

  /** Allocates a container disk (PVE::Storage `vdisk_alloc`): `vm-<vmid>-disk-<n>` of `sizeBytes`. */
  allocateDisk(vmid: number, sizeBytes: number): Volume {
    if (!this.supports("rootdir")) throw parameterError({ storage: `storage '${this.id}' does not support container directories` });
    let index = 0;
    while (this.volumes.has(`${this.id}:vm-${vmid}-disk-${index}`)) index++;
    const volid = `${this.id}:vm-${vmid}-disk-${index}`;
    const path = join(this.dir, `vm-${vmid}-disk-${index}`);
    rmSync(path, { recursive: true, force: true });
    mkdirSync(path, { recursive: true });
    const volume: Volume = { volid, content: "rootdir", format: "raw", size: sizeBytes, vmid, ctime: Math.floor(Date.now() / 1000), path };
    this.volumes.set(volid, volume);
    return volume;
  }

  /** Frees a volume (`vdisk_free`): removes its file or directory. */
  free(volid: string): void {
    const volume = this.volumes.get(volid);
    if (!volume) throw dieError(`volume '${volid}' does not exist`);
    rmSync(volume.path, { recursive: true, force: true });
    this.volumes.delete(volid);
  }

  /** The volumes the storage really holds (a file removed behind its back is gone from the list). */
  list(content?: string, vmid?: number): Volume[] {
    return [...this.volumes.values()]
      .filter((volume) => existsSync(volume.path))
      .filter((volume) => content === undefined || volume.content === content)
      .filter((volume) => vmid === undefined || volume.vmid === vmid)
      .sort((a, b) => a.volid.localeCompare(b.volid));
  }
}

/** `STORAGE:VOLNAME` → its parts (PVE::Storage `parse_volume_id`), or null. */
export function parseVolumeId(volid: string): { storage: string; volname: string } | null {
  const match = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/i.exec(volid);
  return match ? { storage: match[1]!, volname: match[2]! } : null;
}

/** The content type a volume name stands for (PVE::Storage::Plugin `parse_volname`). */
export function volnameContent(volname: string): ContentType | null {
  const match = /^(vztmpl|iso|backup|import)\/[^/]+$/.exec(volname);
  if (match) return match[1] as ContentType;
  if (/^(vm|subvol|base)-\d+-disk-\d+/.test(volname)) return "rootdir";
  return null;
}

function formatOf(fileName: string): string {
  const match = /\.(tar\.(?:gz|xz|zst|bz2)|iso|img)$/.exec(fileName);
  return match ? match[1]!.replace(/^tar\..*/, "tgz") : "raw";
}
