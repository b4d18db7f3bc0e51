/**
 * `nixmox secrets check [manifest] [--stack NAME]`: every secret the stack's manifest needs, whether the stack sets
 * it, generates it or misses it, and the exact command for each missing one (reading the value from a file, never
 * from the command line). The stack is `--stack`, else the Pulumi CLI's selected stack, as for the engine commands;
 * its manifest is its `nixmox:manifest` (a manifest argument must be that file). Exit 0 when the deploy can proceed,
 * 1 when a required secret is missing (or stored in plain text) or the manifest is invalid (as in validate), 2 for a
 * missing or unreadable stack file, or no stack.
 *
 * `nixmox secrets import <sops-file> [--identity FILE] [--stack NAME] [--backend URL]`: copies a SOPS/age file's
 * values into the config secrets of the stack the engine commands use (the Pulumi CLI's selected stack and
 * backend, cli/engine.ts); prints what went where, never a value.
 */
import { existsSync } from "node:fs";
import type { Command } from "commander";
import { displayPath, projectDir } from "../paths";
import { action, allowPathOption, exitCodes, loadOptions, manifestModule, print } from "../run";
import { manifestForStack, offlineLoadOptions, projectDefaultManifest, stackFile, stackManifest } from "../stack-manifest";

/** The secrets code (SOPS, age, stack files) is loaded by these commands only. */
const secretsModule = () => require("../../components/secrets") as typeof import("../../components/secrets");

interface CheckOptions {
  stack?: string;
  projectDir: string;
  allowPath?: string[];
}

interface ImportOptions {
  stack?: string;
  backend?: string;
  projectDir: string;
  identity?: string;
  manifest?: string;
  dryRun?: boolean;
  allowPath?: string[];
}

/** Stack file and SOPS problems exit 2 here (an invalid manifest exits 1 through `action`, as everywhere). */
async function inputs<T>(load: () => Promise<T>): Promise<T | { failed: true }> {
  try {
    return await load();
  } catch (error) {
    const { SopsError, StackFileError } = secretsModule();
    if (error instanceof StackFileError || error instanceof SopsError) {
      process.stderr.write(`${error.message}\n`);
      return { failed: true };
    }
    throw error;
  }
}
const failed = (value: unknown): value is { failed: true } => typeof value === "object" && value !== null && "failed" in value;

export function register(program: Command): void {
  const secrets = program.command("secrets").description("Secrets in the Pulumi stack config: check what is set, import from SOPS.");

  allowPathOption(secrets
    .command("check")
    .description("List every secret the manifest needs: set, generated or missing (with the command that sets it).")
    .argument("[manifest]", "optional: the stack's nixmox:manifest, which is checked anyway (another file is an error)")
    .option("--stack <name>", "stack whose Pulumi.<name>.yaml is read (default: the Pulumi CLI's selected stack)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml and the stack files", projectDir))
    .action(
      action(async (argument: string | undefined, options: CheckOptions) => {
        const { checkSecrets, checkStackKeys, formatSecretCheck, readStackFileKeyStates, readStackFileSecretStates } = secretsModule();
        const engine = require("../engine") as typeof import("../engine");
        let stack: string;
        try {
          stack = await engine.stackName({ projectDir: options.projectDir, onError: (text) => process.stderr.write(text), ...(options.stack !== undefined ? { stack: options.stack } : {}) });
        } catch (error) {
          if (!(error instanceof engine.EngineError)) throw error;
          process.stderr.write(`nixmox: ${error.message}\n`);
          return error.exitCode;
        }
        const file = stack.split("/").pop()!;
        // The stack file first (exit 2 when it is missing or unreadable), then its manifest.
        const loaded = await inputs(async () => ({
          states: readStackFileSecretStates(options.projectDir, file),
          keys: readStackFileKeyStates(options.projectDir, file),
        }));
        if (failed(loaded)) return exitCodes.usage;
        const manifest = manifestForStack(argument, stack, stackManifest(options.projectDir, stack));
        // An invalid manifest exits 1 (through `action`), as in validate, plan and status.
        const plan = await manifestModule().loadPlan(manifest, offlineLoadOptions({ ...options, stack }));
        // The stack's own secrets first (every deploy needs them), then the manifest's.
        const rows = [...checkStackKeys(loaded.keys, { stack }), ...checkSecrets(plan, loaded.states, { stack })];
        print(`stack ${stack}, manifest ${displayPath(manifest)}:`);
        print(formatSecretCheck(rows));
        return rows.some((row) => row.blocking) ? exitCodes.problems : exitCodes.ok;
      }),
    );

  allowPathOption(secrets
    .command("import")
    .description("Copy the values of a SOPS/age-encrypted YAML file into the stack's config secrets.")
    .argument("<sops-file>", "SOPS file, e.g. secrets/default.yaml")
    .option("--identity <file>", "age identity file (default: $SOPS_AGE_KEY_FILE or ~/.config/sops/age/keys.txt)")
    .option("--stack <name>", "stack to write to (default: the Pulumi CLI's selected stack)")
    .option("--backend <url>", "state backend URL, or \"local\" for .nixmox/state (default: the Pulumi CLI's current backend)")
    .option("--manifest <file>", "manifest that says which secrets are needed (default: the nixmox:manifest of --stack's Pulumi.<stack>.yaml, else the project's)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml and the stack files", projectDir)
    .option("--dry-run", "show what would be imported without writing (needs no Pulumi CLI; the real run does)"))
    .action(
      action(async (file: string, options: ImportOptions) => {
        const { decryptSopsFile, formatImportPlan, planImport } = secretsModule();
        // With --stack and its stack file, the stack's manifest (--manifest must be that file); else --manifest or the project's.
        const stack = options.stack;
        const fromStack = stack !== undefined && existsSync(stackFile(options.projectDir, stack));
        const manifest = fromStack ? manifestForStack(options.manifest, stack, stackManifest(options.projectDir, stack)) : options.manifest ?? projectDefaultManifest(options.projectDir);
        const plan = await manifestModule().loadPlan(manifest, fromStack ? offlineLoadOptions({ ...options, stack }) : loadOptions(options));
        const loaded = await inputs(async () => ({
          plan,
          leaves: await decryptSopsFile(file, options.identity === undefined ? {} : { identityFile: options.identity }),
        }));
        if (failed(loaded)) return exitCodes.usage;
        const result = planImport(loaded.leaves, loaded.plan);
        if (!options.dryRun && result.imports.length > 0) {
          const engine = require("../engine") as typeof import("../engine");
          try {
            await engine.setStackSecrets({
              projectDir: options.projectDir,
              onError: (text) => process.stderr.write(text),
              ...(options.stack !== undefined ? { stack: options.stack } : {}),
              ...(options.backend !== undefined ? { backend: options.backend } : {}),
              values: Object.fromEntries(result.imports.map((entry) => [entry.configKey, entry.value])),
            });
          } catch (error) {
            if (!(error instanceof engine.EngineError)) throw error;
            process.stderr.write(`nixmox: ${error.message}\n`);
            return error.exitCode;
          }
        }
        print(formatImportPlan(result, !options.dryRun));
        return exitCodes.ok;
      }),
    );
}
