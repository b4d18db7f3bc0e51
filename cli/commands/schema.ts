import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { action, manifestModule, print } from "../run";
import { renderManifestReference } from "../schema-docs";
import { stableJson } from "../views";

export function register(program: Command): void {
  program
    .command("schema")
    .description("Print the manifest's JSON Schema (generated from the zod schema), for editors; or write the Markdown reference.")
    .option("--out <file>", "write it to a file instead of stdout")
    .option("--markdown <file>", "also write the manifest reference (Markdown tables) to this file")
    .action(action(async (options: { out?: string; markdown?: string }) => {
      const schema = manifestModule().manifestJsonSchema();
      const text = stableJson(schema);
      if (options.markdown) writeFileSync(options.markdown, renderManifestReference(schema));
      if (options.markdown) process.stderr.write(`wrote the manifest reference to ${options.markdown}\n`);
      if (options.out) {
        writeFileSync(options.out, text);
        process.stderr.write(`wrote the manifest JSON Schema to ${options.out}\n`);
      } else if (!options.markdown) print(text);
    }));
}
