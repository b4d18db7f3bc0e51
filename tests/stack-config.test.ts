import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { checkSettingsAgainstPlan, defaultTemplate, plainKeys, projectDir, resolveStackSettings } from "../components/stack-config";
import { defaultNixpkgsPin } from "../render";

const minimal = { proxmoxEndpoint: "https://pve.lan:8006/", proxmoxNode: "pve", templateVolumeId: "local:vztmpl/nixos.tar.xz" };

describe("stack config", () => {
  it("applies the documented defaults", () => {
    assert.deepEqual(resolveStackSettings(minimal, "/project"), {
      manifestPath: "/project/manifest/service-manifest.nix",
      manifestAllowPaths: [],
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
      rotateRootCa: false,
      hostKeys: {},
      firstContactWindowSeconds: 900,
    });
  });

  it("defaults to nixpkgs' Proxmox LXC image of the pinned release, stored as a .tar.xz, and prefers a volume id", () => {
    const { templateVolumeId: _unset, ...withoutVolume } = minimal;
    assert.deepEqual(resolveStackSettings({ ...withoutVolume, templateSha256: "ab".repeat(32) }, "/project").template, {
      kind: "url",
      url: "https://hydra.nixos.org/job/nixos/release-25.11/nixos.proxmoxLXC.x86_64-linux/latest/download-by-type/file/system-tarball",
      datastore: "local",
      fileName: "nixos-25.11-proxmox-lxc-x86_64-linux.tar.xz",
      sha256: "ab".repeat(32),
    });
    assert.match(defaultTemplate.url, new RegExp(`/release-${(defaultNixpkgsPin.ref ?? "").replace("nixos-", "")}/`));
    // Pulumi.yaml gives templateUrl a default, so it is always set: a volume id wins instead of conflicting.
    assert.deepEqual(resolveStackSettings({ ...minimal, templateUrl: defaultTemplate.url }, "/project").template, { kind: "volume", volumeId: "local:vztmpl/nixos.tar.xz" });
    assert.equal((resolveStackSettings({ ...withoutVolume, templateSha256: "AB".repeat(32) }, "/project").template as { sha256: string }).sha256, "ab".repeat(32));
  });

  it("reads a template URL, a nixpkgs override and the replace opt-in", () => {
    const settings = resolveStackSettings({
      ...minimal,
      templateVolumeId: undefined,
      templateUrl: "https://example.org/nixos.tar.xz",
      templateDatastore: "nfs-templates",
      templateSha256: "cd".repeat(32),
      nixpkgsRev: "0123456789abcdef0123456789abcdef01234567",
      nixpkgsNarHash: `sha256-${"A".repeat(43)}=`,
      allowReplace: '["dns","caddy","dns"]',
      manifest: "/abs/homelab.yaml",
      manifestAllowPaths: '["../shared","/srv/nix-lib","../shared"]',
    }, "/project");
    assert.deepEqual(settings.template, { kind: "url", url: "https://example.org/nixos.tar.xz", datastore: "nfs-templates", fileName: defaultTemplate.fileName, sha256: "cd".repeat(32) });
    assert.deepEqual(settings.nixpkgs, { rev: "0123456789abcdef0123456789abcdef01234567", narHash: `sha256-${"A".repeat(43)}=`, ref: null, lastModified: null });
    assert.deepEqual(settings.allowReplace, ["caddy", "dns"]);
    assert.equal(settings.manifestPath, "/abs/homelab.yaml");
    assert.deepEqual(settings.manifestAllowPaths, ["/shared", "/srv/nix-lib"]);
  });

  it("takes the nixpkgs commit's time, so the lock is complete and a store or cache that has the source is used without GitHub", () => {
    const pin = { rev: "0123456789abcdef0123456789abcdef01234567", nixpkgsNarHash: `sha256-${"A".repeat(43)}=` };
    const settings = resolveStackSettings({ ...minimal, nixpkgsRev: pin.rev, nixpkgsNarHash: pin.nixpkgsNarHash, nixpkgsLastModified: "1700000000" }, "/project");
    assert.deepEqual(settings.nixpkgs, { rev: pin.rev, narHash: pin.nixpkgsNarHash, ref: null, lastModified: 1700000000 });
    assert.throws(() => resolveStackSettings({ ...minimal, nixpkgsRev: pin.rev, nixpkgsNarHash: pin.nixpkgsNarHash, nixpkgsLastModified: "yesterday" }, "/project"), {
      message: 'stack config: 1 problem\n  - nixmox:nixpkgsLastModified: must be the commit\'s Unix time in seconds (`nix flake prefetch --json` prints it as locked.lastModified), got "yesterday"',
    });
    assert.throws(() => resolveStackSettings({ ...minimal, nixpkgsLastModified: "1700000000" }, "/project"), {
      message: "stack config: 1 problem\n  - nixmox:nixpkgsLastModified: is the time of nixmox:nixpkgsRev; set it with nixmox:nixpkgsRev and nixmox:nixpkgsNarHash, or unset it",
    });
  });

  it("fails listing every problem with the key and the fix", () => {
    assert.throws(() => resolveStackSettings({
      proxmoxEndpoint: "pve.lan",
      proxmoxInsecure: "yes",
      templateUrl: "https://a/b.tar.xz",
      templateFileName: "system-tarball",
      templateSha256: "abc",
      nixpkgsRev: "abc",
      confirmTimeoutSeconds: "-1",
      allowReplace: "caddy",
      manifestAllowPaths: "../shared",
    }), {
      name: "ManifestError",
      message: [
        "stack config: 9 problems",
        '  - nixmox:proxmoxEndpoint: must be the API address "https://<host>:8006/", got "pve.lan"',
        "  - nixmox:proxmoxNode: is not set; run `pulumi config set nixmox:proxmoxNode <node>` (the Proxmox node of services without `node`)",
        '  - nixmox:proxmoxInsecure: must be true or false, got "yes"',
        '  - nixmox:confirmTimeoutSeconds: must be a whole number of seconds (0 disables confirmation), got "-1"',
        '  - nixmox:templateFileName: must be a file name ending in .tar.xz, .tar.zst or .tar.gz (Proxmox\'s vztmpl formats), got "system-tarball"',
        '  - nixmox:templateSha256: must be the template\'s SHA-256 as 64 hex characters (sha256sum prints it), got "abc"',
        "  - nixmox:nixpkgsNarHash: must be set together with the other of nixmox:nixpkgsRev/nixmox:nixpkgsNarHash (`nix flake prefetch github:NixOS/nixpkgs/<rev>` prints both)",
        "  - nixmox:allowReplace: must be a list of service names, e.g. `pulumi config set --path 'nixmox:allowReplace[0]' caddy`, got \"caddy\"",
        "  - nixmox:manifestAllowPaths: must be a list of directories, e.g. `pulumi config set --path 'nixmox:manifestAllowPaths[0]' ../shared`, got \"../shared\"",
      ].join("\n"),
    });
  });

  it("requires the template's checksum when it is downloaded, and says how to get it (security review M9)", () => {
    const { templateVolumeId: _unset, ...withoutVolume } = minimal;
    assert.throws(() => resolveStackSettings(withoutVolume, "/project"), {
      name: "ManifestError",
      message: "stack config: 1 problem\n  - nixmox:templateSha256: is not set; the template download is verified against it: " +
        `run \`curl -fL '${defaultTemplate.url}' | sha256sum\` and \`pulumi config set nixmox:templateSha256 <the 64 hex characters>\`, ` +
        "or upload a template yourself and set nixmox:templateVolumeId",
    });
  });

  it("reads host keys pinned out of band, normalised, and refuses what is not a key or names no service", () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0rtW4Aj39FVowGkbUlt8ziG7ZO6IpGh3ptDchjcmH0";
    const settings = resolveStackSettings(minimal, "/project", { hostKeys: { dns: `  ${key} root@dns\n`, caddy: key } });
    assert.deepEqual(settings.hostKeys, { caddy: key, dns: key });
    assert.throws(() => resolveStackSettings({ ...minimal, firstContactWindowSeconds: "10" }, "/project", { hostKeys: { dns: "ssh-ed25519 nope", caddy: 7 } }), {
      name: "ManifestError",
      message: [
        "stack config: 3 problems",
        '  - nixmox:firstContactWindowSeconds: must be a whole number of seconds, at least 60 (a new container\'s key is trusted on first use only this long after its creation), got "10"',
        "  - nixmox:hostKeys.caddy: must be a public key line \"ssh-ed25519 AAAA…\", got 7",
        '  - nixmox:hostKeys.dns: must look like "ssh-ed25519 AAAA…", got "ssh-ed25519 nope"',
      ].join("\n"),
    });
    assert.throws(() => resolveStackSettings(minimal, "/project", { hostKeys: ["dns"] }), /nixmox:hostKeys: must map service names to host keys/);
    assert.throws(() => checkSettingsAgainstPlan(settings, ["dns", "postgresql"]), {
      name: "ManifestError",
      message: "stack config: 1 problem\n  - nixmox:hostKeys.caddy: names no enabled service of the manifest (services: dns, postgresql); remove it with `pulumi config rm --path 'nixmox:hostKeys.caddy'`",
    });
    checkSettingsAgainstPlan(settings, ["caddy", "dns"]);
  });

  it("fails for a template URL that is not https, naming the key (security review M9)", () => {
    assert.throws(() => resolveStackSettings({ ...minimal, templateVolumeId: undefined, templateUrl: "http://mirror.lan/nixos.tar.xz", templateSha256: "ab".repeat(32) }, "/project"), {
      name: "ManifestError",
      message: 'stack config: 1 problem\n  - nixmox:templateUrl: must be an https:// URL of a NixOS LXC template, got "http://mirror.lan/nixos.tar.xz"',
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
