/**
 * `ContainerGuard`: stops a deploy, at preview, before an edit re-creates a service's container, unless the
 * service is listed in `nixmox:allowReplace`. Proxmox cannot move a container to another vmid or node in place,
 * and cannot shrink a root disk, so the provider replaces the container for these edits: the old one and every
 * file on its disk is deleted, and a new, empty container takes the vmid and address. The manifest alone cannot
 * see such an edit (it has no memory of the last deploy); the engine can, because `check` receives the inputs
 * this resource was last deployed with.
 *
 * - check: compares the new inputs with the deployed ones; a changed vmid or node, or a smaller disk, is a check
 *   failure naming the service, the field, both values, what happens to the data and how to allow it. The first
 *   deploy (no old inputs) and unknown values (a preview) pass. A vmid is null when Proxmox assigns it: removing
 *   the manifest's vmid passes; giving one to a container Proxmox numbered passes when Proxmox says that guest is
 *   this service's container (its description names the service: the allocated id), and fails otherwise.
 * - create (the service is new to this stack), and update to another vmid: ask Proxmox whether the vmid is free on
 *   the cluster (`GET /cluster/nextid?vmid=N`, pve-manager PVE/API2/Cluster.pm `nextid`: "VM N already exists"). A
 *   vmid in use belongs to a guest this stack does not manage (another stack's, a container a destroy retained, one
 *   made by hand): creating the container would fail, and bpg (v0.112.0) even takes the guest over, because its create
 *   retries a 5xx and counts "already exists" on the retry as done (proxmox/nodes/containers/containers.go,
 *   `retry.WithAlreadyDoneCheck`); that stack's destroy would then delete the other guest. So the guard fails, naming
 *   the service, the vmid, the node and the ways out. A vmid Proxmox assigns (null) needs no check. Then it records
 *   the inputs (not the API token).
 * - diff: any change updates (never replaces); read: returns the state; delete: nothing to delete.
 *
 * The container depends on it, so the engine has run this check before it plans the container's replacement, and
 * has created the guard (asking Proxmox) before it creates the container.
 */
import * as pulumi from "@pulumi/pulumi";
import { proxmoxGet, vmidInUse, type ProxmoxApiOptions } from "./proxmox-api";
import { containsUnknown } from "./unknown";

export interface ContainerGuardArgs {
  service: pulumi.Input<string>;
  /** The manifest's vmid; null when Proxmox assigns it. */
  vmid: pulumi.Input<number | null>;
  node: pulumi.Input<string>;
  diskGiB: pulumi.Input<number>;
  /** The service is listed in `nixmox:allowReplace`: the edit may re-create the container. */
  allowReplace: pulumi.Input<boolean>;
  /** The Proxmox API (token secret) the vmid is checked with before the container is created. @default no check */
  proxmox?: pulumi.Input<ProxmoxApiOptions>;
}

export interface ContainerGuardInputs {
  service: string;
  vmid: number | null;
  node: string;
  diskGiB: number;
  allowReplace: boolean;
  proxmox?: ProxmoxApiOptions | null;
}

/** What the guard keeps in the state: its inputs without the API token. */
export type ContainerGuardOutputs = Omit<ContainerGuardInputs, "proxmox">;

/** A NixMox container's Proxmox description (components/container.ts); it names the service the container is for. */
export function containerDescription(service: string): string {
  return `NixMox service ${JSON.stringify(service)} (managed by Pulumi; edit the manifest, not this container)`;
}

/**
 * Whether guest `vmid` on `node` is the container Proxmox numbered for `service` at its first deploy: a container
 * whose description (pve-container PVE/API2/LXC/Config.pm `vm_config`; Proxmox ends each line with a newline) is the
 * one NixMox gives that service. False when there is no such guest or Proxmox cannot be asked.
 */
export async function isServiceContainer(proxmox: ProxmoxApiOptions, node: string, vmid: number, service: string): Promise<boolean> {
  try {
    const config = (await proxmoxGet(proxmox, `nodes/${encodeURIComponent(node)}/lxc/${encodeURIComponent(String(vmid))}/config`)) as { description?: unknown };
    return typeof config?.description === "string" && config.description.trimEnd() === containerDescription(service);
  } catch {
    return false;
  }
}

/** The message of a vmid in use (exported for tests). */
export function vmidInUseMessage(service: string, vmid: number, node: string): string {
  return `service ${JSON.stringify(service)}: vmid ${vmid} is already used on the Proxmox cluster of node ${JSON.stringify(node)} by a guest this stack does not manage ` +
    `(another stack's container, one a destroy retained, or one made by hand), so NixMox does not create the service's container: ` +
    `its create would take that guest over, and this stack's destroy would then delete it. Give the service a free vmid in the manifest ` +
    `(\`pvesh get /cluster/nextid\` prints one), or, if guest ${vmid} is a leftover, remove it on the node (\`pct destroy ${vmid}\`: a container a destroy retained keeps its data until then)`;
}

