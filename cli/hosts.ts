/**
 * Reaching the homelab's hosts from the CLI (`status`, `logs`, `ssh`, `exec`): the manifest, the deploy key and the
 * host keys, all from the stack the commands act on, so a host key is never trusted on first use.
 *
 * The stack is `--stack`, else the Pulumi CLI's selected stack. From it come its `nixmox:manifest` (a manifest given
 * on the command line must be that file), its deploy key `nixmox:sshPrivateKey` (decrypted by the CLI, kept in
 * memory only) and the host keys NixMox pinned, its `knownHosts` output. `--identity FILE` and `--known-hosts FILE`
 * replace the last two. A command given a manifest and a key file and no `--stack` acts on no stack: it reads the
 * host keys from `--known-hosts`, else the project's `.nixmox/known_hosts`, and needs no Pulumi CLI.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Plan, ServicePlan } from "../manifest/plan-types";
import type { KnownHostEntry } from "../components/ssh/host-key";
import { displayPath } from "./paths";
import { manifestModule } from "./run";
import { manifestForStack } from "./stack-manifest";

export interface HostAccessFlags {
  stack?: string;
  backend?: string;
  projectDir: string;
  /** The deploy key's file. @default $NIXMOX_SSH_IDENTITY, else the stack's nixmox:sshPrivateKey */
  identity?: string;
  /** A known_hosts file. @default the stack's knownHosts output */
  knownHosts?: string;
  /** `--allow-path`: directories a `.nix` manifest may also read (with a stack, its nixmox:manifestAllowPaths too). */
  allowPath?: string[];
}

export interface HostAccess {
  plan: Plan;
  /** The stack acted on; null without one. */
  stack: string | null;
  /** The deploy key (a secret: never printed). */
  privateKey: string;
  /** The pinned host keys of a host and port (`ssh-ed25519 AAAA…`); none means the host is not reached. */
  hostKeysFor(host: string, port: number): string[];
  /** Where the host keys came from, for messages. */
  knownHostsSource: string;
}

/** A problem the user fixes with a flag or a file: one line, exit 2. */
export class HostAccessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostAccessError";
  }
}

function readFileOrFail(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new HostAccessError(`cannot read ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
}

function knownHostEntries(text: string, where: string): KnownHostEntry[] {
  const { parseKnownHosts } = require("../components/ssh/host-key") as typeof import("../components/ssh/host-key");
  try {
    return parseKnownHosts(text);
  } catch (error) {
    throw new HostAccessError(`${where}: ${(error as Error).message}`);
  }
}

/** The manifest, deploy key and pinned host keys of the stack (or of the files given instead). */
export async function openHostAccess(manifestArgument: string | undefined, flags: HostAccessFlags, onError: (text: string) => void): Promise<HostAccess> {
  const identity = flags.identity ?? (process.env.NIXMOX_SSH_IDENTITY || undefined);
  // Given a manifest and a key and no --stack, no stack: nothing needs the Pulumi CLI.
  const stackless = flags.stack === undefined && manifestArgument !== undefined && identity !== undefined;
  const engine = require("./engine") as typeof import("./engine");
  let stack: import("@pulumi/pulumi/automation").Stack | null = null;
  let manifest: string;
  const { loadOptions } = require("./run") as typeof import("./run");
  const allowPaths = loadOptions(flags).allowPaths;
  if (stackless) {
    manifest = manifestArgument;
  } else {
    const options = {
      projectDir: flags.projectDir,
      onError,
      ...(flags.stack !== undefined ? { stack: flags.stack } : {}),
      ...(flags.backend !== undefined ? { backend: flags.backend } : {}),
    };
    const { workspace } = await engine.openWorkspace(options);
    stack = await engine.selectExistingStack(workspace, options);
    manifest = manifestForStack(manifestArgument, stack.name, await engine.stackManifestPath(stack, flags.projectDir));
    allowPaths.push(...(await engine.stackAllowPaths(stack, flags.projectDir)));
  }
  // The manifest first: an invalid one is reported as in validate, before any key is read.
  const plan = await manifestModule().loadPlan(manifest, { allowPaths });

  let privateKey = identity === undefined ? undefined : readFileOrFail(identity, "identity file");
  if (privateKey === undefined && stack !== null) {
    privateKey = await engine.stackConfigValue(stack, "nixmox:sshPrivateKey");
    if (privateKey === undefined) throw new HostAccessError(`stack "${stack.name}" sets no nixmox:sshPrivateKey: pass --identity FILE with the deploy key`);
  }
  if (privateKey === undefined) throw new HostAccessError("no SSH key: pass --identity FILE (or set NIXMOX_SSH_IDENTITY) with the deploy key (nixmox:sshPrivateKey)");

  let knownHostsText: string;
  let knownHostsSource: string;
  if (flags.knownHosts !== undefined) {
    if (!existsSync(flags.knownHosts)) throw new HostAccessError(`known_hosts file ${displayPath(flags.knownHosts)} does not exist`);
    knownHostsText = readFileOrFail(flags.knownHosts, "known_hosts file");
    knownHostsSource = displayPath(flags.knownHosts);
  } else if (stack !== null) {
    const text = await engine.stackOutputValue(stack, "knownHosts", onError);
    if (typeof text !== "string" || text.trim() === "") {
      throw new HostAccessError(`stack "${stack.name}" has no knownHosts output yet (NixMox writes it when \`nixmox up\` has reached the hosts): deploy first, or pass --known-hosts FILE`);
    }
    knownHostsText = text;
    knownHostsSource = `the knownHosts output of stack "${stack.name}"`;
  } else {
    // The project's .nixmox/known_hosts, which .gitignore covers, whatever manifest is checked.
    const file = join(flags.projectDir, ".nixmox", "known_hosts");
    const shown = displayPath(file);
    if (!existsSync(file)) {
      throw new HostAccessError(`known_hosts file ${shown} does not exist: write the keys NixMox pinned with \`mkdir -p ${displayPath(dirname(file))} && pulumi stack output knownHosts > ${shown}\`, pass --known-hosts FILE, or pass --stack NAME to read them from the stack`);
    }
    knownHostsText = readFileOrFail(file, "known_hosts file");
    knownHostsSource = shown;
  }
  const pinned = knownHostEntries(knownHostsText, knownHostsSource);
  const { formatHostKey, lookupKnownHost } = require("../components/ssh/host-key") as typeof import("../components/ssh/host-key");
  return {
    plan,
    stack: stack?.name ?? null,
    privateKey,
    hostKeysFor: (host, port) => lookupKnownHost(pinned, host, port).map(formatHostKey),
    knownHostsSource,
  };
}

/** The enabled service of that name, or an error listing the names there are. */
export function serviceNamed(plan: Plan, name: string): ServicePlan {
  const service = plan.services.find((candidate) => candidate.name === name);
  if (service !== undefined) return service;
  const why = plan.disabled.includes(name) ? "is disabled in the manifest" : "is not a service of the manifest";
  throw new HostAccessError(`"${name}" ${why}; enabled services: ${plan.services.map((candidate) => candidate.name).join(", ")}`);
}

/** The one-line message of a failure the user fixes (no stack, no key, a mismatched manifest), or null for others. */
export function hostAccessFailure(error: unknown): string | null {
  const { EngineError } = require("./engine") as typeof import("./engine");
  const { ManifestChoiceError } = require("./stack-manifest") as typeof import("./stack-manifest");
  return error instanceof HostAccessError || error instanceof EngineError || error instanceof ManifestChoiceError ? (error as Error).message : null;
}
