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
import { terminalText } from "../manifest/problems";
import { exitCodes } from "./run";
import { packageRoot } from "./paths";

// `nixmox schema | head`: a reader that closes the pipe early ends the command quietly, with the exit code it had
// so far, instead of an unhandled EPIPE error and its stack trace (newcomer-2 #8).
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(typeof process.exitCode === "number" ? process.exitCode : exitCodes.ok);
  });
}

const version = (JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string }).version;

const program = new Command("nixmox")
  .description("One manifest, one Pulumi program: NixOS LXC services on Proxmox VE.")
  .version(version, "-V, --version", "print the NixMox version")
  // A usage error is one line and a pointer to the help, not the whole help text after it (newcomer P9).
  .showHelpAfterError("(run `nixmox --help` or `nixmox <command> --help` for usage)")
  .exitOverride((err) => process.exit(err.exitCode === 0 ? exitCodes.ok : exitCodes.usage));

/** Command name → the file that registers it (engine.ts registers up, refresh and destroy). */
const commandFiles: Record<string, string> = {
  validate: "./commands/validate",
  plan: "./commands/plan",
  graph: "./commands/graph",
  schema: "./commands/schema",
  render: "./commands/render",
  status: "./commands/status",
  preview: "./commands/preview",
  secrets: "./commands/secrets",
  up: "./commands/engine",
  refresh: "./commands/engine",
  destroy: "./commands/engine",
  stack: "./commands/stack",
  init: "./commands/init",
  logs: "./commands/remote",
  ssh: "./commands/remote",
  exec: "./commands/remote",
  twin: "./commands/twin",
};
// A known command registers alone (its own --help still works); anything else (no command, --help, a typo that
// needs "did you mean") registers them all.
const requested = process.argv[2];
const files = requested !== undefined && Object.hasOwn(commandFiles, requested) ? [commandFiles[requested]] : [...new Set(Object.values(commandFiles))];
for (const file of files) (require(file) as { register(program: Command): void }).register(program);

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`nixmox: ${terminalText(error instanceof Error ? error.message : String(error))}\n`);
  process.exit(exitCodes.usage);
});
