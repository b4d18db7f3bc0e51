// Real PulumiCommand.get against stub `pulumi` executables that print a version (the real CLI is not installed);
// the program against the mock monitor answering SupportsFeature("replaceWith") with false, as an engine older
// than 3.207.0 does. Not proven here: a real old CLI end to end.
import { strict as assert } from "node:assert";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { minimumPulumiCliVersion, requirePulumiCli } from "../components/engine-requirements";
import { offlineStackConfig, recordProgram } from "../components/offline-preview";
import { defaultManifestPath } from "../manifest";

function stubCli(version: string): { root: string; remove(): void } {
  const root = mkdtempSync(path.join(tmpdir(), "nixmox-pulumi-"));
  mkdirSync(path.join(root, "bin"));
  writeFileSync(path.join(root, "bin", "pulumi"), `#!/bin/sh\n[ "$1" = version ] && echo ${version}\n`);
  chmodSync(path.join(root, "bin", "pulumi"), 0o755);
  return { root, remove: () => rmSync(root, { recursive: true, force: true }) };
}

describe("what NixMox needs from the Pulumi engine", function () {
  this.timeout(60_000);

  it("accepts a Pulumi CLI of the minimum version (3.207.0) or newer", async () => {
    for (const version of ["v3.207.0", "v3.276.1"]) {
      const cli = stubCli(version);
      try {
        const command = await requirePulumiCli({ root: cli.root });
        assert.equal(command.version?.toString(), version.slice(1));
      } finally {
        cli.remove();
      }
    }
  });

  it("fails an older Pulumi CLI with one message naming the minimum version and why", async () => {
    const cli = stubCli("v3.206.0");
    try {
      await assert.rejects(requirePulumiCli({ root: cli.root }), {
        message: `NixMox needs the Pulumi CLI ${minimumPulumiCliVersion} or newer (the replaceWith resource option, pulumi/pulumi#20693); this one is 3.206.0: update it: https://www.pulumi.com/docs/install/`,
      });
    } finally {
      cli.remove();
    }
  });

  it("fails the program before any resource when the engine does not support replaceWith", async () => {
    const { config, secretKeys } = offlineStackConfig(defaultManifestPath);
    const nixmox = require("../index") as () => Promise<unknown>;
    const registered: string[] = [];
    const olderEngine = async () => {
      const monitor = pulumi.runtime.getMonitor() as unknown as { supportsFeature(request: { getId(): string }, callback: (error: null, response: { getHassupport(): boolean }) => void): void };
      const supportsFeature = monitor.supportsFeature.bind(monitor);
      monitor.supportsFeature = (request, callback) =>
        request.getId() === "replaceWith" ? callback(null, { getHassupport: () => false }) : supportsFeature(request, callback);
      return nixmox();
    };
    await assert.rejects(recordProgram(olderEngine, { config, secretKeys, onRegister: (name) => registered.push(name) }), {
      message: "NixMox needs the Pulumi CLI 3.207.0 or newer (the replaceWith resource option, pulumi/pulumi#20693); the CLI running this program does not support it: update it: https://www.pulumi.com/docs/install/",
    });
    assert.deepEqual(registered, ["nixmox-offline"]);
  });
});
