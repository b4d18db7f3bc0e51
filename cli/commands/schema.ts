import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { manifestJsonSchema } from "../../manifest";
import { action, print } from "../run";
import { renderManifestReference } from "../schema-docs";
import { stableJson } from "../views";

export function register(program: Command): void {
  program
    .command("schema")
    .description("Print the manifest's JSON Schema (generated from the zod schema), for editors; or write the Markdown reference.")
    .option("--out <file>", "write it to a file instead of stdout")
    .option("--markdown <file>", "also write the manifest reference (Markdown tables) to this file")
    .action(action(async (options: { out?: string; markdown?: string }) => {
      const schema = manifestJsonSchema();
      const text = stableJson(schema);
      if (options.markdown) writeFileSync(options.markdown, renderManifestReference(schema));
      if (options.out) writeFileSync(options.out, text);
      else if (!options.markdown) print(text);
    }));
}
