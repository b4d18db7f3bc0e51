/**
 * What NixMox needs from the Pulumi engine, checked up front so that an older CLI gets one message naming the
 * version, not a failure per resource.
 *
 * Every child inside a container uses the `replaceWith` resource option (components/nixos-service.ts). The engine
 * feature arrived in Pulumi 3.207.0 (pulumi/pulumi#20693, "Freeze v3.207.0" pulumi/pulumi#20919). On an older CLI
 * the SDK throws "The Pulumi CLI does not support the ReplaceWith option" at each registration
 * (@pulumi/pulumi runtime/resource.js), after resources before it may already have been registered.
 */
import * as pulumi from "@pulumi/pulumi";
import type { PulumiCommand } from "@pulumi/pulumi/automation";

/** The first Pulumi CLI whose engine supports `replaceWith`. */
export const minimumPulumiCliVersion = "3.207.0";

const reason = `NixMox needs the Pulumi CLI ${minimumPulumiCliVersion} or newer (the replaceWith resource option, pulumi/pulumi#20693)`;
const install = "update it: https://www.pulumi.com/docs/install/";

/**
 * The Pulumi CLI for the Automation API (`LocalWorkspace.create({ pulumiCommand })`), refused when older than
 * `minimumPulumiCliVersion` (`PulumiCommand.get({ version })` runs `pulumi version`).
 * @param options.root a directory holding `bin/pulumi`; @default the `pulumi` on the PATH
 */
export async function requirePulumiCli(options: { root?: string } = {}): Promise<PulumiCommand> {
  const { PulumiCommand } = require("@pulumi/pulumi/automation") as typeof import("@pulumi/pulumi/automation");
  const { SemVer } = require("semver") as typeof import("semver");
  try {
    return await PulumiCommand.get({ version: new SemVer(minimumPulumiCliVersion), ...(options.root ? { root: options.root } : {}) });
  } catch (error) {
    const message = String((error as Error)?.message ?? error);
    const found = /your current CLI version is (\S+?)\.?(\s|$)/.exec(message);
    if (found) throw new Error(`${reason}; this one is ${found[1].replace(/^v/, "")}: ${install}`);
    if (/ENOENT/.test(message)) throw new Error(`the Pulumi CLI is not installed; ${reason}: https://www.pulumi.com/docs/install/`);
    throw error;
  }
}

/**
 * Inside the program (before any resource): fails with one message when the engine running it does not support
 * `replaceWith`. Asks the resource monitor with `SupportsFeature("replaceWith")`, the probe the SDK itself falls
 * back to for older engines (runtime/settings.js `legacyFeatureMapping`); outside an engine there is nothing to ask.
 */
export async function requireReplaceWithSupport(): Promise<void> {
  const monitor = pulumi.runtime.getMonitor() as unknown as
    | { supportsFeature(request: unknown, callback: (error: Error | null, response?: { getHassupport(): boolean }) => void): void }
    | undefined;
  if (!monitor) return;
  const { SupportsFeatureRequest } = require("@pulumi/pulumi/proto/resource_pb") as { SupportsFeatureRequest: new () => { setId(id: string): void } };
  const request = new SupportsFeatureRequest();
  request.setId("replaceWith");
  const supported = await new Promise<boolean>((resolve, reject) =>
    monitor.supportsFeature(request, (error, response) => (error ? reject(error) : resolve(response?.getHassupport() === true))),
  );
  if (!supported) throw new Error(`${reason}; the CLI running this program does not support it: ${install}`);
}
