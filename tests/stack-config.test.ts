import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { plainKeys, projectDir, resolveStackSettings } from "../components/stack-config";
import { defaultNixpkgsPin } from "../render";

const minimal = { proxmoxEndpoint: "https://pve.lan:8006/", proxmoxNode: "pve", templateVolumeId: "local:vztmpl/nixos.tar.xz" };

describe("stack config", () => {
  it("applies the documented defaults", () => {
    assert.deepEqual(resolveStackSettings(minimal, "/project"), {
      manifestPath: "/project/manifest/service-manifest.nix",
      proxmoxEndpoint: "https://pve.lan:8006/",
      proxmoxInsecure: false,
      proxmoxNode: "pve",
      datastore: "local-lvm",
      bridge: "vmbr0",
      template: { kind: "volume", volumeId: "local:vztmpl/nixos.tar.xz" },
      nixpkgs: defaultNixpkgsPin,
      confirmTimeoutSeconds: 60,
      allowReplace: [],
      deployKeyCheck: true,
    });
  });

  it("reads a template URL, a nixpkgs override and the replace opt-in", () => {
    const settings = resolveStackSettings({
      ...minimal,
      templateVolumeId: undefined,
      templateUrl: "https://example.org/nixos.tar.xz",
      templateDatastore: "nfs-templates",
      nixpkgsRev: "0123456789abcdef0123456789abcdef01234567",
      nixpkgsNarHash: `sha256-${"A".repeat(43)}=`,
      allowReplace: '["dns","caddy","dns"]',
      manifest: "/abs/homelab.yaml",
    }, "/project");
    assert.deepEqual(settings.template, { kind: "url", url: "https://example.org/nixos.tar.xz", datastore: "nfs-templates" });
    assert.deepEqual(settings.nixpkgs, { rev: "0123456789abcdef0123456789abcdef01234567", narHash: `sha256-${"A".repeat(43)}=`, ref: null, lastModified: null });
    assert.deepEqual(settings.allowReplace, ["caddy", "dns"]);
    assert.equal(settings.manifestPath, "/abs/homelab.yaml");
  });

  it("fails listing every problem with the key and the fix", () => {
    assert.throws(() => resolveStackSettings({
      proxmoxEndpoint: "pve.lan",
      proxmoxInsecure: "yes",
      templateUrl: "https://a/b.tar.xz",
      templateVolumeId: "local:vztmpl/b.tar.xz",
      nixpkgsRev: "abc",
      confirmTimeoutSeconds: "-1",
      allowReplace: "caddy",
    }), {
      name: "ManifestError",
      message: [
        "stack config: 7 problems",
        '  - nixmox:proxmoxEndpoint: must be the API address "https://<host>:8006/", got "pve.lan"',
        "  - nixmox:proxmoxNode: is not set; run `pulumi config set nixmox:proxmoxNode <node>` (the Proxmox node of services without `node`)",
        '  - nixmox:proxmoxInsecure: must be true or false, got "yes"',
        '  - nixmox:confirmTimeoutSeconds: must be a whole number of seconds (0 disables confirmation), got "-1"',
        "  - nixmox:templateUrl: and nixmox:templateVolumeId are both set; keep one (a URL is downloaded, a volume id must already exist)",
        "  - nixmox:nixpkgsNarHash: must be set together with the other of nixmox:nixpkgsRev/nixmox:nixpkgsNarHash (`nix flake prefetch github:NixOS/nixpkgs/<rev>` prints both)",
        "  - nixmox:allowReplace: must be a list of service names, e.g. `pulumi config set --path 'nixmox:allowReplace[0]' caddy`, got \"caddy\"",
      ].join("\n"),
    });
  });

  it("fails for a template URL that is not https, naming the key (security review M9)", () => {
    assert.throws(() => resolveStackSettings({ ...minimal, templateVolumeId: undefined, templateUrl: "http://mirror.lan/nixos.tar.xz" }, "/project"), {
      name: "ManifestError",
      message: 'stack config: 1 problem\n  - nixmox:templateUrl: must be an https:// URL of a NixOS LXC template (.tar.xz), got "http://mirror.lan/nixos.tar.xz"',
    });
  });

  it("declares every key it reads in Pulumi.yaml, with the secrets marked secret", () => {
    const project = parse(readFileSync(path.join(projectDir, "Pulumi.yaml"), "utf8")) as { name: string; main: string; config: Record<string, { secret?: boolean; type: string }> };
    assert.equal(project.name, "nixmox");
    assert.equal(project.main, "index.ts");
    const declared = Object.keys(project.config).sort();
    assert.deepEqual(declared, [...plainKeys, "proxmoxApiToken", "sshPrivateKey"].map((key) => `nixmox:${key}`).sort());
    assert.deepEqual(declared.filter((key) => project.config[key].secret === true), ["nixmox:proxmoxApiToken", "nixmox:sshPrivateKey"]);
    for (const key of declared) assert.ok(["string", "integer", "boolean", "array"].includes(project.config[key].type), key);
  });
});
