/**
 * `nixmox stack init NAME [--backend URL|local] [--secrets-provider P]`: creates the stack the engine commands
 * use, in the Pulumi CLI's current backend (or --backend), and selects it, as `pulumi stack init` does.
 *
 * A passphrase-encrypted stack (the default on a self-managed backend) needs its passphrase now and on every
 * later command. When the environment has none (PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE),
 * the passphrase is asked for on a terminal (twice, not echoed) and handed to this one CLI call only; without a
 * terminal the command stops and says what to set, since the Automation API's CLI cannot prompt.
 */
import type { Command } from "commander";
import { projectDir } from "../paths";
import { action, exitCodes } from "../run";

interface InitFlags {
  backend?: string;
  secretsProvider?: string;
  projectDir: string;
}

/** Whether the new stack will use the passphrase secrets provider. */
export function usesPassphrase(secretsProvider: string | undefined, backend: string | undefined, env: NodeJS.ProcessEnv): boolean {
  if (secretsProvider !== undefined) return secretsProvider === "passphrase";
  const url = backend ?? env.PULUMI_BACKEND_URL;
  // Pulumi Cloud (https://…) encrypts with the service's key by default; every self-managed backend with a passphrase.
  return url === undefined || url === "local" || !/^https:\/\//.test(url);
}

/** Characters typed ahead of a prompt (a second line can arrive with the first): kept for the next question. */
let typedAhead = "";

/** Reads a line from the terminal without echoing it (raw mode: the terminal shows nothing). */
function askHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    let answer = "";
    const consume = (text: string): boolean => {
      for (let index = 0; index < text.length; index++) {
        const char = text[index];
        if (char === "\u0003") {
          cleanup();
          process.stderr.write("\n");
          reject(new Error("cancelled"));
          return true;
        }
        if (char === "\r" || char === "\n") {
          // A "\r\n" pair ends one line, not two.
          typedAhead = text.slice(text[index + 1] === "\n" && char === "\r" ? index + 2 : index + 1);
          cleanup();
          process.stderr.write("\n");
          resolve(answer);
          return true;
        }
        if (char === "\u007f") answer = answer.slice(0, -1);
        else answer += char;
      }
      return false;
    };
    const onData = (chunk: string) => {
      consume(chunk);
    };
    const cleanup = () => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
    };
    stdin.setRawMode(true);
    stdin.setEncoding("utf8");
    stdin.on("data", onData);
    const pending = typedAhead;
    typedAhead = "";
    if (consume(pending)) return;
    stdin.resume();
  });
}

export function register(program: Command): void {
  const stack = program.command("stack").description("The Pulumi stack the engine commands use.");
  stack
    .command("init")
    .description("Create a stack in the Pulumi CLI's current backend (or --backend) and select it; asks for a passphrase when the stack needs one.")
    .argument("<name>", "stack name, e.g. homelab or org/nixmox/homelab")
    .option("--backend <url>", "state backend URL, or \"local\" for .nixmox/state (default: the Pulumi CLI's current backend)")
    .option("--secrets-provider <provider>", "passphrase, awskms://…, azurekeyvault://…, gcpkms://…, hashivault://… (default: the backend's)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml", projectDir)
    .action(action(async (name: string, flags: InitFlags) => {
      const env = process.env;
      let passphrase: string | undefined;
      const hasPassphrase = env.PULUMI_CONFIG_PASSPHRASE !== undefined || env.PULUMI_CONFIG_PASSPHRASE_FILE !== undefined;
      if (usesPassphrase(flags.secretsProvider, flags.backend, env) && !hasPassphrase) {
        if (!process.stdin.isTTY) {
          process.stderr.write(
            `nixmox: stack "${name}" will encrypt its secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE_FILE (or PULUMI_CONFIG_PASSPHRASE), ` +
              "or run this on a terminal to be asked, or choose --secrets-provider\n",
          );
          return exitCodes.usage;
        }
        passphrase = await askHidden(`passphrase for stack "${name}": `);
        if (passphrase === "" || passphrase !== (await askHidden("the same passphrase again: "))) {
          process.stderr.write("nixmox: the passphrases are empty or differ; nothing was created\n");
          return exitCodes.usage;
        }
      }
      const engine = require("../engine") as typeof import("../engine");
      try {
        await engine.initStack({
          projectDir: flags.projectDir,
          stack: name,
          onError: (text) => process.stderr.write(text),
          ...(flags.backend !== undefined ? { backend: flags.backend } : {}),
          ...(flags.secretsProvider !== undefined ? { secretsProvider: flags.secretsProvider } : {}),
          ...(passphrase !== undefined ? { passphrase } : {}),
        });
      } catch (error) {
        if (!(error instanceof engine.EngineError)) throw error;
        process.stderr.write(`nixmox: ${error.message}\n`);
        return error.exitCode;
      }
      process.stdout.write(`created and selected stack "${name}"\n`);
      if (passphrase !== undefined) {
        process.stdout.write("every later command needs the passphrase too: put it in a file only you can read and export PULUMI_CONFIG_PASSPHRASE_FILE=<that file>\n");
      }
      return exitCodes.ok;
    }));
}
