import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { manifestJsonSchema } from "../../manifest";
import { action, print } from "../run";
import { stableJson } from "../views";

export function register(program: Command): void {
  program
    .command("schema")
    .description("Print the manifest's JSON Schema (generated from the zod schema), for editors.")
    .option("--out <file>", "write it to a file instead of stdout")
    .action(action(async (options: { out?: string }) => {
      const text = stableJson(manifestJsonSchema());
      if (options.out) writeFileSync(options.out, text);
      else print(text);
    }));
}
