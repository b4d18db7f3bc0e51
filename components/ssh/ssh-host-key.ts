/**
 * `SshHostKey` (dynamic resource `pulumi-nodejs:dynamic/nixmox:SshHostKey`): SSH readiness and host-key
 * pinning for one container.
 *
 * - create: connects again and again (every `intervalSeconds`, up to `timeoutSeconds`) until SSH *runs a
 *   command* as root with the deploy key (an IP or an open port is not enough: sshd is socket-activated on
 *   NixOS LXC and the network may still be coming up, bpg #2261/#2349). The key the server presents on that
 *   first contact is recorded as `hostKey`; every later `remote.Command` passes it as `connection.hostKey`, so
 *   @pulumi/command verifies it (host-key checking is never switched off).
 *   First contact trusts the network once, like `ssh-keyscan`, and only right after this stack created the
 *   container (`first-contact.ts`: Proxmox's task list shows this token's `vzcreate` of that vmid within the
 *   window); otherwise create fails and says how to pin the key out of band. A key given in `pinnedHostKey`
 *   (`nixmox:hostKeys.<service>`) is never trusted on first use: the server must present it.
 *   Re-created containers reuse IPs (TAPPaaS/TAPPaaS#112), which is why the recorded key belongs to one container id.
 * - diff: a new `containerId` (the container was re-created) replaces the resource, so a new key is recorded for
 *   the new container. A new host or port is the same container at another address: an update, checked with the
 *   pinned key (never a second first contact). Timing and a new `pinnedHostKey` are updates; `firstContact` (the
 *   API token) is read on create only. A reboot that applies an edit (memory, IP, …) is not a change here: the
 *   health gate waits for SSH again after one (components/health/health-check.ts), so this resource's `hostKey`
 *   stays a known value in a preview of such an edit (the engine returns a dynamic resource's new inputs as its
 *   outputs when previewing an update, which would leave the key unknown to every command; review B3).
 * - update: re-checks readiness with the *pinned* key, `pinnedHostKey` when set, else the recorded one (a host
 *   presenting another key fails here, loudly).
 * - read: returns the stored state; the pin never changes on refresh.
 * - delete: nothing (the key goes away with the container).
 *
 * Node modules are required inside `connectSsh` (components/ssh), so the serialized provider stays small.
 * The private key is an input only, never an output.
 */
import * as pulumi from "@pulumi/pulumi";
import { waitForSsh } from "./connection";
import { checkFirstContact, type FirstContactProxmox } from "./first-contact";

export interface SshHostKeyArgs {
  /** Service name, for messages. */
  service: pulumi.Input<string>;
  host: pulumi.Input<string>;
  /** @default 22 */
  port?: pulumi.Input<number>;
  /** @default "root" */
  user?: pulumi.Input<string>;
  /** The deploy key (secret). */
  privateKey: pulumi.Input<string>;
  /** The container's id: when it changes, the resource is replaced and a new host key recorded. */
  containerId: pulumi.Input<string>;
  /** Give up waiting for SSH after this long. @default 300 */
  timeoutSeconds?: pulumi.Input<number>;
  /** Pause between attempts. @default 2 */
  intervalSeconds?: pulumi.Input<number>;
  /** Where to check that this stack just created the container, before its key is trusted on first use (secret: it holds the API token). */
  firstContact?: pulumi.Input<FirstContactProxmox>;
  /** The host key read out of band (`nixmox:hostKeys.<service>`): required of the server instead of first-use trust. @default "" */
  pinnedHostKey?: pulumi.Input<string>;
}

export interface SshHostKeyInputs {
  service: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  containerId: string;
  timeoutSeconds: number;
  intervalSeconds: number;
  firstContact: FirstContactProxmox | null;
  pinnedHostKey: string;
}

export interface SshHostKeyOutputs {
  service: string;
  host: string;
  port: number;
  user: string;
  containerId: string;
  timeoutSeconds: number;
  intervalSeconds: number;
  pinnedHostKey: string;
  /** `ssh-ed25519 AAAA…` as recorded on first contact. */
  hostKey: string;
  hostKeyFingerprint: string;
}

const replaceKeys = ["containerId"] as const;
const updateKeys = ["host", "port", "user", "timeoutSeconds", "intervalSeconds", "service", "pinnedHostKey"] as const;

