/**
 * `nixmox preview|up|refresh|destroy [--stack NAME] [--backend URL|local] [--only NAME[,NAME]]
 * [--with-dependencies] [--with-dependents] [--json] [--yes]`: the engine commands (cli/engine.ts), with the
 * selection of services (cli/select.ts) and the live progress (cli/progress.ts).
 *
 * Exit codes: 0 done, 1 the engine failed, 2 bad usage (missing --yes, an unknown service, no stack, no CLI).
 */
import type { Command } from "commander";
import type { EngineEvent } from "@pulumi/pulumi/automation/events";
import type { Plan } from "../../manifest/plan-types";
import { EngineError, type EngineOperation, type WorkspaceOptions } from "../engine";
import { ProgressTracker } from "../progress";
import { projectDir } from "../paths";
import { action, exitCodes, manifestModule } from "../run";
import { ManifestChoiceError, manifestForStack } from "../stack-manifest";
import { expandTags } from "../tags";
import { SelectionError, generatedSecretTargets, parseOnly, selectServices, sharedTargets, targetResources, targetUrn, undeployedDependencies } from "../select";


export interface EngineFlags {
  stack?: string;
  backend?: string;
  projectDir: string;
  yes?: boolean;
  only?: string[];
  withDependencies?: boolean;
  withDependents?: boolean;
  /** The manifest argument: it must be the stack's nixmox:manifest. */
  manifest?: string;
  json?: boolean;
  keepProtected?: boolean;
  removeProtected?: boolean;
}

/** What the command needs from outside: streams and the fake CLI of the tests. */
export interface EngineIo {
  stdout: { write(text: string): unknown; isTTY?: boolean };
  stderr: { write(text: string): unknown };
  pulumiCommand?: WorkspaceOptions["pulumiCommand"];
  env?: NodeJS.ProcessEnv;
}

const processIo: EngineIo = { stdout: process.stdout, stderr: process.stderr };

async function stackPlan(stack: import("@pulumi/pulumi/automation").Stack, projectDir: string): Promise<Plan> {
  const { stackAllowPaths, stackManifestPath } = require("../engine") as typeof import("../engine");
  return manifestModule().loadPlan(await stackManifestPath(stack, projectDir), { allowPaths: await stackAllowPaths(stack, projectDir) });
}

/**
 * The stack's secret rows (set, generated, missing) from its Pulumi.<stack>.yaml, which holds the config whatever
 * the backend; none when the file is missing or unreadable (then no generated password is targeted).
 */
function stackSecretRows(plan: Plan, projectDir: string, stackName: string): ReturnType<typeof import("../../components/secrets").checkSecrets> {
  const secrets = require("../../components/secrets") as typeof import("../../components/secrets");
  try {
    return secrets.checkSecrets(plan, secrets.readStackFileSecretStates(projectDir, stackName.split("/").pop()!));
  } catch {
    return [];
  }
}

