/**
 * One manifest everywhere: which manifest a command reads.
 *
 * A command that acts on a stack (`--stack NAME`, or the Pulumi CLI's selected stack) reads that stack's
 * `nixmox:manifest`, the manifest `pulumi up` deploys: from its Pulumi.<stack>.yaml, else the project's default in
 * Pulumi.yaml, relative to the project folder, as the program resolves it (components/stack-config.ts). A manifest
 * given on the command line must be that same file; another one is an error showing both paths, never a silent
 * check of the wrong homelab (newcomer-2 #1). A command that acts on no stack reads its argument, else the
 * project's default.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import * as path from "node:path";
import { shellQuote } from "../components/ssh/quote";
import { displayPath, exampleManifestPath } from "./paths";
import { allowPathOption, loadOptions } from "./run";

/** A manifest argument that is not the stack's manifest, or a stack file that cannot be read: a usage error. */
export class ManifestChoiceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ManifestChoiceError";
  }
}

/** The `config:` mapping of a Pulumi.yaml or Pulumi.<stack>.yaml, or null when the file does not exist. */
function configOf(file: string): Record<string, unknown> | null {
  if (!existsSync(file)) return null;
  const { parse } = require("yaml") as typeof import("yaml");
  let document: unknown;
  try {
    document = parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new ManifestChoiceError(`cannot read ${displayPath(file)}: ${(error as Error).message.split("\n")[0]}`);
  }
  const config = (document as { config?: unknown } | null)?.config;
  return config !== null && typeof config === "object" && !Array.isArray(config) ? (config as Record<string, unknown>) : {};
}

/** The stack's config file: `Pulumi.<name>.yaml` (the last part of an `org/project/name` stack). */
export function stackFile(projectDir: string, stack: string): string {
  return path.join(projectDir, `Pulumi.${stack.split("/").pop()}.yaml`);
}

/** The project's default manifest: Pulumi.yaml's `nixmox:manifest` default, else NixMox's example. */
export function projectDefaultManifest(projectDir: string): string {
  const project = configOf(path.join(projectDir, "Pulumi.yaml")) ?? configOf(path.join(projectDir, "Pulumi.yml"));
  const declared = project?.["nixmox:manifest"] as { default?: unknown } | string | undefined;
  const value = typeof declared === "string" ? declared : declared?.default;
  return typeof value === "string" && value !== "" ? path.resolve(projectDir, value) : exampleManifestPath;
}

/** The manifest a stack deploys: its `nixmox:manifest` (a stack file may not exist yet: then the project's default). */
export function stackManifest(projectDir: string, stack: string): string {
  const value = configOf(stackFile(projectDir, stack))?.["nixmox:manifest"];
  if (value === undefined || value === "") return projectDefaultManifest(projectDir);
  if (typeof value !== "string") {
    throw new ManifestChoiceError(`nixmox:manifest of stack "${stack}" must be a path, got ${JSON.stringify(value)}; set it with \`pulumi config set --stack ${shellQuote(stack)} nixmox:manifest <file>\``);
  }
  return path.resolve(projectDir, value);
}

function sameFile(a: string, b: string): boolean {
  const real = (file: string) => (existsSync(file) ? realpathSync(file) : path.resolve(file));
  return real(a) === real(b);
}

/**
 * The manifest of a command that acts on `stack`, whose manifest is `manifest`: the argument when it names the same
 * file, else an error showing both paths and both ways out.
 */
export function manifestForStack(argument: string | undefined, stack: string, manifest: string): string {
  if (argument === undefined || sameFile(argument, manifest)) return manifest;
  const given = path.resolve(argument);
  throw new ManifestChoiceError(
    `the manifest argument ${displayPath(given)} is not the manifest of stack "${stack}", which deploys ${displayPath(manifest)} (its nixmox:manifest): ` +
      `drop the argument to use the stack's, or point the stack at this file with \`pulumi config set --stack ${shellQuote(stack)} nixmox:manifest ${shellQuote(given)}\``,
  );
}

