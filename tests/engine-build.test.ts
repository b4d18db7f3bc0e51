// tools/engine/build.sh and its wrapper modules: pinned to the versions the npm SDKs declare, idempotent, and the
// binaries report those versions. (The build itself runs once, from the Go module proxy, in realEngineBin.)
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { realEngineBin, repoDir } from "./support/real-engine";

const engineDir = path.join(repoDir, "tools", "engine");
const read = (file: string) => readFileSync(file, "utf8");
const npmVersion = (pkg: string) => (JSON.parse(read(path.join(repoDir, "node_modules", pkg, "package.json"))) as { version: string }).version;

describe("tools/engine: the real engine built from the Go module proxy", function () {
  this.timeout(1_800_000);
  let bin: string;

  before(() => {
    bin = realEngineBin();
  });

  it("pins the Pulumi CLI and its SDK module to the installed @pulumi/pulumi, and proxmoxve to its SDK's pulumi.version", () => {
    const sdk = npmVersion("@pulumi/pulumi");
    const cli = read(path.join(engineDir, "pulumi", "go.mod"));
    assert.match(cli, new RegExp(`github\\.com/pulumi/pulumi/pkg/v3 v${sdk.replace(/\./g, "\\.")} `));
    assert.match(cli, new RegExp(`github\\.com/pulumi/pulumi/sdk/v3 v${sdk.replace(/\./g, "\\.")} `));
    assert.match(read(path.join(engineDir, "language-nodejs", "go.mod")), new RegExp(`github\\.com/pulumi/pulumi/sdk/v3 v${sdk.replace(/\./g, "\\.")}\\b`));
    const script = read(path.join(engineDir, "build.sh"));
    assert.match(script, new RegExp(`^pulumi_version="${sdk.replace(/\./g, "\\.")}"$`, "m"));
    const proxmoxve = (JSON.parse(read(path.join(repoDir, "node_modules", "@muhlba91", "pulumi-proxmoxve", "package.json"))) as { pulumi: { version: string } }).pulumi.version;
    assert.match(script, new RegExp(`^proxmoxve_version="${proxmoxve.replace(/\./g, "\\.")}"$`, "m"));
  });

  it("builds binaries that report those versions", () => {
    const version = (binary: string, args: string[]) => spawnSync(path.join(bin, binary), args, { encoding: "utf8" }).stdout.trim();
    assert.equal(version("pulumi", ["version"]), `v${npmVersion("@pulumi/pulumi")}`);
    assert.equal(version("pulumi-language-nodejs", ["-version"]), `${npmVersion("@pulumi/pulumi")}+nixmox`);
    assert.equal(version("pulumi-resource-proxmoxve", ["--version"]), "8.6.0");
    assert.match(read(path.join(bin, "pulumi-resource-pulumi-nodejs")), /@pulumi\/pulumi\/cmd\/dynamic-provider/);
  });

  it("builds nothing the second time and prints the folder as its last line", () => {
    const result = spawnSync("bash", [path.join(engineDir, "build.sh")], { encoding: "utf8" });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${bin}\n`);
    assert.doesNotMatch(result.stderr, /building/);
    for (const binary of ["pulumi", "pulumi-language-nodejs", "pulumi-resource-proxmoxve"]) assert.match(result.stderr, new RegExp(`${binary}( v[0-9.]+)? is up to date`));
  });
});
