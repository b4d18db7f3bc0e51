// Golden files for the example manifest (manifest/service-manifest.nix), through the library and the CLI.
// Update the golden files after an intended change with:
//   UPDATE_GOLDEN=1 npx mocha tests/render-golden.test.ts
// and review the diff of tests/golden/example/ like any other change.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { RenderedHost } from "../render";
import { exampleManifestData, renderData } from "./golden/render-fixtures";

const goldenDir = path.join(__dirname, "golden", "example");
const repoDir = path.join(__dirname, "..");
const update = process.env.UPDATE_GOLDEN === "1";

function listFiles(dir: string, prefix = ""): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const full = path.join(dir, name);
      const relative = prefix ? `${prefix}/${name}` : name;
      return statSync(full).isDirectory() ? listFiles(full, relative) : [relative];
    });
}

/**
 * Where the expected bytes of a rendered file live: shipped modules (`nixos/…`) and the manifest's own modules
 * (`custom/…`) are byte copies of files in this repository, so the golden tree keeps only what render generates
 * (flake.nix, flake.lock, host.json) plus the complete file list.
 */
function expectedPath(service: string, relative: string): string {
  if (relative.startsWith("nixos/")) return path.join(repoDir, relative);
  if (relative.startsWith("custom/")) return path.join(repoDir, "manifest", relative.slice("custom/".length));
  return path.join(goldenDir, service, relative);
}

function goldenFileList(): string[] {
  return JSON.parse(readFileSync(path.join(goldenDir, "files.json"), "utf8")) as string[];
}

function writeGolden(hosts: RenderedHost[]): void {
  rmSync(goldenDir, { recursive: true, force: true });
  for (const host of hosts) {
    for (const [relative, content] of Object.entries(host.files)) {
      const file = expectedPath(host.service, relative);
      if (!file.startsWith(goldenDir)) continue;
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
  }
  const files = hosts.flatMap((host) => Object.keys(host.files).map((file) => `${host.service}/${file}`)).sort();
  writeFileSync(path.join(goldenDir, "files.json"), `${JSON.stringify(files, null, 2)}\n`);
  writeFileSync(path.join(goldenDir, "content-hashes.json"), `${JSON.stringify(Object.fromEntries(hosts.map((h) => [h.service, h.contentHash])), null, 2)}\n`);
}

describe("render: golden files of the example manifest", function () {
  this.timeout(60_000);
  let hosts: RenderedHost[];

  before(async () => {
    hosts = renderData(await exampleManifestData());
    if (update) writeGolden(hosts);
  });

  it("renders exactly the golden file set, one directory per enabled service", () => {
    const actual = hosts.flatMap((host) => Object.keys(host.files).map((file) => `${host.service}/${file}`)).sort();
    assert.deepEqual(actual, goldenFileList());
    assert.deepEqual(hosts.map((host) => host.service), ["authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "vaultwarden"]);
  });

  it("renders every file byte-identical to its golden copy (generated files) or its source (copied modules)", () => {
    for (const host of hosts) {
      for (const [relative, content] of Object.entries(host.files)) {
        assert.equal(content, readFileSync(expectedPath(host.service, relative), "utf8"), `${host.service}/${relative}`);
      }
    }
  });

  it("keeps the golden content hashes", () => {
    const golden = JSON.parse(readFileSync(path.join(goldenDir, "content-hashes.json"), "utf8"));
    assert.deepEqual(Object.fromEntries(hosts.map((h) => [h.service, h.contentHash])), golden);
  });

  it("nixmox render writes the golden tree and prints each host's content hash", () => {
    const out = mkdtempSync(path.join(tmpdir(), "nixmox-render-"));
    try {
      const stdout = execFileSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), "render", "--out", out], { encoding: "utf8", timeout: 60_000 });
      const golden = JSON.parse(readFileSync(path.join(goldenDir, "content-hashes.json"), "utf8")) as Record<string, string>;
      assert.equal(stdout, [`rendered 7 hosts into ${out}`, ...Object.entries(golden).map(([name, hash]) => `${name} ${hash}`), ""].join("\n"));
      const written = listFiles(out).filter((file) => file !== ".nixmox-render.json");
      assert.deepEqual(written, goldenFileList());
      for (const file of written) {
        const [service, ...rest] = file.split("/");
        assert.equal(readFileSync(path.join(out, file), "utf8"), readFileSync(expectedPath(service, rest.join("/")), "utf8"), file);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("nixmox render removes the directory of a service an earlier render wrote and this one did not", () => {
    const out = mkdtempSync(path.join(tmpdir(), "nixmox-render-"));
    try {
      mkdirSync(path.join(out, "oldservice"));
      writeFileSync(path.join(out, "oldservice", "flake.nix"), "{ }\n");
      writeFileSync(path.join(out, "unrelated.txt"), "kept\n");
      writeFileSync(path.join(out, ".nixmox-render.json"), JSON.stringify({ hosts: ["oldservice"] }));
      execFileSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), "render", "--out", out], { encoding: "utf8", timeout: 60_000 });
      assert.deepEqual(readdirSync(out).sort(), [".nixmox-render.json", "authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "unrelated.txt", "vaultwarden"]);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it("fails with the manifest problem and exit code 1 on an invalid manifest", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "nixmox-render-"));
    try {
      const manifest = path.join(dir, "bad.json");
      writeFileSync(manifest, JSON.stringify({ network: { domain: "lan", dns_server: "10.0.0.1", gateway: "10.0.0.1", network_cidr: "10.0.0.0/24" }, services: { web: { ip: "10.0.0.5" } } }));
      const result = spawnSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), "render", manifest, "--out", path.join(dir, "out")], { encoding: "utf8", timeout: 60_000 });
      assert.equal(result.status, 1);
      assert.equal(result.stdout, "");
      assert.match(result.stderr, /^.*bad\.json: 1 problem\n  - service "web": nixos_modules is required/);
      assert.doesNotMatch(result.stderr, /\n\s+at /);
      assert.deepEqual(readdirSync(dir), ["bad.json"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails with exit code 1 and every bad field of an invalid --nixpkgs pin", () => {
    const result = spawnSync(process.execPath, [path.join(repoDir, "bin", "nixmox.js"), "render", "--out", path.join(tmpdir(), "nixmox-never"), "--nixpkgs", '{"rev":"abc","narHash":"md5-x"}'], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.status, 1);
    assert.equal(
      result.stderr,
      "stack config: 2 problems\n" +
        '  - nixpkgs pin: rev must be a 40-character lower-case git commit hash of NixOS/nixpkgs, got "abc"\n' +
        '  - nixpkgs pin: narHash must be an SRI sha256 hash such as "sha256-…=" (nix flake prefetch github:NixOS/nixpkgs/<rev> prints it), got "md5-x"\n',
    );
  });
});
