// Pure functions plus the real CLI (bin/nixmox.js in a child process) against stack files written by the test.
// No Pulumi CLI: the stack file is read as YAML, which is what `secrets check` does in production too.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import {
  SecretConfigError,
  SecretsMissingError,
  StackFileError,
  assertSecretsComplete,
  checkSecrets,
  configSetCommand,
  formatSecretCheck,
  parseConfiguredSecrets,
  readStackSecretStates,
} from "../components/secrets";
import { planOf, smallManifest, type RawManifest } from "./support/manifests";

function manifestWithSecrets(): RawManifest {
  const raw = smallManifest();
  raw.services.app.secrets = {
    smtp_password: { owner: "vaultwarden", mode: "0440", restart_units: ["vaultwarden.service"], description: "SMTP relay password" },
    api_key: { generate: true },
  };
  return raw;
}

const expectedTable = [
  "SECRET                        STATUS     HOSTS                 DESCRIPTION",
  'app/api_key                   generated  app                   declared by service "app"',
  'app/db_password               set        app,postgresql        password of PostgreSQL role "app"',
  "app/oidc_client_secret        generated  app                   OIDC client secret (also set in Authentik)",
  "app/smtp_password             missing    app                   SMTP relay password",
  "authentik/bootstrap_password  generated  authentik             password of Authentik's akadmin user",
  "authentik/bootstrap_token     generated  authentik             API token NixMox uses to configure Authentik",
  'authentik/db_password         generated  authentik,postgresql  password of PostgreSQL role "authentik"',
];

describe("secrets check: rows and messages", () => {
  const plan = planOf(manifestWithSecrets());

  it("lists each stack-config value once with its status, hosts and, when missing, the exact command", () => {
    const rows = checkSecrets(plan, { "app/db_password": "secret", "authentik/secret_key": "plaintext" }, { stack: "ci" });
    assert.equal(
      formatSecretCheck(rows),
      [
        ...expectedTable,
        "authentik/secret_key          plaintext  authentik             Authentik's secret key (signs sessions)",
        "",
        "8 secrets: 1 set, 5 generated, 1 missing, 1 in plain text",
        "",
        "# Each command reads the value from the file named after `<` (leave `< FILE` out to type it, unechoed): never on the command line, which the shell history keeps.",
        "# app/smtp_password is required and cannot be generated; set it:",
        "pulumi config set --secret --stack ci --path 'nixmox:secrets.app.smtp_password' < FILE",
        "# authentik/secret_key is stored in plain text in the stack file; set it again as a secret:",
        "pulumi config set --secret --stack ci --path 'nixmox:secrets.authentik.secret_key' < FILE",
      ].join("\n"),
    );
    assert.deepEqual(
      rows.filter((row) => row.blocking).map((row) => `${row.configService}/${row.name}`),
      ["app/smtp_password", "authentik/secret_key"],
    );
  });

  it("fails before any resource with every blocking secret listed", () => {
    assert.throws(
      () => assertSecretsComplete(plan, { "authentik/secret_key": "plaintext" }),
      (error: unknown) => {
        assert.ok(error instanceof SecretsMissingError);
        assert.equal(
          error.message,
          [
            "secrets: 2 required secrets are not usable; nothing was changed:",
            `  service "app": secret "smtp_password" is missing and not generatable: pulumi config set --secret --path 'nixmox:secrets.app.smtp_password' < FILE`,
            `  service "authentik": secret "secret_key" is stored in plain text (re-set it with --secret): pulumi config set --secret --path 'nixmox:secrets.authentik.secret_key' < FILE`,
          ].join("\n"),
        );
        return true;
      },
    );
  });

  it("passes when every non-generatable secret is set", () => {
    const rows = assertSecretsComplete(plan, { "app/smtp_password": "secret" });
    assert.deepEqual(
      rows.map((row) => row.status),
      ["generated", "generated", "generated", "set", "generated", "generated", "generated", "generated"],
    );
  });

  it("quotes path segments that Pulumi's property paths would split", () => {
    assert.equal(configSetCommand("home-assistant", "api.key"), `pulumi config set --secret --path 'nixmox:secrets["home-assistant"]["api.key"]' < FILE`);
    assert.equal(configSetCommand("app", "db_password", { stack: "prod" }), `pulumi config set --secret --stack prod --path 'nixmox:secrets.app.db_password' < FILE`);
  });
});