/**
 * The directories a stack's `.nix` manifest may also read (`nixmox:manifestAllowPaths` in its Pulumi.<stack>.yaml: a
 * list, or the JSON text of one), relative to the project; a malformed value is the program's to report.
 */
export function stackFileAllowPaths(projectDir: string, stack: string): string[] {
  let value = configOf(stackFile(projectDir, stack))?.["nixmox:manifestAllowPaths"];
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return [];
    }
  }
  return Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === "string" && entry !== "").map((entry) => path.resolve(projectDir, entry)) : [];
}

/** The flags of a command that reads a manifest and may act on a stack. */
export interface ManifestFlags {
  stack?: string;
  projectDir: string;
  allowPath?: string[];
}

/** Adds `--stack`, `--project-dir` and `--allow-path` to a command that reads a manifest without the engine. */
export function stackManifestOptions(command: import("commander").Command, projectDir: string): import("commander").Command {
  return allowPathOption(command
    .option("--stack <name>", "read this stack's nixmox:manifest and nixmox:manifestAllowPaths (from its Pulumi.<name>.yaml; no Pulumi CLI needed)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml and the stack files", projectDir));
}

/** The manifest argument's help text: what is read without one. */
export const manifestArgumentHelp = "manifest file (.nix, .json, .yaml); default: the stack's nixmox:manifest with --stack, else the project's (Pulumi.yaml)";

/** The manifest argument's help text for `plan` and `graph`, which also read the selected stack's. */
export const selectedStackArgumentHelp =
  "manifest file (.nix, .json, .yaml); default: the nixmox:manifest of --stack, else of the Pulumi CLI's selected stack, else the project's (Pulumi.yaml)";

/** The manifest of a command that needs no engine: the stack's with `--stack` (an argument must match), else the argument or the project's. */
export function offlineManifest(argument: string | undefined, flags: ManifestFlags): string {
  if (flags.stack !== undefined) return manifestForStack(argument, flags.stack, stackManifest(flags.projectDir, flags.stack));
  return argument ?? projectDefaultManifest(flags.projectDir);
}

/**
 * The manifest of `plan` and `graph`, and the flags that load it: with `--stack`, that stack's (an argument must be
 * the same file); with neither `--stack` nor an argument, the Pulumi CLI's selected stack's, as `preview` and
 * `secrets check` take it (issue 22, one manifest everywhere); with an argument alone, that file. Without a Pulumi
 * CLI or a selected stack, the project's; when the CLI cannot tell, a note says which manifest is read instead.
 */
export async function stackOrSelectedManifest(argument: string | undefined, flags: ManifestFlags): Promise<{ manifest: string; flags: ManifestFlags }> {
  if (flags.stack !== undefined || argument !== undefined) return { manifest: offlineManifest(argument, flags), flags };
  const engine = require("./engine") as typeof import("./engine");
  let stack: string | null;
  try {
    stack = await engine.selectedStackName({ projectDir: flags.projectDir, onError: (text) => process.stderr.write(text) });
  } catch (error) {
    if (!(error instanceof engine.EngineError)) throw error;
    const manifest = projectDefaultManifest(flags.projectDir);
    process.stderr.write(`nixmox: the selected stack is unknown (${error.message}), so this reads the project's manifest ${displayPath(manifest)}; pass --stack NAME or a manifest to choose\n`);
    return { manifest, flags };
  }
  if (stack === null) return { manifest: projectDefaultManifest(flags.projectDir), flags };
  return { manifest: stackManifest(flags.projectDir, stack), flags: { ...flags, stack } };
}

/** The loader's options: the `--allow-path` directories, and with `--stack` the stack's `nixmox:manifestAllowPaths`. */
export function offlineLoadOptions(flags: ManifestFlags): { allowPaths: string[] } {
  const stackPaths = flags.stack !== undefined ? stackFileAllowPaths(flags.projectDir, flags.stack) : [];
  return { allowPaths: [...new Set([...loadOptions(flags).allowPaths, ...stackPaths])] };
}
