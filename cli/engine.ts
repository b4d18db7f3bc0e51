/**
 * `nixmox preview|up|refresh|destroy`, `nixmox stack init` and the write of `nixmox secrets import`: the Pulumi
 * program run by the real engine through the Automation API (`LocalWorkspace` over this project directory).
 *
 * One state, the Pulumi CLI's: the workspace uses the CLI's current backend (`pulumi login`, or
 * `PULUMI_BACKEND_URL`) and its selected stack, exactly as `pulumi up` would; `--backend` and `--stack` override
 * them, and `--backend local` is the explicit choice of a file backend in `.nixmox/state`. An operation selects an
 * existing stack and never creates one (`LocalWorkspace.createOrSelectStack` would, silently: pulumi-notes §6);
 * `nixmox stack init` creates it. Every command reports the CLI's own stderr (the Automation API streams it only
 * through `onError`), and a missing Pulumi CLI is the same one-line message for all of them.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type { EngineEvent } from "@pulumi/pulumi/automation/events";
import type { LocalWorkspace, PulumiCommand, Stack } from "@pulumi/pulumi/automation";

export type EngineOperation = "preview" | "up" | "refresh" | "destroy";

/** Where the engine runs: the project, the backend and the stack, as the user chose them. */
export interface WorkspaceOptions {
  /** The directory holding Pulumi.yaml. */
  projectDir: string;
  /** `--stack`: a stack name, e.g. "homelab" or "org/nixmox/homelab". @default the CLI's selected stack */
  stack?: string;
  /** `--backend`: a backend URL, or "local" for `file://<projectDir>/.nixmox/state`. @default the CLI's current backend */
  backend?: string;
  /** The CLI's stderr, as it is written (missing config, a wrong passphrase, a plugin error). */
  onError: (text: string) => void;
  /** Injected in tests; @default the `pulumi` on the PATH */
  pulumiCommand?: PulumiCommand;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

export interface EngineOptions extends WorkspaceOptions {
  operation: EngineOperation;
  /** Engine output, as the Pulumi CLI prints it (omit to print nothing but events and errors). */
  onOutput?: (text: string) => void;
  /** Every engine event, as it happens (live progress, `--json`). */
  onEvent?: (event: EngineEvent) => void;
  /** `--target` URNs (selective deploys); empty or absent: the whole stack. */
  targets?: string[];
  /** destroy only: leave protected resources in place (`--exclude-protected`). */
  excludeProtected?: boolean;
  /** destroy only: URNs to unprotect first (`pulumi state unprotect`), so they are deleted too. */
  unprotect?: string[];
}

/** A failure the user can act on: one line, no command line (it could carry config values), no stack trace. */
export class EngineError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
    this.name = "EngineError";
  }
}

export const missingCliMessage = "the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); `nixmox preview --offline` needs none";

const stackNamePattern = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/;

/** The backend the user chose explicitly, as environment for the CLI; none means the CLI's current one. */
export function backendEnvironment(options: Pick<WorkspaceOptions, "projectDir" | "backend">): Record<string, string> {
  if (options.backend === undefined) return {};
  if (options.backend === "local") {
    const dir = path.join(path.resolve(options.projectDir), ".nixmox", "state");
    mkdirSync(dir, { recursive: true });
    return { PULUMI_BACKEND_URL: `file://${dir}` };
  }
  if (!/^[a-z][a-z0-9+.-]*:\/\/\S+$/.test(options.backend)) {
    throw new EngineError(`--backend must be a backend URL such as "file:///srv/nixmox-state", "s3://bucket/nixmox" or "https://api.pulumi.com", or "local" for .nixmox/state; got ${JSON.stringify(options.backend)}`, 2);
  }
  return { PULUMI_BACKEND_URL: options.backend };
}

/** The CLI's message when a command failed: its stderr (never the command line, which can hold values). */
function cliStderr(error: unknown): string {
  const result = (error as { commandResult?: { stderr?: string } }).commandResult;
  return (result?.stderr ?? "").trim();
}

/**
 * The `pulumi` binary itself could not be started (execa's ENOENT for the spawn), as opposed to a CLI error that
 * mentions a missing file.
 */
