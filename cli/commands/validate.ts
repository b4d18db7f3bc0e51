import type { Command } from "commander";
import { displayPath, projectDir } from "../paths";
import { action, manifestModule, print } from "../run";
import { manifestArgumentHelp, offlineLoadOptions, offlineManifest, stackManifestOptions, type ManifestFlags } from "../stack-manifest";

export function register(program: Command): void {
  const command = program
    .command("validate")
    .description("Check a manifest: exit 0 with a summary, or list every problem and exit 1.")
    .argument("[manifest]", manifestArgumentHelp);
  stackManifestOptions(command, projectDir).action(action(async (argument: string | undefined, flags: ManifestFlags) => {
    const manifest = offlineManifest(argument, flags);
    const plan = await manifestModule().loadPlan(manifest, offlineLoadOptions(flags));
    const routes = plan.routes.length;
    print(`${argument ?? displayPath(manifest)}: valid: ${plan.services.length} enabled service${plan.services.length === 1 ? "" : "s"}` +
      `${plan.disabled.length > 0 ? `, ${plan.disabled.length} disabled` : ""}, ${plan.waves.length} waves, ${routes} route${routes === 1 ? "" : "s"}`);
    for (const note of plan.notes) print(`  note: ${note}`);
    for (const warning of plan.warnings) print(`  warning: ${warning}`);
  }));
}
