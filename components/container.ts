/**
 * ServicePlan → the `ContainerLegacy` arguments and resource options of one service. Pure: no resources here.
 *
 * Data safety (field-notes §5.4):
 * - stateful services (postgresql by default, `stateful = true` in the manifest) get `protect` and
 *   `retainOnDelete`, so neither `pulumi destroy` nor removing the service from the manifest deletes the disk;
 * - fields that only matter when the container is created, or that the bpg provider diffs spuriously, are in
 *   `ignoreChanges` so that editing them never replaces (destroys) a container:
 *     `operatingSystem`          the template (a new template URL must not re-create every host);
 *     `disk.datastoreId`         spurious replacement, bpg/terraform-provider-proxmox#2067 and #2507;
 *     `initialization.userAccount` first-boot root keys; after the first rebuild NixOS owns
 *                                `authorized_keys` (nixos/core.nix), so a key edit is a rebuild, not a new container.
 *   A service listed in stack config `nixmox:allowReplace` drops this guard (documented opt-in, Pulumi.yaml).
 * - `deleteBeforeReplace`: a replaced container is deleted before its successor (same vmid and IP).
 * - activation happens inside the running container; NixMox itself never reboots it. The bpg provider does
 *   reboot it on some in-place edits (DNS, hostname, memory/swap, NIC/IP/VLAN: bpg container.go `rebootRequired`);
 *   `rebootRevision` makes SSH readiness and the health gate run again after such an edit.
 */
import { createHash } from "node:crypto";
import type * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import * as pulumi from "@pulumi/pulumi";
import type { Plan, ServicePlan } from "../manifest/plan-types";
import { stableJson } from "../render/stable-json";
import { containerDescription } from "./container-guard";
import type { StackSettings } from "./stack-config";

/** Properties a container keeps from creation unless the service is in `nixmox:allowReplace`. */
export const creationOnlyFields = ["operatingSystem", "disk.datastoreId", "initialization.userAccount"] as const;

export interface ContainerPlanInputs {
  service: ServicePlan;
  plan: Plan;
  settings: StackSettings;
  /** `<datastore>:vztmpl/<file>` of the NixOS template on the service's node. */
  templateFileId: pulumi.Input<string>;
  /** The deploy key's public half (`ssh-ed25519 AAAA…`), authorized for root on first boot. */
  deployPublicKey: pulumi.Input<string>;
}

export interface ContainerPlan {
  args: proxmoxve.ContainerLegacyArgs;
  /**
   * Hash of the fields the bpg provider applies by rebooting the container (`rebootRequired` in
   * proxmoxtf/resource/container/container.go: DNS, hostname, memory/swap, NIC/IP/VLAN). SshHostKey and HealthCheck
   * take it as an input, so such an edit makes them wait for SSH with the pinned key and gate the service again.
   */
  rebootRevision: string;
  /** Resource options that protect data; merged with `parent` by the component. */
  options: Pick<pulumi.CustomResourceOptions, "protect" | "retainOnDelete" | "ignoreChanges" | "deleteBeforeReplace">;
}

/** The Proxmox node of a service: its manifest `node`, else the stack's default node. */
export function serviceNode(service: ServicePlan, settings: StackSettings): string {
  return service.node ?? settings.proxmoxNode;
}

/** Proxmox lower-cases and sorts tags; doing it here avoids a perpetual diff. */
export function containerTags(service: ServicePlan): string[] {
  return [...new Set(["nixmox", service.kind, ...service.tags].map((tag) => tag.toLowerCase()))].sort();
}

export function planContainer(inputs: ContainerPlanInputs): ContainerPlan {
  const { service, plan, settings } = inputs;
  const manifestKeys = plan.network.sshKeys.root ?? [];
  const args: proxmoxve.ContainerLegacyArgs = {
    nodeName: serviceNode(service, settings),
    // No manifest vmid: Proxmox assigns the next free one at creation and the state keeps it.
    ...(service.vmid === null ? {} : { vmId: service.vmid }),
    description: containerDescription(service.name),
    tags: containerTags(service),
    unprivileged: true,
    // systemd sandboxing (ProtectSystem=, mount namespaces) needs nesting in an unprivileged LXC (lxc/lxc#4127).
    // Other feature flags need root@pam and are not set (bpg #344/#609).
    features: { nesting: true },
    operatingSystem: { templateFileId: inputs.templateFileId, type: "nixos" },
    cpu: { cores: service.resources.cores },
    memory: { dedicated: service.resources.memoryMiB, swap: service.resources.swapMiB },
    disk: { datastoreId: settings.datastore, size: service.resources.diskGiB },
    networkInterfaces: [{
      name: "eth0",
      bridge: settings.bridge,
      ...(plan.network.vlanTag === null ? {} : { vlanId: plan.network.vlanTag }),
    }],
    initialization: {
      hostname: service.hostName,
      ipConfigs: [{ ipv4: { address: `${service.ip}/${service.prefixLength}`, gateway: plan.network.gateway } }],
      // The DNS service cannot resolve through itself before its first rebuild has started Unbound, and that
      // rebuild downloads nixpkgs: it gets the upstream forwarders instead (review R9; NixOS later writes its
      // resolv.conf with its own Unbound first, nixos/lib/resolv.nix).
      dns: {
        domain: plan.network.domain,
        // A builder deploys before everything, the DNS service included (components/build): it asks the upstream
        // forwarders after the manifest's resolvers.
        servers: service.ip === plan.network.dnsServer
          ? [...plan.network.dns.forwarders]
          : service.kind === "builder"
            ? [...new Set([plan.network.dnsServer, ...plan.network.fallbackDnsServers, ...plan.network.dns.forwarders])].slice(0, 3)
            : [plan.network.dnsServer, ...plan.network.fallbackDnsServers],
      },
      userAccount: { keys: sortedKeys(manifestKeys, inputs.deployPublicKey) },
    },
    startOnBoot: service.onboot,
    started: service.start,
    startup: { order: service.startupOrder },
  };
  const guarded = !settings.allowReplace.includes(service.name);
  const rebootFields = {
    memory: args.memory,
    networkInterfaces: args.networkInterfaces,
    hostname: service.hostName,
    ipConfigs: [{ ipv4: { address: `${service.ip}/${service.prefixLength}`, gateway: plan.network.gateway } }],
    dns: { domain: plan.network.domain, servers: [plan.network.dnsServer] },
  };
  return {
    args,
    rebootRevision: createHash("sha256").update(stableJson(rebootFields)).digest("hex").slice(0, 16),
    options: {
      // A replacement must delete the old container first: its vmid and static IP cannot exist twice (Proxmox
      // refuses "CT <vmid> already exists"; with a new vmid, SshHostKey would pin whichever host answers the
      // shared IP). bpg marks node, template, datastore, vmid changes and disk shrinks as replacing but sets no
      // delete-before-replace (pulumi-proxmoxve provider/resources.go), so Pulumi would create first.
      deleteBeforeReplace: true,
      ...(service.stateful ? { protect: true, retainOnDelete: true } : {}),
      ...(guarded ? { ignoreChanges: [...creationOnlyFields] } : {}),
    },
  };
}

/** Manifest root keys plus the deploy key, de-duplicated and sorted (stable input, no spurious diff). */
function sortedKeys(manifestKeys: string[], deployPublicKey: pulumi.Input<string>): pulumi.Input<pulumi.Input<string>[]> {
  if (typeof deployPublicKey === "string") return [...new Set([...manifestKeys, deployPublicKey])].sort();
  return pulumi.output(deployPublicKey).apply((key) => [...new Set([...manifestKeys, key])].sort());
}