function isMissingCli(error: unknown): boolean {
  const result = (error as { commandResult?: { err?: { code?: string; syscall?: string }; stderr?: string } }).commandResult;
  return result?.err?.code === "ENOENT" || /Command failed with ENOENT|spawn \S*pulumi ENOENT/.test(result?.stderr ?? "");
}

function exitOf(error: unknown): string {
  const code = (error as { commandResult?: { code?: number } }).commandResult?.code;
  return code === undefined ? "" : ` (exit ${code})`;
}

/** Turns a failed workspace command into an `EngineError`, showing the CLI's stderr when it was not streamed. */
export function engineFailure(error: unknown, what: string, options: { streamed: boolean; onError: (text: string) => void; hint?: string }): EngineError {
  if (error instanceof EngineError) return error;
  if (isMissingCli(error)) return new EngineError(missingCliMessage, 2);
  const stderr = cliStderr(error);
  if (!options.streamed && stderr !== "") options.onError(`${stderr}\n`);
  const where = options.streamed || stderr !== "" ? "; the Pulumi CLI's messages are above" : "";
  return new EngineError(`${what} failed${exitOf(error)}${where}${options.hint ? `; ${options.hint}` : ""}`, 1);
}

/**
 * The `pulumi` on the PATH, refused with one message when it is missing or older than the engine NixMox needs
 * (components/engine-requirements.ts: `replaceWith` arrived in 3.207.0).
 */
async function requiredPulumiCli(): Promise<PulumiCommand> {
  const { requirePulumiCli } = require("../components/engine-requirements") as typeof import("../components/engine-requirements");
  try {
    return await requirePulumiCli();
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    throw new EngineError(/is not installed/.test(message) ? missingCliMessage : message, 2);
  }
}

/** The workspace over the project, with the user's backend choice; no CLI call yet (the CLI is injected or found). */
export async function openWorkspace(
  options: WorkspaceOptions,
  extra: { secretsProvider?: string; envVars?: Record<string, string> } = {},
): Promise<{ workspace: LocalWorkspace; envVars: Record<string, string> }> {
  if (options.stack !== undefined && !stackNamePattern.test(options.stack)) {
    throw new EngineError(`--stack must be a Pulumi stack name such as "homelab" or "org/nixmox/homelab", got ${JSON.stringify(options.stack)}`, 2);
  }
  const envVars = { ...backendEnvironment(options), ...extra.envVars };
  const { LocalWorkspace } = require("@pulumi/pulumi/automation") as typeof import("@pulumi/pulumi/automation");
  const pulumiCommand = options.pulumiCommand ?? (await requiredPulumiCli());
  try {
    const workspace = await LocalWorkspace.create({
      workDir: path.resolve(options.projectDir),
      envVars,
      ...(extra.secretsProvider !== undefined ? { secretsProvider: extra.secretsProvider } : {}),
      pulumiCommand,
    });
    return { workspace, envVars };
  } catch (error) {
    throw engineFailure(error, "starting the Pulumi CLI", { streamed: false, onError: options.onError });
  }
}

/**
 * The stack to act on: `--stack`, else the CLI's selected stack; it must exist (never created here). Selecting
 * it is `pulumi stack select`, which also makes it the CLI's selected stack, as the Automation API does.
 */
export async function selectExistingStack(workspace: LocalWorkspace, options: WorkspaceOptions): Promise<Stack> {
  const { Stack } = require("@pulumi/pulumi/automation") as typeof import("@pulumi/pulumi/automation");
  const name = options.stack ?? (await selectedStack(workspace, options));
  checkPassphrase(options, name);
  try {
    return await Stack.select(name, workspace);
  } catch (error) {
    if (/no stack named .* found/.test(cliStderr(error))) {
      throw new EngineError(`stack "${name}" does not exist in the current backend: create it with \`nixmox stack init ${name}\`, or pick one from \`pulumi stack ls\``, 2);
    }
    throw engineFailure(error, `selecting stack "${name}"`, { streamed: false, onError: options.onError });
  }
}

/**
 * A stack encrypted with a passphrase (`encryptionsalt` in its Pulumi.<stack>.yaml) needs the passphrase in the
 * environment: the Automation API runs the CLI non-interactively, so it cannot ask. Checked before any change.
 */
