/**
 * `ClosureCopy` (dynamic resource `pulumi-nodejs:dynamic/nixmox:ClosureCopy`): one host's built system copied from
 * where it was built to the host, with `nix copy --to ssh-ng://root@<host>` (components/build/nix-commands.ts).
 *
 * - create: runs the copy where the system was built (the builder, over the pinned connection with the deploy key's
 *   agent forwarded; or this machine, with the same agent on a private socket). The host is reached as root with
 *   the deploy key, its recorded host key the only one accepted (`StrictHostKeyChecking=yes`), and its daemon
 *   accepts only paths signed by a trusted key: an unsigned closure fails here, before anything switches. Nix sends
 *   only the paths the host lacks; the output records how many and their NAR bytes.
 * - diff: copies again (an update) when the store path changed or is not known yet (a preview). A re-created
 *   container replaces this resource (`replaceWith`), so its new store receives the closure.
 * - update: copies the new path; read: the state; delete: nothing (the host's store collects what no generation
 *   uses).
 *
 * A copy that breaks midway fails the deploy of that host; Nix registers a path only once it has arrived whole, and
 * the activation, which waits for this resource, never runs: the host stays on its old system.
 */
import * as pulumi from "@pulumi/pulumi";
import { formatKnownHostsLine, parseHostKey } from "../ssh/host-key";
import type { SshTarget } from "../ssh/remote-command";
import { parseCopyResult, renderCopyCommand } from "./nix-commands";
import { describeRunFailure, runAt } from "./run";

export interface ClosureCopyArgs {
  service: pulumi.Input<string>;
  buildOn: pulumi.Input<"builder" | "controller">;
  /** The builder service's name (messages). @default "" */
  builderName?: pulumi.Input<string>;
  /** How to reach the builder (secret). Required with buildOn "builder". */
  builder?: pulumi.Input<pulumi.Unwrap<SshTarget>>;
  /** The host: address, SSH port, recorded host key and the deploy key (secret). */
  host: pulumi.Input<pulumi.Unwrap<SshTarget>>;
  storePath: pulumi.Input<string>;
  /** The keys the host accepts signatures from (the stack's first). */
  trustedPublicKeys: pulumi.Input<pulumi.Input<string>[]>;
  /** @default 3600 */
  timeoutSeconds?: pulumi.Input<number>;
}

export interface ClosureCopyInputs {
  service: string;
  buildOn: "builder" | "controller";
  builderName: string;
  builder: SshTarget | null;
  host: SshTarget;
  storePath: string;
  trustedPublicKeys: string[];
  timeoutSeconds: number;
}

export interface ClosureCopyOutputs {
  service: string;
  storePath: string;
  /** Store paths the last copy sent (the host had the others). */
  copiedPaths: number;
  /** Their NAR size in bytes. */
  copiedBytes: number;
}

const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function resolveInputs(raw: ClosureCopyInputs): ClosureCopyInputs {
  return {
    service: raw.service,
    buildOn: raw.buildOn,
    builderName: raw.builderName ?? "",
    builder: raw.builder ?? null,
    host: raw.host,
    storePath: raw.storePath,
    trustedPublicKeys: raw.trustedPublicKeys,
    timeoutSeconds: raw.timeoutSeconds ?? 3600,
  };
}

async function copy(raw: ClosureCopyInputs): Promise<ClosureCopyOutputs> {
  const inputs = resolveInputs(raw);
  if (inputs.buildOn === "builder" && inputs.builder === null) throw new Error(`service "${inputs.service}": copies from the builder, but no builder connection was given`);
  const location = inputs.buildOn === "builder" ? { kind: "builder" as const, service: inputs.builderName, connection: inputs.builder as SshTarget } : { kind: "controller" as const };
  const command = renderCopyCommand({
    service: inputs.service,
    storePath: inputs.storePath,
    host: inputs.host.host,
    port: inputs.host.port,
    trustedPublicKeys: inputs.trustedPublicKeys,
  });
  // The host's recorded key is the copy's only known host: no second trust path.
  const knownHosts = `${formatKnownHostsLine(inputs.host.host, inputs.host.port, parseHostKey(inputs.host.hostKey, `the recorded host key of "${inputs.service}"`))}\n`;
  const outcome = await runAt(location, command, { stdin: knownHosts, timeoutSeconds: inputs.timeoutSeconds, agentKey: inputs.host.privateKey });
  const parsed = outcome.code === 0 ? parseCopyResult(outcome.stdout) : null;
  if (parsed === null) {
    const failure = outcome.code === 0 ? { ...outcome, stderr: `${outcome.stderr}\nthe copy printed no NIXMOX_COPY line` } : outcome;
    throw new Error(describeRunFailure(inputs.service, `copy of ${inputs.storePath} to ${inputs.host.host}`, location, failure, inputs.timeoutSeconds));
  }
  return { service: inputs.service, storePath: inputs.storePath, copiedPaths: parsed.paths, copiedBytes: parsed.bytes };
}

export const closureCopyProvider = {
  async create(raw: ClosureCopyInputs): Promise<{ id: string; outs: ClosureCopyOutputs }> {
    const outs = await copy(raw);
    return { id: `${outs.service}-copy`, outs };
  },

  async diff(_id: string, olds: ClosureCopyOutputs, raw: ClosureCopyInputs): Promise<pulumi.dynamic.DiffResult> {
    const news = resolveInputs(raw);
    const changed = news.storePath === unknown || news.storePath !== olds.storePath;
    return { changes: changed, replaces: [], deleteBeforeReplace: false };
  },

  async update(_id: string, _olds: ClosureCopyOutputs, raw: ClosureCopyInputs): Promise<{ outs: ClosureCopyOutputs }> {
    return { outs: await copy(raw) };
  },

  async read(id: string, props: ClosureCopyOutputs): Promise<pulumi.dynamic.ReadResult<ClosureCopyOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class ClosureCopy extends pulumi.dynamic.Resource {
  declare public readonly storePath: pulumi.Output<string>;
  declare public readonly copiedPaths: pulumi.Output<number>;
  declare public readonly copiedBytes: pulumi.Output<number>;

  constructor(name: string, args: ClosureCopyArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      closureCopyProvider,
      name,
      { copiedPaths: undefined, copiedBytes: undefined, ...args, builder: args.builder === undefined ? null : pulumi.secret(args.builder), host: pulumi.secret(args.host) },
      opts,
      "nixmox",
      "ClosureCopy",
    );
  }
}
