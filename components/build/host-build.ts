/**
 * `HostBuild` (dynamic resource `pulumi-nodejs:dynamic/nixmox:HostBuild`): one host's NixOS system, built once on
 * the builder service (or on the controller) and signed with the stack's key. Its output `storePath` is the host's
 * system store path; the host's closure copy and activation depend on it.
 *
 * - create: reads the host's installed `/etc/nixmox/state-version` over the pinned connection (the config push keeps
 *   the release of the first install there, and the system must be built with it, nixos/core.nix), sends the rendered
 *   directory to where it builds, runs `renderBuildCommand` (components/build/nix-commands.ts) and records the store
 *   path from its `NIXMOX_BUILD` line. A failed build fails the deploy of that host, naming where it ran and the
 *   build's last output.
 * - diff: builds again (an update) exactly when the rendered directory's content hash, where it builds, the caches
 *   or the signing key changed, or one of them is not known yet (a preview): the content hash decides, as for the
 *   host's own rebuild.
 * - update: builds again; read: returns the state (a refresh builds nothing); delete: nothing (the builder's store
 *   collects what no host uses).
 *
 * The signing key is an input only (secret); the state keeps its public half. Local modules are imported at the top
 * (the SDK serializes what a provider captures, STYLE.md §15); Node's own are required inside.
 */
import * as pulumi from "@pulumi/pulumi";
import { renderConfigPayload } from "../config-push";
import { connectTarget } from "../ssh/connection";
import { shellQuote } from "../ssh/quote";
import type { SshTarget } from "../ssh/remote-command";
import { parseBuildResult, renderBuildCommand, renderBuildPayload, type NixCaches } from "./nix-commands";
import { describeRunFailure, runAt } from "./run";

export interface HostBuildArgs {
  service: pulumi.Input<string>;
  /** "builder" (the manifest's builder service, reached through `builder`) or "controller" (this machine). */
  buildOn: pulumi.Input<"builder" | "controller">;
  /** The builder service's name (messages). @default "" */
  builderName?: pulumi.Input<string>;
  /** How to reach the builder: the deploy key and its recorded host key (secret). Required with buildOn "builder". */
  builder?: pulumi.Input<pulumi.Unwrap<SshTarget>>;
  /** The builder's cores: builds at once there. @default 1 */
  slots?: pulumi.Input<number>;
  /** The host itself (its installed state-version is read before the build). */
  host: pulumi.Input<pulumi.Unwrap<SshTarget>>;
  /** The rendered flake directory and its content hash. */
  files: pulumi.Input<Record<string, string>>;
  contentHash: pulumi.Input<string>;
  caches: pulumi.Input<pulumi.Unwrap<NixCaches>>;
  signingPublicKey: pulumi.Input<string>;
  /** The stack's signing key (secret). */
  signingSecretKey: pulumi.Input<string>;
  /** Stop a build that takes longer. @default 3600 */
  timeoutSeconds?: pulumi.Input<number>;
  /** Where the host keeps the release of its first install (components/config-push.ts). @default "/etc/nixmox/state-version" */
  stateVersionFile?: pulumi.Input<string>;
}

export interface HostBuildInputs {
  service: string;
  buildOn: "builder" | "controller";
  builderName: string;
  builder: SshTarget | null;
  slots: number;
  host: SshTarget;
  files: Record<string, string>;
  contentHash: string;
  caches: NixCaches;
  signingPublicKey: string;
  signingSecretKey: string;
  timeoutSeconds: number;
  stateVersionFile: string;
}

export interface HostBuildOutputs {
  service: string;
  buildOn: "builder" | "controller";
  builderName: string;
  contentHash: string;
  caches: NixCaches;
  signingPublicKey: string;
  /** The host's system: `/nix/store/<hash>-nixos-system-<host>-<version>`. */
  storePath: string;
}

/** The engine's unknown sentinel (components/unknown.ts), repeated so the serialized provider captures no module. */
const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

function resolveInputs(raw: HostBuildInputs): HostBuildInputs {
  return {
    service: raw.service,
    buildOn: raw.buildOn,
    builderName: raw.builderName ?? "",
    builder: raw.builder ?? null,
    slots: raw.slots ?? 1,
    host: raw.host,
    files: raw.files,
    contentHash: raw.contentHash,
    caches: raw.caches,
    signingPublicKey: raw.signingPublicKey,
    signingSecretKey: raw.signingSecretKey,
    timeoutSeconds: raw.timeoutSeconds ?? 3600,
    stateVersionFile: raw.stateVersionFile ?? "/etc/nixmox/state-version",
  };
}

