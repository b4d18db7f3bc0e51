/**
 * `nixmox graph --format svg`: the picture of the plan (cli/views.ts `renderGraphPicture`) laid out by Graphviz itself,
 * compiled to WebAssembly (@hpcc-js/wasm-graphviz, Apache-2.0, no dependencies), so no system Graphviz is needed.
 * Loaded by this format only.
 */
import type { Plan } from "../manifest/plan-types";
import { renderGraphPicture } from "./views";

/** The package is ESM only: a real dynamic import (which tsc would otherwise turn into require). */
const importModule = new Function("specifier", "return import(specifier)") as (specifier: string) => Promise<typeof import("@hpcc-js/wasm-graphviz")>;

/** The plan's picture as an SVG document. */
export async function renderGraphSvg(plan: Plan): Promise<string> {
  const { Graphviz } = await importModule("@hpcc-js/wasm-graphviz");
  const graphviz = await Graphviz.load();
  return graphviz.dot(renderGraphPicture(plan), "svg");
}
