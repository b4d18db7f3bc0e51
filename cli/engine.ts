/**
 * `nixmox preview|up|refresh|destroy`: the Pulumi program run by the real engine through the Automation API
 * (`LocalWorkspace` over this project directory), so scripts and users get one entry point. Every operation
 * needs the Pulumi CLI; the state lives in a local file backend by default (`.nixmox/state` in the project),
 * or wherever `--backend` / `PULUMI_BACKEND_URL` says.
 */
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import type { PulumiCommand } from "@pulumi/pulumi/automation";

export type EngineOperation = "preview" | "up" | "refresh" | "destroy";

export interface EngineOptions {
  operation: EngineOperation;
  /** Stack name, e.g. "homelab". */
  stack: string;
  /** The directory holding Pulumi.yaml. */
  projectDir: string;
  /** @default `PULUMI_BACKEND_URL`, else `file://<projectDir>/.nixmox/state` */
  backendUrl?: string;
  /** Engine output, as the Pulumi CLI prints it. */
  onOutput: (text: string) => void;
  /** Injected in tests; @default the `pulumi` on the PATH */
  pulumiCommand?: PulumiCommand;
  /** @default process.env */
  env?: NodeJS.ProcessEnv;
}

/** A failure the user can act on: one line, no command line (it could carry config values), no stack trace. */
export class EngineError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
    this.name = "EngineError";
  }
}

const stackNamePattern = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/;

/** The backend URL and the environment the engine runs with; creates a local state directory when needed. */
export function engineEnvironment(options: Pick<EngineOptions, "projectDir" | "backendUrl" | "env">): Record<string, string> {
  const env = options.env ?? process.env;
  const backendUrl = options.backendUrl ?? env.PULUMI_BACKEND_URL ?? `file://${path.join(path.resolve(options.projectDir), ".nixmox", "state")}`;
  if (backendUrl.startsWith("file://")) {
    // The local backend encrypts secrets with a passphrase; without one the CLI would stop at a prompt.
    if (env.PULUMI_CONFIG_PASSPHRASE === undefined && env.PULUMI_CONFIG_PASSPHRASE_FILE === undefined) {
      throw new EngineError(
        `the local state backend (${backendUrl}) encrypts secrets with a passphrase: set PULUMI_CONFIG_PASSPHRASE_FILE ` +
          "(or PULUMI_CONFIG_PASSPHRASE), or use another backend with --backend",
        2,
      );
    }
    mkdirSync(backendUrl.slice("file://".length), { recursive: true });
  }
  return { PULUMI_BACKEND_URL: backendUrl };
}

/** Runs one engine operation on the stack; resolves when it succeeded, throws `EngineError` otherwise. */
export async function runEngine(options: EngineOptions): Promise<void> {
  if (!stackNamePattern.test(options.stack)) {
    throw new EngineError(`--stack must be a Pulumi stack name such as "homelab" or "org/nixmox/homelab", got ${JSON.stringify(options.stack)}`, 2);
  }
  const envVars = engineEnvironment(options);
  const { LocalWorkspace } = require("@pulumi/pulumi/automation") as typeof import("@pulumi/pulumi/automation");
  let stack: import("@pulumi/pulumi/automation").Stack;
  try {
    stack = await LocalWorkspace.createOrSelectStack(
      { stackName: options.stack, workDir: path.resolve(options.projectDir) },
      { envVars, ...(options.pulumiCommand ? { pulumiCommand: options.pulumiCommand } : {}) },
    );
  } catch (error) {
    if (/ENOENT/.test(String((error as Error).message))) {
      throw new EngineError("the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); `nixmox preview --offline` needs none", 2);
    }
    throw new EngineError(`cannot select stack "${options.stack}"${exitOf(error)}; check the backend (${envVars.PULUMI_BACKEND_URL}) and \`pulumi stack ls\``, 1);
  }
  const onOutput = options.onOutput;
  try {
    switch (options.operation) {
      case "preview":
        await stack.preview({ onOutput, diff: true });
        break;
      case "up":
        await stack.up({ onOutput, diff: true });
        break;
      case "refresh":
        await stack.refresh({ onOutput });
        break;
      case "destroy":
        await stack.destroy({ onOutput });
        break;
      default: {
        const unreachable: never = options.operation;
        throw new Error(`unknown operation ${String(unreachable)}`);
      }
    }
  } catch (error) {
    throw new EngineError(`pulumi ${options.operation} on stack "${options.stack}" failed${exitOf(error)}; the engine's messages are above`, 1);
  }
}

function exitOf(error: unknown): string {
  const code = (error as { commandResult?: { code?: number } }).commandResult?.code;
  return code === undefined ? "" : ` (exit ${code})`;
}