/** The host's installed state-version ("25.11"), or null when it has none yet. */
async function installedStateVersion(inputs: HostBuildInputs): Promise<string | null> {
  const session = await connectTarget(inputs.host).catch((error: Error) => {
    throw new Error(`service "${inputs.service}": cannot read the host's installed state-version before its build: ${error.message}`);
  });
  try {
    const result = await session.exec(`cat ${shellQuote(inputs.stateVersionFile)} 2>/dev/null || true`, { timeoutMs: 30_000 });
    const text = result.stdout.trim();
    if (text === "") return null;
    if (!/^[0-9]{2}\.[0-9]{2}$/.test(text)) throw new Error(`service "${inputs.service}": ${inputs.stateVersionFile} on the host is not a NixOS release such as 25.11 (got ${JSON.stringify(text.slice(0, 20))}); set state_version in the manifest`);
    return text;
  } finally {
    session.close();
  }
}

/** Where builds run on the controller: the user's cache directory. */
function controllerWorkDir(): string {
  const { homedir } = require("node:os") as typeof import("node:os");
  const { join } = require("node:path") as typeof import("node:path");
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "nixmox", "build");
}

async function build(raw: HostBuildInputs): Promise<HostBuildOutputs> {
  const inputs = resolveInputs(raw);
  if (inputs.buildOn === "builder" && inputs.builder === null) throw new Error(`service "${inputs.service}": builds on the builder, but no builder connection was given`);
  const location = inputs.buildOn === "builder" ? { kind: "builder" as const, service: inputs.builderName, connection: inputs.builder as SshTarget } : { kind: "controller" as const };
  const installed = await installedStateVersion(inputs);
  const files = installed === null ? inputs.files : { ...inputs.files, "state-version": `${installed}\n` };
  const command = renderBuildCommand({
    service: inputs.service,
    contentHash: inputs.contentHash,
    workDir: inputs.buildOn === "controller" ? controllerWorkDir() : undefined,
    slots: inputs.slots,
    caches: inputs.caches,
    signingPublicKey: inputs.signingPublicKey,
  });
  const outcome = await runAt(location, command, { stdin: renderBuildPayload(inputs.signingSecretKey, renderConfigPayload(inputs.service, files)), timeoutSeconds: inputs.timeoutSeconds });
  const parsed = outcome.code === 0 ? parseBuildResult(outcome.stdout) : null;
  if (parsed === null) {
    const failure = outcome.code === 0 ? { ...outcome, stderr: `${outcome.stderr}\nthe build printed no NIXMOX_BUILD line` } : outcome;
    throw new Error(describeRunFailure(inputs.service, "build", location, failure, inputs.timeoutSeconds));
  }
  return {
    service: inputs.service,
    buildOn: inputs.buildOn,
    builderName: inputs.builderName,
    contentHash: inputs.contentHash,
    caches: inputs.caches,
    signingPublicKey: inputs.signingPublicKey,
    storePath: parsed.path,
  };
}

export const hostBuildProvider = {
  async create(raw: HostBuildInputs): Promise<{ id: string; outs: HostBuildOutputs }> {
    const outs = await build(raw);
    return { id: `${outs.service}-build`, outs };
  },

  async diff(_id: string, olds: HostBuildOutputs, raw: HostBuildInputs): Promise<pulumi.dynamic.DiffResult> {
    const news = resolveInputs(raw);
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    const changed =
      [news.contentHash, news.buildOn, news.builderName, news.signingPublicKey].some((value) => value === unknown) ||
      JSON.stringify(news.caches).includes(unknown) ||
      news.contentHash !== olds.contentHash ||
      news.buildOn !== olds.buildOn ||
      news.builderName !== olds.builderName ||
      news.signingPublicKey !== olds.signingPublicKey ||
      !same(news.caches, olds.caches);
    return { changes: changed, replaces: [], deleteBeforeReplace: false };
  },

  async update(_id: string, _olds: HostBuildOutputs, raw: HostBuildInputs): Promise<{ outs: HostBuildOutputs }> {
    return { outs: await build(raw) };
  },

  async read(id: string, props: HostBuildOutputs): Promise<pulumi.dynamic.ReadResult<HostBuildOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class HostBuild extends pulumi.dynamic.Resource {
  /** The host's system store path. */
  declare public readonly storePath: pulumi.Output<string>;

  constructor(name: string, args: HostBuildArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      hostBuildProvider,
      name,
      { storePath: undefined, ...args, builder: args.builder === undefined ? null : pulumi.secret(args.builder), host: pulumi.secret(args.host), signingSecretKey: pulumi.secret(args.signingSecretKey) },
      opts,
      "nixmox",
      "HostBuild",
    );
  }
}
