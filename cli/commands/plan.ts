import type { Command } from "commander";
import { projectDir } from "../paths";
import { action, manifestModule, print } from "../run";
import { offlineLoadOptions, selectedStackArgumentHelp, stackManifestOptions, stackOrSelectedManifest, type ManifestFlags } from "../stack-manifest";
import { renderPlanJson, renderPlanText } from "../views";

export function register(program: Command): void {
  const command = program
    .command("plan")
    .description("Show the deployment plan: waves, containers, routes, databases, SSO relations; --json adds DNS records, SSO clients and secrets.")
    .argument("[manifest]", selectedStackArgumentHelp)
    .option("--json", "machine-readable JSON (byte-identical for the same manifest)");
  stackManifestOptions(command, projectDir).action(action(async (argument: string | undefined, options: ManifestFlags & { json?: boolean }) => {
    const chosen = await stackOrSelectedManifest(argument, options);
    const plan = await manifestModule().loadPlan(chosen.manifest, offlineLoadOptions(chosen.flags));
    print(options.json ? renderPlanJson(plan) : renderPlanText(plan));
  }));
}
