// Mock-based (through `nixmox preview --offline`): proves the printed tree and JSON, not what Proxmox or the
// engine would do with them.
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { renderPreviewTree } from "../components/offline-preview";
import { exampleManifestData, runNixmoxProgram, writeManifest } from "./support/pulumi-mocks";

const cli = path.join(__dirname, "..", "bin", "nixmox.js");
const nixmox = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 60_000 });

describe("nixmox preview --offline", function () {
  this.timeout(90_000);

  it("prints the exact tree of a one-service manifest", async () => {
    const data = (await exampleManifestData()) as { core_services: Record<string, unknown>; services: Record<string, unknown> };
    data.core_services = { dns: data.core_services.dns };
    data.services = {};
    const manifest = writeManifest(data);
    try {
      const run = await runNixmoxProgram(manifest.path);
      assert.equal(renderPreviewTree(run.resources), [
        "pulumi:pulumi:Stack nixmox-offline",
        "├─ nixmox:index:NixosService dns",
        "│  ├─ pulumi-nodejs:dynamic/nixmox:RemoteCommand dns-config  (waits for nixmox-ca-root)",
        "│  ├─ proxmoxve:index/containerLegacy:ContainerLegacy dns-container  (waits for nixos-template-pve)",
        "│  ├─ pulumi-nodejs:dynamic/nixmox:ContainerGuard dns-guard",
        "│  ├─ pulumi-nodejs:dynamic/nixmox:HealthCheck dns-health  (waits for nixmox-ca-root)",
        "│  ├─ pulumi-nodejs:dynamic/nixmox:RemoteCommand dns-rebuild  (waits for nixmox-ca-root)",
        "│  └─ pulumi-nodejs:dynamic/nixmox:SshHostKey dns-ssh",
        "├─ nixmox:index:ManagedCa nixmox-ca",
        "│  ├─ pulumi-nodejs:dynamic/nixmox:IntermediateCa nixmox-ca-intermediate",
        "│  └─ pulumi-nodejs:dynamic/nixmox:RootCa nixmox-ca-root  (protected)",
        "├─ pulumi-nodejs:dynamic/nixmox:NodeTemplate nixos-template-pve",
        "└─ pulumi:providers:proxmoxve proxmox",
        "",
        "13 resources: 10 custom, 2 components, 1 stack; nothing was deployed (offline preview under mocks).",
        "",
      ].join("\n"));
    } finally {
      manifest.remove();
    }
  });

  it("runs on the embedded defaults with no stack config and exits 0", () => {
    const result = nixmox("preview", "--offline");
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, "");
    const lines = result.stdout.trimEnd().split("\n");
    assert.equal(lines[0], "pulumi:pulumi:Stack nixmox-offline");
    assert.ok(lines.includes("│  ├─ pulumi-nodejs:dynamic/nixmox:RemoteCommand guacamole-rebuild  (waits for nixmox-ca-root, authentik-health, caddy-health, dns-health, postgresql-health, secret-guacamole-db_password)"), result.stdout);
    assert.ok(lines.includes("│  ├─ proxmoxve:index/containerLegacy:ContainerLegacy postgresql-container  (protected; retained on delete; waits for nixos-template-pve)"), result.stdout);
    assert.equal(lines[lines.length - 1], "71 resources: 62 custom, 8 components, 1 stack; nothing was deployed (offline preview under mocks).");
  });

  it("previews the older homelab (no vmids, no domain, terraform blocks) and exits 0", () => {
    const result = nixmox("preview", "--offline", "manifest/examples/older-homelab.nix");
    assert.equal(result.status, 0, result.stderr);
    const lines = result.stdout.trimEnd().split("\n");
    assert.ok(lines.includes("│  ├─ proxmoxve:index/containerLegacy:ContainerLegacy media-container  (waits for nixos-template-pve)"), result.stdout);
    assert.equal(lines[lines.length - 1], "83 resources: 74 custom, 8 components, 1 stack; nothing was deployed (offline preview under mocks).");
  });

  it("prints JSON with secrets as \"[secret]\"", () => {
    const result = nixmox("preview", "--offline", "--json");
    assert.equal(result.status, 0, result.stderr);
    const parsed = JSON.parse(result.stdout) as { resources: Array<{ name: string; inputs: Record<string, unknown>; parent: string | null }> };
    assert.equal(parsed.resources.length, 71);
    const provider = parsed.resources.find((resource) => resource.name === "proxmox");
    assert.deepEqual(provider?.inputs, { apiToken: "[secret]", endpoint: "https://pve.offline.invalid:8006/", insecure: "false" });
    assert.equal(parsed.resources.filter((resource) => resource.parent === null).map((resource) => resource.name).join(), "nixmox-offline");
  });

  it("gives required secrets that cannot be generated a placeholder, so their delivery shows", async () => {
    const data = (await exampleManifestData()) as { services: Record<string, Record<string, unknown>> };
    data.services.homepage.secrets = { api_key: { description: "dashboard API key" } };
    const manifest = writeManifest(data);
    try {
      const result = nixmox("preview", "--offline", manifest.path, "--json");
      assert.equal(result.status, 0, result.stderr);
      const parsed = JSON.parse(result.stdout) as { resources: Array<{ name: string; inputs: Record<string, unknown> }> };
      const delivery = parsed.resources.find((resource) => resource.name === "homepage-secrets");
      assert.equal(delivery?.inputs.stdin, "[secret]");
      assert.equal(result.stdout.includes("offline-placeholder-homepage-api_key"), false);
    } finally {
      manifest.remove();
    }
  });

  it("fails with the manifest's problem and exit code 1 on a missing manifest", () => {
    const result = nixmox("preview", "--offline", "/nonexistent/manifest.nix");
    assert.equal(result.status, 1);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, "/nonexistent/manifest.nix: 1 problem\n  - manifest: file not found; give the path of a .nix, .json or .yaml manifest\n");
  });

  it("without --offline runs the engine, and says so when the Pulumi CLI is missing (exit 2)", () => {
    const result = spawnSync(process.execPath, [cli, "preview", "--stack", "homelab", "--backend", "s3://nixmox-test-state"], {
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, PATH: path.dirname(process.execPath) },
    });
    assert.equal(result.status, 2);
    assert.equal(result.stderr, "nixmox: the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); `nixmox preview --offline` needs none\n");
  });

  it("accepts @TAG in --only (a manifest tag or a kind, as colmena's @tag), and names the tags there are for an unknown one", () => {
    const byTag = nixmox("preview", "--offline", "--only", "@vaultwarden,@dns", "manifest/service-manifest.nix");
    const byName = nixmox("preview", "--offline", "--only", "dns,vaultwarden", "manifest/service-manifest.nix");
    assert.equal(byTag.status, 0, byTag.stderr);
    assert.equal(byTag.stdout, byName.stdout);
    assert.match(byTag.stdout, /\n--only dns,vaultwarden: \d+ of \d+ resources are targeted/);
    const unknown = nixmox("preview", "--offline", "--only", "@nope", "manifest/service-manifest.nix");
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /^nixmox: --only: no enabled service has tag "nope" \(a tag is one of a service's manifest tags, or its kind\); tags: @authentik, @caddy, /);
  });

  it("takes the stack's manifest from its Pulumi.<stack>.yaml with --stack, and refuses another manifest argument showing both paths, exit 2", () => {
    const project = mkdtempSync(path.join(tmpdir(), "nixmox-preview-stack-"));
    try {
      writeFileSync(path.join(project, "Pulumi.yaml"), "name: nixmox\nruntime: nodejs\n");
      writeFileSync(path.join(project, "Pulumi.home.yaml"), `config:\n  nixmox:manifest: ${path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix")}\n`);
      const example = path.join(__dirname, "..", "manifest", "service-manifest.nix");
      const refused = nixmox("preview", "--offline", "--stack", "home", "--project-dir", project, example);
      assert.equal(refused.status, 2);
      assert.match(refused.stderr, /^nixmox: the manifest argument \S*manifest\/service-manifest\.nix is not the manifest of stack "home", which deploys \S*manifest\/examples\/seed-homelab\.nix \(its nixmox:manifest\)/);
      const taken = nixmox("preview", "--offline", "--stack", "home", "--project-dir", project);
      assert.equal(taken.status, 0, taken.stderr);
      // The seed layout's own services, not the example's.
      assert.match(taken.stdout, /nixmox:index:NixosService openbao/);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });
});
