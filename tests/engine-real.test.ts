// The real engine: the Pulumi CLI 3.276.0, our language host and the proxmoxve plugin (bpg's provider through the
// bridge) that tools/engine/build.sh builds from the Go module proxy, running NixMox's own index.ts on a file backend.
// What it does not prove: anything a Proxmox API answers (the twin tests do), nor the hosts (they are not reached).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { offlineSecretPlaceholders, type ResourceOptionsRecord } from "../components/offline-preview";
import { planAuthentikObjects } from "../components/authentik/plan";
import { checkSecrets, readStackFileSecretStates } from "../components/secrets";
import { loadPlan } from "../manifest";
import { managedCaSecretPlans } from "../render/host-data";
import { generatedSecretTargets, selectServices, sharedTargets, targetResources, targetUrn } from "../cli/select";
import { exampleManifestData, writeManifest } from "./support/pulumi-mocks";
import { createEngineProject, oldPulumiCliBin, parsePreview, readPlanGoals, realEngineBin, repoDir, startRecordingEndpoint, type EngineProject, type EngineState } from "./support/real-engine";

const examples = {
  "the example homelab": path.join(repoDir, "manifest", "service-manifest.nix"),
  "the seed-format homelab": path.join(repoDir, "manifest", "examples", "seed-homelab.nix"),
};

/** The fields `nixmox preview --offline --json` and the engine's preview both state, per resource. */
interface ComparableRecord {
  urn: string;
  type: string;
  parent: string | null;
  provider: string | null;
  custom: boolean;
  dependsOn: string[];
  options: ResourceOptionsRecord;
}

/**
 * A step's new state in the offline preview's terms (the provider reference without its id, lists as given).
 * The state keeps no deleteBeforeReplace: that comes from the goal the engine saves with `--save-plan`.
 */
function fromEngine(state: EngineState, goal: { deleteBeforeReplace?: boolean } | undefined): ComparableRecord {
  const provider = state.provider ? state.provider.slice(0, state.provider.lastIndexOf("::")) : null;
  return {
    urn: state.urn,
    type: state.type,
    parent: state.parent ?? null,
    provider: state.custom && !state.type.startsWith("pulumi:providers:") ? provider : null,
    custom: state.custom ?? false,
    dependsOn: [...new Set(state.dependencies ?? [])].sort(),
    options: {
      protect: state.protect ?? false,
      deleteBeforeReplace: goal?.deleteBeforeReplace ?? false,
      retainOnDelete: state.retainOnDelete ?? false,
      ignoreChanges: state.ignoreChanges ?? [],
      replaceOnChanges: state.replaceOnChanges ?? [],
      replaceWith: state.replaceWith ?? [],
      customTimeouts: state.customTimeouts ?? null,
      additionalSecretOutputs: state.additionalSecretOutputs ?? [],
    },
  };
}

function offlinePreview(manifest: string, stack: string): ComparableRecord[] {
  const result = spawnSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), "preview", "--offline", "--json", "--stack", stack, manifest], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  assert.equal(result.status, 0, result.stderr);
  const document = JSON.parse(result.stdout) as { resources: Array<ComparableRecord & Record<string, unknown>> };
  return document.resources.map(({ urn, type, parent, provider, custom, dependsOn, options }) => ({ urn, type, parent, provider, custom, dependsOn, options }));
}

