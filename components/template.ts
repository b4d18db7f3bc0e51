/**
 * `NodeTemplate` (dynamic resource `pulumi-nodejs:dynamic/nixmox:NodeTemplate`): the NixOS LXC template on one
 * node's datastore, every container's root filesystem. Downloaded once, kept for good, adopted when it is already
 * there.
 *
 * Why not bpg's `download.FileLegacy` (pulumi-engine-2 review A1): a file that already exists (left by `destroy`,
 * which retains it, or by another stack on the same node) can only be refused or, with `overwriteUnmanaged`, deleted
 * and downloaded again, which needs `Datastore.Allocate` and fails for good once the moving "latest" URL no longer
 * matches the pinned checksum. A template is shared and immutable by name, so this resource adopts the file.
 *
 * - create: lists the datastore's templates (`GET /nodes/{node}/storage/{storage}/content?content=vztmpl`,
 *   pve-storage PVE/API2/Storage/Content.pm `index`). The file is there: adopted as it is (`adopted: true`; its
 *   checksum cannot be read back from Proxmox, so the file name, which names the release, is what identifies it).
 *   Otherwise: `POST /nodes/{node}/storage/{storage}/download-url` (pve-manager PVE/API2/Storage/Status.pm
 *   `download_url`) with the URL, the file name and the SHA-256 Proxmox verifies, then waits for the task and fails
 *   with the last lines of its log unless it succeeded.
 * - diff: another node, datastore or file name is another file: replaced (the old file stays, see delete). A new URL
 *   or checksum for the same file name changes nothing on the node (recorded by an update): the template under the
 *   running containers never moves.
 * - read (refresh): the file is still listed, or the resource is gone from the state (the next `up` downloads it again).
 * - delete: nothing. Containers may still be built from the file, and other stacks may use it.
 *
 * The API token is a secret input. Needs `Datastore.AllocateTemplate` and `Datastore.Audit` on the datastore and
 * `Sys.Audit` + `Sys.Modify` on `/` for the download (README, "Deploying for real").
 */
import * as pulumi from "@pulumi/pulumi";
import { proxmoxGet, proxmoxRequest, taskSucceeded, waitForTask, type ProxmoxApiOptions } from "./proxmox-api";

export interface NodeTemplateArgs {
  proxmox: pulumi.Input<ProxmoxApiOptions>;
  node: pulumi.Input<string>;
  datastore: pulumi.Input<string>;
  url: pulumi.Input<string>;
  fileName: pulumi.Input<string>;
  sha256: pulumi.Input<string>;
  /** Give up on a download after this long. @default 1800 */
  timeoutSeconds?: pulumi.Input<number>;
}

export interface NodeTemplateInputs {
  proxmox: ProxmoxApiOptions;
  node: string;
  datastore: string;
  url: string;
  fileName: string;
  sha256: string;
  timeoutSeconds: number;
}

export interface NodeTemplateOutputs {
  /** Kept for `read` (refresh), which gets only the stored outputs; secret. */
  proxmox: ProxmoxApiOptions;
  node: string;
  datastore: string;
  url: string;
  fileName: string;
  sha256: string;
  /** `<datastore>:vztmpl/<fileName>`, what a container's `operatingSystem.templateFileId` takes. */
  volumeId: string;
  /** True when the file was already on the node and NixMox did not download it. */
  adopted: boolean;
}

function resolveInputs(raw: NodeTemplateInputs): NodeTemplateInputs {
  return {
    proxmox: raw.proxmox,
    node: raw.node,
    datastore: raw.datastore,
    url: raw.url,
    fileName: raw.fileName,
    sha256: raw.sha256,
    timeoutSeconds: raw.timeoutSeconds ?? 1800,
  };
}

function storagePath(inputs: Pick<NodeTemplateInputs, "node" | "datastore">): string {
  return `nodes/${encodeURIComponent(inputs.node)}/storage/${encodeURIComponent(inputs.datastore)}`;
}