function waitFor(inputs: SshHostKeyInputs, pinnedHostKey: string | null): Promise<{ hostKey: string; hostKeyFingerprint: string }> {
  return waitForSsh({ service: inputs.service, host: inputs.host, port: inputs.port, user: inputs.user, privateKey: inputs.privateKey, pinnedHostKey, timeoutSeconds: inputs.timeoutSeconds, intervalSeconds: inputs.intervalSeconds });
}

function outputsOf(inputs: SshHostKeyInputs, key: { hostKey: string; hostKeyFingerprint: string }): SshHostKeyOutputs {
  return {
    service: inputs.service,
    host: inputs.host,
    port: inputs.port,
    user: inputs.user,
    containerId: inputs.containerId,
    timeoutSeconds: inputs.timeoutSeconds,
    intervalSeconds: inputs.intervalSeconds,
    pinnedHostKey: inputs.pinnedHostKey,
    hostKey: key.hostKey,
    hostKeyFingerprint: key.hostKeyFingerprint,
  };
}

/** Copies only the declared fields (never the raw inputs object, which carries `__provider`). */
function resolveInputs(raw: SshHostKeyInputs): SshHostKeyInputs {
  return {
    service: raw.service,
    host: raw.host,
    port: raw.port ?? 22,
    user: raw.user ?? "root",
    privateKey: raw.privateKey,
    containerId: raw.containerId,
    timeoutSeconds: raw.timeoutSeconds ?? 300,
    intervalSeconds: raw.intervalSeconds ?? 2,
    firstContact: raw.firstContact ?? null,
    pinnedHostKey: raw.pinnedHostKey ?? "",
  };
}

export const sshHostKeyProvider = {
  async create(raw: SshHostKeyInputs): Promise<{ id: string; outs: SshHostKeyOutputs }> {
    const inputs = resolveInputs(raw);
    let key: { hostKey: string; hostKeyFingerprint: string };
    if (inputs.pinnedHostKey !== "") {
      key = await waitFor(inputs, inputs.pinnedHostKey);
    } else {
      if (inputs.firstContact === null) {
        throw new Error(`service "${inputs.service}": no host key is pinned and no Proxmox API is given to check that this stack just created the container; pin its key with \`pulumi config set --path 'nixmox:hostKeys.${inputs.service}' 'ssh-ed25519 AAAA…'\``);
      }
      await checkFirstContact(inputs.service, inputs.firstContact);
      key = await waitFor(inputs, null);
    }
    return { id: `${inputs.host}:${inputs.port}/${inputs.containerId}`, outs: outputsOf(inputs, key) };
  },

  async diff(_id: string, olds: SshHostKeyOutputs, raw: SshHostKeyInputs): Promise<pulumi.dynamic.DiffResult> {
    const news = resolveInputs(raw);
    const replaces = replaceKeys.filter((key) => olds[key] !== news[key]);
    // `?? ""`: state written before pinnedHostKey existed has none.
    const changed = updateKeys.filter((key) => (olds[key] ?? "") !== news[key]);
    return { changes: replaces.length + changed.length > 0, replaces: [...replaces], deleteBeforeReplace: false };
  },

  async update(_id: string, olds: SshHostKeyOutputs, raw: SshHostKeyInputs): Promise<{ outs: SshHostKeyOutputs }> {
    const inputs = resolveInputs(raw);
    const key = await waitFor(inputs, inputs.pinnedHostKey !== "" ? inputs.pinnedHostKey : olds.hostKey);
    return { outs: outputsOf(inputs, key) };
  },

  async read(id: string, props: SshHostKeyOutputs): Promise<pulumi.dynamic.ReadResult<SshHostKeyOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class SshHostKey extends pulumi.dynamic.Resource {
  declare public readonly hostKey: pulumi.Output<string>;
  declare public readonly hostKeyFingerprint: pulumi.Output<string>;

  constructor(name: string, args: SshHostKeyArgs, opts?: pulumi.CustomResourceOptions) {
    super(sshHostKeyProvider, name, { hostKey: undefined, hostKeyFingerprint: undefined, ...args, privateKey: pulumi.secret(args.privateKey), ...(args.firstContact === undefined ? {} : { firstContact: pulumi.secret(args.firstContact) }) }, opts, "nixmox", "SshHostKey");
  }
}
