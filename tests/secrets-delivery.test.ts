// Real processes: the delivery script runs through a loopback OpenSSH server (tests/support/sshd.ts) as root, with
// the stub systemctl recording restarts. Nothing is mocked; only systemd itself is a stub.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SecretPlan } from "../manifest/plan-types";
import {
  SecretDeliveryError,
  deliveryCommand,
  deliveryPayload,
  pendingOwnershipCommand,
  secretSetFingerprint,
} from "../components/secrets";
import { connectSsh, type SshSession } from "../components/ssh";
import { startSshd, type TestSshd } from "./support/sshd";

const weirdValue = `line one\nline 'two' "three" $(touch /tmp/nixmox-pwned) \`id\` ; | & > < \\ * ? ~ #\t\r\nünïcødé end\n\n`;

function secret(root: string, configService: string, name: string, fields: Partial<SecretPlan> = {}): SecretPlan {
  return {
    name,
    configService,
    service: "app",
    path: `${root}/${configService}/${name}`,
    owner: "root",
    group: "root",
    mode: "0400",
    restartUnits: [],
    generated: false,
    required: true,
    description: "",
    ...fields,
  };
}

function owner(path: string): string {
  return execFileSync("stat", ["-c", "%U:%G %a", path], { encoding: "utf8" }).trim();
}

