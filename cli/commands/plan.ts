import type { Command } from "commander";
import { defaultManifestPath, loadPlan } from "../../manifest";
import { action, print } from "../run";
import { renderPlanJson, renderPlanText } from "../views";

export function register(program: Command): void {
  program
    .command("plan")
    .description("Show the deployment plan: waves, containers, routes, DNS records, databases, SSO clients, secrets.")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", defaultManifestPath)
    .option("--json", "machine-readable JSON (byte-identical for the same manifest)")
    .action(action(async (manifest: string, options: { json?: boolean }) => {
      const plan = await loadPlan(manifest);
      print(options.json ? renderPlanJson(plan) : renderPlanText(plan));
    }));
}
