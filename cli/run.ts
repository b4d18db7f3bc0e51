/**
 * Shared plumbing for commands: how a manifest problem or an unexpected failure reaches the user.
 */
import type { Command } from "commander";
import * as path from "node:path";
// problems.ts imports nothing: the error type without the manifest code (zod, yaml) behind it.
import { ManifestError, terminalText } from "../manifest/problems";

/** Exit codes: 0 ok, 1 invalid manifest or unhealthy/failed result, 2 bad usage or an unexpected failure. */
export const exitCodes = { ok: 0, problems: 1, usage: 2 } as const;

/**
 * Runs a command action: a `ManifestError` prints its problem list and exits 1; any other error prints one
 * line (no stack trace) and exits 2.
 */
export function action<A extends unknown[]>(run: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await run(...args);
      process.exitCode = code ?? exitCodes.ok;
    } catch (error) {
      if (error instanceof ManifestError) {
        process.stderr.write(`${terminalText(error.message)}\n`);
        process.exitCode = exitCodes.problems;
        return;
      }
      process.stderr.write(`nixmox: ${terminalText(error instanceof Error ? error.message : String(error))}\n`);
      process.exitCode = exitCodes.usage;
    }
  };
}

/**
 * Writes text followed by exactly one newline. Control characters are shown escaped, never obeyed: what commands
 * print carries manifest-derived strings (security review L7); NixMox's own terminal codes (progress lines) are
 * written elsewhere.
 */
export function print(text: string): void {
  const safe = terminalText(text);
  process.stdout.write(safe.endsWith("\n") ? safe : `${safe}\n`);
}

/** The manifest code (loader, zod schema, planner), loaded by the commands that read a manifest. */
export function manifestModule(): typeof import("../manifest") {
  return require("../manifest") as typeof import("../manifest");
}

/**
 * `--allow-path DIR`, repeatable: a directory a `.nix` manifest may read on purpose, besides the files its git
 * repository tracks (or its own directory outside one). `pulumi up` reads the same from `nixmox:manifestAllowPaths`.
 */
export function allowPathOption(command: Command): Command {
  return command.option(
    "--allow-path <dir>",
    "a directory a .nix manifest may also read (repeatable; the stack's nixmox:manifestAllowPaths for the engine)",
    (value: string, previous: string[]) => [...previous, value],
    [] as string[],
  );
}

/** The loader's options from the flags of `allowPathOption`. */
export function loadOptions(flags: { allowPath?: string[] }): { allowPaths: string[] } {
  return { allowPaths: (flags.allowPath ?? []).map((dir) => path.resolve(dir)) };
}
