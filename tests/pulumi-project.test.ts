// Pure: applies the Pulumi CLI's project-config rule to Pulumi.yaml and the example stack files, and reads the
// stack settings the way index.ts does. Not proven here: the CLI itself (not installed); the rule is transcribed from
// pulumi sdk/go/common/workspace (mergeConfig: a project-namespaced key with no default, no value and nothing on the
// stack is reported as "Stack '…' is missing configuration value(s)").
import { strict as assert } from "node:assert";
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { parse } from "yaml";
import { offlinePreviewPrivateKey } from "../components/offline-preview";
import { plainKeys, projectDir, readStackSettings, resolveStackSettings, type PlainKey } from "../components/stack-config";

interface ProjectFile {
  name: string;
  config: Record<string, { type: string; default?: unknown; value?: unknown; secret?: boolean }>;
}

const project = parse(readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8")) as ProjectFile;
const stackFiles = readdirSync(projectDir).filter((file) => /^Pulumi\..+\.yaml$/.test(file));

/** The CLI's rule: which declared keys a stack must set itself. */
function keysWithoutDefault(file: ProjectFile): string[] {
  return Object.entries(file.config)
    .filter(([key, declaration]) => key.split(":")[0] === file.name && !("default" in declaration) && !("value" in declaration))
    .map(([key]) => key)
    .sort();
}

function missingOnStack(file: ProjectFile, stackConfig: Record<string, unknown>): string[] {
  return keysWithoutDefault(file).filter((key) => !(key in stackConfig));
}

/** What the program sees: the stack's values over Pulumi.yaml's defaults (the CLI passes both), as strings. */
function effectiveConfig(file: ProjectFile, stackConfig: Record<string, unknown>): Record<string, string> {
  const merged: Record<string, string> = {};
  for (const [key, declaration] of Object.entries(file.config)) {
    if ("default" in declaration) merged[key] = typeof declaration.default === "string" ? declaration.default : JSON.stringify(declaration.default);
  }
  for (const [key, value] of Object.entries(stackConfig)) merged[key] = typeof value === "string" ? value : JSON.stringify(value);
  return merged;
}

/** The `nixmox:` keys the README's "Deploying for real" commands set. */
function keysTheReadmeSets(): string[] {
  const readme = readFileSync(path.join(projectDir, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Deploying for real"), readme.indexOf("\n## ", readme.indexOf("## Deploying for real") + 1));
  return [...section.matchAll(/^pulumi config set (?:--secret )?(nixmox:\w+)/gm)].map((match) => match[1]).sort();
}

/** A `pulumi.Config` stand-in over plain strings (`getSecret` wraps nothing: only presence matters here). */
function fakeConfig(values: Record<string, string>): pulumi.Config {
  const get = (key: string) => values[`nixmox:${key}`];
  return { get, getSecret: (key: string) => (get(key) === undefined ? undefined : get(key)), getObject: () => undefined } as unknown as pulumi.Config;
}

describe("Pulumi.yaml under the CLI's config rules", () => {
  it("leaves exactly endpoint, API token, deploy key and node without a default; the README sets them and the template checksum", () => {
    const required = ["nixmox:proxmoxApiToken", "nixmox:proxmoxEndpoint", "nixmox:proxmoxNode", "nixmox:sshPrivateKey"];
    assert.deepEqual(keysWithoutDefault(project), required);
    // templateSha256 has a default ("") because a template volume id needs none; with the default URL it is required.
    // nixmox:manifest has a default too, and the README sets it first, so that a stack never deploys another homelab's.
    assert.deepEqual(keysTheReadmeSets(), [...required, "nixmox:manifest", "nixmox:templateSha256"].sort());
  });

  it("has defaults that are the program's own defaults", () => {
    const required = { proxmoxEndpoint: "https://pve.lan:8006/", proxmoxNode: "pve", templateSha256: "ab".repeat(32) };
    const fromDefaults: Partial<Record<PlainKey, string>> = { ...required };
    for (const key of plainKeys) {
      const value = effectiveConfig(project, {})[`nixmox:${key}`];
      if (value !== undefined && !(key in required)) fromDefaults[key] = value;
    }
    assert.deepEqual(resolveStackSettings(fromDefaults, "/project"), resolveStackSettings(required, "/project"));
  });

  for (const file of stackFiles) {
    it(`${file}: needs only the two secrets and the template checksum its comments say to set, and its settings validate`, () => {
      const text = readFileSync(path.join(projectDir, file), "utf8");
      const stackConfig = (parse(text) as { config: Record<string, unknown> }).config;
      assert.deepEqual(missingOnStack(project, stackConfig), ["nixmox:proxmoxApiToken", "nixmox:sshPrivateKey"]);
      assert.deepEqual([...text.matchAll(/^\s*#\s+pulumi config set (?:--secret )?(nixmox:\w+)/gm)].map((match) => match[1]).sort(), ["nixmox:proxmoxApiToken", "nixmox:sshPrivateKey", "nixmox:templateSha256"]);
      const config = {
        ...effectiveConfig(project, stackConfig),
        "nixmox:proxmoxApiToken": "nixmox@pve!deploy=00000000-0000-0000-0000-000000000000",
        "nixmox:sshPrivateKey": offlinePreviewPrivateKey(),
      };
      assert.throws(() => readStackSettings(fakeConfig(config), projectDir), /nixmox:templateSha256: is not set; the template download is verified against it/);
      const { settings } = readStackSettings(fakeConfig({ ...config, "nixmox:templateSha256": "ab".repeat(32) }), projectDir);
      assert.equal(settings.template.kind, "url");
    });
  }

  it("fails a malformed nixmox:sshPrivateKey with one message from reading the settings, naming the key and the fix", () => {
    const config = { "nixmox:proxmoxEndpoint": "https://pve.lan:8006/", "nixmox:proxmoxNode": "pve", "nixmox:templateSha256": "ab".repeat(32), "nixmox:proxmoxApiToken": "t", "nixmox:sshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n" };
    assert.throws(() => readStackSettings(fakeConfig(config), projectDir), {
      name: "ManifestError",
      message: "stack config: 1 problem\n  - nixmox:sshPrivateKey: is not an unencrypted OpenSSH or PEM private key; generate one with `ssh-keygen -t ed25519 -N '' -f nixmox_ed25519`",
    });
  });
});
