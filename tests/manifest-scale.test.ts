// Real nix-instantiate, no mocks: the benchmark's generated manifests are valid, so the bench measures the success path. No timing assertions.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { generateManifest, writeManifest } from "../bench/manifest-scale";
import { renderPlanJson } from "../cli/views";
import { loadPlan } from "../manifest";
import { planOf } from "./support/manifests";

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
