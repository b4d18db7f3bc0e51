import type { Command } from "commander";
import * as path from "node:path";
import { existsSync } from "node:fs";
import { ttyStatusLine } from "../progress";
import { action, allowPathOption, exitCodes, loadOptions, manifestModule, print } from "../run";
import { engineQualifiedType, generatedSecretTargets, parseOnly, selectServices, sharedTargets, targetResources, SelectionError } from "../select";
import { manifestForStack, offlineLoadOptions, projectDefaultManifest, stackFile, stackManifest } from "../stack-manifest";
import { expandTags } from "../tags";
import { engineAction, engineOptions, type EngineFlags } from "./engine";

interface PreviewFlags extends EngineFlags {
  offline?: boolean;
  allowPath?: string[];
}

export function register(program: Command): void {
  const command = program
    .command("preview")
    .description(
      "Show what a deploy would change. --offline runs the real program under Pulumi mocks with built-in, clearly fake " +
        "Proxmox settings and a throwaway key (no Proxmox, no Pulumi CLI, no stack config) and prints the exact resource " +
        "tree; without it, the Pulumi engine previews the stack (Automation API; needs the Pulumi CLI).",
    )
    .argument("[manifest]", "the stack's nixmox:manifest (another file is an error); with --offline any manifest file (.nix, .json, .yaml), default the stack's when its Pulumi.<stack>.yaml exists, else the project's")
    .option("--offline", "run under mocks instead of the engine")
    .option("--json", "with --offline: { resources: [{ urn, type, name, parent, provider, custom, dependsOn, protect, options, inputs, targeted? }] }, secrets as \"[secret]\", values a first deploy computes as \"[unknown]\"; without: the engine's events as JSON lines");
  allowPathOption(engineOptions(command)).action(action(async (manifest: string | undefined, options: PreviewFlags) => {
    if (!options.offline) {
      if ((options.allowPath ?? []).length > 0) {
        process.stderr.write("nixmox: --allow-path goes with --offline; the engine preview reads nixmox:manifestAllowPaths from the stack config\n");
        return exitCodes.usage;
      }
      return engineAction("preview", { ...options, ...(manifest !== undefined ? { manifest } : {}) });
    }
    if (options.backend !== undefined) {
      process.stderr.write("nixmox: --offline uses no backend (built-in fake settings); drop --backend, or drop --offline to preview the stack\n");
      return exitCodes.usage;
    }
    // --stack names the URNs; a stack that has a config file also gives its manifest (one manifest everywhere).
    const stack = options.stack;
    const manifestPath = stack !== undefined && existsSync(stackFile(options.projectDir, stack))
      ? manifestForStack(manifest, stack, stackManifest(options.projectDir, stack))
      : manifest ?? projectDefaultManifest(options.projectDir);
    return offlinePreview(manifestPath, options);
  }));
}

