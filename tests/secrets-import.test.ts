// Real age (Debian `age`/`age-keygen`) encrypts the fixture's data key; the test builds the SOPS structure with
// node:crypto, the way sops writes it. The Pulumi CLI is a fake injected into the Automation API: it proves the
// exact arguments NixMox passes, not that a real `pulumi config set-all` stores them.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createCipheriv, createHash, randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PulumiCommand } from "@pulumi/pulumi/automation";
import { stringify } from "yaml";
import { SopsError, decryptSopsFile, formatImportPlan, planImport, writeImport } from "../components/secrets";
import { planOf, smallManifest } from "./support/manifests";

type Tree = Record<string, Record<string, unknown> | string>;

function encryptValue(value: string, dataKey: Buffer, additionalData: string): string {
  const iv = randomBytes(32);
  const cipher = createCipheriv("aes-256-gcm", dataKey, iv);
  cipher.setAAD(Buffer.from(additionalData, "utf8"));
  const data = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return `ENC[AES256_GCM,data:${data.toString("base64")},iv:${iv.toString("base64")},tag:${cipher.getAuthTag().toString("base64")},type:str]`;
}

/** A SOPS YAML file as sops 3.x writes it for age recipients (values in document order feed the MAC). */
function sopsFixture(tree: Tree, recipient: string): string {
  const dataKey = randomBytes(32);
  const hash = createHash("sha512");
  const encryptTree = (node: unknown, path: string[]): unknown => {
    if (typeof node === "object" && node !== null) {
      return Object.fromEntries(Object.entries(node as Record<string, unknown>).map(([key, value]) => [key, encryptTree(value, [...path, key])]));
    }
    hash.update(String(node), "utf8");
    return encryptValue(String(node), dataKey, `${path.join(":")}:`);
  };
  const encrypted = encryptTree(tree, []) as Record<string, unknown>;
  const lastmodified = "2026-01-02T03:04:05Z";
  const enc = execFileSync("age", ["--encrypt", "--armor", "--recipient", recipient], { input: dataKey, encoding: "utf8" });
  const mac = encryptValue(hash.digest("hex").toUpperCase(), dataKey, lastmodified);
  return stringify({ ...encrypted, sops: { age: [{ recipient, enc }], lastmodified, mac, unencrypted_suffix: "_unencrypted", version: "3.9.4" } });
}

const seedTree: Tree = {
  app: { database_password: "pa'ss \"word\" $(id)\nline2", oidc_client_secret: "oidc-secret", env: "SMTP_PASSWORD=x\n" },
  authentik: { secret_key: "authentik-secret-key", bootstrap_token: "bootstrap-token" },
  grafana: { admin_password: "grafana-admin" },
  nested: { deep: { key: "deep-value" } } as unknown as Record<string, unknown>,
};

