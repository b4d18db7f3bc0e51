/**
 * The `nixmox` command line. Each command lives in `cli/commands/<name>.ts` and exports `register(program)`.
 *
 * Start-up is part of the interface: registering a command loads only commander and the command's own file;
 * a command loads the manifest code, the SSH client or the Pulumi SDK inside its action, so `--help` and
 * `--version` answer at once and `validate` never pays for the Pulumi SDK (bench/cli-startup.ts measures it).
 */
import { Command } from "commander";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { exitCodes } from "./run";
import { projectRoot } from "./paths";

const version = (JSON.parse(readFileSync(path.join(projectRoot, "package.json"), "utf8")) as { version: string }).version;

const program = new Command("nixmox")
  .description("One manifest, one Pulumi program: NixOS LXC services on Proxmox VE.")
  .version(version, "-V, --version", "print the NixMox version")
  // A usage error is one line and a pointer to the help, not the whole help text after it (newcomer P9).
  .showHelpAfterError("(run `nixmox --help` or `nixmox <command> --help` for usage)")
  .exitOverride((err) => process.exit(err.exitCode === 0 ? exitCodes.ok : exitCodes.usage));

const commands: Array<{ register(program: Command): void }> = [
  // command registrations: one line per command file
  require("./commands/validate"),
  require("./commands/plan"),
  require("./commands/graph"),
  require("./commands/schema"),
  require("./commands/render"),
  require("./commands/status"),
  require("./commands/preview"),
  require("./commands/secrets"),
  require("./commands/engine"),
  require("./commands/stack"),
];
for (const command of commands) command.register(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`nixmox: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(exitCodes.usage);
});
