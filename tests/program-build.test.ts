// Mock-based: the program (index.ts) under Pulumi mocks with a builder service in the example homelab. What the mocks
// do not prove: that a build or copy works (tests/build-copy.test.ts runs them against real Nix and OpenSSH), the
// engine's real order at run time, or a first deploy's unknowns (the mocks resolve every output at once).
import { strict as assert } from "node:assert";
import { childrenOf, exampleManifestData, resourceNamed, runNixmoxProgram, writeManifest, type RecordedRun } from "./support/pulumi-mocks";

describe("program under mocks: build once, copy closures (issue 18)", function () {
  this.timeout(120_000);
  let run: RecordedRun;
  let targetRun: RecordedRun;
  const others = ["authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "vaultwarden"];

  before(async () => {
    const data = await exampleManifestData();
    (data.services as Record<string, unknown>).builder = { ip: "192.168.99.30", vmid: 930, resources: { cores: 4, memory: 8192, disk_gb: 64 } };
    const manifest = writeManifest(data);
    const target = writeManifest({ ...data, build: { on: "target" } });
    try {
      run = await runNixmoxProgram(manifest.path);
      targetRun = await runNixmoxProgram(target.path);
    } finally {
      manifest.remove();
      target.remove();
    }
  });

  it("gives every host but the builder a build and a copy; the builder builds itself", () => {
    for (const name of others) {
      const children = childrenOf(run, resourceNamed(run, name)).map((child) => `${child.type} ${child.name}`);
      assert.ok(children.includes(`pulumi-nodejs:dynamic/nixmox:HostBuild ${name}-build`), `${name}: ${children.join(", ")}`);
      assert.ok(children.includes(`pulumi-nodejs:dynamic/nixmox:ClosureCopy ${name}-copy`), `${name}: ${children.join(", ")}`);
    }
    assert.deepEqual(childrenOf(run, resourceNamed(run, "builder")).map((child) => child.name).sort(), [
      "builder-config", "builder-container", "builder-guard", "builder-health", "builder-rebuild", "builder-ssh",
    ]);
    assert.equal(resourceNamed(run, "nixmox-build-signing-key").type, "pulumi-nodejs:dynamic/nixmox:BuildSigningKey");
  });

  it("builds after the host's config push and the builder's health gate, copies after the build (replaced with the container), activates after the copy", () => {
    const urn = (name: string) => resourceNamed(run, name).urn;
    const build = resourceNamed(run, "dns-build");
    assert.ok(build.explicitDependsOn.includes(urn("dns-config")) && build.explicitDependsOn.includes(urn("builder-health")), build.explicitDependsOn.join("\n"));
    assert.deepEqual(build.replaceWith, []);
    assert.deepEqual(build.inputs.buildOn, "builder");
    assert.deepEqual(build.inputs.builderName, "builder");
    assert.deepEqual(build.inputs.slots, 4);
    assert.equal(build.inputs.signingSecretKey, "[secret]");
    assert.equal(build.inputs.builder, "[secret]");
    const copy = resourceNamed(run, "dns-copy");
    assert.ok(copy.dependsOn.includes(urn("dns-build")));
    assert.deepEqual(copy.replaceWith, [urn("dns-container")]);
    const rebuild = resourceNamed(run, "dns-rebuild");
    assert.ok(rebuild.dependsOn.includes(urn("dns-copy")));
    // The builder deploys before everything: it does not wait for the DNS service.
    assert.ok(!resourceNamed(run, "builder-rebuild").dependsOn.includes(urn("dns-health")));
  });

  it("switches each host to its copied system instead of running nixos-rebuild, trusting the stack's key", () => {
    const command = String(resourceNamed(run, "dns-rebuild").plainInputs.command);
    assert.match(command, / --system /);
    assert.match(command, / --trusted-keys nixmox-offline-1:/);
    assert.doesNotMatch(command, /--flake/);
    assert.match(String(resourceNamed(run, "builder-rebuild").plainInputs.command), / --flake '\/etc\/nixmox#builder' /);
  });

  it("every host's NixOS configuration trusts the stack's signing key", () => {
    const hostJson = (name: string) => {
      const stdin = String(resourceNamed(run, `${name}-config`).plainInputs.stdin);
      const line = stdin.split("\n").find((entry) => Buffer.from(entry.split(" ")[0], "base64").toString() === "host.json")!;
      return JSON.parse(Buffer.from(line.split(" ")[1], "base64").toString()) as { nix?: { trustedPublicKeys: string[] } };
    };
    for (const name of [...others, "builder"]) assert.match(hostJson(name).nix?.trustedPublicKeys[0] ?? "", /^nixmox-offline-1:[A-Za-z0-9+/]{43}=$/, name);
  });

  it("exports each host's system, and with build.on = target has no build, copy or signing key (today's behaviour)", () => {
    assert.deepEqual(Object.keys(run.outputs.systems as object).sort(), [...others, "builder"].sort());
    assert.ok(!targetRun.resources.some((resource) => /HostBuild|ClosureCopy|BuildSigningKey/.test(resource.type)));
    assert.match(String(resourceNamed(targetRun, "dns-rebuild").plainInputs.command), / --flake '\/etc\/nixmox#dns' /);
  });
});
