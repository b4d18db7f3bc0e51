import type { Command } from "commander";
import { displayPath, exampleManifestPath } from "../paths";
import { action, allowPathOption, loadOptions, manifestModule, print } from "../run";

export function register(program: Command): void {
  allowPathOption(program
    .command("validate")
    .description("Check a manifest: exit 0 with a summary, or list every problem and exit 1.")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", displayPath(exampleManifestPath)))
    .action(action(async (manifest: string, flags: { allowPath?: string[] }) => {
      const plan = await manifestModule().loadPlan(manifest, loadOptions(flags));
      const routes = plan.routes.length;
      print(`${manifest}: valid: ${plan.services.length} enabled service${plan.services.length === 1 ? "" : "s"}` +
        `${plan.disabled.length > 0 ? `, ${plan.disabled.length} disabled` : ""}, ${plan.waves.length} waves, ${routes} route${routes === 1 ? "" : "s"}`);
      for (const note of plan.notes) print(`  note: ${note}`);
      for (const warning of plan.warnings) print(`  warning: ${warning}`);
    }));
}
