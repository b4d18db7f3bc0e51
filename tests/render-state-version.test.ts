// S1: system.stateVersion is the manifest's `state_version`, else the default release for a new host. What keeps a
// running host on the release of its first install when the default moves is on the host (/etc/nixmox/state-version,
// nixos/core.nix; tested in nixos-module-values.test.ts and config-push.test.ts). Pure: renders in memory.
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

  it("keeps the manifest's state_version when the default release is bumped", async () => {
    const data = await exampleManifestData();
    data.core_services.postgresql.state_version = "24.11";
    const bumped = renderData(data, { stateVersion: "26.05" });
    assert.equal(stateVersionOf(bumped, "postgresql"), "24.11", "the manifest wins over the default");
    assert.equal(stateVersionOf(bumped, "caddy"), "26.05", "a host without it renders the new default (its own file keeps it on its first release)");
  });

  it("rejects a manifest state_version that is not a release, naming the service", async () => {
    const data = await exampleManifestData();
    data.core_services.postgresql.state_version = "latest";
    assert.throws(() => renderData(data), (error: unknown) => error instanceof ManifestError && /postgresql.*state_version.*"25\.11"/s.test(error.message));
  });
});
