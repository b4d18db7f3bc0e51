import type { Command } from "commander";
import { displayPath, exampleManifestPath } from "../paths";
import { action, allowPathOption, loadOptions, manifestModule, print } from "../run";
import { renderPlanJson, renderPlanText } from "../views";

export function register(program: Command): void {
  allowPathOption(program
    .command("plan")
    .description("Show the deployment plan: waves, containers, routes, databases, SSO relations; --json adds DNS records, SSO clients and secrets.")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", displayPath(exampleManifestPath))
    .option("--json", "machine-readable JSON (byte-identical for the same manifest)"))
    .action(action(async (manifest: string, options: { json?: boolean; allowPath?: string[] }) => {
      const plan = await manifestModule().loadPlan(manifest, loadOptions(options));
      print(options.json ? renderPlanJson(plan) : renderPlanText(plan));
    }));
}