describe("secrets delivery: script against a real sshd", function () {
  this.timeout(60_000);
  let host: TestSshd;
  let session: SshSession;
  let root: string;
  before(async () => {
    host = await startSshd({ host: "127.0.0.4" });
    session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
  });
  // A fresh secrets root per test, so one test's files are not another's "undeclared" files.
  let rootCount = 0;
  beforeEach(() => {
    root = join(host.dir, `secrets-${rootCount++}`);
  });
  after(async () => {
    session?.close();
    await host?.stop();
  });
  const restarts = () => host.calls().filter((line) => line.startsWith("systemctl "));
  const clearCalls = () => execFileSync("rm", ["-f", join(host.dir, "calls.log")]);

  async function deliver(secrets: SecretPlan[], values: Record<string, string>) {
    const command = deliveryCommand(secrets, root);
    return session.exec(command, { stdin: deliveryPayload(secrets, values, root), timeoutMs: 20_000 });
  }

  it("writes byte-exact content with owner and mode set, restarts the consumers, and keeps values out of the command", async () => {
    clearCalls();
    const secrets = [
      secret(root, "app", "db_password", { restartUnits: ["app.service"] }),
      secret(root, "app", "api_token", { owner: "nobody", group: "nogroup", mode: "0440", restartUnits: ["app-worker.service", "app.service"] }),
    ];
    const values = { "app/db_password": weirdValue, "app/api_token": "tok-ℵ-'\"$HOME" };
    const command = deliveryCommand(secrets, root);
    assert.equal(command.includes("line one"), false);
    assert.equal(command.includes("tok-"), false);
    const result = await deliver(secrets, values);
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      [
        "nixmox-secrets: created app/api_token",
        "nixmox-secrets: created app/db_password",
        "nixmox-secrets: restarted app-worker.service app.service",
        "nixmox-secrets: 2 files, 2 changed, 0 removed, 0 owners pending",
        "",
      ].join("\n"),
    );
    assert.deepEqual(readFileSync(join(root, "app/db_password")), Buffer.from(weirdValue, "utf8"));
    assert.deepEqual(readFileSync(join(root, "app/api_token")), Buffer.from(values["app/api_token"], "utf8"));
    assert.equal(owner(join(root, "app/db_password")), "root:root 400");
    assert.equal(owner(join(root, "app/api_token")), "nobody:nogroup 440");
    // The directory is traversable (never listable) because a non-root owner must open its file by path.
    assert.equal(owner(join(root, "app")), "root:root 711");
    assert.equal(owner(root), "root:root 711");
    assert.equal(existsSync("/tmp/nixmox-pwned"), false);
    assert.deepEqual(restarts(), ["systemctl try-restart -- app-worker.service app.service"]);
    assert.deepEqual(readdirSync(join(root, "app")).sort(), ["api_token", "db_password"]);
  });

  it("restarts only the units of the secret whose value changed", async () => {
    const secrets = [
      secret(root, "app", "db_password", { restartUnits: ["app.service"] }),
      secret(root, "app", "api_token", { owner: "nobody", group: "nogroup", mode: "0440", restartUnits: ["app-worker.service"] }),
    ];
    await deliver(secrets, { "app/db_password": "one", "app/api_token": "two" });
    clearCalls();
    const result = await deliver(secrets, { "app/db_password": "one", "app/api_token": "two, changed" });
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      [
        "nixmox-secrets: updated app/api_token",
        "nixmox-secrets: unchanged app/db_password",
        "nixmox-secrets: restarted app-worker.service",
        "nixmox-secrets: 2 files, 1 changed, 0 removed, 0 owners pending",
        "",
      ].join("\n"),
    );
    assert.deepEqual(restarts(), ["systemctl try-restart -- app-worker.service"]);
    clearCalls();
    const again = await deliver(secrets, { "app/db_password": "one", "app/api_token": "two, changed" });
    assert.equal(again.stdout.includes("restarted"), false);
    assert.deepEqual(restarts(), []);
  });

  it("removes the files of secrets no longer declared, and their empty directories", async () => {
    const secrets = [secret(root, "app", "db_password"), secret(root, "other", "token")];
    await deliver(secrets, { "app/db_password": "a", "other/token": "b" });
    assert.equal(existsSync(join(root, "other/token")), true);
    const result = await deliver([secrets[0]], { "app/db_password": "a" });
    assert.equal(result.code, 0);
    assert.equal(
      result.stdout,
      ["nixmox-secrets: unchanged app/db_password", "nixmox-secrets: removed other/token", "nixmox-secrets: 1 files, 0 changed, 1 removed, 0 owners pending", ""].join("\n"),
    );
    assert.deepEqual(readdirSync(root).sort(), ["app"]);
    assert.deepEqual(readdirSync(join(root, "app")), ["db_password"]);
    // Only root-owned files left: the tree is root-only again.
    assert.equal(owner(root), "root:root 700");
    const none = await session.exec(deliveryCommand([], root), { stdin: deliveryPayload([], {}, root) });
    assert.equal(none.code, 0);
    assert.deepEqual(readdirSync(root), []);
  });

  it("replaces a file atomically: a concurrent reader sees the old or the new value, never a mix", async () => {
    const secrets = [secret(root, "app", "big")];
    const a = "A".repeat(256 * 1024);
    const b = "B".repeat(256 * 1024);
    await deliver(secrets, { "app/big": a });
    const file = join(root, "app/big");
    let reads = 0;
    let bad = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const text = readFileSync(file, "latin1");
        reads++;
        if (text !== a && text !== b) bad++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let round = 0; round < 6; round++) {
      const result = await deliver(secrets, { "app/big": round % 2 === 0 ? b : a });
      assert.equal(result.code, 0);
    }
    stop = true;
    await reader;
    assert.ok(reads > 10, `the reader ran ${reads} times`);
    assert.equal(bad, 0);
    assert.deepEqual(readdirSync(join(root, "app")), ["big"]);
  });

  it("defers the owner that does not exist yet, then apply-pending chowns it and restarts its units", async () => {
    const user = "nixmoxsecrettest";
    execFileSync("sh", ["-c", `userdel ${user} 2>/dev/null; groupdel ${user} 2>/dev/null; true`]);
    try {
      const secrets = [secret(root, "grafana", "admin_password", { owner: user, group: user, mode: "0400", restartUnits: ["grafana.service"] })];
      const result = await deliver(secrets, { "grafana/admin_password": "pw" });
      assert.equal(result.code, 0);
      assert.equal(
        result.stdout,
        [
          `nixmox-secrets: owner pending grafana/admin_password (${user}:${user} does not exist yet; apply-pending sets it after activation)`,
          "nixmox-secrets: created grafana/admin_password",
          "nixmox-secrets: restarted grafana.service",
          "nixmox-secrets: 1 files, 1 changed, 0 removed, 1 owners pending",
          "",
        ].join("\n"),
      );
      assert.equal(owner(join(root, "grafana/admin_password")), "root:root 400");
      assert.equal(readFileSync(join(root, ".nixmox-pending-ownership"), "utf8"), `grafana/admin_password ${user} ${user} grafana.service\n`);

      const early = await session.exec(pendingOwnershipCommand(root));
      assert.equal(early.code, 1);
      assert.equal(
        early.stderr,
        `nixmox-secrets: grafana/admin_password: owner ${user}:${user} still does not exist after activation; create the user/group in the service NixOS module or fix secrets.<name>.owner/group in the manifest\n`,
      );

      execFileSync("useradd", ["--system", "--user-group", "--no-create-home", user]);
      clearCalls();
      const applied = await session.exec(pendingOwnershipCommand(root));
      assert.equal(applied.code, 0);
      assert.equal(applied.stdout, `nixmox-secrets: owner set grafana/admin_password ${user}:${user}\nnixmox-secrets: restarted grafana.service\n`);
      assert.equal(owner(join(root, "grafana/admin_password")), `${user}:${user} 400`);
      assert.equal(existsSync(join(root, ".nixmox-pending-ownership")), false);
      assert.deepEqual(restarts(), ["systemctl restart -- grafana.service"]);
      const nothing = await session.exec(pendingOwnershipCommand(root));
      assert.equal(nothing.stdout, "nixmox-secrets: no pending owners\n");
    } finally {
      execFileSync("sh", ["-c", `userdel ${user} 2>/dev/null; groupdel ${user} 2>/dev/null; true`]);
    }
  });

  describe("a delivery cut short (security review M3)", () => {
    const control = (name: string) => join(host.dir, "control", name);
    const secrets = () => [
      secret(root, "pg", "a_app_password", { restartUnits: ["nixmox-postgresql-passwords.service"] }),
      secret(root, "pg", "b_other", { restartUnits: ["other.service"] }),
    ];
    const tryRestarted = () => restarts().filter((line) => line.startsWith("systemctl try-restart")).flatMap((line) => line.split(" -- ")[1].split(" ")).sort();
    afterEach(() => execFileSync("rm", ["-f", control("sync"), control("systemctl-hang"), control("systemctl-hang.pids")]));

    it("finishes the delivery and its restarts on the host when the connection drops halfway", async () => {
      await deliver(secrets(), { "pg/a_app_password": "old-1", "pg/b_other": "old-2" });
      clearCalls();
      writeFileSync(control("sync"), "slow:1");
      const dropped = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
      const pending = dropped.exec(deliveryCommand(secrets(), root), { stdin: deliveryPayload(secrets(), { "pg/a_app_password": "new-1", "pg/b_other": "new-2" }, root), timeoutMs: 20_000 });
      await new Promise((resolve) => setTimeout(resolve, 1300));
      host.dropConnections();
      assert.equal((await pending).connectionLost, true);
      dropped.close();
      session.close();
      session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
      const until = Date.now() + 10_000;
      while (tryRestarted().length < 2 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
      const retry = await deliver(secrets(), { "pg/a_app_password": "new-1", "pg/b_other": "new-2" }); // what Pulumi re-runs
      assert.equal(retry.code, 0, retry.stderr);
      assert.equal(readFileSync(join(root, "pg/a_app_password"), "utf8"), "new-1");
      assert.equal(readFileSync(join(root, "pg/b_other"), "utf8"), "new-2");
      assert.deepEqual(tryRestarted(), ["nixmox-postgresql-passwords.service", "other.service"]);
    });

    it("restarts on the next delivery the units of files that a killed delivery already replaced", async () => {
      await deliver(secrets(), { "pg/a_app_password": "old-1", "pg/b_other": "old-2" });
      writeFileSync(control("systemctl-hang"), "");
      const killed = deliver(secrets(), { "pg/a_app_password": "new-1", "pg/b_other": "new-2" });
      const until = Date.now() + 10_000;
      while (!existsSync(control("systemctl-hang.pids")) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
      for (const pid of readFileSync(control("systemctl-hang.pids"), "utf8").trim().split(" ")) process.kill(Number(pid), "SIGKILL"); // OOM, power loss
      assert.notEqual((await killed).code, 0);
      assert.equal(readFileSync(join(root, "pg/a_app_password"), "utf8"), "new-1", "the files were replaced before the kill");
      execFileSync("rm", ["-f", control("systemctl-hang")]);
      clearCalls();
      const retry = await deliver(secrets(), { "pg/a_app_password": "new-1", "pg/b_other": "new-2" });
      assert.equal(retry.code, 0, retry.stderr);
      assert.equal(
        retry.stdout,
        [
          "nixmox-secrets: unchanged pg/a_app_password",
          "nixmox-secrets: unchanged pg/b_other",
          "nixmox-secrets: restarted nixmox-postgresql-passwords.service other.service",
          "nixmox-secrets: 2 files, 0 changed, 0 removed, 0 owners pending",
          "",
        ].join("\n"),
      );
      assert.deepEqual(restarts(), ["systemctl try-restart -- nixmox-postgresql-passwords.service other.service"]);
      assert.equal(existsSync(join(root, ".nixmox-pending-restarts")), false, "the journal is gone once the units restarted");
      clearCalls();
      assert.equal((await deliver(secrets(), { "pg/a_app_password": "new-1", "pg/b_other": "new-2" })).stdout.includes("restarted"), false);
    });
  });

  it("fails on a truncated payload and writes nothing", async () => {
    const secrets = [secret(root, "app", "db_password")];
    await deliver(secrets, { "app/db_password": "before" });
    const payload = deliveryPayload(secrets, { "app/db_password": "after" }, root).replace("end\n", "");
    const result = await session.exec(deliveryCommand(secrets, root), { stdin: payload });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "nixmox-secrets: payload truncated (no end line); nothing was written\n");
    assert.equal(readFileSync(join(root, "app/db_password"), "utf8"), "before");
  });

  it("fails when the payload holds a secret the command does not declare, and writes nothing", async () => {
    const secrets = [secret(root, "app", "db_password")];
    const payload = deliveryPayload([...secrets, secret(root, "app", "extra")], { "app/db_password": "x", "app/extra": "y" }, root);
    const result = await session.exec(deliveryCommand(secrets, root), { stdin: payload });
    assert.equal(result.code, 1);
    assert.equal(result.stderr, "nixmox-secrets: the payload holds app/extra, which is not declared; nothing was written\n");
  });

  it("skips an optional secret without a value and removes its old file", async () => {
    const optional = secret(root, "app", "smtp_password", { required: false });
    await deliver([optional], { "app/smtp_password": "old" });
    const result = await deliver([optional], {});
    assert.equal(result.code, 0);
    assert.equal(result.stdout, "nixmox-secrets: removed app/smtp_password\nnixmox-secrets: 0 files, 0 changed, 1 removed, 0 owners pending\n");
  });
});