export function checkPassphrase(options: Pick<WorkspaceOptions, "projectDir" | "env">, stack: string): void {
  const env = options.env ?? process.env;
  if (env.PULUMI_CONFIG_PASSPHRASE !== undefined || env.PULUMI_CONFIG_PASSPHRASE_FILE !== undefined) return;
  const file = path.join(path.resolve(options.projectDir), `Pulumi.${stack.split("/").pop()}.yaml`);
  if (!existsSync(file) || !/^encryptionsalt:/m.test(readFileSync(file, "utf8"))) return;
  throw new EngineError(
    `stack "${stack}" encrypts its secrets with a passphrase (${path.basename(file)} has an encryptionsalt): set PULUMI_CONFIG_PASSPHRASE_FILE ` +
      "(or PULUMI_CONFIG_PASSPHRASE) to it",
    2,
  );
}

/**
 * The stack a command acts on: `--stack`, else the Pulumi CLI's selected stack (asked of the CLI, which keeps it per
 * project and backend). Checks nothing else: for commands that read the stack's files or outputs themselves.
 */
export async function stackName(options: WorkspaceOptions): Promise<string> {
  if (options.stack !== undefined) return options.stack;
  let workspace: LocalWorkspace;
  try {
    ({ workspace } = await openWorkspace(options));
  } catch (error) {
    if (error instanceof EngineError && error.message === missingCliMessage) {
      throw new EngineError("the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/), so the selected stack is unknown: pass --stack NAME", 2);
    }
    throw error;
  }
  return selectedStack(workspace, options);
}

/**
 * The Pulumi CLI's selected stack, or null when there is none to act on: the CLI is not installed, or no stack is
 * selected. For the commands that also work on a manifest alone (`plan`, `graph`); any other failure throws.
 */
export async function selectedStackName(options: WorkspaceOptions): Promise<string | null> {
  let workspace: LocalWorkspace;
  try {
    ({ workspace } = await openWorkspace(options));
  } catch (error) {
    if (error instanceof EngineError && error.message === missingCliMessage) return null;
    throw error;
  }
  return (await currentStack(workspace, options)) ?? null;
}

/** The Pulumi CLI's selected stack in the workspace's project and backend; none is an error saying what to do. */
async function selectedStack(workspace: LocalWorkspace, options: Pick<WorkspaceOptions, "onError">): Promise<string> {
  const current = await currentStack(workspace, options);
  if (current === undefined) {
    throw new EngineError("no stack is selected: pass --stack NAME, select one with `pulumi stack select NAME`, or create one with `nixmox stack init NAME`", 2);
  }
  return current;
}

/** `pulumi stack ls`'s current stack, undefined when none is selected. */
async function currentStack(workspace: LocalWorkspace, options: Pick<WorkspaceOptions, "onError">): Promise<string | undefined> {
  try {
    return (await workspace.stack())?.name;
  } catch (error) {
    throw engineFailure(error, "listing the stacks (`pulumi stack ls`)", { streamed: false, onError: options.onError, hint: "check `pulumi whoami` and the backend login" });
  }
}

/** Runs one engine operation on the stack; resolves when it succeeded, throws `EngineError` otherwise. */
export async function runEngine(options: EngineOptions): Promise<void> {
  const { workspace, envVars } = await openWorkspace(options);
  const stack = await selectExistingStack(workspace, options);
  await runOnStack(stack, workspace, envVars, options);
}