describe("secrets import: SOPS/age decryption and the config write", function () {
  this.timeout(60_000);
  let dir: string;
  let identity: string;
  let file: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nixmox-sops-"));
    identity = join(dir, "keys.txt");
    execFileSync("age-keygen", ["-o", identity], { stdio: "ignore" });
    const recipient = execFileSync("age-keygen", ["-y", identity], { encoding: "utf8" }).trim();
    file = join(dir, "default.yaml");
    writeFileSync(file, sopsFixture(seedTree, recipient));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("decrypts every value in document order with an age identity file, verifying the MAC", async () => {
    const leaves = await decryptSopsFile(file, { identityFile: identity, sopsCommand: null });
    assert.deepEqual(leaves, [
      { path: ["app", "database_password"], value: "pa'ss \"word\" $(id)\nline2" },
      { path: ["app", "oidc_client_secret"], value: "oidc-secret" },
      { path: ["app", "env"], value: "SMTP_PASSWORD=x\n" },
      { path: ["authentik", "secret_key"], value: "authentik-secret-key" },
      { path: ["authentik", "bootstrap_token"], value: "bootstrap-token" },
      { path: ["grafana", "admin_password"], value: "grafana-admin" },
      { path: ["nested", "deep", "key"], value: "deep-value" },
    ]);
  });

  it("fails on a file with a value removed (MAC mismatch)", async () => {
    const tampered = join(dir, "removed.yaml");
    writeFileSync(tampered, readFileSync(file, "utf8").replace(/^ {2}oidc_client_secret: .*\n/m, ""));
    await assert.rejects(
      decryptSopsFile(tampered, { identityFile: identity, sopsCommand: null }),
      new SopsError(`${tampered}: MAC mismatch: values were added, removed or reordered outside sops; refusing to import (re-encrypt it with sops)`),
    );
  });

  it("fails on a value moved to another key (authentication fails)", async () => {
    const text = readFileSync(file, "utf8");
    const secretKey = /^ {2}secret_key: (.*)$/m.exec(text)?.[1] as string;
    const token = /^ {2}bootstrap_token: (.*)$/m.exec(text)?.[1] as string;
    const swapped = join(dir, "swapped.yaml");
    writeFileSync(swapped, text.replace(`secret_key: ${secretKey}`, `secret_key: ${token}`));
    await assert.rejects(
      decryptSopsFile(swapped, { identityFile: identity, sopsCommand: null }),
      new SopsError(`${swapped}: authentik.secret_key does not decrypt: the file was modified or moved between keys (authentication failed)`),
    );
  });

  it("fails with another identity, naming the recipients", async () => {
    const other = join(dir, "other.txt");
    execFileSync("age-keygen", ["-o", other], { stdio: "ignore" });
    const recipient = execFileSync("age-keygen", ["-y", identity], { encoding: "utf8" }).trim();
    await assert.rejects(
      decryptSopsFile(file, { identityFile: other, sopsCommand: null }),
      new SopsError(`none of the identities can decrypt ${file} (its age recipients: ${recipient}); pass --identity with the matching key`),
    );
  });

  it("uses the sops binary when there is one, with the identity in SOPS_AGE_KEY_FILE", async () => {
    const fake = join(dir, "sops");
    const log = join(dir, "sops.log");
    writeFileSync(fake, `#!/bin/sh\necho "$* key=$SOPS_AGE_KEY_FILE" > '${log}'\necho '{"app":{"db_password":"x"},"sops":{"mac":"m"}}'\n`);
    chmodSync(fake, 0o755);
    const leaves = await decryptSopsFile(file, { identityFile: identity, sopsCommand: fake });
    assert.deepEqual(leaves, [{ path: ["app", "db_password"], value: "x" }]);
    assert.equal(readFileSync(log, "utf8"), `--decrypt --output-type json ${file} key=${identity}\n`);
  });

  it("maps the seed's keys onto the plan's secrets and lists the rest", async () => {
    const leaves = await decryptSopsFile(file, { identityFile: identity, sopsCommand: null });
    const result = planImport(leaves, planOf(smallManifest()));
    assert.equal(
      formatImportPlan(result, true),
      [
        "imported app.database_password -> nixmox:secrets.app.db_password (secret)",
        "imported app.oidc_client_secret -> nixmox:secrets.app.oidc_client_secret (secret)",
        "imported authentik.bootstrap_token -> nixmox:secrets.authentik.bootstrap_token (secret)",
        "imported authentik.secret_key -> nixmox:secrets.authentik.secret_key (secret)",
        `skipped app.env: service "app" needs no secret "env" (declare it under the service's secrets to import it)`,
        `skipped grafana.admin_password: no enabled service "grafana" in the manifest`,
        "skipped nested.deep.key: not a <service>.<name> value",
        "4 imported, 3 skipped",
      ].join("\n"),
    );
  });

  it("writes every import as a secret in one config set-all call (exact CLI arguments)", async () => {
    const leaves = await decryptSopsFile(file, { identityFile: identity, sopsCommand: null });
    const result = planImport(leaves, planOf(smallManifest()));
    const calls: string[][] = [];
    const fake = {
      command: "pulumi",
      version: null,
      async run(args: string[]) {
        calls.push(args);
        return { stdout: "", stderr: "", code: 0 };
      },
    };
    await writeImport(result.imports, { stack: "ci", workDir: dir, pulumiCommand: fake as unknown as PulumiCommand });
    assert.deepEqual(calls, [
      [
        "config",
        "set-all",
        "--stack",
        "ci",
        "--path",
        "--secret",
        "nixmox:secrets.app.db_password=pa'ss \"word\" $(id)\nline2",
        "--secret",
        "nixmox:secrets.app.oidc_client_secret=oidc-secret",
        "--secret",
        "nixmox:secrets.authentik.bootstrap_token=bootstrap-token",
        "--secret",
        "nixmox:secrets.authentik.secret_key=authentik-secret-key",
      ],
    ]);
  });

  it("fails with a message that holds no value when the CLI fails", async () => {
    const fake = {
      command: "pulumi",
      version: null,
      // The real PulumiCommand.run rejects with a CommandError whose message holds the whole command line.
      async run(args: string[]) {
        throw Object.assign(new Error(`code: 255\n stdout: \n stderr: error: no stack named 'ci' found\n err?: pulumi ${args.join(" ")}`), {
          commandResult: { code: 255 },
        });
      },
    };
    const entries = [{ from: "app.database_password", configService: "app", name: "db_password", configKey: "nixmox:secrets.app.db_password", value: "canary-value-1" }];
    await assert.rejects(writeImport(entries, { stack: "ci", workDir: dir, pulumiCommand: fake as unknown as PulumiCommand }), (error: unknown) => {
      assert.equal((error as Error).message, 'pulumi config set-all failed for stack "ci" (exit 255); check `pulumi stack ls` and the backend login; no value was printed');
      return true;
    });
  });

  it("prints the import plan from the CLI (dry run) without any value", async () => {
    const manifest = join(dir, "manifest.json");
    writeFileSync(manifest, JSON.stringify(smallManifest()));
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(__dirname, "..", "bin", "nixmox.js"), "secrets", "import", file, "--identity", identity, "--manifest", manifest, "--dry-run", "--stack", "ci"],
        { timeout: 30_000, env: { ...process.env, PATH: "/usr/bin:/bin" } },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr }),
      );
    });
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(result.stdout.split("\n")[0], "would import app.database_password -> nixmox:secrets.app.db_password (secret)");
    assert.match(result.stdout, /\n4 imported \(dry run\), 3 skipped\n$/);
    for (const leaf of ["pa'ss", "oidc-secret", "authentik-secret-key", "bootstrap-token", "grafana-admin", "deep-value"]) {
      assert.equal(result.stdout.includes(leaf), false, `${leaf} leaked`);
    }
  });

  it("the real import without a Pulumi CLI gives the engine commands' one-line message (exit 2), no value", async () => {
    const manifest = join(dir, "manifest.json");
    writeFileSync(manifest, JSON.stringify(smallManifest()));
    const result = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(__dirname, "..", "bin", "nixmox.js"), "secrets", "import", file, "--identity", identity, "--manifest", manifest, "--stack", "ci"],
        { timeout: 30_000, env: { ...process.env, PATH: "/usr/bin:/bin" } },
        (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr }),
      );
    });
    assert.equal(result.code, 2);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, "nixmox: the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/); `nixmox preview --offline` needs none\n");
  });
});