describe("secrets delivery: pure builders", () => {
  const root = "/var/lib/nixmox/secrets";
  const base = [secret(root, "vaultwarden", "db_password", { restartUnits: ["vaultwarden.service"] })];

  it("puts every value on stdin as base64 between a header and an end line, sorted by key", () => {
    const secrets = [secret(root, "b", "x"), secret(root, "a", "y")];
    assert.equal(deliveryPayload(secrets, { "a/y": "1\n", "b/x": "é'" }), "nixmox-secrets-payload v1\na/y MQo=\nb/x w6kn\nend\n");
  });

  it("builds the same command for any input order", () => {
    const secrets = [secret(root, "b", "x"), secret(root, "a", "y")];
    assert.equal(deliveryCommand(secrets), deliveryCommand([...secrets].reverse()));
    assert.ok(deliveryCommand(secrets).endsWith(" nixmox-secrets deliver /var/lib/nixmox/secrets /var/lib/nixmox/secrets/a/y root root 0400 - 1 /var/lib/nixmox/secrets/b/x root root 0400 - 1"));
  });

  it("changes the fingerprint with the secret set and its metadata, not with values", () => {
    const fingerprint = secretSetFingerprint(base);
    assert.match(fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(secretSetFingerprint([{ ...base[0] }]), fingerprint);
    assert.notEqual(secretSetFingerprint([{ ...base[0], mode: "0440" }]), fingerprint);
    assert.notEqual(secretSetFingerprint([...base, secret(root, "vaultwarden", "oidc_client_secret")]), fingerprint);
  });

  it("fails for a required secret without a value, naming it and the command", () => {
    assert.throws(
      () => deliveryPayload(base, {}),
      new SecretDeliveryError(
        `service "app": secret "vaultwarden/db_password" has no value; set it with pulumi config set --secret --path 'nixmox:secrets.vaultwarden.db_password' < FILE`,
      ),
    );
  });

  it("fails for an owner that is not a user name", () => {
    assert.throws(
      () => deliveryCommand([{ ...base[0], owner: "root; rm -rf /" }]),
      new SecretDeliveryError(`service "app": secret "vaultwarden/db_password": owner must be a user name like "grafana", got "root; rm -rf /"`),
    );
  });

  it("fails for a path outside the secrets directory", () => {
    assert.throws(
      () => deliveryCommand([{ ...base[0], path: "/etc/shadow" }]),
      new SecretDeliveryError(
        `service "app": secret "vaultwarden/db_password": path must be /var/lib/nixmox/secrets/vaultwarden/db_password (the directory the NixOS modules read), got "/etc/shadow"`,
      ),
    );
  });

  it("fails for secrets of two hosts in one delivery", () => {
    assert.throws(
      () => deliveryCommand([...base, { ...base[0], service: "postgresql" }]),
      new SecretDeliveryError(`one delivery serves one host, got secrets for "app", "postgresql"`),
    );
  });
});
