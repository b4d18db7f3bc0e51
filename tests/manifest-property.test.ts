// Pure property tests, no mocks (tests/support/manifest-properties.ts): random mutations of a valid manifest give a
// plan or a ManifestError, never another exception. Each property runs a fixed seed, so the suite gives the same
// verdict every run; `npm run bench:fuzz` explores new seeds and prints each, and what it finds becomes a case here.
import assert from "node:assert/strict";
import * as path from "node:path";
import { loadManifestData } from "../manifest";
import { renderAll } from "../render";
import { planOf, type RawManifest } from "./support/manifests";
import { moduleAssertionFailures, renderSources } from "./support/deployable";
import { deployRegressions, manifestProperties, seedLayoutModuleFailures } from "./support/manifest-properties";

/** The suite's seeds, one per property, in the order of `manifestProperties`. */
const fixedSeeds = [2201, 2202, 2203, 2204, 2205];

describe("manifest property: random mutations, fixed seeds", function () {
  this.timeout(120_000);

  it("has one fixed seed per property", () => {
    assert.equal(fixedSeeds.length, manifestProperties.length);
  });

  manifestProperties.forEach((property, index) => {
    it(`${property.name} (seed ${fixedSeeds[index]}, ${property.numRuns} cases)`, async () => {
      await property.run({ seed: fixedSeeds[index] });
    });
  });

  for (const regression of deployRegressions) {
    const pending = regression.pending;
    if (pending === undefined) continue;
    it(`still accepts, until ${pending.issue} lands, the case found by ${regression.found}: the modules refuse it with "${pending.failure}"`, async () => {
      assert.deepEqual(await seedLayoutModuleFailures(regression.changes), [pending.failure]);
    });
  }

  it("reports what the shipped modules would refuse (the check above can fail): a closed 443, a bad database name, two addresses for a name", async () => {
    const seed = (await loadManifestData(path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix"))) as RawManifest;
    const hosts = renderAll(planOf(seed, "seed"), renderSources);
    assert.deepEqual(moduleAssertionFailures(hosts), []);
    const tamper = (service: string, edit: (data: any) => void) =>
      hosts.map((host) => (host.service === service ? { ...host, files: { ...host.files, "host.json": JSON.stringify((() => { const d = JSON.parse(host.files["host.json"]); edit(d); return d; })()) } } : host));
    assert.deepEqual(moduleAssertionFailures(tamper("caddy", (d) => (d.host.ports = [80]))), ["caddy: 443 not open"]);
    assert.deepEqual(moduleAssertionFailures(tamper("postgresql", (d) => (d.postgresql.databases[0].name = "x; DROP"))), ["postgresql: invalid database requests"]);
    assert.deepEqual(moduleAssertionFailures(tamper("dns", (d) => d.dns.records.push({ ...d.dns.records[0], value: "10.40.0.99" }))), ["dns: a name with two addresses"]);
  });
});
