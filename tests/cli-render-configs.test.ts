// Real processes, no mocks: `node bin/nixmox.js render --out DIR --configs` as a user runs it.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { defaultManifestPath, loadManifestData } from "../manifest";
import { standInCaCertificate } from "../render";
import { renderWithConfigs } from "./support/daemons";

const root = path.resolve(__dirname, "..");

function nixmox(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(root, "bin/nixmox.js"), ...args], { cwd: root, timeout: 120_000, env }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") return reject(error);
      resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

describe("cli: render --configs", function () {
  this.timeout(180_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-render-configs-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("writes each host's daemon configs next to its flake and lists them", async () => {
    const out = path.join(dir, "out");
    const run = await nixmox(["render", "--out", out, "--configs"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^caddy [0-9a-f]{64} configs: Caddyfile nftables\.conf resolv\.conf$/m);
    assert.match(run.stdout, /^dns [0-9a-f]{64} configs: nftables\.conf resolv\.conf unbound\.conf$/m);
    assert.match(run.stdout, /^postgresql [0-9a-f]{64} configs: nftables\.conf pg_hba\.conf resolv\.conf setup\.sql$/m);
    assert.deepEqual(readdirSync(path.join(out, "vaultwarden", "configs")), ["nftables.conf", "resolv.conf"]);
    assert.match(readFileSync(path.join(out, "caddy", "configs", "Caddyfile"), "utf8"), /^vault\.nixmox\.lan \{$/m);
    assert.match(readFileSync(path.join(out, "dns", "configs", "unbound.conf"), "utf8"), /^  local-zone: "nixmox\.lan\." static$/m);
    assert.match(readFileSync(path.join(out, "postgresql", "configs", "pg_hba.conf"), "utf8"), /^host "vaultwarden" "vaultwarden" 192\.168\.99\.14\/32 scram-sha-256$/m);
  });

  it("writes no configs directory without the flag, and the content hashes do not depend on it", async () => {
    const withConfigs = await nixmox(["render", "--out", path.join(dir, "a"), "--configs"]);
    const without = await nixmox(["render", "--out", path.join(dir, "b")]);
    assert.equal(existsSync(path.join(dir, "b", "caddy", "configs")), false);
    const hashes = (text: string) => [...text.matchAll(/^([a-z0-9-]+) ([0-9a-f]{64})/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(hashes(withConfigs.stdout), hashes(without.stdout));
  });

  it("fails with one clear line and leaves the output directory untouched when nix-instantiate is missing", async () => {
    const out = path.join(dir, "untouched");
    // A PATH with node but without nix-instantiate; the manifest is a .json copy (with its module), so loading
    // it needs no Nix and only --configs does.
    const manifest = path.join(dir, "manifest.json");
    writeFileSync(manifest, JSON.stringify(await loadManifestData(defaultManifestPath)));
    cpSync(path.join(path.dirname(defaultManifestPath), "modules"), path.join(dir, "modules"), { recursive: true });
    // node and openssl (for the stand-in CA), no nix-instantiate.
    const bin = path.join(dir, "bin-without-nix");
    mkdirSync(bin, { recursive: true });
    symlinkSync(execFileSync("sh", ["-c", "command -v openssl"], { encoding: "utf8" }).trim(), path.join(bin, "openssl"));
    const run = await nixmox(["render", manifest, "--out", out, "--configs"], { ...process.env, PATH: `${path.dirname(process.execPath)}:${bin}` });
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /--configs needs nix-instantiate on the PATH \(Debian: apt install nix-bin; or install Nix\)/);
    assert.doesNotMatch(run.stderr, /^\s+at /m);
    assert.equal(existsSync(out), false);
    const withoutOpenssl = await nixmox(["render", manifest, "--out", out, "--configs"], { ...process.env, PATH: path.dirname(process.execPath) });
    assert.notEqual(withoutOpenssl.code, 0);
    assert.match(withoutOpenssl.stderr, /--configs needs openssl on the PATH to make the stand-in CA the proxy's Caddyfile is rendered with \(Debian: apt install openssl\)/);
    assert.doesNotMatch(withoutOpenssl.stderr, /^\s+at /m);
    assert.equal(existsSync(out), false);
  });

  it("renders the proxy's Caddyfile with a stand-in CA made for the run: the same pki and issuer blocks as a deploy's, the same bytes on every run (review N4)", async () => {
    const first = await nixmox(["render", "--out", path.join(dir, "ca1"), "--configs"]);
    const second = await nixmox(["render", "--out", path.join(dir, "ca2"), "--configs"]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /^configs rendered with a stand-in CA made for this run \("NixMox stand-in root of render --configs, not a deploy's"\); a deploy uses the stack's managed CA$/m);
    const caddyfile = readFileSync(path.join(dir, "ca1", "caddy", "configs", "Caddyfile"), "utf8");
    assert.match(caddyfile, /^\tpki \{\n\t\tca nixmox \{/m);
    assert.match(caddyfile, /^\t\tissuer internal \{\n\t\t\tca nixmox\n/m);
    assert.doesNotMatch(caddyfile, /tls internal$/m);
    assert.equal(readFileSync(path.join(dir, "ca2", "caddy", "configs", "Caddyfile"), "utf8"), caddyfile);
    // What a deploy renders: the same manifest with another root (as components/managed-ca.ts passes it).
    const deploy = renderWithConfigs(await loadManifestData(defaultManifestPath), { caRootCertificate: standInCaCertificate() });
    assert.equal(deploy.configs.caddy.Caddyfile, caddyfile);
    // The flakes carry no CA (there is no stack offline), so their hashes do not change from run to run.
    const hashes = (text: string) => [...text.matchAll(/^([a-z0-9-]+) ([0-9a-f]{64})/gm)].map((m) => `${m[1]} ${m[2]}`);
    assert.deepEqual(hashes(first.stdout), hashes(second.stdout));
    assert.match(execFileSync("openssl", ["x509", "-noout", "-subject"], { input: standInCaCertificate(), encoding: "utf8" }), /CN = "?NixMox stand-in root of render --configs, not a deploy's"?$/m);
  });
});
