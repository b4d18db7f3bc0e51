/**
 * The Proxmox side shared by all services: one `proxmoxve.Provider` from stack config (API token as a secret)
 * and the NixOS LXC template on every node that runs a service.
 */
import * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import * as pulumi from "@pulumi/pulumi";
import type { Plan } from "../manifest/plan-types";
import { serviceNode } from "./container";
import type { StackSecrets, StackSettings } from "./stack-config";
import { NodeTemplate } from "./template";

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
 * `templateFileId` per node: a `NodeTemplate` per node for a URL (`nixos-template-<node>`, components/template.ts:
 * downloaded once, adopted when the file is already there, never deleted), or the configured volume id as is.
 */
export function createTemplates(plan: Plan, settings: StackSettings, secrets: Pick<StackSecrets, "proxmoxApiToken">): Record<string, pulumi.Input<string>> {
  const templates: Record<string, pulumi.Input<string>> = {};
  for (const node of planNodes(plan, settings)) {
    const source = settings.template;
    switch (source.kind) {
      case "volume":
        templates[node] = source.volumeId;
        break;
      case "url":
        templates[node] = new NodeTemplate(`nixos-template-${node}`, {
          proxmox: pulumi.output(secrets.proxmoxApiToken).apply((apiToken) => ({ endpoint: settings.proxmoxEndpoint, apiToken, insecure: settings.proxmoxInsecure })),
          node,
          datastore: source.datastore,
          url: source.url,
          fileName: source.fileName,
          sha256: source.sha256,
        }).volumeId;
        break;
      default: {
        const never: never = source;
        throw new Error(`unknown template source ${JSON.stringify(never)}`);
      }
    }
  }
  return templates;
}