/**
 * Every `pulumi config set --secret` command suggested in `text` that gives the value on the command line (issue 22:
 * the shell history and the process list keep it), as `file: command`. A value read from a file or stdin (`< FILE`,
 * or nothing after the key) or a placeholder (`…`) passes; `[--stack S]` is a usage line's optional flag. Template
 * literals' `${…}` count as one word.
 */
function inlineSecretValues(file: string, text: string): string[] {
  const found: string[] = [];
  const words = text.replace(/\$\{[^}]*\}/g, "X");
  const command = /pulumi config set --secret((?:\s+--stack\s+[^\s`]+|\s+--path|\s+\[[^\]\n]*\])*)(?:\s+([^\s`]+))?([ \t]+([^\s`]+))?/g;
  for (const match of words.matchAll(command)) {
    const value = match[4];
    if (value === undefined || value === "<" || value.startsWith("#") || value === "…" || value === "...") continue;
    found.push(`${file}: ${match[0]}`);
  }
  return found;
}

describe("secrets: no suggested command puts a value on the command line", () => {
  const root = resolve(__dirname, "..");
  const sources = [
    "README.md",
    ...["Pulumi.yaml", "Pulumi.dev.yaml"],
    ...["docs", "templates", "cli", "components", "manifest", "nixos", "bin"].flatMap((dir) =>
      readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })
        .filter((file) => /\.(md|ts|js|nix|yaml|sh)$/.test(file))
        .map((file) => join(dir, file)),
    ),
  ];

  it("finds the commands it checks (a scan that finds none would prove nothing), and flags a value given inline", () => {
    assert.ok(sources.includes(join("manifest", "schema-issues.ts")) && sources.includes(join("docs", "building.md")));
    assert.deepEqual(inlineSecretValues("x.md", "run `pulumi config set --secret --path 'nixmox:secrets.a.b' <value>`"), [
      "x.md: pulumi config set --secret --path 'nixmox:secrets.a.b' <value>",
    ]);
    assert.deepEqual(inlineSecretValues("x.md", 'pulumi config set --secret nixmox:k "$(cat key)"'), ['x.md: pulumi config set --secret nixmox:k "$(cat'], "a command substitution still lands in argv");
    assert.deepEqual(inlineSecretValues("x.md", "`pulumi config set --secret --stack s --path\n  'nixmox:secrets.a.b' < FILE` or `pulumi config set --secret …`"), []);
  });

  it("in the docs, the templates and every message the CLI and the program print: each reads the value from a file or stdin", () => {
    assert.deepEqual(sources.flatMap((file) => inlineSecretValues(file, readFileSync(join(root, file), "utf8"))), []);
  });
});

describe("secrets check: reading the stack file", () => {
  it("tells secure values from plain ones without decrypting", () => {
    const text = ["config:", "  nixmox:secrets:", "    app:", "      db_password:", "        secure: v1:AAAA", "      smtp_password: hunter2", "    authentik: {}", ""].join("\n");
    assert.deepEqual(readStackSecretStates(text, "Pulumi.ci.yaml"), { "app/db_password": "secret", "app/smtp_password": "plaintext" });
    assert.deepEqual(readStackSecretStates("config: {}\n", "Pulumi.ci.yaml"), {});
  });

  it("fails for nixmox:secrets set as one encrypted blob, with the per-secret command", () => {
    assert.throws(
      () => readStackSecretStates("config:\n  nixmox:secrets:\n    secure: v1:BBBB\n", "Pulumi.ci.yaml"),
      new StackFileError(
        "Pulumi.ci.yaml: nixmox:secrets is one encrypted value, so which secrets it holds cannot be read without decrypting it; set each secret on its own with pulumi config set --secret --path 'nixmox:secrets.<service>.<name>' < FILE",
      ),
    );
  });

  it("fails for a malformed nixmox:secrets config value without quoting it", () => {
    assert.throws(() => parseConfiguredSecrets("{not json hunter2", true), (error: unknown) => {
      assert.ok(error instanceof SecretConfigError);
      assert.equal(error.message.includes("hunter2"), false);
      assert.equal(error.message, "nixmox:secrets is not a structured value; set each secret with pulumi config set --secret --path 'nixmox:secrets.<service>.<name>' < FILE");
      return true;
    });
    assert.throws(
      () => parseConfiguredSecrets(JSON.stringify({ app: { db_password: 42 } }), true),
      new SecretConfigError("nixmox:secrets.app.db_password must be a string value (got a number); set it with pulumi config set --secret --path 'nixmox:secrets.app.db_password' < FILE"),
    );
  });

  it("reads config values and marks them plaintext when Pulumi did not mark the key secret", () => {
    assert.deepEqual(parseConfiguredSecrets(JSON.stringify({ app: { db_password: "x" } }), false), {
      values: { "app/db_password": "x" },
      states: { "app/db_password": "plaintext" },
    });
  });
});

describe("secrets check: the CLI", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nixmox-secrets-check-"));
    writeFileSync(join(dir, "manifest.json"), JSON.stringify(manifestWithSecrets()));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(process.execPath, [join(__dirname, "..", "bin", "nixmox.js"), ...args], { timeout: 30_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr });
      });
    });
  }

  it("fails with exit 1 and the commands when a required secret is missing", async () => {
    writeFileSync(join(dir, "Pulumi.ci.yaml"), "config:\n  nixmox:manifest: manifest.json\n  nixmox:proxmoxApiToken:\n    secure: v1:TTTT\n  nixmox:sshPrivateKey:\n    secure: v1:KKKK\n  nixmox:secrets:\n    app:\n      db_password:\n        secure: v1:AAAA\n");
    const result = await run(["secrets", "check", join(dir, "manifest.json"), "--stack", "ci", "--project-dir", dir]);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 1);
    assert.equal(
      result.stdout,
      [
        "stack ci, manifest " + join(dir, "manifest.json") + ":",
        expectedTable[0],
        "nixmox:proxmoxApiToken        set                              Proxmox API token (user@realm!name=secret) NixMox deploys with",
        "nixmox:sshPrivateKey          set                              the deploy key: SSH private key NixMox logs in to every host with",
        ...expectedTable.slice(1),
        "authentik/secret_key          generated  authentik             Authentik's secret key (signs sessions)",
        "",
        "10 secrets: 3 set, 6 generated, 1 missing, 0 in plain text",
        "",
        "# Each command reads the value from the file named after `<` (leave `< FILE` out to type it, unechoed): never on the command line, which the shell history keeps.",
        "# app/smtp_password is required and cannot be generated; set it:",
        "pulumi config set --secret --stack ci --path 'nixmox:secrets.app.smtp_password' < FILE",
        "",
      ].join("\n"),
    );
  });

  it("exits 0 once every required secret is set", async () => {
    writeFileSync(join(dir, "Pulumi.ok.yaml"), "config:\n  nixmox:manifest: manifest.json\n  nixmox:proxmoxApiToken:\n    secure: v1:TTTT\n  nixmox:sshPrivateKey:\n    secure: v1:KKKK\n  nixmox:secrets:\n    app:\n      smtp_password:\n        secure: v1:CCCC\n");
    const result = await run(["secrets", "check", join(dir, "manifest.json"), "--stack", "ok", "--project-dir", dir]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /\n10 secrets: 3 set, 7 generated, 0 missing, 0 in plain text\n$/);
  });

  it("fails with exit 1 when the stack's own secrets are missing or in plain text, with the command that sets each", async () => {
    writeFileSync(join(dir, "Pulumi.keys.yaml"), "config:\n  nixmox:manifest: manifest.json\n  nixmox:proxmoxApiToken: root@pam!x=plaintext-token\n  nixmox:secrets:\n    app:\n      smtp_password:\n        secure: v1:CCCC\n");
    const result = await run(["secrets", "check", join(dir, "manifest.json"), "--stack", "keys", "--project-dir", dir]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /^nixmox:proxmoxApiToken {8}plaintext {2}/m);
    assert.match(result.stdout, /^nixmox:sshPrivateKey {10}missing {4}/m);
    assert.match(result.stdout, /\n# nixmox:proxmoxApiToken is stored in plain text in the stack file; set it again as a secret:\npulumi config set --secret --stack keys nixmox:proxmoxApiToken < token\.txt\n/);
    assert.match(result.stdout, /\n# nixmox:sshPrivateKey is required and cannot be generated; set it:\npulumi config set --secret --stack keys nixmox:sshPrivateKey < ~\/\.ssh\/nixmox_ed25519\n/);
    assert.ok(!result.stdout.includes("plaintext-token"), "the plain value is never printed");
  });

  it("fails with exit 2 for a stack without a stack file", async () => {
    const result = await run(["secrets", "check", join(dir, "manifest.json"), "--stack", "nope", "--project-dir", dir]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, `stack file ${join(dir, "Pulumi.nope.yaml")} does not exist; create the stack with \`nixmox stack init nope\` or pass --stack <name>\n`);
  });

  it("fails with exit 1 for an invalid manifest, as validate, plan and status do", async () => {
    const raw = manifestWithSecrets();
    raw.services.app.secrets.smtp_password.mode = "777x";
    writeFileSync(join(dir, "bad.json"), JSON.stringify(raw));
    writeFileSync(join(dir, "Pulumi.bad.yaml"), "config:\n  nixmox:manifest: bad.json\n");
    const result = await run(["secrets", "check", "--stack", "bad", "--project-dir", dir]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /smtp_password/);
    assert.match(result.stderr, /must be an octal mode such as "0400"/);
  });

  it("checks the stack's nixmox:manifest when no manifest is given, not NixMox's example (newcomer-2 #1)", async () => {
    writeFileSync(join(dir, "Pulumi.mine.yaml"), "config:\n  nixmox:manifest: manifest.json\n  nixmox:proxmoxApiToken:\n    secure: v1:TTTT\n  nixmox:sshPrivateKey:\n    secure: v1:KKKK\n");
    const result = await run(["secrets", "check", "--stack", "mine", "--project-dir", dir]);
    assert.equal(result.code, 1, result.stderr);
    assert.ok(result.stdout.startsWith(`stack mine, manifest ${join(dir, "manifest.json")}:\n`), result.stdout);
    assert.match(result.stdout, /\npulumi config set --secret --stack mine --path 'nixmox:secrets\.app\.smtp_password' < FILE\n/);
  });

  it("refuses a manifest argument that is not the stack's, showing both paths, exit 2", async () => {
    const other = join(__dirname, "..", "manifest", "service-manifest.nix");
    const result = await run(["secrets", "check", other, "--stack", "mine", "--project-dir", dir]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, "");
    assert.equal(
      result.stderr,
      `nixmox: the manifest argument ${relative(process.cwd(), other)} is not the manifest of stack "mine", which deploys ${join(dir, "manifest.json")} (its nixmox:manifest): ` +
        `drop the argument to use the stack's, or point the stack at this file with \`pulumi config set --stack mine nixmox:manifest ${other}\`\n`,
    );
  });

  it("without --stack asks the Pulumi CLI for the selected stack, and without the CLI says to pass --stack, exit 2", async () => {
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [join(__dirname, "..", "bin", "nixmox.js"), "secrets", "check", "--project-dir", dir], { timeout: 30_000, env: { ...process.env, PATH: "/nonexistent" } }, (error, _stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? -1) : 0, stderr });
      });
    });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, "nixmox: the Pulumi CLI is not installed (https://www.pulumi.com/docs/install/), so the selected stack is unknown: pass --stack NAME\n");
  });
});
