import { Option, type Command } from "commander";
import { projectDir } from "../paths";
import { action, manifestModule, print } from "../run";
import { offlineLoadOptions, selectedStackArgumentHelp, stackManifestOptions, stackOrSelectedManifest, type ManifestFlags } from "../stack-manifest";
import { renderGraph, type GraphFormat } from "../views";

export function register(program: Command): void {
  const command = program
    .command("graph")
    .description("Print the dependency graph, each edge labelled with its reason; --format svg draws the plan: hosts by wave with their routes and databases, hard edges solid, SSO edges dashed.")
    .argument("[manifest]", selectedStackArgumentHelp)
    .addOption(new Option("--format <format>", "mermaid or dot text, or an SVG picture (Graphviz in WebAssembly, no system Graphviz needed)").choices(["mermaid", "dot", "svg"]).default("mermaid"));
  stackManifestOptions(command, projectDir).action(action(async (argument: string | undefined, options: ManifestFlags & { format: GraphFormat | "svg" }) => {
    const chosen = await stackOrSelectedManifest(argument, options);
    const plan = await manifestModule().loadPlan(chosen.manifest, offlineLoadOptions(chosen.flags));
    if (options.format === "svg") {
      const { renderGraphSvg } = require("../graph-svg") as typeof import("../graph-svg");
      print(await renderGraphSvg(plan));
      return;
    }
    print(renderGraph(plan, options.format));
  }));
}
