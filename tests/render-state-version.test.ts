// S1: system.stateVersion is fixed per host when the host is first installed (the manifest's `state_version`,
// else the value recorded at creation) and never moved by a later bump of the default release in code.
// Pure: plans and renders the example manifest in memory.
import assert from "node:assert/strict";
import { ManifestError } from "../manifest";
import { defaultStateVersion } from "../render";
import { exampleManifestData, renderData } from "./golden/render-fixtures";

const stateVersionOf = (hosts: ReturnType<typeof renderData>, service: string) =>
  JSON.parse(hosts.find((host) => host.service === service)!.files["host.json"]).host.stateVersion as string;

describe("render: system.stateVersion is fixed per host", () => {
  it("gives a new host the default release", async () => {
    const hosts = renderData(await exampleManifestData());
    assert.equal(stateVersionOf(hosts, "postgresql"), defaultStateVersion);
  });

  it("keeps the manifest's state_version and the recorded one when the default release is bumped", async () => {
    const data = await exampleManifestData();
    data.core_services.postgresql.state_version = "24.11";
    const bumped = renderData(data, { stateVersion: "26.05", recordedStateVersions: { postgresql: "25.05", dns: "25.05" } });
    assert.equal(stateVersionOf(bumped, "postgresql"), "24.11", "the manifest wins over the record");
    assert.equal(stateVersionOf(bumped, "dns"), "25.05", "the record wins over the default");
    assert.equal(stateVersionOf(bumped, "caddy"), "26.05", "only a host without either gets the new default");
  });

  it("changes no existing host's files when only the default release moves", async () => {
    const data = await exampleManifestData();
    const recorded = Object.fromEntries(renderData(data).map((host) => [host.service, stateVersionOf(renderData(data), host.service)]));
    const before = renderData(data, { recordedStateVersions: recorded });
    const after = renderData(data, { stateVersion: "26.05", recordedStateVersions: recorded });
    assert.deepEqual(after.map((host) => host.contentHash), before.map((host) => host.contentHash));
  });

  it("rejects a manifest state_version that is not a release, and a bad recorded value, naming the service", async () => {
    const data = await exampleManifestData();
    data.core_services.postgresql.state_version = "latest";
    assert.throws(() => renderData(data), (error: unknown) => error instanceof ManifestError && /postgresql.*state_version.*"25\.11"/s.test(error.message));
    const clean = await exampleManifestData();
    assert.throws(
      () => renderData(clean, { recordedStateVersions: { dns: "x" } }),
      (error: unknown) => error instanceof ManifestError && /dns.*state_version/s.test(error.message),
    );
  });
});
