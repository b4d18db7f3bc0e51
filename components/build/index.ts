/**
 * Build once, copy closures (issue 18): the program's stage that decides what the build resources need. The
 * resources themselves are children of each NixosService (`<name>-build`, `<name>-copy`).
 */
import * as pulumi from "@pulumi/pulumi";
import { hasEngine } from "@pulumi/pulumi/runtime/settings";
import type { Plan } from "../../manifest/plan-types";
import type { RenderOptions } from "../../render";
import { controllerNixProblems, readControllerNix } from "./controller";
import { BuildSigningKey } from "./signing-key";

/** True when some host's system is built off the host (the stack then needs a signing key). */
export function buildsElsewhere(plan: Plan): boolean {
  return Object.values(plan.build.hosts).some((place) => place !== "target");
}

/**
 * Says where hosts build (pulumi preview and up print it), checks this machine's Nix for build.on = "controller",
 * and creates the stack's signing key when some host's system is built elsewhere (undefined otherwise).
 */
export function createBuildSigningKey(plan: Plan, config: pulumi.Config): { publicKey: pulumi.Output<string>; secretKey: pulumi.Output<string> } | undefined {
  // Under the engine it is a line of the preview and of up; `nixmox preview --offline` prints it itself (its stdout is
  // the resource tree or JSON, where the SDK would print an engine-less log line).
  if (hasEngine()) pulumi.log.info(plan.build.message);
  if (plan.build.mode === "controller" && buildsElsewhere(plan)) {
    const problems = controllerNixProblems(readControllerNix());
    if (problems.length > 0) throw new Error(problems.join("\n"));
  }
  if (!buildsElsewhere(plan)) return undefined;
  const key = new BuildSigningKey("nixmox-build-signing-key", { name: `nixmox-${pulumi.getStack()}-1`, given: config.getSecret("buildSigningKey") ?? "" });
  return { publicKey: key.publicKey, secretKey: key.secretKey };
}

/** Render options with the signing key's public half (every host trusts it), when there is one. */
export function renderOptionsWithKey(options: RenderOptions, key: { publicKey: pulumi.Output<string> } | undefined): pulumi.Input<RenderOptions> {
  if (!key) return options;
  // Unknown in a first preview (the key does not exist yet), and empty under the offline mocks: no key then.
  return key.publicKey.apply((publicKey) => (publicKey ? { ...options, buildSigningPublicKey: publicKey } : options));
}

/** Builds at once on the controller: its cores. */
export function controllerSlots(): number {
  const os = require("node:os") as typeof import("node:os");
  return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
}
