import { Option, type Command } from "commander";
import { projectDir } from "../paths";
import { action, manifestModule, print } from "../run";
import { manifestArgumentHelp, offlineManifest, stackManifestOptions, type ManifestFlags } from "../stack-manifest";
import { renderGraph, type GraphFormat } from "../views";

export function register(program: Command): void {
  const command = program
    .command("graph")
    .description("Print the dependency graph, each edge labelled with its reason.")
    .argument("[manifest]", manifestArgumentHelp)
    .addOption(new Option("--format <format>", "graph language").choices(["mermaid", "dot"]).default("mermaid"));
  stackManifestOptions(command, projectDir).action(action(async (argument: string | undefined, options: ManifestFlags & { format: GraphFormat }) => {
    print(renderGraph(await manifestModule().loadPlan(offlineManifest(argument, options)), options.format));
  }));
}
