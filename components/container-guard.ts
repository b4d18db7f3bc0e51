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
 *   the manifest's vmid passes, giving one to a container Proxmox numbered fails (the guard cannot see that id).
 * - create/update: record the inputs; diff: any change updates (never replaces); read: returns the state; delete:
 *   nothing to delete.
 *
 * The container depends on it, so the engine has run this check before it plans the container's replacement.
 */
import * as pulumi from "@pulumi/pulumi";
import { containsUnknown } from "./unknown";

export interface ContainerGuardArgs {
  service: pulumi.Input<string>;
  /** The manifest's vmid; null when Proxmox assigns it. */
  vmid: pulumi.Input<number | null>;
  node: pulumi.Input<string>;
  diskGiB: pulumi.Input<number>;
  /** The service is listed in `nixmox:allowReplace`: the edit may re-create the container. */
  allowReplace: pulumi.Input<boolean>;
}

export interface ContainerGuardInputs {
  service: string;
  vmid: number | null;
  node: string;
  diskGiB: number;
  allowReplace: boolean;
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

export const containerGuardProvider: pulumi.dynamic.ResourceProvider<ContainerGuardInputs, ContainerGuardInputs> = {
  async check(olds, news) {
    return { inputs: news, failures: replacementProblems(olds, news) };
  },

  async create(inputs) {
    return { id: inputs.service, outs: { service: inputs.service, vmid: inputs.vmid, node: inputs.node, diskGiB: inputs.diskGiB, allowReplace: inputs.allowReplace } };
  },

  async read(id, props) {
    return { id, props };
  },

  async diff(_id, olds, news) {
    const fields = ["vmid", "node", "diskGiB", "allowReplace"] as const;
    return { changes: fields.some((field) => olds[field] !== news[field]), replaces: [] };
  },

  async update(_id, _olds, news) {
    return { outs: { service: news.service, vmid: news.vmid, node: news.node, diskGiB: news.diskGiB, allowReplace: news.allowReplace } };
  },

  async delete() {
    // Nothing exists outside the state.
  },
};

/** The replacement guard of one container (type `pulumi-nodejs:dynamic/nixmox:ContainerGuard`). */
export class ContainerGuard extends pulumi.dynamic.Resource {
  constructor(name: string, args: ContainerGuardArgs, opts?: pulumi.CustomResourceOptions) {
    super(containerGuardProvider, name, { ...args }, opts, "nixmox", "ContainerGuard");
  }
}
