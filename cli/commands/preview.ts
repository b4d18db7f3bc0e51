import type { Command } from "commander";
import * as path from "node:path";
import { offlineSecretPlaceholders, offlineStackConfig, recordProgram, renderPreviewJson, renderPreviewTree } from "../../components/offline-preview";
import { defaultManifestPath, loadPlan } from "../../manifest";
import { action, exitCodes, print } from "../run";

export function register(program: Command): void {
  program
    .command("preview")
    .description(
      "Show the exact resource tree the Pulumi program builds for a manifest. --offline runs the real program under " +
        "Pulumi mocks with built-in, clearly fake Proxmox settings and a throwaway key: no Proxmox, no Pulumi CLI, no stack config.",
    )
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", defaultManifestPath)
    .option("--offline", "run under mocks (required: an engine preview is `pulumi preview` in the project directory)")
    .option("--json", "machine-readable JSON: { resources: [{ urn, type, name, parent, dependsOn, protect, inputs }] }, secrets as \"[secret]\"")
    .action(action(async (manifest: string, options: { offline?: boolean; json?: boolean }) => {
      if (!options.offline) {
        process.stderr.write("nixmox: preview needs --offline; for a preview against Proxmox run `pulumi preview -s <stack>` in the project directory\n");
        return exitCodes.usage;
      }
      // The plan is loaded once here so that secrets the real stack must set get offline placeholders.
      const plan = await loadPlan(manifest);
      const placeholders = offlineSecretPlaceholders(plan);
      const { config, secretKeys } = offlineStackConfig(path.resolve(manifest), placeholders);
      // As `pulumi config set --secret` would store them (plain-text secrets are refused by the program).
      secretKeys.push(...Object.keys(placeholders));
      // Loaded here, not at the top: the program module pulls in the Pulumi SDK, which the other commands never need.
      const nixmoxProgram = require("../../index") as () => Promise<unknown>;
      const run = await recordProgram(nixmoxProgram, { config, secretKeys });
      print(options.json ? renderPreviewJson(run.resources) : renderPreviewTree(run.resources));
    }));
}