/** The operation itself, on a selected stack (the caller may have read the stack's config first). */
export async function runOnStack(stack: Stack, workspace: LocalWorkspace, envVars: Record<string, string>, options: EngineOptions): Promise<void> {
  const onOutput = options.onOutput;
  let wroteStderr = false;
  const onError = (text: string) => {
    wroteStderr ||= text.trim() !== "";
    options.onError(text);
  };
  const onEvent = options.onEvent;
  const target = options.targets && options.targets.length > 0 ? { target: options.targets } : {};
  const common = { ...(onOutput ? { onOutput } : {}), onError, ...(onEvent ? { onEvent } : {}), ...target };
  const operate = async () => {
    switch (options.operation) {
      case "preview":
        await stack.preview({ ...common, diff: true });
        break;
      case "up":
        await stack.up({ ...common, diff: true });
        break;
      case "refresh":
        await stack.refresh(common);
        break;
      case "destroy":
        for (const urn of options.unprotect ?? []) {
          // No Automation API call for it: `pulumi state unprotect`, the user's explicit --remove-protected.
          await runCli(workspace, envVars, ["state", "unprotect", "--yes", "--stack", stack.name, urn], onOutput, onError);
        }
        await stack.destroy({ ...common, ...(options.excludeProtected ? { excludeProtected: true } : {}) });
        break;
      default: {
        const unreachable: never = options.operation;
        throw new Error(`unknown operation ${String(unreachable)}`);
      }
    }
  };
  try {
    if (options.operation === "preview") await operate();
    else {
      // What a killed deploy left (a stale lock, pending operations) is repaired first (cli/interrupted.ts).
      const { stackRecoveryIo, withInterruptionRecovery } = require("./interrupted") as typeof import("./interrupted");
      const io = stackRecoveryIo(stack, (args) => runCli(workspace, envVars, args, undefined, onError), (text) => options.onError(text));
      await withInterruptionRecovery(io, stack.name, cliStderr, operate, () => stack.cancel());
    }
  } catch (error) {
    // Nothing on stderr and the output not shown (progress mode): the end of the CLI's output says what failed.
    if (!wroteStderr && !onOutput) {
      const tail = ((error as { commandResult?: { stdout?: string } }).commandResult?.stdout ?? "").trimEnd().split("\n").slice(-15).join("\n");
      if (tail !== "") options.onError(`${tail}\n`);
      wroteStderr = tail !== "";
    }
    throw engineFailure(error, `pulumi ${options.operation} on stack "${stack.name}"`, { streamed: wroteStderr, onError });
  }
}

/**
 * The CLI itself, for the commands the Automation API has no method for (or only a worse one), with the
 * workspace's directory and environment. `PulumiCommand.run` exists in JS but not in the typings (pulumi-notes §6).
 */
function runCli(workspace: LocalWorkspace, envVars: Record<string, string>, args: string[], onOutput?: (text: string) => void, onError?: (text: string) => void): Promise<{ stdout: string }> {
  const cli = workspace.pulumiCommand as unknown as {
    run(args: string[], cwd: string, env: Record<string, string>, onOutput?: (text: string) => void, onError?: (text: string) => void): Promise<{ stdout: string }>;
  };
  return cli.run(args, workspace.workDir, envVars, onOutput, onError);
}

/**
 * The resources of the stack's state. Read with `pulumi stack export` without `--show-secrets` (which
 * `Stack.exportStack` adds): secrets stay ciphertext and never reach this process.
 */
export async function stateResources(stack: Stack, workspace: LocalWorkspace, envVars: Record<string, string>, onError: (text: string) => void): Promise<Array<{ urn: string; type: string; name: string; protect: boolean }>> {
  let exported: { stdout: string };
  try {
    exported = await runCli(workspace, envVars, ["stack", "export", "--stack", stack.name]);
  } catch (error) {
    throw engineFailure(error, `reading the state of stack "${stack.name}"`, { streamed: false, onError });
  }
  const deployment = (JSON.parse(exported.stdout) as { deployment?: { resources?: Array<{ urn: string; type: string; protect?: boolean }> } }).deployment;
  return (deployment?.resources ?? []).map((resource) => ({ urn: resource.urn, type: resource.type, name: resource.urn.split("::").pop() ?? resource.urn, protect: resource.protect === true }));
}

/** The resources of the stack's state that are protected. */
export async function protectedResources(stack: Stack, workspace: LocalWorkspace, envVars: Record<string, string>, onError: (text: string) => void): Promise<Array<{ urn: string; type: string; name: string }>> {
  return (await stateResources(stack, workspace, envVars, onError)).filter((resource) => resource.protect).map(({ urn, type, name }) => ({ urn, type, name }));
}

/** The manifest the stack deploys: its `nixmox:manifest` as the CLI reads it, else Pulumi.yaml's default, relative to the project. */
export async function stackManifestPath(stack: Stack, projectDir: string): Promise<string> {
  const configured = await stackConfigValue(stack, "nixmox:manifest");
  const { projectDefaultManifest } = require("./stack-manifest") as typeof import("./stack-manifest");
  return configured ? path.resolve(projectDir, configured) : projectDefaultManifest(projectDir);
}

