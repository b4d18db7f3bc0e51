// Pure tests, no mocks: where each host's system is built (manifest build section, manifest/build-plan.ts), the message
// that says so, the memory warning for hosts that build themselves, and the build rule's exact problems.
import assert from "node:assert/strict";
import { renderPlanText } from "../cli/views";
import { planNixData } from "../render/host-data";
import { deepClone, planOf, problemsOf, smallManifest, type RawManifest } from "./support/manifests";

const builder = { kind: "builder", ip: "10.9.0.30", vmid: 130, resources: { cores: 4, memory: 8192, disk_gb: 64 } };

function withBuilder(mutate: (m: RawManifest) => void = () => undefined): RawManifest {
  const manifest = deepClone(smallManifest());
  manifest.services.nixbuilder = deepClone(builder);
  mutate(manifest);
  return manifest;
}

describe("build placement (manifest build, issue 18)", () => {
  it("builds on each host when the manifest has no builder, says why, and warns about every host too small for an evaluation", () => {
    const plan = planOf(smallManifest());
    assert.equal(plan.build.mode, "target");
    assert.equal(plan.build.requested, "auto");
    assert.ok(Object.values(plan.build.hosts).every((place) => place === "target"));
    assert.equal(
      plan.build.message,
      'builds: on each host itself (nixos-rebuild on the host) (no service of kind builder in the manifest; add one, or set build.on = "controller" to build on the machine that runs Pulumi)',
    );
    const small = plan.services.filter((service) => service.resources.memoryMiB + service.resources.swapMiB < 2048).map((service) => service.name);
    assert.ok(small.length > 0);
    const warning = plan.warnings.find((line) => line.startsWith("builds on the host itself"));
    assert.ok(warning, plan.warnings.join("\n"));
    for (const name of small) assert.ok(warning.includes(`${name} (`), `${name} named in: ${warning}`);
  });

  it("builds on the builder service by default when there is one; the builder and on_target hosts build themselves, and only they are checked for memory", () => {
    const plan = planOf(withBuilder((m) => (m.build = { on_target: ["app"] })));
    assert.equal(plan.build.mode, "builder");
    assert.equal(plan.build.builder, "nixbuilder");
    assert.equal(plan.build.hosts.nixbuilder, "target");
    assert.equal(plan.build.hosts.app, "target");
    const others = Object.keys(plan.build.hosts).filter((name) => name !== "nixbuilder" && name !== "app");
    assert.ok(others.length > 0 && others.every((name) => plan.build.hosts[name] === "builder"));
    assert.equal(
      plan.build.message,
      `builds: on the builder "nixbuilder" (the manifest has the builder service "nixbuilder"; set build.on to choose); app, nixbuilder build on their own hosts; ` +
        `${others.length} hosts only receive a signed closure and switch to it`,
    );
    const warning = plan.warnings.find((line) => line.startsWith("builds on the host itself")) ?? "";
    assert.ok(!warning.includes("nixbuilder"), "the builder has the memory");
    for (const name of others) assert.ok(!warning.includes(`${name} (`), `${name} builds elsewhere`);
  });

  it("builds on the controller when build.on says so, and on each host with build.on = target even with a builder", () => {
    const controller = planOf(withBuilder((m) => (m.build = { on: "controller" })));
    assert.equal(controller.build.mode, "controller");
    assert.equal(controller.build.builder, null);
    assert.equal(controller.build.hosts.app, "controller");
    assert.equal(controller.build.hosts.nixbuilder, "target");
    assert.match(controller.build.message, /^builds: on the machine that runs Pulumi \(the controller\) \(build\.on = "controller"\)/);
    const target = planOf(withBuilder((m) => (m.build = { on: "target" })));
    assert.ok(Object.values(target.build.hosts).every((place) => place === "target"));
  });

  it("says where each host builds in the plan text", () => {
    const text = renderPlanText(planOf(withBuilder()));
    assert.match(text, /\nBuilds: on the builder "nixbuilder" \(the manifest has the builder service/);
    assert.match(text, /\n  app \[vaultwarden\][^\n]*\n[^\n]*\n    builds on the builder "nixbuilder" \(receives a signed closure\)\n/);
    assert.match(text, /\n  nixbuilder \[builder\][^\n]*\n[^\n]*\n    builds on its own host \(nixos-rebuild\)\n/);
  });

  it("gives every host the manifest's caches, and the stack's key first when closures are copied; nothing when all is Nix's default", () => {
    const plain = planOf(smallManifest());
    assert.equal(planNixData(plain), undefined);
    assert.deepEqual(planNixData(plain, { buildSigningPublicKey: "nixmox-dev-1:AAAA" }), {
      substituters: ["https://cache.nixos.org"],
      trustedPublicKeys: ["nixmox-dev-1:AAAA", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="],
    });
    const own = planOf(withBuilder((m) => {
      m.network.substituters = ["http://10.9.0.30:5000", "https://cache.nixos.org"];
      m.network.trusted_public_keys = ["homelab-cache-1:BBBB", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="];
    }));
    assert.deepEqual(own.nixCaches.substituters, ["http://10.9.0.30:5000", "https://cache.nixos.org"]);
    assert.deepEqual(planNixData(own)?.trustedPublicKeys, ["homelab-cache-1:BBBB", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]);
  });

  const failing: Array<{ name: string; mutate: (m: RawManifest) => void; problems: string[] }> = [
    {
      name: "fails when build.builder names no service, suggesting one",
      mutate: (m) => (m.build = { builder: "nixbuildr" }),
      problems: ['manifest: build.builder names no service of the manifest (did you mean "nixbuilder"?); name a service of kind builder'],
    },
    {
      name: "fails when build.builder names a service of another kind",
      mutate: (m) => (m.build = { builder: "app" }),
      problems: ['manifest: build.builder names "app", a service of kind vaultwarden; name a service of kind builder (kind = "builder")'],
    },
    {
      name: "fails when two builders exist and build.builder does not choose",
      mutate: (m) => (m.services.builder2 = { ...deepClone(builder), ip: "10.9.0.31", vmid: 131 }),
      problems: ["manifest: build.builder is not set and the manifest has several builder services (builder2, nixbuilder); name the one that builds"],
    },
    {
      name: "fails when build.on_target names an unknown service",
      mutate: (m) => (m.build = { on_target: ["ap"] }),
      problems: ['manifest: build.on_target[0] names no service of the manifest (did you mean "app"?)'],
    },
    {
      name: "fails when build.on is not one of the places",
      mutate: (m) => (m.build = { on: "laptop" }),
      problems: ['manifest: build.on must be one of "auto", "builder", "controller", "target", got "laptop"'],
    },
  ];
  for (const testCase of failing) {
    it(testCase.name, () => {
      assert.deepEqual(problemsOf(withBuilder(testCase.mutate)), testCase.problems);
    });
  }

  it("fails when build.on is builder without a builder service, naming the other places", () => {
    const manifest = deepClone(smallManifest());
    manifest.build = { on: "builder" };
    assert.deepEqual(problemsOf(manifest), [
      'manifest: build.on is "builder" but the manifest has no service of kind builder; add one (a container with the memory and disk for NixOS builds), or choose "controller" or "target"',
    ]);
  });
});