async function offlinePreview(manifestPath: string, options: PreviewFlags): Promise<number> {
  const only = parseOnly(options.only ?? []);
  if (only.length === 0 && (options.withDependencies || options.withDependents)) {
    process.stderr.write("nixmox: --with-dependencies and --with-dependents extend an --only selection; add --only NAME\n");
    return exitCodes.usage;
  }
  // The plan is loaded once here so that secrets the real stack must set get offline placeholders.
  // With a stack that has a config file, its nixmox:manifestAllowPaths too, as for its manifest.
  const fromStack = options.stack !== undefined && existsSync(stackFile(options.projectDir, options.stack));
  const { allowPaths } = fromStack ? offlineLoadOptions(options) : loadOptions(options);
  const plan = await manifestModule().loadPlan(manifestPath, { allowPaths });
  let selected: string[] | null = null;
  try {
    if (only.length > 0) selected = selectServices(plan, { only: expandTags(plan, only), withDependencies: options.withDependencies ?? false, withDependents: options.withDependents ?? false });
  } catch (error) {
    if (!(error instanceof SelectionError)) throw error;
    process.stderr.write(`nixmox: ${error.message}\n`);
    return exitCodes.usage;
  }
  // The Pulumi SDK and the program load here, for this command only.
  const offline = require("../../components/offline-preview") as typeof import("../../components/offline-preview");
  // Where each host builds (issue 18): the engine's preview prints it as an info line; here it goes to a terminal's
  // stderr (piped output stays the tree or the JSON alone; `nixmox plan` says it too, and the tree lists the builds).
  if (process.stderr.isTTY) process.stderr.write(`nixmox: ${plan.build.message}\n`);
  const placeholders = offline.offlineSecretPlaceholders(plan);
  const { config, secretKeys } = offline.offlineStackConfig(path.resolve(manifestPath), {
    ...placeholders,
    ...(allowPaths.length > 0 ? { "nixmox:manifestAllowPaths": JSON.stringify(allowPaths) } : {}),
  });
  // As `pulumi config set --secret` would store them (plain-text secrets are refused by the program).
  secretKeys.push(...Object.keys(placeholders));
  // On a terminal, a one-line counter of registered resources while the program runs under mocks.
  const line = ttyStatusLine(process.stderr);
  let count = 0;
  const started = Date.now();
  line.update("running the program under mocks…");
  const progress = {
    registered: (name: string) => line.update(`registering resources: ${++count} (${name}) ${((Date.now() - started) / 1000).toFixed(1)}s`),
    done: () => line.done(),
  };
  const nixmoxProgram = require("../../index") as () => Promise<unknown>;
  let run;
  try {
    // --stack only names the URNs as the engine would for that stack (its config is not read: settings are fake).
    const stack = options.stack?.split("/").pop();
    run = await offline.recordProgram(nixmoxProgram, { config, secretKeys, preview: true, onRegister: progress.registered, ...(stack ? { stack } : {}) });
  } finally {
    progress.done();
  }
  if (selected === null) {
    print(options.json ? offline.renderPreviewJson(run.resources) : offline.renderPreviewTree(run.resources));
    return exitCodes.ok;
  }
  const { planAuthentikObjects } = require("../../components/authentik/plan") as typeof import("../../components/authentik/plan");
  // The proxy also receives the managed CA's root and key (a secrets step the plan alone does not list).
  const { managedCaSecretPlans } = require("../../render/host-data") as typeof import("../../render/host-data");
  // Offline, the stack sets no secret: every generatable one is generated (a placeholder stands for the rest).
  const { checkSecrets } = require("../../components/secrets") as typeof import("../../components/secrets");
  const wanted = new Set(
    [
      // Offline is a first deploy: nothing is deployed yet.
      ...targetResources(selected, { sso: planAuthentikObjects(plan), outposts: plan.outposts, secrets: [...plan.secrets, ...managedCaSecretPlans(plan)], deployed: () => false }),
      ...generatedSecretTargets(checkSecrets(plan, {}), selected),
      // The offline settings download the template to node "pve" (components/offline-preview.ts offlineStackConfig).
      ...sharedTargets(plan.services.filter((service) => selected!.includes(service.name)).map((service) => service.node ?? config["nixmox:proxmoxNode"]), true),
    ].map((resource) => `${resource.qualifiedType}::${resource.name}`),
  );
  const targeted = new Set(run.resources.filter((resource) => wanted.has(`${engineQualifiedType(resource.urn)}::${resource.name}`)).map((resource) => resource.urn));
  if (options.json) {
    const { stableJson } = require("../../render/stable-json") as typeof import("../../render/stable-json");
    const document = JSON.parse(offline.renderPreviewJson(run.resources)) as { resources: Array<{ urn: string; targeted?: boolean }> };
    for (const resource of document.resources) if (targeted.has(resource.urn)) resource.targeted = true;
    print(stableJson(document));
  } else {
    print(offline.renderPreviewTree(run.resources));
    print(`--only ${selected.join(",")}: ${targeted.size} of ${run.resources.length} resources are targeted (--json marks them "targeted": true)`);
  }
  return exitCodes.ok;
}