/** The directories the stack's `.nix` manifest may also read, as the program gets them (components/stack-config.ts); a malformed value is the program's to report. */
export async function stackAllowPaths(stack: Stack, projectDir: string): Promise<string[]> {
  try {
    const parsed: unknown = JSON.parse((await stackConfigValue(stack, "nixmox:manifestAllowPaths")) ?? "[]");
    return Array.isArray(parsed) ? parsed.filter((entry): entry is string => typeof entry === "string").map((entry) => path.resolve(projectDir, entry)) : [];
  } catch {
    return [];
  }
}

/** A stack output's value (`pulumi stack output --show-secrets`), or undefined when the stack has no such output. */
export async function stackOutputValue(stack: Stack, name: string, onError: (text: string) => void): Promise<unknown> {
  try {
    return (await stack.outputs())[name]?.value;
  } catch (error) {
    throw engineFailure(error, `reading the outputs of stack "${stack.name}"`, { streamed: false, onError });
  }
}

/** A stack config value (`pulumi config get`), or undefined when the stack does not set it. */
export async function stackConfigValue(stack: Stack, key: string): Promise<string | undefined> {
  try {
    return (await stack.getConfig(key)).value;
  } catch {
    return undefined;
  }
}

/**
 * The stack's secret config values, only to mask them in what NixMox prints about a failure (an engine message
 * can quote a command's output); never printed or stored. Empty when they cannot be read.
 */
export async function secretConfigValues(stack: Stack): Promise<string[]> {
  try {
    const config = await stack.getAllConfig();
    return Object.values(config).flatMap((entry) => (entry.secret ? secretLeaves(entry.value) : []));
  } catch {
    return [];
  }
}

/** A secret config value and, for a structured one (`nixmox:secrets`), every string inside it. */
function secretLeaves(value: string): string[] {
  try {
    const parsed: unknown = JSON.parse(value);
    if (parsed !== null && typeof parsed === "object") {
      const leaves: string[] = [];
      const walk = (item: unknown): void => {
        if (typeof item === "string") leaves.push(item);
        else if (item !== null && typeof item === "object") Object.values(item).forEach(walk);
      };
      walk(parsed);
      return [value, ...leaves];
    }
  } catch {
    // Not JSON: the value itself.
  }
  return [value];
}

export interface InitOptions extends WorkspaceOptions {
  stack: string;
  /** `--secrets-provider`: "passphrase", "awskms://…", … @default the backend's default (passphrase on a self-managed backend) */
  secretsProvider?: string;
  /** The passphrase for a new passphrase-encrypted stack, when the environment has none (asked on a TTY). */
  passphrase?: string;
}

/** `nixmox stack init`: creates the stack in the chosen backend and selects it (`pulumi stack init`). */
export async function initStack(options: InitOptions): Promise<void> {
  const { workspace } = await openWorkspace(options, {
    ...(options.secretsProvider !== undefined ? { secretsProvider: options.secretsProvider } : {}),
    // Only for this call: the CLI reads it to derive the stack's key, and it is never written anywhere.
    ...(options.passphrase !== undefined ? { envVars: { PULUMI_CONFIG_PASSPHRASE: options.passphrase } } : {}),
  });
  try {
    await workspace.createStack(options.stack);
  } catch (error) {
    if (/already exists/.test(cliStderr(error))) {
      throw new EngineError(`stack "${options.stack}" already exists in the current backend; select it with \`pulumi stack select ${options.stack}\` or pass --stack ${options.stack}`, 2);
    }
    throw engineFailure(error, `creating stack "${options.stack}"`, { streamed: false, onError: options.onError });
  }
}

/** `nixmox secrets import`: sets the values as secrets of the selected stack (`pulumi config set-all --secret --path`). */
export async function setStackSecrets(options: WorkspaceOptions & { values: Record<string, string> }): Promise<string> {
  const { workspace } = await openWorkspace(options);
  const stack = await selectExistingStack(workspace, options);
  const config = Object.fromEntries(Object.entries(options.values).map(([key, value]) => [key, { value, secret: true }]));
  try {
    await workspace.setAllConfig(stack.name, config, true);
  } catch (error) {
    // The CLI's stderr names keys, not values; the command line (values included) is never shown.
    throw engineFailure(error, `pulumi config set-all for stack "${stack.name}"`, { streamed: false, onError: options.onError, hint: "no value was printed" });
  }
  return stack.name;
}
