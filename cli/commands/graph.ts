import { Option, type Command } from "commander";
import { displayPath, exampleManifestPath } from "../paths";
import { action, allowPathOption, loadOptions, manifestModule, print } from "../run";
import { renderGraph, type GraphFormat } from "../views";

export function register(program: Command): void {
  allowPathOption(program
    .command("graph")
    .description("Print the dependency graph, each edge labelled with its reason.")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", displayPath(exampleManifestPath))
    .addOption(new Option("--format <format>", "graph language").choices(["mermaid", "dot"]).default("mermaid")))
    .action(action(async (manifest: string, options: { format: GraphFormat; allowPath?: string[] }) => {
      print(renderGraph(await manifestModule().loadPlan(manifest, loadOptions(options)), options.format));
    }));
}