/** Runs an engine operation for a command; `EngineError`s become one line and their exit code. */
export async function engineAction(operation: EngineOperation, flags: EngineFlags, io: EngineIo = processIo): Promise<number> {
  const stackHint = flags.stack ? ` --stack ${flags.stack}` : "";
  if (operation !== "preview" && !flags.yes) {
    const what = operation === "refresh" ? "refresh writes what it reads into the stack's state" : `${operation} changes the homelab`;
    io.stderr.write(`nixmox: ${what}: run \`nixmox preview${stackHint}\` first, then add --yes\n`);
    return exitCodes.usage;
  }
  if (flags.keepProtected && flags.removeProtected) {
    io.stderr.write("nixmox: --keep-protected and --remove-protected exclude each other: choose one\n");
    return exitCodes.usage;
  }
  const only = parseOnly(flags.only ?? []);
  if (only.length === 0 && (flags.withDependencies || flags.withDependents)) {
    io.stderr.write("nixmox: --with-dependencies and --with-dependents extend an --only selection; add --only NAME\n");
    return exitCodes.usage;
  }
  const engine = require("../engine") as typeof import("../engine");
  const onError = (text: string) => io.stderr.write(text);
  const options: WorkspaceOptions = {
    projectDir: flags.projectDir,
    onError,
    ...(flags.stack !== undefined ? { stack: flags.stack } : {}),
    ...(flags.backend !== undefined ? { backend: flags.backend } : {}),
    ...(io.pulumiCommand ? { pulumiCommand: io.pulumiCommand } : {}),
    ...(io.env ? { env: io.env } : {}),
  };
  try {
    const { workspace, envVars } = await engine.openWorkspace(options);
    const stack = await engine.selectExistingStack(workspace, options);
    // A manifest argument must be the one the stack deploys (newcomer-2 #1).
    if (flags.manifest !== undefined) manifestForStack(flags.manifest, stack.name, await engine.stackManifestPath(stack, flags.projectDir));
    let plan: Plan | null = null;
    let selected: string[] | null = null;
    let targets: string[] = [];
    if (only.length > 0) {
      plan = await stackPlan(stack, flags.projectDir);
      selected = selectServices(plan, { only: expandTags(plan, only), withDependencies: flags.withDependencies ?? false, withDependents: flags.withDependents ?? false });
      const { planAuthentikObjects } = require("../../components/authentik/plan") as typeof import("../../components/authentik/plan");
      // The proxy also receives the managed CA's root and key (a secrets step the plan alone does not list).
      const { managedCaSecretPlans } = require("../../render/host-data") as typeof import("../../render/host-data");
      const project = (await workspace.projectSettings()).name;
      const healthUrn = (service: string) => targetUrn(stack.name, project, { qualifiedType: "nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:HealthCheck", name: `${service}-health` });
      // What exists matters to what a deploy may create: read the state for preview and up.
      const creating = operation === "preview" || operation === "up";
      const deployedUrns = creating ? new Set((await engine.stateResources(stack, workspace, envVars, onError)).map((resource) => resource.urn)) : null;
      const deployed = (service: string) => deployedUrns === null || deployedUrns.has(healthUrn(service));
      const defaultNode = await engine.stackConfigValue(stack, "nixmox:proxmoxNode");
      const nodes = plan.services.filter((service) => selected!.includes(service.name)).flatMap((service) => service.node ?? defaultNode ?? []);
      const templateDownloaded = !(await engine.stackConfigValue(stack, "nixmox:templateVolumeId"));
      const resources = [
        ...targetResources(selected, { sso: planAuthentikObjects(plan), outposts: plan.outposts, secrets: [...plan.secrets, ...managedCaSecretPlans(plan)], deployed }),
        ...generatedSecretTargets(stackSecretRows(plan, flags.projectDir, stack.name), selected),
        ...sharedTargets(nodes, templateDownloaded),
      ];
      targets = resources.map((resource) => targetUrn(stack.name, project, resource));
      if (deployedUrns !== null) {
        const missing = undeployedDependencies(plan, selected, deployedUrns, healthUrn);
        if (missing.length > 0) {
          const list = missing.map((entry) => `${entry.service} (needed by ${entry.neededBy.join(", ")})`).join(", ");
          io.stderr.write(`nixmox: --only ${selected.join(",")} needs ${list}, not deployed in stack "${stack.name}" yet: add --with-dependencies, or deploy ${missing.length === 1 ? "it" : "them"} first\n`);
          return exitCodes.usage;
        }
      }
      io.stderr.write(`nixmox: ${operation} on stack "${stack.name}" for ${selected.join(", ")} (${targets.length} targets)\n`);
    }
    let unprotect: string[] = [];
    if (operation === "destroy") {
      const selectedUrns = new Set(targets);
      const isProtected = (await engine.protectedResources(stack, workspace, envVars, onError)).filter((resource) => targets.length === 0 || selectedUrns.has(resource.urn));
      if (isProtected.length > 0 && !flags.keepProtected && !flags.removeProtected) {
        plan ??= await stackPlan(stack, flags.projectDir).catch(() => null);
        io.stderr.write(`${protectedMessage(isProtected, plan)}\n`);
        return exitCodes.usage;
      }
      if (flags.removeProtected) unprotect = isProtected.map((resource) => resource.urn);
    }
    const reporter = new Reporter(operation, io, flags.json ?? false, selected ?? undefined);
    let succeeded = false;
    try {
      await engine.runOnStack(stack, workspace, envVars, {
        ...options,
        operation,
        // A preview's diff is its result; the other operations show the progress lines instead.
        ...(operation === "preview" && !flags.json ? { onOutput: (text: string) => io.stdout.write(text) } : {}),
        onEvent: (event) => reporter.event(event),
        targets,
        ...(operation === "destroy" && flags.keepProtected ? { excludeProtected: true } : {}),
        unprotect,
      });
      succeeded = true;
    } finally {
      // The summary (after a preview its diff says it all; with --json the events do).
      if (operation !== "preview" && !flags.json) {
        plan ??= await stackPlan(stack, flags.projectDir).catch(() => null);
        reporter.finish(plan, succeeded, reporter.failed() ? await engine.secretConfigValues(stack) : []);
      }
    }
    return exitCodes.ok;
  } catch (error) {
    if (error instanceof EngineError) {
      io.stderr.write(`nixmox: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof SelectionError || error instanceof ManifestChoiceError) {
      io.stderr.write(`nixmox: ${error.message}\n`);
      return exitCodes.usage;
    }
    throw error;
  }
}

/** Which protected resources stop a destroy, why, and the two explicit ways on. */
export function protectedMessage(resources: Array<{ urn: string; type: string; name: string }>, plan: Plan | null): string {
  // Sorted by name: the state's order is the order of creation, which differs from one deploy to the next.
  const lines = [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((resource) => {
    const service = plan?.services.find((candidate) => resource.name === `${candidate.name}-container`);
    const why = service?.stateful ? `stateful: service "${service.name}" keeps its data in the container`
      : resource.type.endsWith(":RootCa") ? "the homelab's root CA, which every browser and host trusts: a new one must be imported everywhere again"
        : "protected in the state";
    return `  - ${resource.name} (${resource.type.split(":").pop()}${service?.vmid != null ? `, vmid ${service.vmid}` : ""}): ${why}`;
  });
  return [
    `nixmox: destroy stops at ${resources.length} protected resource${resources.length === 1 ? "" : "s"}:`,
    ...lines,
    "Add --keep-protected to destroy everything else and leave these in place, or --remove-protected to unprotect and delete them too (their data is lost).",
  ].join("\n");
}

/**
 * Prints the progress: `--json` writes every engine event as one JSON line on stdout; otherwise one line per
 * service, redrawn in place on a terminal and printed on each change when piped, and a summary at the end.
 */
class Reporter {
  private readonly tracker: ProgressTracker;
  private drawn = 0;
  private lastLines = new Map<string, string>();
  /** On a terminal, the elapsed times keep counting between events. */
  private ticker: NodeJS.Timeout | null = null;

  constructor(
    private readonly operation: EngineOperation,
    private readonly io: EngineIo,
    private readonly json: boolean,
    services?: string[],
  ) {
    this.tracker = new ProgressTracker(services ?? []);
  }

  event(event: EngineEvent): void {
    if (this.json) {
      this.io.stdout.write(`${JSON.stringify(event)}\n`);
      return;
    }
    this.tracker.handle(event);
    if (this.operation === "preview") return;
    if (this.io.stdout.isTTY && this.ticker === null) {
      this.ticker = setInterval(() => this.draw(), 1000);
      this.ticker.unref();
    }
    this.draw();
  }

  private draw(): void {
    const now = Math.floor(Date.now() / 1000);
    const lines = this.tracker.lines(now);
    if (this.io.stdout.isTTY) {
      // Move up over the previous block and rewrite it (ANSI CSI F: cursor to the start of a previous line).
      const up = this.drawn > 0 ? `\u001b[${this.drawn}F` : "";
      this.io.stdout.write(`${up}${lines.map((line) => `${line}\u001b[K`).join("\n")}\n`);
      this.drawn = lines.length;
      return;
    }
    for (const line of lines) {
      const service = line.split(" ")[0];
      const state = line.replace(/\s+\d+s$/, "");
      if (this.lastLines.get(service) === state) continue;
      this.lastLines.set(service, state);
      this.io.stdout.write(`${line}\n`);
    }
  }

  /** Whether the run had a failure (then the summary masks the stack's secret values). */
  failed(): boolean {
    return !this.json && this.tracker.failuresSoFar().length > 0;
  }

  finish(plan: Plan | null, succeeded: boolean, secrets: string[]): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.json) return;
    if (succeeded) {
      this.tracker.complete();
      this.draw();
    }
    const byName = new Map(plan?.services.map((service) => [service.name, service.ip]) ?? []);
    this.io.stdout.write(`${this.tracker.summary({ operation: this.operation, hostOf: (service) => byName.get(service), secrets })}\n`);
  }
}

/** The manifest argument of a command that acts on a stack. */
export const stackManifestArgumentHelp = "optional: the stack's nixmox:manifest, which the command reads anyway (another file is an error)";

/** The options every engine command shares. */
export function engineOptions(command: Command): Command {
  return command
    .option("--stack <name>", "Pulumi stack (default: the Pulumi CLI's selected stack; with preview --offline it only names the URNs)")
    .option("--backend <url>", "state backend URL, or \"local\" for .nixmox/state (default: the Pulumi CLI's current backend)")
    .option("--project-dir <dir>", "directory holding Pulumi.yaml", projectDir)
    .option("--only <names>", "act on these services only (NAME[,NAME|@TAG]; repeatable; @TAG: the services with that manifest tag or kind), through Pulumi targets", (value: string, previous: string[] = []) => [...previous, value])
    .option("--with-dependencies", "with --only: also the services they depend on")
    .option("--with-dependents", "with --only: also the services that depend on them");
}

const descriptions: Record<Exclude<EngineOperation, "preview">, string> = {
  up: "Deploy the stack with the Pulumi engine (Automation API; needs the Pulumi CLI and --yes), with live per-service progress.",
  refresh: "Refresh the stack: re-read containers and re-run liveness checks, writing drift into the state (needs --yes).",
  destroy: "Destroy the stack's resources (needs --yes; protected containers need --keep-protected or --remove-protected).",
};

export function register(program: Command): void {
  for (const operation of ["up", "refresh", "destroy"] as const) {
    const command = engineOptions(program.command(operation).description(descriptions[operation]).argument("[manifest]", stackManifestArgumentHelp))
      .option("--yes", "confirm that the operation may change the homelab")
      .option("--json", "stream the engine's events as JSON lines instead of the progress lines");
    if (operation === "destroy") {
      command
        .option("--keep-protected", "destroy everything except protected (stateful) containers, which stay as they are")
        .option("--remove-protected", "unprotect protected (stateful) containers and delete them too; their data is lost");
    }
    command.action(action(async (manifest: string | undefined, flags: EngineFlags) => engineAction(operation, { ...flags, ...(manifest !== undefined ? { manifest } : {}) })));
  }
}
