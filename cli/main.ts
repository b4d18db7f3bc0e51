/**
 * The `nixmox` command line. Each command lives in `cli/commands/<name>.ts` and exports `register(program)`.
 */
import { Command } from "commander";

const program = new Command("nixmox")
  .description("One manifest, one Pulumi program: NixOS LXC services on Proxmox VE.")
  .showHelpAfterError()
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2));

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
];
for (const command of commands) command.register(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`nixmox: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