describe("the real Pulumi engine runs index.ts", function () {
  // The first call may build the engine from the Go module proxy.
  this.timeout(1_800_000);

  before(() => {
    realEngineBin();
  });

  for (const [label, manifest] of Object.entries(examples)) {
    describe(`pulumi preview of ${label} on a fresh stack`, () => {
      let project: EngineProject;
      let endpoint: Awaited<ReturnType<typeof startRecordingEndpoint>>;
      let steps: ReturnType<typeof parsePreview>["steps"];
      let goals: Record<string, { deleteBeforeReplace?: boolean }>;

      before(async () => {
        endpoint = await startRecordingEndpoint();
        project = createEngineProject("homelab");
        const plan = await loadPlan(manifest);
        const placeholders = offlineSecretPlaceholders(plan)["nixmox:secrets"];
        project.configure({ manifest, endpoint: endpoint.url, secrets: placeholders ? JSON.parse(placeholders) : {} });
        const planFile = path.join(project.dir, "plan.json");
        const preview = project.pulumi(["preview", "--json", "--stack", "homelab", "--save-plan", planFile]);
        steps = parsePreview(preview.stdout).steps;
        goals = readPlanGoals(planFile);
      });
      after(async () => {
        project?.remove();
        await endpoint?.stop();
      });

      it("creates every resource, and asks the Proxmox API nothing: a first deploy's preview needs no endpoint", () => {
        assert.ok(steps.length > 10, `${steps.length} steps`);
        assert.deepEqual([...new Set(steps.map((step) => step.op))], ["create"]);
        assert.deepEqual(endpoint.requests, []);
      });

      it("registers exactly the resources, parents, providers, dependencies and options of nixmox preview --offline --json for the same stack", () => {
        const engine = steps.map((step) => fromEngine(step.newState!, goals[step.urn])).sort((a, b) => (a.urn < b.urn ? -1 : a.urn > b.urn ? 1 : 0));
        const offline = offlinePreview(manifest, "homelab");
        assert.deepEqual(offline.map((record) => record.urn), engine.map((record) => record.urn));
        const differences: string[] = [];
        for (let index = 0; index < engine.length; index++) {
          const [ours, theirs] = [offline[index] as unknown as Record<string, unknown>, engine[index] as unknown as Record<string, unknown>];
          for (const key of Object.keys(theirs)) {
            const [a, b] = key === "options" ? [ours.options, theirs.options] as Record<string, unknown>[] : [{ [key]: ours[key] }, { [key]: theirs[key] }];
            for (const field of Object.keys(b)) {
              if (JSON.stringify(a[field]) !== JSON.stringify(b[field])) differences.push(`${engine[index].urn.split("::").pop()} ${field}: offline ${JSON.stringify(a[field])}, engine ${JSON.stringify(b[field])}`);
            }
          }
        }
        assert.deepEqual(differences, []);
      });
    });
  }

  describe("one state: nixmox and pulumi act on the same project, stack, config and state", () => {
    const manifest = examples["the example homelab"];
    let project: EngineProject;

    before(async () => {
      project = createEngineProject("homelab", false);
    });
    after(() => project?.remove());

    it("nixmox stack init creates the stack pulumi lists and selects", () => {
      const init = project.nixmox(["stack", "init", "homelab", "--project-dir", project.dir]);
      assert.equal(init.status, 0, init.stderr);
      const stacks = JSON.parse(project.pulumi(["stack", "ls", "--json"]).stdout) as Array<{ name: string; current: boolean }>;
      assert.deepEqual(stacks.map((stack) => [stack.name, stack.current]), [["homelab", true]]);
    });

    it("nixmox secrets check reads what pulumi config set wrote, and names what is missing", async () => {
      const plan = await loadPlan(manifest);
      project.configure({ manifest, endpoint: "https://127.0.0.1:9/", secrets: JSON.parse(offlineSecretPlaceholders(plan)["nixmox:secrets"] ?? "{}") });
      const complete = project.nixmox(["secrets", "check", "--stack", "homelab", "--project-dir", project.dir]);
      assert.equal(complete.status, 0, complete.stdout + complete.stderr);
      assert.match(complete.stdout, /nixmox:sshPrivateKey\s+set/);
      project.pulumi(["config", "rm", "--stack", "homelab", "nixmox:sshPrivateKey"]);
      const missing = project.nixmox(["secrets", "check", "--stack", "homelab", "--project-dir", project.dir]);
      assert.equal(missing.status, 1, missing.stdout + missing.stderr);
      assert.match(missing.stdout + missing.stderr, /nixmox:sshPrivateKey[^\n]*missing/);
      project.configure({ manifest, endpoint: "https://127.0.0.1:9/" });
    });

    it("nixmox preview (the Automation API) sees the state a plain pulumi up wrote", () => {
      // Only what needs no Proxmox: the generated secrets and the managed CA, written by the real engine.
      const stateful = ["pulumi-nodejs:dynamic/nixmox:GeneratedSecret::secret-authentik-secret_key", "nixmox:index:ManagedCa::nixmox-ca", "nixmox:index:ManagedCa$pulumi-nodejs:dynamic/nixmox:RootCa::nixmox-ca-root"]
        .map((tail) => `urn:pulumi:homelab::nixmox::${tail}`);
      project.pulumi(["up", "--yes", "--stack", "homelab", ...stateful.flatMap((urn) => ["--target", urn])]);
      const preview = project.nixmox(["preview", "--json", "--stack", "homelab", "--project-dir", project.dir]);
      assert.equal(preview.status, 0, preview.stderr);
      const ops = new Map<string, string>();
      for (const line of preview.stdout.split("\n").filter((text) => text.startsWith("{"))) {
        const event = JSON.parse(line) as { resourcePreEvent?: { metadata: { op: string; urn: string } } };
        if (event.resourcePreEvent) ops.set(event.resourcePreEvent.metadata.urn, event.resourcePreEvent.metadata.op);
      }
      for (const urn of stateful) assert.equal(ops.get(urn), "same", urn);
      assert.equal(ops.get("urn:pulumi:homelab::nixmox::nixmox:index:NixosService$proxmoxve:index/containerLegacy:ContainerLegacy::dns-container"), "create");
      const plain = parsePreview(project.pulumi(["preview", "--json", "--show-sames", "--stack", "homelab"]).stdout);
      assert.deepEqual(plain.steps.filter((step) => stateful.includes(step.urn)).map((step) => step.op), ["same", "same", "same"]);
    });

    it("a network.domain edit, previewed on that state: the root's check refuses it with the steps; with nixmox:rotateRootCa the root and its intermediate are replaced", async () => {
      const data = await exampleManifestData();
      const edited = writeManifest({ ...data, network: { ...(data.network as Record<string, unknown>), domain: "home.arpa" } });
      try {
        project.pulumi(["config", "set", "--stack", "homelab", "nixmox:manifest", edited.path]);
        const refused = project.pulumi(["preview", "--json", "--stack", "homelab"], { allowFailure: true });
        assert.notEqual(refused.status, 0);
        const errors = (parsePreview(refused.stdout).diagnostics ?? []).filter((diagnostic) => diagnostic.severity === "error").map((diagnostic) => diagnostic.message);
        assert.ok(errors.some((message) => /the homelab's root CA may vouch only for nixmox\.lan; the manifest now needs home\.arpa, .*nixmox:rotateRootCa true/.test(message)), errors.join("\n"));
        project.pulumi(["config", "set", "--stack", "homelab", "nixmox:rotateRootCa", "true"]);
        const rotated = parsePreview(project.pulumi(["preview", "--json", "--stack", "homelab"]).stdout);
        const opOf = (name: string) => rotated.steps.filter((step) => step.urn.endsWith(`::${name}`)).map((step) => step.op);
        assert.deepEqual(opOf("nixmox-ca-root"), ["replace"]);
        assert.deepEqual(opOf("nixmox-ca-intermediate"), ["create"]);
      } finally {
        project.pulumi(["config", "set", "--stack", "homelab", "nixmox:manifest", manifest]);
        project.pulumi(["config", "rm", "--stack", "homelab", "nixmox:rotateRootCa"]);
        edited.remove();
      }
    });
  });

  describe("targets: nixmox preview --only makes the real engine act on exactly what cli/select.ts computes", () => {
    const manifest = examples["the example homelab"];
    let project: EngineProject;

    before(async () => {
      project = createEngineProject("homelab");
      const plan = await loadPlan(manifest);
      project.configure({ manifest, endpoint: "https://127.0.0.1:9/", secrets: JSON.parse(offlineSecretPlaceholders(plan)["nixmox:secrets"] ?? "{}") });
    });
    after(() => project?.remove());

    const cases: Array<[string, string[]]> = [["dns", []], ["dns", ["--with-dependents"]], ["vaultwarden", ["--with-dependencies"]], ["postgresql", ["--with-dependencies"]]];
    for (const [only, flags] of cases) {
      it(`--only ${only} ${flags.join(" ")} on a first deploy: the engine creates the selected services, their secrets, the CA and the template, nothing else`, async () => {
        const plan = await loadPlan(manifest);
        const selected = selectServices(plan, { only: [only], withDependents: flags.includes("--with-dependents"), withDependencies: flags.includes("--with-dependencies") });
        const expected = [
          ...targetResources(selected, { sso: planAuthentikObjects(plan), outposts: plan.outposts, secrets: [...plan.secrets, ...managedCaSecretPlans(plan)], deployed: () => false }),
          ...generatedSecretTargets(checkSecrets(plan, readStackFileSecretStates(project.dir, "homelab")), selected),
          ...sharedTargets(["pve"], true),
        ].map((resource) => targetUrn("homelab", "nixmox", resource));
        const preview = project.nixmox(["preview", "--json", "--stack", "homelab", "--project-dir", project.dir, "--only", only, ...flags]);
        assert.equal(preview.status, 0, preview.stderr);
        const created: string[] = [];
        for (const line of preview.stdout.split("\n").filter((text) => text.startsWith("{"))) {
          const event = JSON.parse(line) as { resourcePreEvent?: { metadata: { op: string; urn: string; type: string } } };
          const step = event.resourcePreEvent?.metadata;
          // The stack and the providers are created with any target (the engine targets providers itself).
          if (step && step.op === "create" && step.type !== "pulumi:pulumi:Stack" && !step.type.startsWith("pulumi:providers:")) created.push(step.urn);
        }
        assert.deepEqual(created.sort(), [...new Set(expected)].sort());
        const offline = project.nixmox(["preview", "--offline", "--json", "--stack", "homelab", manifest, "--only", only, ...flags]);
        const marked = (JSON.parse(offline.stdout) as { resources: Array<{ urn: string; targeted?: boolean }> }).resources.filter((resource) => resource.targeted).map((resource) => resource.urn);
        assert.deepEqual(marked.sort(), [...new Set(expected)].sort());
      });
    }

    it("refuses --only postgresql --with-dependents on a first deploy before the engine runs, naming what is not deployed and the fix", () => {
      const preview = project.nixmox(["preview", "--stack", "homelab", "--project-dir", project.dir, "--only", "postgresql", "--with-dependents"]);
      assert.equal(preview.status, 2, preview.stdout + preview.stderr);
      assert.equal(preview.stderr, 'nixmox: --only authentik,guacamole,homepage,postgresql,vaultwarden needs caddy (needed by guacamole, homepage, vaultwarden), dns (needed by authentik, guacamole, homepage, postgresql, vaultwarden), not deployed in stack "homelab" yet: add --with-dependencies, or deploy them first\n');
    });
  });

  describe("an older Pulumi CLI (3.206.0, built from the proxy like the rest): refused, with one message and no stack trace", () => {
    const manifest = examples["the example homelab"];
    let project: EngineProject;
    let olderPath: string;

    before(async () => {
      project = createEngineProject("homelab");
      const plan = await loadPlan(manifest);
      project.configure({ manifest, endpoint: "https://127.0.0.1:9/", secrets: JSON.parse(offlineSecretPlaceholders(plan)["nixmox:secrets"] ?? "{}") });
      // The old CLI first on PATH; the language host and plugins stay the ones built with 3.276.0.
      olderPath = [oldPulumiCliBin(), project.env.PATH].join(path.delimiter);
    });
    after(() => project?.remove());

    it("is found as 3.206.0 and refused by nixmox before any engine call (exit 2), naming the minimum", () => {
      const env = { ...project.env, PATH: olderPath };
      assert.equal(spawnSync("pulumi", ["version"], { env, encoding: "utf8" }).stdout.trim(), "v3.206.0");
      const preview = spawnSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), "preview", "--stack", "homelab", "--project-dir", project.dir], { cwd: project.dir, env, encoding: "utf8", timeout: 300_000 });
      assert.equal(preview.status, 2, preview.stdout + preview.stderr);
      assert.equal(preview.stderr, "nixmox: NixMox needs the Pulumi CLI 3.207.0 or newer (the replaceWith resource option, pulumi/pulumi#20693); this one is 3.206.0: update it: https://www.pulumi.com/docs/install/\n");
    });

    it("stops the program under its engine before any resource: plain pulumi preview prints the same reason, not a stack trace", () => {
      const env = { ...project.env, PATH: olderPath };
      const preview = spawnSync("pulumi", ["preview", "--stack", "homelab", "--json"], { cwd: project.dir, env, encoding: "utf8", timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
      assert.notEqual(preview.status, 0);
      const result = JSON.parse(preview.stdout) as { steps?: Array<{ urn: string }>; diagnostics?: Array<{ message: string; severity: string }> };
      // Nothing of NixMox's is registered; the stack's own step shows or not, as the failing program races the engine.
      assert.deepEqual((result.steps ?? []).filter((step) => !step.urn.endsWith("::nixmox-homelab")).map((step) => step.urn), [], "nothing but the stack itself");
      const errors = (result.diagnostics ?? []).filter((diagnostic) => diagnostic.severity === "error").map((diagnostic) => diagnostic.message.trim());
      assert.deepEqual(errors, ["error: NixMox needs the Pulumi CLI 3.207.0 or newer (the replaceWith resource option, pulumi/pulumi#20693); the CLI running this program does not support it: update it: https://www.pulumi.com/docs/install/"]);
    });
  });
});
