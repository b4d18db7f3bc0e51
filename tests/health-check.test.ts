// Real processes: the provider's create/read/diff/update are called directly against a loopback sshd with
// stub systemctl (tests/support), and a local HTTP server. Not proven here: the Pulumi engine's handling of
// the outputs (secret annotation of privateKey/maskValues) — that needs the engine, which is not installed.
import assert from "node:assert/strict";
import { createServer, Server } from "node:http";
import { AddressInfo } from "node:net";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HealthCheckSpec, HealthPlan } from "../manifest/plan-types";
import { healthCheckProvider, HealthCheckOutputs } from "../components/health/health-check";
import { openHostConnection, runHealthChecks } from "../components/health";
import { parseActivationResult, renderActivationCommand } from "../components/activation";
import { connectSsh } from "../components/ssh";
import { FakeNixosPaths, TestSshd, fakeNixosPaths, seedFakeNixos, startSshd } from "./support/sshd";

describe("HealthCheck provider against a real sshd", function () {
  this.timeout(30_000);
  let host: TestSshd;
  let other: TestSshd;
  let paths: FakeNixosPaths;
  let gen1: string;
  let http: Server;
  let httpPort: number;

  before(async () => {
    [host, other] = await Promise.all([startSshd({ host: "127.0.0.5" }), startSshd({ host: "127.0.0.6" })]);
    paths = fakeNixosPaths(host.dir);
    http = createServer((request, response) => {
      response.statusCode = request.url === "/ok" ? 200 : 503;
      response.end("body");
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    httpPort = (http.address() as AddressInfo).port;
  });
  after(async () => {
    await Promise.all([host?.stop(), other?.stop(), new Promise((resolve) => http?.close(resolve))]);
  });
  beforeEach(() => {
    for (const sub of ["root", "units", "calls.log", "ready"]) rmSync(join(host.dir, sub), { recursive: true, force: true });
    mkdirSync(join(host.dir, "units"));
    gen1 = seedFakeNixos(host.dir);
  });

  const health = (checks: HealthCheckSpec[], timing: Partial<HealthPlan> = {}): HealthPlan => ({
    checks,
    intervalSeconds: 1,
    timeoutSeconds: 2,
    retries: 2,
    startPeriodSeconds: 0,
    ...timing,
  });
  const inputs = (plan: HealthPlan, extra: Record<string, unknown> = {}) => ({
    __provider: "serialized provider text that must never be forwarded",
    service: "web",
    host: host.host,
    port: host.port,
    privateKey: host.clientPrivateKey,
    hostKey: host.hostKey,
    health: plan,
    currentSystemPath: paths.currentSystem,
    ...extra,
  });

  it("is healthy at once with command, systemd, tcp and http (host and controller) checks", async () => {
    writeFileSync(join(host.dir, "units", "caddy.service.state"), "active");
    const result = await healthCheckProvider.create(
      inputs(
        health([
          { name: "cmd", phase: "startup", kind: "command", command: "test -d /" },
          { name: "unit", phase: "both", kind: "systemd", unit: "caddy.service" },
          { name: "ssh-port", phase: "startup", kind: "tcp", host: host.host, port: host.port },
          { name: "http-host", phase: "startup", kind: "http", url: `http://127.0.0.1:${httpPort}/ok`, expectStatus: 200, from: "host" },
          { name: "http-controller", phase: "both", kind: "http", url: `http://127.0.0.1:${httpPort}/down`, expectStatus: 503, from: "controller" },
          { name: "liveness-only", phase: "liveness", kind: "command", command: "exit 1" },
        ]),
      ),
    );
    assert.equal(result.id, "web-health");
    const outs = result.outs as HealthCheckOutputs;
    assert.equal(outs.healthy, true);
    assert.equal(outs.generation, gen1);
    assert.deepEqual(outs.failedUnits, []);
    assert.equal(outs.drift, null);
    assert.equal("__provider" in outs, false);
    assert.equal(outs.port, host.port);
  });

  it("becomes healthy after a delay inside start_period", async () => {
    const flag = join(host.dir, "ready");
    setTimeout(() => writeFileSync(flag, ""), 1500);
    const started = Date.now();
    const result = await healthCheckProvider.create(
      inputs(health([{ name: "ready", phase: "startup", kind: "command", command: `test -e ${flag}` }], { startPeriodSeconds: 8, retries: 1 })),
    );
    assert.equal((result.outs as HealthCheckOutputs).healthy, true);
    assert.ok(Date.now() - started >= 1500 && Date.now() - started < 5000, `took ${Date.now() - started} ms`);
  });

  it("fails within start_period + retries × interval when never healthy, naming check, exit code and masked output", async () => {
    const started = Date.now();
    await assert.rejects(
      healthCheckProvider.create(
        inputs(health([{ name: "api", phase: "startup", kind: "command", command: "echo connecting; echo token=S3cretValue >&2; exit 3" }], { startPeriodSeconds: 1, retries: 2 }), {
          maskValues: ["S3cretValue"],
        }),
      ),
      (error: Error) => {
        assert.match(
          error.message,
          /^service "web": health check "api" \(command\) is unhealthy after [34] probe\(s\) in [2-4]s \(start_period 1s, retries 2, interval 1s, timeout 2s\): last exit code 3, last output: connecting\ntoken=\*\*\*\*\*\*\*\*$/,
        );
        assert.ok(!error.message.includes("S3cretValue"));
        return true;
      },
    );
    assert.ok(Date.now() - started < 1000 + 2 * 1000 + 2500, `took ${Date.now() - started} ms`);
  });

  it("fails on a host-key mismatch before running any check", async () => {
    await assert.rejects(
      healthCheckProvider.create(inputs(health([{ name: "cmd", phase: "startup", kind: "command", command: "true" }]), { hostKey: other.hostKey })),
      /^HostKeyMismatchError: host key mismatch for 127\.0\.0\.5:\d+: expected SHA256:\S+, the server presented SHA256:\S+; refusing to connect/,
    );
    assert.deepEqual(host.calls(), []);
  });

  it("reconnects once when the SSH connection drops mid-check, and still reports healthy", async () => {
    const flag = join(host.dir, "ready");
    const connection = openHostConnection({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
    setTimeout(() => host.dropConnections(), 400);
    setTimeout(() => writeFileSync(flag, ""), 1200);
    const outcomes: string[] = [];
    const report = await runHealthChecks({
      service: "web",
      checks: [{ name: "slow", phase: "startup", kind: "command", command: `sleep 1; test -e ${flag}` }],
      timing: { intervalSeconds: 1, timeoutSeconds: 5, retries: 3, startPeriodSeconds: 0 },
      exec: connection.exec,
      mode: "startup",
      onProbe: (_check, outcome) => outcomes.push(outcome.ok ? "ok" : outcome.output.split("\n").pop() ?? ""),
    });
    connection.close();
    assert.equal(report.healthy, true, report.message ?? "");
    assert.equal(connection.connections(), 2);
    assert.deepEqual(outcomes, [`SSH connection to ${host.host}:${host.port} lost`, "ok"]);
  });

  it("fails within the bound when the host goes away entirely", async () => {
    const gone = await startSshd({ host: "127.0.0.7" });
    await gone.kill();
    const started = Date.now();
    await assert.rejects(
      healthCheckProvider.create({
        ...inputs(health([{ name: "cmd", phase: "startup", kind: "command", command: "true" }])),
        host: gone.host,
        port: gone.port,
        hostKey: gone.hostKey,
      }),
      new RegExp(`last exit code none, last output: cannot reach SSH on 127\\.0\\.0\\.7:${gone.port} \\(ECONNREFUSED\\)$`),
    );
    assert.ok(Date.now() - started < 4000);
    await gone.stop();
  });

  it("reports drift on read: another generation running, then an unhealthy liveness check", async () => {
    const plan = health([{ name: "unit", phase: "both", kind: "systemd", unit: "app.service" }]);
    writeFileSync(join(host.dir, "units", "app.service.state"), "active");
    const created = await healthCheckProvider.create(inputs(plan, { expectedGeneration: gen1 }));
    const outs = created.outs as HealthCheckOutputs;
    assert.equal((await healthCheckProvider.read!("web-health", outs)).props?.drift, null);

    rmSync(paths.currentSystem);
    symlinkSync(join(paths.store, "other-system"), paths.currentSystem);
    mkdirSync(join(paths.store, "other-system"));
    const drifted = (await healthCheckProvider.read!("web-health", outs)).props as HealthCheckOutputs;
    assert.equal(drifted.drift, `service "web": the host runs another NixOS generation (${join(paths.store, "other-system")}) than the one NixMox deployed (${gen1})`);
    assert.equal(drifted.healthy, true);
    assert.deepEqual(await healthCheckProvider.diff!("web-health", drifted, inputs(plan, { expectedGeneration: gen1 })), {
      changes: true,
      replaces: [],
      deleteBeforeReplace: false,
    });

    writeFileSync(join(host.dir, "units", "app.service.state"), "failed");
    const unhealthy = (await healthCheckProvider.read!("web-health", outs)).props as HealthCheckOutputs;
    assert.equal(unhealthy.healthy, false);
    assert.deepEqual(unhealthy.failedUnits, ["app.service"]);
    assert.match(unhealthy.drift ?? "", /^service "web": health check "unit" \(systemd\) is unhealthy after 2 probe\(s\) .*last exit code 3, last output: failed$/);
  });

  it("diffs: no change for identical inputs, an update when the deployed generation or the checks change", async () => {
    const plan = health([{ name: "cmd", phase: "startup", kind: "command", command: "true" }]);
    const outs = (await healthCheckProvider.create(inputs(plan, { expectedGeneration: gen1 }))).outs as HealthCheckOutputs;
    const diff = (news: Record<string, unknown>) => healthCheckProvider.diff!("web-health", outs, news);
    assert.equal((await diff(inputs(plan, { expectedGeneration: gen1 }))).changes, false);
    assert.equal((await diff(inputs(plan, { expectedGeneration: "/nix/store/new" }))).changes, true);
    assert.equal((await diff(inputs(health([{ name: "cmd", phase: "startup", kind: "command", command: "false" }]), { expectedGeneration: gen1 }))).changes, true);
  });

  it("confirms a pending activation over its own fresh connection", async () => {
    const plan = health([{ name: "cmd", phase: "both", kind: "command", command: "true" }]);
    const activation = renderActivationCommand({
      service: "web",
      configHash: "feedfacecafebeef",
      checks: plan.checks,
      timing: plan,
      confirmTimeoutSeconds: 20,
      paths: { stateDir: paths.stateDir, profile: paths.profile, currentSystem: paths.currentSystem },
    });
    const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
    const pending = await session.exec(activation.command, { stdin: activation.stdin, timeoutMs: 20_000 });
    session.close();
    const result = parseActivationResult(pending.stdout);
    assert.equal(result?.status, "awaiting-confirmation");
    const outs = (
      await healthCheckProvider.create(
        inputs(plan, { expectedGeneration: result?.generation, confirm: { configHash: "feedfacecafebeef", stateDir: paths.stateDir } }),
      )
    ).outs as HealthCheckOutputs;
    assert.equal(outs.generation, result?.generation);
    assert.notEqual(outs.generation, gen1);
  });

  it("serializes the provider the way the engine ships it (ssh2 required at run time, not inlined)", async () => {
    const pulumi: typeof import("@pulumi/pulumi") = require("@pulumi/pulumi");
    const serialized = await pulumi.runtime.serializeFunction(() => healthCheckProvider, { allowSecrets: true });
    assert.ok(serialized.text.includes('require("ssh2")'));
    assert.equal(serialized.containsSecrets, false);
  });

  it("fails check() for a malformed host key and an invalid systemd unit", async () => {
    const checked = await healthCheckProvider.check!({}, inputs(health([{ name: "u", phase: "startup", kind: "systemd", unit: "caddy; reboot" }]), { hostKey: "nope" }));
    assert.deepEqual(checked.failures, [
      { property: "hostKey", reason: 'service "web": hostKey must look like "ssh-ed25519 AAAA…", got "nope"' },
      { property: "health", reason: 'service "web": health check "u": unit must be a systemd unit name like "caddy.service", got "caddy; reboot"' },
    ]);
  });
});
