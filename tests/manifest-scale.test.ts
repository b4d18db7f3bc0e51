// Real nix-instantiate, no mocks: the benchmark's generated manifests are valid, so the bench measures the success path. No timing assertions.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { generateManifest, writeManifest } from "../bench/manifest-scale";
import { renderPlanJson } from "../cli/views";
import { loadManifestData, loadPlan, planManifest } from "../manifest";
import { checkManifest } from "../manifest/validate";
import { planOf, problemsOf } from "./support/manifests";

describe("manifest scale benchmark inputs", function () {
  this.timeout(60_000);

  it("generates a valid 10-service manifest with binary-tree dependencies", () => {
    const plan = planOf(generateManifest(10));
    assert.deepEqual(plan.waves, [
      ["dns"],
      ["caddy", "postgresql"],
      ["app-00001", "authentik"],
      ["app-00002", "app-00003"],
      ["app-00004", "app-00005", "app-00006"],
    ]);
    assert.equal(plan.routes.length, 7);
    assert.deepEqual(plan.databases.map((database) => database.service), ["app-00003", "app-00006", "authentik"]);
    assert.deepEqual(plan.authClients.map((client) => `${client.service} ${client.type}`), ["app-00005 forward_auth"]);
  });

  it("generates a valid 1,000-service manifest with about log2(n) waves", () => {
    const plan = planOf(generateManifest(1000));
    assert.equal(plan.services.length, 1000);
    assert.equal(plan.waves.length, 12);
    assert.equal(plan.dnsRecords.length, 2 * 1000 - 3);
  });

  it("plans identically from what validation computed (the services resolved, their address lookup and edges: the loader's path) and on its own", async () => {
    const manifests = [
      generateManifest(300),
      ...(await Promise.all(["service-manifest.nix", "examples/seed-homelab.nix", "examples/older-homelab.nix"].map((file) => loadManifestData(path.join(__dirname, "..", "manifest", file))))),
    ];
    for (const raw of manifests) {
      const { manifest, resolved } = checkManifest(raw, "scale");
      assert.equal(renderPlanJson(planManifest(manifest, { manifestDir: "/srv", resolved })), renderPlanJson(planManifest(manifest, { manifestDir: "/srv" })));
    }
  });

  it("fails when asked for fewer than the 4 core services", () => {
    assert.throws(() => generateManifest(3), { message: "generateManifest: count must be at least 4, got 3" });
  });

  it("plans the .nix and .json forms of a generated manifest identically", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "nixmox-scale-"));
    try {
      const [fromNix, fromJson] = await Promise.all([loadPlan(writeManifest(dir, 50, "nix")), loadPlan(writeManifest(dir, 50, "json"))]);
      assert.equal(renderPlanJson(fromNix), renderPlanJson(fromJson));
      assert.equal(fromNix.services.length, 50);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("manifest validation at scale: no rule depends on the call stack or scans every service per service", function () {
  this.timeout(60_000);

  /** `count` apps in one chain: app-00001 ← app-00002 ← … (each depends on the previous one). */
  const chain = (count: number, closeTheLoop: boolean) => {
    const manifest = generateManifest(4) as { services: Record<string, unknown>; [key: string]: unknown };
    const name = (index: number) => `app-${String(index).padStart(5, "0")}`;
    const ipOf = (index: number) => `10.20.${1 + Math.floor(index / 200)}.${10 + (index % 200)}`;
    for (let index = 1; index <= count; index += 1) {
      manifest.services[name(index)] = {
        kind: "custom",
        ip: ipOf(index),
        vmid: 2000 + index,
        nixos_modules: ["modules/app.nix"],
        depends_on: [index > 1 ? name(index - 1) : closeTheLoop ? name(count) : "caddy"],
        interface: { health: { checks: [{ type: "tcp", port: 8080 }] } },
      };
    }
    return manifest;
  };

  it("plans a dependency chain 10,000 services long into 10,000 waves of apps", () => {
    const plan = planOf(chain(10_000, false));
    assert.equal(plan.services.length, 10_004);
    assert.deepEqual(plan.waves.slice(-2), [["app-09999"], ["app-10000"]]);
  });

  it("fails with the cycle when a chain of 10,000 services closes on itself", () => {
    const problems = problemsOf(chain(10_000, true));
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^service "app-00001": depends_on forms a dependency cycle: app-00001 → app-10000 \(depends_on\), app-10000 → app-09999 \(depends_on\), /);
    assert.match(problems[0], /app-00002 → app-00001 \(depends_on\); remove one of: app-00001's depends_on "app-10000", /);
  });
});