/** Fails when `vmid` is in use anywhere on the cluster (components/proxmox-api.ts `vmidInUse`). */
export async function checkVmidFree(inputs: Pick<ContainerGuardInputs, "service" | "vmid" | "node"> & { proxmox: ProxmoxApiOptions }): Promise<void> {
  if (inputs.vmid === null) return;
  let used: boolean;
  try {
    used = await vmidInUse(inputs.proxmox, inputs.vmid);
  } catch (error) {
    throw new Error(`service ${JSON.stringify(inputs.service)}: cannot check that vmid ${inputs.vmid} is free before creating its container: ${(error as Error).message}`);
  }
  if (used) throw new Error(vmidInUseMessage(inputs.service, inputs.vmid, inputs.node));
}

function outputsOf(inputs: ContainerGuardInputs): ContainerGuardOutputs {
  return { service: inputs.service, vmid: inputs.vmid, node: inputs.node, diskGiB: inputs.diskGiB, allowReplace: inputs.allowReplace };
}

/** The problems an edit from `olds` to `news` has, as check failures (empty when it is safe or allowed). */
export function replacementProblems(olds: Partial<ContainerGuardInputs>, news: ContainerGuardInputs): pulumi.dynamic.CheckFailure[] {
  if (news.allowReplace === true || olds.vmid === undefined) return [];
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const service = `service ${JSON.stringify(news.service)}`;
  const consequence = "re-creates its container: the old container and every file on its disk are deleted, and a new, empty container takes its place";
  const allow = `if that is what you want (move or back up the data first), run \`pulumi config set --path 'nixmox:allowReplace[0]' ${news.service}\` for this deploy`;
  const changed = (field: keyof ContainerGuardInputs) => !containsUnknown(news[field]) && !containsUnknown(olds[field]) && olds[field] !== news[field];
  // A vmid is compared when both are the manifest's. Removing it keeps the container (the provider keeps the id in its
  // state); giving one to a container Proxmox numbered cannot be checked here, so it needs allowReplace like a move.
  if (changed("vmid") && olds.vmid !== null && news.vmid !== null) failures.push({ property: "vmid", reason: `${service}: vmid ${olds.vmid} → ${news.vmid} ${consequence}; ${allow}` });
  if (changed("vmid") && olds.vmid === null && typeof news.vmid === "number") {
    failures.push({
      property: "vmid",
      reason: `${service}: vmid ${news.vmid} is new, and Proxmox assigned this container's id at its first deploy (\`pulumi stack output services\` shows it): ` +
        `unless ${news.vmid} is that id, this ${consequence}; remove vmid again to keep the container, or ${allow}`,
    });
  }
  if (changed("node")) failures.push({ property: "node", reason: `${service}: node ${JSON.stringify(olds.node)} → ${JSON.stringify(news.node)} ${consequence}; ${allow}` });
  if (changed("diskGiB") && Number(news.diskGiB) < Number(olds.diskGiB)) {
    failures.push({ property: "diskGiB", reason: `${service}: resources.disk_gb ${olds.diskGiB} → ${news.diskGiB}: Proxmox cannot shrink a disk, so this ${consequence}; keep ${olds.diskGiB} or more, or ${allow}` });
  }
  return failures;
}

export const containerGuardProvider: pulumi.dynamic.ResourceProvider<ContainerGuardInputs, ContainerGuardOutputs> = {
  async check(olds, news) {
    const failures = replacementProblems(olds, news);
    // A vmid given to a container Proxmox numbered: when Proxmox says that vmid is this service's container, the
    // manifest now names the id the container already has, and nothing is re-created (bpg compares the same vmid).
    if (failures.some((failure) => failure.property === "vmid") && olds.vmid === null && typeof news.vmid === "number" &&
        news.proxmox && !containsUnknown(news.proxmox) && await isServiceContainer(news.proxmox, news.node, news.vmid, news.service)) {
      return { inputs: news, failures: failures.filter((failure) => failure.property !== "vmid") };
    }
    return { inputs: news, failures };
  },

  async create(inputs) {
    if (inputs.proxmox) await checkVmidFree({ ...inputs, proxmox: inputs.proxmox });
    return { id: inputs.service, outs: outputsOf(inputs) };
  },

  async read(id, props) {
    return { id, props };
  },

  async diff(_id, olds, news) {
    const fields = ["vmid", "node", "diskGiB", "allowReplace"] as const;
    return { changes: fields.some((field) => olds[field] !== news[field]), replaces: [] };
  },

  async update(_id, olds, news) {
    // Another vmid (allowed by allowReplace) is a new container: it must be free. The same vmid is this stack's own.
    if (news.proxmox && news.vmid !== olds.vmid && !(olds.vmid === null && news.vmid !== null && await isServiceContainer(news.proxmox, news.node, news.vmid, news.service))) {
      await checkVmidFree({ ...news, proxmox: news.proxmox });
    }
    return { outs: outputsOf(news) };
  },

  async delete() {
    // Nothing exists outside the state.
  },
};

/** The replacement guard of one container (type `pulumi-nodejs:dynamic/nixmox:ContainerGuard`). */
export class ContainerGuard extends pulumi.dynamic.Resource {
  constructor(name: string, args: ContainerGuardArgs, opts?: pulumi.CustomResourceOptions) {
    super(containerGuardProvider, name, { ...args, ...(args.proxmox === undefined ? {} : { proxmox: pulumi.secret(args.proxmox) }) }, opts, "nixmox", "ContainerGuard");
  }
}
