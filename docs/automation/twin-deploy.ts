/**
 * Deploys a NixMox manifest into the homelab twin and tears it down again, with Pulumi's Automation API, as a
 * user's own script would drive NixMox (docs/twin.md, "Scripting"). Run as root (the twin makes network namespaces):
 *
 *   sudo npx tsx docs/automation/twin-deploy.ts path/to/service-manifest.nix
 *
 * What it does: starts a twin (twin/homelab.ts: a Proxmox VE API twin, a Pulumi project running NixMox's index.ts,
 * a file backend, a stack configured for the twin), selects that stack with `LocalWorkspace.selectStack`, runs
 * `stack.up({ onOutput })`, prints the update's resource changes and the services' health, runs `stack.destroy()`
 * (leaving what NixMox protects: the managed CA's root), and stops the twin. The test that runs this script is tests/twin-automation.test.ts.
 *
 * In a homelab project that depends on NixMox, import from "nixmox/dist/twin/homelab" instead.
 */
import { LocalWorkspace, PulumiCommand, type Stack } from "@pulumi/pulumi/automation";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { startTwinHomelab, type TwinHomelab } from "../../twin/homelab";

export interface TwinDeployOptions {
  /** The service manifest to deploy. */
  manifest: string;
  /** Where the twin keeps its state. @default a new folder under the system's temp folder */
  stateDir?: string;
  /** Names the twin's network namespaces (2-12 lowercase letters and digits). @default "nxauto" */
  prefix?: string;
  /** Engine output, as `pulumi up` prints it. @default written to stdout */
  onOutput?: (text: string) => void;
  /** Called after the up and after the destroy, while the twin still runs (a test looks at it there). */
  afterUp?: (homelab: TwinHomelab, stack: Stack) => Promise<void> | void;
  afterDestroy?: (homelab: TwinHomelab, stack: Stack) => Promise<void> | void;
}

export async function twinDeploy(options: TwinDeployOptions): Promise<{ changes: Record<string, number>; destroyed: Record<string, number> }> {
  const homelab = await startTwinHomelab({
    projectRoot: path.resolve(__dirname, "..", ".."),
    manifest: options.manifest,
    stateDir: options.stateDir ?? mkdtempSync(path.join(tmpdir(), "nixmox-twin-automation-")),
    prefix: options.prefix ?? "nxauto",
  });
  try {
    // The real Pulumi CLI, run inside the twin's world (where the hosts' private addresses exist).
    const pulumiCommand = await PulumiCommand.get({ root: homelab.pulumiRoot, skipVersionCheck: true });
    const stack = await LocalWorkspace.selectStack({ stackName: homelab.stack, workDir: homelab.projectDir }, { pulumiCommand, envVars: homelab.env });
    const onOutput = options.onOutput ?? ((text: string) => process.stdout.write(text));

    const up = await stack.up({ onOutput });
    await options.afterUp?.(homelab, stack);

    // NixMox protects its managed CA's root key (and stateful containers): a destroy leaves them in the stack, as
    // `nixmox destroy --keep-protected` does. The twin itself goes with `homelab.stop()`.
    const destroy = await stack.destroy({ onOutput, excludeProtected: true });
    await options.afterDestroy?.(homelab, stack);
    return { changes: up.summary.resourceChanges ?? {}, destroyed: destroy.summary.resourceChanges ?? {} };
  } finally {
    await homelab.stop({ remove: options.stateDir === undefined });
  }
}

if (require.main === module) {
  const manifest = process.argv[2];
  if (!manifest) {
    process.stderr.write("usage: sudo npx tsx docs/automation/twin-deploy.ts MANIFEST\n");
    process.exit(2);
  }
  twinDeploy({
    manifest,
    afterUp: async (_homelab, stack) => {
      const services = (await stack.outputs()).services?.value as Record<string, { healthy: boolean }>;
      for (const [name, state] of Object.entries(services)) process.stdout.write(`${name}: ${state.healthy ? "healthy" : "NOT healthy"}\n`);
    },
  }).then(
    ({ changes, destroyed }) => process.stdout.write(`up: ${JSON.stringify(changes)}\ndestroy: ${JSON.stringify(destroyed)}\n`),
    (error: unknown) => {
      process.stderr.write(`twin-deploy: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
