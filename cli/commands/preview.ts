import type { Command } from "commander";
import * as path from "node:path";
import { offlineSecretPlaceholders, offlineStackConfig, recordProgram, renderPreviewJson, renderPreviewTree } from "../../components/offline-preview";
import { defaultManifestPath, loadPlan } from "../../manifest";
import { action, exitCodes, print } from "../run";
import { engineAction, engineOptions, type EngineFlags } from "./engine";

export function register(program: Command): void {
  const command = program
    .command("preview")
    .description(
      "Show what a deploy would change. --offline runs the real program under Pulumi mocks with built-in, clearly fake " +
        "Proxmox settings and a throwaway key (no Proxmox, no Pulumi CLI, no stack config) and prints the exact resource " +
        "tree; without it, the Pulumi engine previews the stack (Automation API; needs the Pulumi CLI).",
    )
    .argument("[manifest]", `manifest file for --offline (.nix, .json, .yaml; default ${path.relative(process.cwd(), defaultManifestPath)}); the engine reads nixmox:manifest`)
    .option("--offline", "run under mocks instead of the engine")
    .option("--json", "with --offline: { resources: [{ urn, type, name, parent, dependsOn, protect, options, inputs }] }, secrets as \"[secret]\", values a first deploy computes as \"[unknown]\"");
  engineOptions(command).action(action(async (manifest: string | undefined, options: EngineFlags & { offline?: boolean; json?: boolean }) => {
    if (!options.offline) {
      if (manifest !== undefined || options.json) {
        process.stderr.write("nixmox: a manifest argument and --json go with --offline; the engine preview reads nixmox:manifest from the stack config\n");
        return exitCodes.usage;
      }
      return engineAction("preview", options);
    }
    const manifestPath = manifest ?? defaultManifestPath;
    // The plan is loaded once here so that secrets the real stack must set get offline placeholders.
    const plan = await loadPlan(manifestPath);
    const placeholders = offlineSecretPlaceholders(plan);
    const { config, secretKeys } = offlineStackConfig(path.resolve(manifestPath), placeholders);
    // As `pulumi config set --secret` would store them (plain-text secrets are refused by the program).
    secretKeys.push(...Object.keys(placeholders));
    // Loaded here, not at the top: the program module pulls in the Pulumi SDK, which the other commands never need.
    const nixmoxProgram = require("../../index") as () => Promise<unknown>;
    const run = await recordProgram(nixmoxProgram, { config, secretKeys, preview: true });
    print(options.json ? renderPreviewJson(run.resources) : renderPreviewTree(run.resources));
  }));
}
