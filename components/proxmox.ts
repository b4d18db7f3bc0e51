/**
 * The Proxmox side shared by all services: one `proxmoxve.Provider` from stack config (API token as a secret)
 * and the NixOS LXC template on every node that runs a service.
 */
import * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import * as pulumi from "@pulumi/pulumi";
import type { Plan } from "../manifest/plan-types";
import { serviceNode } from "./container";
import type { StackSecrets, StackSettings } from "./stack-config";

export function createProxmoxProvider(settings: StackSettings, secrets: StackSecrets): proxmoxve.Provider {
  return new proxmoxve.Provider("proxmox", {
    endpoint: settings.proxmoxEndpoint,
    apiToken: secrets.proxmoxApiToken,
    insecure: settings.proxmoxInsecure,
  });
}

/** The nodes that run at least one enabled service, sorted. */
export function planNodes(plan: Plan, settings: StackSettings): string[] {
  return [...new Set(plan.services.map((service) => serviceNode(service, settings)))].sort();
}

/**
 * `templateFileId` per node: a `download.FileLegacy` per node for a URL (`nixos-template-<node>`), or the
 * configured volume id as is. The download is `retainOnDelete`: other containers may still be created from it.
 * `overwriteUnmanaged` adopts a file of the same name left by an earlier `destroy` (retained) or by another stack
 * on the node, which bpg otherwise refuses ("created outside of Terraform", fwprovider/nodes/resource_download_file.go);
 * `overwrite: false` keeps it from re-downloading when the URL's content changes (a moving "latest" URL must not
 * replace the template under running containers).
 */
export function createTemplates(plan: Plan, settings: StackSettings, provider: proxmoxve.Provider): Record<string, pulumi.Input<string>> {
  const templates: Record<string, pulumi.Input<string>> = {};
  for (const node of planNodes(plan, settings)) {
    const source = settings.template;
    switch (source.kind) {
      case "volume":
        templates[node] = source.volumeId;
        break;
      case "url":
        templates[node] = new proxmoxve.download.FileLegacy(`nixos-template-${node}`, {
          contentType: "vztmpl",
          datastoreId: source.datastore,
          nodeName: node,
          url: source.url,
          fileName: source.fileName,
          checksum: source.sha256,
          checksumAlgorithm: "sha256",
          overwrite: false,
          overwriteUnmanaged: true,
        }, { provider, retainOnDelete: true }).id;
        break;
      default: {
        const never: never = source;
        throw new Error(`unknown template source ${JSON.stringify(never)}`);
      }
    }
  }
  return templates;
}