/** Whether the datastore lists the volume (`<datastore>:vztmpl/<file>`). */
async function listed(inputs: Pick<NodeTemplateInputs, "proxmox" | "node" | "datastore">, volumeId: string): Promise<boolean> {
  const content = (await proxmoxGet(inputs.proxmox, `${storagePath(inputs)}/content?content=vztmpl`)) as Array<{ volid?: string }>;
  return Array.isArray(content) && content.some((entry) => entry.volid === volumeId);
}

function outputsOf(inputs: NodeTemplateInputs, adopted: boolean): NodeTemplateOutputs {
  return {
    proxmox: inputs.proxmox,
    node: inputs.node,
    datastore: inputs.datastore,
    url: inputs.url,
    fileName: inputs.fileName,
    sha256: inputs.sha256,
    volumeId: `${inputs.datastore}:vztmpl/${inputs.fileName}`,
    adopted,
  };
}

export const nodeTemplateProvider = {
  async create(raw: NodeTemplateInputs): Promise<{ id: string; outs: NodeTemplateOutputs }> {
    const inputs = resolveInputs(raw);
    const volumeId = `${inputs.datastore}:vztmpl/${inputs.fileName}`;
    const where = `the template ${volumeId} on node ${inputs.node}`;
    try {
      if (await listed(inputs, volumeId)) return { id: `${inputs.node}/${volumeId}`, outs: outputsOf(inputs, true) };
      const upid = (await proxmoxRequest({ ...inputs.proxmox, timeoutMs: 60_000 }, "POST", `${storagePath(inputs)}/download-url`, {
        url: inputs.url,
        content: "vztmpl",
        filename: inputs.fileName,
        checksum: inputs.sha256,
        "checksum-algorithm": "sha256",
      })) as string;
      const task = await waitForTask(inputs.proxmox, upid, inputs.timeoutSeconds);
      if (!taskSucceeded(task.exitstatus)) {
        throw new Error(`the download ended with "${task.exitstatus}"; its log ends:\n${task.log.join("\n")}`);
      }
    } catch (error) {
      throw new Error(`${where}: ${(error as Error).message}`);
    }
    return { id: `${inputs.node}/${volumeId}`, outs: outputsOf(inputs, false) };
  },

  async diff(_id: string, olds: NodeTemplateOutputs, raw: NodeTemplateInputs): Promise<pulumi.dynamic.DiffResult> {
    const news = resolveInputs(raw);
    const replaces = (["node", "datastore", "fileName"] as const).filter((key) => olds[key] !== news[key]);
    const recorded = (["url", "sha256"] as const).filter((key) => olds[key] !== news[key]);
    return { changes: replaces.length + recorded.length > 0, replaces: [...replaces], deleteBeforeReplace: false };
  },

  async update(_id: string, olds: NodeTemplateOutputs, raw: NodeTemplateInputs): Promise<{ outs: NodeTemplateOutputs }> {
    return { outs: { ...outputsOf(resolveInputs(raw), olds.adopted) } };
  },

  async read(id: string, props: NodeTemplateOutputs): Promise<pulumi.dynamic.ReadResult<NodeTemplateOutputs>> {
    return (await listed(props, props.volumeId)) ? { id, props } : {};
  },

  async delete(): Promise<void> {
    return;
  },
};

export class NodeTemplate extends pulumi.dynamic.Resource {
  declare public readonly volumeId: pulumi.Output<string>;
  declare public readonly adopted: pulumi.Output<boolean>;

  constructor(name: string, args: NodeTemplateArgs, opts?: pulumi.CustomResourceOptions) {
    // `read` gets the stored outputs only (cmd/dynamic-provider/index.js), so they keep the API options, secret.
    super(nodeTemplateProvider, name, { volumeId: undefined, adopted: undefined, ...args, proxmox: pulumi.secret(args.proxmox) }, { ...opts, additionalSecretOutputs: ["proxmox"] }, "nixmox", "NodeTemplate");
  }
}
