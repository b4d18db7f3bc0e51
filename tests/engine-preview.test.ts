// Mock-based, in preview mode (setMocks(…, preview = true)): the whole program as the engine previews a first deploy,
// computed outputs unknown, each dynamic resource's check run from its serialized provider with the engine's
// sentinel for unknown inputs (components/offline-preview.ts). Not proven here: the engine's own Go-side preview
// (its diff and step generation) and what the Proxmox and command providers do in a preview.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { HealthCheck } from "../components/health/health-check";
import { offlineStackConfig, recordProgram, unknownText, type RecordedRun } from "../components/offline-preview";
import { defaultManifestPath } from "../manifest";
import { resourceNamed } from "./support/pulumi-mocks";

const cli = path.join(__dirname, "..", "bin", "nixmox.js");

describe("the program in preview mode (a first deploy's preview)", function () {
  this.timeout(90_000);
  let run: RecordedRun;

  before(async () => {
    const { config, secretKeys } = offlineStackConfig(defaultManifestPath);
    run = await recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys, preview: true });
  });

  it("passes every dynamic resource's serialized check although host keys and generations are unknown", () => {
    const health = resourceNamed(run, "dns-health");
    assert.equal(health.inputs.hostKey, unknownText);
    assert.equal(health.inputs.expectedGeneration, unknownText);
    assert.equal(resourceNamed(run, "dns-ssh").inputs.containerId, unknownText);
    assert.equal(run.resources.filter((resource) => resource.type === "pulumi-nodejs:dynamic/nixmox:HealthCheck").length, 7);
  });

  it("previews the seed-format homelab too: outposts, route-level SSO clients and their token push with unknown inputs", async () => {
    const seed = path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix");
    const { config, secretKeys } = offlineStackConfig(seed);
    const seedRun = await recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys, preview: true });
    assert.equal(seedRun.resources.filter((resource) => resource.type === "nixmox:index:NixosService").length, 11);
    const radius = resourceNamed(seedRun, "sso-authentik-radius");
    assert.equal(radius.type, "pulumi-nodejs:dynamic/nixmox:AuthentikOutpost");
    assert.ok(resourceNamed(seedRun, "sso-authentik-radius-token").secretPaths.includes("stdin"));
    assert.equal(resourceNamed(seedRun, "sso-media-jellyfin").type, "pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp");
  });

  it("previews the older homelab too: containers without vmId, each first contact waiting for the id Proxmox assigns", async () => {
    const older = path.join(__dirname, "..", "manifest", "examples", "older-homelab.nix");
    const { config, secretKeys } = offlineStackConfig(older);
    const olderRun = await recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys, preview: true });
    assert.equal(olderRun.resources.filter((resource) => resource.type === "nixmox:index:NixosService").length, 7);
    const containers = olderRun.resources.filter((resource) => resource.type === "proxmoxve:index/containerLegacy:ContainerLegacy");
    assert.equal(containers.length, 7);
    for (const container of containers) assert.ok(!("vmId" in container.inputs), container.name);
    assert.equal(resourceNamed(olderRun, "media-ssh").plainInputs.firstContact, unknownText);
    assert.equal(resourceNamed(olderRun, "media-guard").inputs.vmid, null);
    assert.equal((olderRun.outputs.services as Record<string, Record<string, unknown>>).media.vmid, unknownText);
  });

  it("shows the stack outputs a first deploy computes as unknown instead of waiting for them", () => {
    const services = run.outputs.services as Record<string, Record<string, unknown>>;
    assert.equal(services.dns.generation, unknownText);
    assert.match(String(services.dns.ip), /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(run.outputs.knownHosts, unknownText);
  });

  it("records every resource's options: containers delete before replacing, children replace with them", () => {
    const container = resourceNamed(run, "postgresql-container");
    assert.deepEqual(container.options, {
      protect: true,
      deleteBeforeReplace: true,
      retainOnDelete: true,
      // In the order the program gives them, as the engine keeps them.
      ignoreChanges: ["operatingSystem", "disk.datastoreId", "initialization.userAccount"],
      replaceOnChanges: [],
      replaceWith: [],
      customTimeouts: null,
      additionalSecretOutputs: [],
    });
    for (const resource of run.resources.filter((candidate) => candidate.type === "proxmoxve:index/containerLegacy:ContainerLegacy")) {
      assert.equal(resource.options.deleteBeforeReplace, true, resource.name);
    }
    assert.deepEqual(resourceNamed(run, "dns-health").options.additionalSecretOutputs, ["privateKey", "maskValues"]);
    // Deadlines are the commands' own inputs: a dynamic provider gets no customTimeouts from the engine.
    assert.deepEqual(Object.fromEntries(["dns-config", "postgresql-secrets", "dns-rebuild"].map((name) => [name, resourceNamed(run, name).plainInputs.timeoutSeconds])), { "dns-config": 600, "postgresql-secrets": 600, "dns-rebuild": 2700 });
    const rebuild = resourceNamed(run, "dns-rebuild");
    assert.equal(rebuild.options.customTimeouts, null);
    assert.deepEqual(rebuild.options.replaceWith, [resourceNamed(run, "dns-container").urn]);
  });

  it("reports a dynamic resource its provider's check refuses, like the engine, naming the resource and the field", async () => {
    const program = async () => {
      new HealthCheck("web-health", {
        service: "web",
        host: "127.0.0.1",
        privateKey: "key",
        hostKey: "ssh-ed25519 not-base64!",
        health: { checks: [], intervalSeconds: 1, timeoutSeconds: 1, retries: 1, startPeriodSeconds: 0 },
      });
      return {};
    };
    await assert.rejects(recordProgram(program, { config: {}, secretKeys: [], preview: true }), {
      message: [
        "the engine would refuse this resource (dynamic provider check):",
        '  - pulumi-nodejs:dynamic/nixmox:HealthCheck web-health: hostKey: service "web": hostKey must look like "ssh-ed25519 AAAA…", got "ssh-ed25519 not-base64!"',
      ].join("\n"),
    });
  });

  it("nixmox preview --offline --json prints unknowns as \"[unknown]\" and each resource's options", () => {
    const result = spawnSync(process.execPath, [cli, "preview", "--offline", "--json"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.status, 0, result.stderr);
    const parsed = JSON.parse(result.stdout) as { resources: { name: string; options: Record<string, unknown>; inputs: Record<string, unknown> }[] };
    const health = parsed.resources.find((resource) => resource.name === "dns-health")!;
    assert.equal(health.inputs.hostKey, "[unknown]");
    assert.deepEqual(Object.keys(health.options).sort(), ["additionalSecretOutputs", "customTimeouts", "deleteBeforeReplace", "ignoreChanges", "protect", "replaceOnChanges", "replaceWith", "retainOnDelete"]);
    assert.equal(parsed.resources.find((resource) => resource.name === "dns-container")!.options.deleteBeforeReplace, true);
  });
});
