// Pure checks, then the program under mocks (it proves where the program stops, not what the engine prints:
// tests/homelab-package.test.ts runs the real `pulumi up` refusal).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { join } from "node:path";
import { deployKeyProblems, publicKeyOf } from "../components/deploy-key";
import { offlinePreviewPrivateKey, offlineStackConfig, recordProgram } from "../components/offline-preview";
import { defaultManifestPath, loadPlan } from "../manifest";
import { exampleManifestData, writeManifest } from "./support/pulumi-mocks";

describe("deploy key", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nixmox-deploy-key-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("derives the public half that ssh-keygen writes", () => {
    const file = join(dir, "id_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", file]);
    const expected = readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
    assert.equal(publicKeyOf(readFileSync(file, "utf8")), expected);
  });

  it("builds an offline preview key that OpenSSH itself accepts", () => {
    const file = join(dir, "offline");
    writeFileSync(file, offlinePreviewPrivateKey(), { mode: 0o600 });
    const fromOpenSsh = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }).trim().split(" ").slice(0, 2).join(" ");
    assert.equal(publicKeyOf(offlinePreviewPrivateKey()), fromOpenSsh);
    assert.equal(offlinePreviewPrivateKey(), offlinePreviewPrivateKey());
  });

  it("fails without quoting key material when the text is not a private key", () => {
    assert.throws(() => publicKeyOf("not a key but maybe a secret"), {
      message: "nixmox:sshPrivateKey is not an unencrypted OpenSSH or PEM private key; generate one with `ssh-keygen -t ed25519 -N '' -f nixmox_ed25519`",
    });
  });
});

describe("deploy key: up refuses what would lock NixMox out or deploy the example's key", function () {
  this.timeout(60_000);
  const deployKey = publicKeyOf(offlinePreviewPrivateKey());
  const ownKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0rtW4Aj39FVowGkbUlt8ziG7ZO6IpGh3ptDchjcmH0 me@laptop";
  const placeholder = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC1leGFtcGxlLWtleS1yZXBsYWNlLW1l admin@nixmox";

  it("finds nothing wrong when the root keys list the deploy key (any comment) and no placeholder", () => {
    assert.deepEqual(deployKeyProblems(deployKey, [ownKey, `${deployKey} deploy@nixmox`]), []);
  });

  it("names a missing deploy key and every placeholder of NixMox's examples", () => {
    const problems = deployKeyProblems(deployKey, [placeholder, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlZWQtZXhhbXBsZS1hZG1pbi1rZXktcmVwbGFjZQ admin@laptop"]);
    assert.equal(problems.length, 2);
    assert.match(problems[0], new RegExp(`^does not list the deploy key \\(${deployKey.replace(/\+/g, "\\+")}\\): add the public half of nixmox:sshPrivateKey`));
    assert.equal(problems[1], "still holds the example's placeholder key (ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC1leGFtcGxlLWtleS1yZXBsYWNlLW1l, ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNlZWQtZXhhbXBsZS1hZG1pbi1rZXktcmVwbGFjZQ): replace it with your own admin keys");
  });

  it("keeps every placeholder key of the shipped examples in its list (the example manifests and the init template)", async () => {
    for (const manifest of [defaultManifestPath, path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix"), path.join(__dirname, "..", "templates", "homelab", "service-manifest.nix")]) {
      const plan = await loadPlan(manifest);
      assert.equal(deployKeyProblems(deployKey, plan.network.sshKeys.root ?? []).filter((problem) => problem.startsWith("still holds")).length, 1, manifest);
    }
  });

  it("stops the program in up mode before any resource, with both problems and the override; a preview only warns; deployKeyCheck false deploys", async () => {
    const data = await exampleManifestData();
    const manifest = writeManifest(data);
    try {
      const { config, secretKeys } = offlineStackConfig(manifest.path, { "nixmox:deployKeyCheck": "true" });
      const registered: string[] = [];
      await assert.rejects(recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys, onRegister: (name) => registered.push(name) }), (error: Error) => {
        assert.equal(error.name, "ManifestError");
        const lines = error.message.split("\n");
        assert.equal(lines[0], "deploy key: 2 problems");
        assert.match(lines[1], /^ {2}- network: ssh_keys\.root does not list the deploy key \(ssh-ed25519 \S+\): .*; or set `pulumi config set nixmox:deployKeyCheck false` to deploy anyway$/);
        assert.match(lines[2], /^ {2}- network: ssh_keys\.root still holds the example's placeholder key \(ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC1leGFtcGxlLWtleS1yZXBsYWNlLW1l\): replace it with your own admin keys; or set/);
        // The SDK prints a RunError's message alone, without a stack trace.
        assert.equal((error as { __pulumiRunError?: boolean }).__pulumiRunError, true);
        return true;
      });
      assert.deepEqual(registered, ["nixmox-offline"], "only the stack itself");
      const preview = await recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys, preview: true });
      assert.ok(preview.resources.length > 60);
      const overridden = await recordProgram(require("../index") as () => Promise<unknown>, { config: { ...config, "nixmox:deployKeyCheck": "false" }, secretKeys });
      assert.equal(overridden.resources.length, preview.resources.length);
      // With the deploy key listed and the placeholder replaced, up goes ahead with the check on.
      (data as { network: { ssh_keys: { root: string[] } } }).network.ssh_keys.root = [ownKey, deployKey];
      const fixed = writeManifest(data);
      try {
        const fixedConfig = offlineStackConfig(fixed.path, { "nixmox:deployKeyCheck": "true" });
        const run = await recordProgram(require("../index") as () => Promise<unknown>, fixedConfig);
        assert.equal(run.resources.length, preview.resources.length);
      } finally {
        fixed.remove();
      }
    } finally {
      manifest.remove();
    }
  });
});
