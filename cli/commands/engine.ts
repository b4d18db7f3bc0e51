import type { Command } from "commander";
import * as path from "node:path";
import { EngineError, runEngine, type EngineOperation } from "../engine";
import { action, exitCodes } from "../run";

/** The project directory (Pulumi.yaml) of this checkout. */
export const projectDir = path.join(__dirname, "..", "..");

export interface EngineFlags {
  stack: string;
  backend?: string;
  projectDir: string;
  yes?: boolean;
}

/** Runs an engine operation for a command; `EngineError`s become one line and their exit code. */
export async function engineAction(operation: EngineOperation, flags: EngineFlags): Promise<number> {
  if ((operation === "up" || operation === "destroy") && !flags.yes) {
    process.stderr.write(`nixmox: ${operation} changes the homelab: run \`nixmox preview --stack ${flags.stack}\` first, then add --yes\n`);
    return exitCodes.usage;
  }
  try {
    await runEngine({
      operation,
      stack: flags.stack,
      projectDir: flags.projectDir,
      ...(flags.backend ? { backendUrl: flags.backend } : {}),
      onOutput: (text) => process.stdout.write(text),
    });
    return exitCodes.ok;
  } catch (error) {
    if (!(error instanceof EngineError)) throw error;
    process.stderr.write(`nixmox: ${error.message}\n`);
    return error.exitCode;
  }
}

/** The options every engine command shares. */
export function engineOptions(command: Command): Command {
  return command
    .option("--stack <name>", "Pulumi stack", "dev")
    .option("--backend <url>", "state backend (default: PULUMI_BACKEND_URL, else file://<project>/.nixmox/state)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml", projectDir);
}

const descriptions: Record<Exclude<EngineOperation, "preview">, string> = {
  up: "Deploy the stack with the Pulumi engine (Automation API; needs the Pulumi CLI and --yes).",
  refresh: "Refresh the stack: re-read containers and re-run liveness checks, reporting drift.",
  destroy: "Destroy the stack's resources (stateful containers stay protected; needs --yes).",
};

export function register(program: Command): void {
  for (const operation of ["up", "refresh", "destroy"] as const) {
    const command = engineOptions(program.command(operation).description(descriptions[operation]));
    if (operation !== "refresh") command.option("--yes", "confirm that the operation may change the homelab");
    command.action(action(async (flags: EngineFlags) => engineAction(operation, flags)));
  }
}
