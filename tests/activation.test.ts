// Real processes: the wrapper runs under a loopback sshd with stub nixos-rebuild/systemd-run/systemctl/nix-env
// (tests/support/stub-bin). What the stubs do not prove: real nixos-rebuild output and systemd transient-unit
// semantics (the stub runs the unit as a detached process), and curl/http checks on a real NixOS host.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HealthCheckSpec } from "../manifest/plan-types";
import {
  ActivationOptions,
  firewallKernelModules,
  parseActivationResult,
  renderActivationCommand,
  renderConfirmCommand,
} from "../components/activation";
import { deliveryCommand, deliveryPayload } from "../components/secrets";
import { connectSsh, ExecResult } from "../components/ssh";
import { FakeNixosPaths, TestSshd, fakeNixosPaths, seedFakeNixos, startSshd } from "./support/sshd";

describe("activation wrapper on a stub NixOS host", function () {
  this.timeout(30_000);
  let host: TestSshd;
  let paths: FakeNixosPaths;
  let gen1: string;

  before(async () => {
    host = await startSshd({ host: "127.0.0.4" });
    paths = fakeNixosPaths(host.dir);
  });
  after(async () => host?.stop());
  beforeEach(() => {
    for (const sub of ["root", "control", "units", "calls.log"]) rmSync(join(host.dir, sub), { recursive: true, force: true });
    mkdirSync(join(host.dir, "control"));
    mkdirSync(join(host.dir, "units"));
    gen1 = seedFakeNixos(host.dir);
  });

  const gen = (n: number) => join(paths.store, `${"g" + String(n).padStart(31, "0")}-nixos-system-test-${n}`);
  const control = (name: string, value: string) => writeFileSync(join(host.dir, "control", name), value);
  const options = (overrides: Partial<ActivationOptions> = {}): ActivationOptions => ({
    service: "web",
    configHash: "0123456789abcdef",
    checks: [],
    timing: { intervalSeconds: 1, timeoutSeconds: 2, retries: 2, startPeriodSeconds: 0 },
    paths: { stateDir: paths.stateDir, profile: paths.profile, currentSystem: paths.currentSystem, rootAuthorizedKeys: join(paths.root, "root/.ssh/authorized_keys") },
    ...overrides,
  });
  const exec = async (command: string, stdin?: string, timeoutMs = 20_000): Promise<ExecResult> => {
    const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
    try {
      return await session.exec(command, { stdin, timeoutMs });
    } finally {
      session.close();
    }
  };
  const activate = async (overrides: Partial<ActivationOptions> = {}) => {
    const { command, stdin } = renderActivationCommand(options(overrides));
    return exec(command, stdin);
  };
  const rebuildCalls = () => host.calls().filter((line) => line.startsWith("nixos-rebuild"));

  it("switches to the new generation and reports it", async () => {
    const result = await activate();
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(parseActivationResult(result.stdout), {
      configHash: "0123456789abcdef",
      generation: gen(2),
      previousGeneration: gen1,
      reason: null,
      service: "web",
      status: "switched",
    });
    assert.equal(readlinkSync(paths.currentSystem), gen(2));
    assert.deepEqual(rebuildCalls(), ["nixos-rebuild switch --flake /etc/nixmox#web"]);
    assert.ok(host.calls().some((line) => line.startsWith("systemd-run --unit=nixmox-activate-web-0123456789ab ")), host.calls().join("\n"));
  });

  it("is a no-op that exits 0 when re-run with the same configuration", async () => {
    assert.equal((await activate()).code, 0);
    const again = await activate();
    assert.equal(again.code, 0, again.stderr);
    assert.equal(parseActivationResult(again.stdout)?.status, "unchanged");
    assert.equal(parseActivationResult(again.stdout)?.generation, gen(2));
    assert.equal(rebuildCalls().length, 1);
  });

  it("fails and rolls back when nixos-rebuild switch fails before a new generation exists", async () => {
    control("nixos-rebuild", "fail-build");
    const result = await activate();
    assert.equal(result.code, 1);
    const parsed = parseActivationResult(result.stdout);
    assert.equal(parsed?.status, "rolled-back");
    assert.equal(parsed?.reason, `nixos-rebuild switch failed with exit code 1; rolled back to the previous generation ${gen1}`);
    assert.equal(readlinkSync(paths.profile), "system-1-link");
    assert.equal(readlinkSync(paths.currentSystem), gen1);
    assert.ok(!host.calls().some((line) => line.startsWith("nix-env")), "did not move the profile 'one back' (deploy-rs#154)");
    assert.match(result.stderr, /builder for .* failed/);
  });

  it("fails and rolls back profile and running system when activation fails after the profile moved", async () => {
    control("nixos-rebuild", "fail-activation");
    const result = await activate();
    assert.equal(result.code, 1);
    assert.equal(parseActivationResult(result.stdout)?.reason, `nixos-rebuild switch failed with exit code 4; rolled back to the previous generation ${gen1}`);
    assert.equal(readlinkSync(paths.profile), "system-1-link");
    assert.equal(readlinkSync(paths.currentSystem), gen1);
    assert.deepEqual(
      host.calls().filter((line) => line.startsWith("nix-env") || line.startsWith("switch-to-configuration")),
      [`nix-env -p ${paths.profile} --switch-generation 1`, "switch-to-configuration switch (1)"],
    );
  });

  it("names the units the switch left failed, with the fix when it is the firewall (nixos-runtime review R8)", async () => {
    control("nixos-rebuild", "fail-activation");
    writeFileSync(join(host.dir, "units", "nftables.service.state"), "failed");
    const result = await activate();
    assert.equal(result.code, 1);
    assert.equal(
      parseActivationResult(result.stdout)?.reason,
      "nixos-rebuild switch failed with exit code 4; failed units: nftables.service; the in-container firewall needs the kernel modules nf_tables, nft_ct and nf_conntrack " +
        `loaded on the Proxmox node (README, Inside the hosts), or set network.firewall = "proxmox"; rolled back to the previous generation ${gen1}`,
    );
  });

  describe("the firewall's kernel modules, checked before the switch (nixos-runtime review R8)", () => {
    // A stand-in for what the container sees of the Proxmox node's kernel: proc/modules and sys/module.
    const kernelRoot = () => join(host.dir, "root", "kernel");
    const node = (loaded: string[], builtIn: string[] = []) => {
      mkdirSync(join(kernelRoot(), "proc"), { recursive: true });
      writeFileSync(join(kernelRoot(), "proc", "modules"), loaded.map((m) => `${m} 356352 1 - Live 0x0000000000000000\n`).join(""));
      for (const m of builtIn) mkdirSync(join(kernelRoot(), "sys", "module", m), { recursive: true });
    };
    const withModules = () => ({ kernelModules: [...firewallKernelModules], paths: { ...options().paths, kernelRoot: kernelRoot() } });

    it("stops a node without them before the switch: nothing switched, nothing rolled back, the fix in the reason", async () => {
      node(["nf_tables", "xt_conntrack"], ["nf_conntrack"]);
      const result = await activate(withModules());
      assert.equal(result.code, 1);
      const parsed = parseActivationResult(result.stdout);
      assert.equal(parsed?.status, "failed");
      assert.equal(
        parsed?.reason,
        'not switched: the in-container firewall (network.firewall = "nftables") needs the kernel modules nft_ct, which the Proxmox node ' +
          "has not loaded and an unprivileged container cannot load; on the node run: modprobe -a nft_ct, and list them in " +
          '/etc/modules-load.d/nixmox.conf (README, Inside the hosts); or set network.firewall = "proxmox"',
      );
      assert.equal(parsed?.generation, gen1, "the host still runs the generation it ran");
      assert.deepEqual(rebuildCalls(), []);
      assert.deepEqual(host.calls().filter((line) => line.startsWith("nix-env") || line.startsWith("systemd-run")), []);
      assert.equal(readlinkSync(paths.currentSystem), gen1);
    });

    it("switches when the node has them loaded or built in", async () => {
      node(["nf_tables", "nft_ct"], ["nf_conntrack"]);
      const result = await activate(withModules());
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.equal(parseActivationResult(result.stdout)?.status, "switched");
      assert.equal(readlinkSync(paths.currentSystem), gen(2));
    });

    it("says the firewall failed for another reason when the node still has the modules after the switch", async () => {
      node(["nf_tables", "nft_ct", "nf_conntrack"]);
      control("nixos-rebuild", "fail-activation");
      writeFileSync(join(host.dir, "units", "nftables.service.state"), "failed");
      const result = await activate(withModules());
      assert.equal(result.code, 1);
      assert.equal(
        parseActivationResult(result.stdout)?.reason,
        "nixos-rebuild switch failed with exit code 4; failed units: nftables.service; the Proxmox node has the firewall's kernel modules " +
          `(nf_tables, nft_ct, nf_conntrack), so nftables.service failed for another reason: see journalctl -u nftables.service on the host, or set network.firewall = "proxmox"; rolled back to the previous generation ${gen1}`,
      );
    });

    it("refuses a module name that is not one before anything reaches the host", () => {
      assert.throws(() => renderActivationCommand(options({ kernelModules: ["nf_tables; reboot"] })), /service "web": kernelModules must be module names of \[a-z0-9_\], got \["nf_tables; reboot"\]/);
    });
  });

  it("fails without rolling back when the manifest turns rollback off (enable_rollback = false)", async () => {
    control("nixos-rebuild", "fail-activation");
    const result = await activate({ rollback: false });
    assert.equal(result.code, 1, "a failed activation still fails the deploy");
    const parsed = parseActivationResult(result.stdout);
    assert.equal(parsed?.status, "failed");
    assert.equal(parsed?.reason, "nixos-rebuild switch failed with exit code 4; not rolled back (enable_rollback = false): the host stays on the new generation");
    assert.equal(readlinkSync(paths.currentSystem), gen(2));
    assert.ok(!host.calls().some((line) => line.startsWith("nix-env") || line.startsWith("switch-to-configuration")), host.calls().join("\n"));
  });

  it("fails and rolls back when nixos-rebuild hangs past the activation timeout", async () => {
    control("nixos-rebuild", "hang");
    const started = Date.now();
    const result = await activate({ activationTimeoutSeconds: 1 });
    assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
    assert.equal(result.code, 1);
    assert.equal(parseActivationResult(result.stdout)?.reason, `nixos-rebuild switch timed out after 1s; rolled back to the previous generation ${gen1}`);
    assert.equal(readlinkSync(paths.currentSystem), gen1);
  });

  it("fails and rolls back when a startup check fails on the host, naming the check", async () => {
    writeFileSync(join(host.dir, "units", "app.service.state"), "failed");
    const checks: HealthCheckSpec[] = [
      { name: "app-unit", phase: "startup", kind: "systemd", unit: "app.service" },
      { name: "liveness-only", phase: "liveness", kind: "command", command: "exit 9" },
    ];
    const started = Date.now();
    const result = await activate({ checks });
    assert.ok(Date.now() - started < 10_000);
    assert.equal(result.code, 1);
    assert.equal(
      parseActivationResult(result.stdout)?.reason,
      `startup check "app-unit" (systemd) failed after 2 probe(s): exit code 3, last output: failed; rolled back to the previous generation ${gen1}`,
    );
    assert.equal(readlinkSync(paths.currentSystem), gen1);
    const again = await activate({ checks });
    assert.equal(again.code, 1, "a re-run after a rollback tries again and never reports success");
    assert.equal(rebuildCalls().length, 2);
  });

  it("masks secret values from the host's secret files in the failure reason", async () => {
    const secrets = join(paths.stateDir, "secrets", "web");
    mkdirSync(secrets, { recursive: true });
    writeFileSync(join(secrets, "db_password"), "hunter2-canary\n");
    writeFileSync(join(secrets, "env"), "API_TOKEN=tok-canary-42\nPLAIN=x\n");
    const checks: HealthCheckSpec[] = [
      { name: "leaky", phase: "startup", kind: "command", command: `echo "pw=$(cat ${join(secrets, "db_password")}) token=tok-canary-42"; exit 7` },
    ];
    const result = await activate({ checks });
    assert.equal(result.code, 1);
    assert.equal(
      parseActivationResult(result.stdout)?.reason,
      `startup check "leaky" (command) failed after 2 probe(s): exit code 7, last output: pw=[secret] token=[secret]; rolled back to the previous generation ${gen1}`,
    );
    assert.ok(!`${result.stdout}${result.stderr}`.includes("canary"), "no secret value in the command's output");
    rmSync(join(paths.stateDir, "secrets"), { recursive: true, force: true });
  });

  it("masks base64 and URL-encoded forms of secret values too (security review L3)", async () => {
    const secrets = join(paths.stateDir, "secrets", "web");
    mkdirSync(secrets, { recursive: true });
    const value = "p@ss:w/rd#1-canary";
    writeFileSync(join(secrets, "db_password"), `${value}\n`);
    const b64 = Buffer.from(value).toString("base64");
    const url = encodeURIComponent(value);
    const lower = url.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase());
    const checks: HealthCheckSpec[] = [
      { name: "leaky", phase: "startup", kind: "command", command: `echo "url=postgresql://app:${url}@db/app b64=${b64} unpadded=${b64.replace(/=+$/, "")} lower=${lower}"; exit 7` },
    ];
    const result = await activate({ checks });
    assert.equal(result.code, 1);
    assert.equal(
      parseActivationResult(result.stdout)?.reason,
      `startup check "leaky" (command) failed after 2 probe(s): exit code 7, last output: url=postgresql://app:[secret]@db/app b64=[secret] unpadded=[secret] lower=[secret]; rolled back to the previous generation ${gen1}`,
    );
    assert.ok(![url, b64, lower].some((form) => `${result.stdout}${result.stderr}`.includes(form)));
    rmSync(join(paths.stateDir, "secrets"), { recursive: true, force: true });
  });

  describe("secret files whose owner the new generation creates", () => {
    // Unique per test process: the machine's users are shared with any other run of this file at the same time.
    const user = `nixmoxact${process.pid}`;
    const dropUser = () => execFileSync("sh", ["-c", `userdel ${user} 2>/dev/null; groupdel ${user} 2>/dev/null; true`]);
    const deliverPending = async () => {
      const root = join(paths.stateDir, "secrets");
      const secrets = [{
        name: "token", configService: "web", service: "web", path: `${root}/web/token`, owner: user, group: user, mode: "0400",
        restartUnits: [], generated: false, required: true, description: "test",
      }];
      const delivered = await exec(deliveryCommand(secrets, root), deliveryPayload(secrets, { "web/token": "t0ken-value" }, root));
      assert.equal(delivered.code, 0, delivered.stderr);
      return `${root}/web/token`;
    };
    beforeEach(dropUser);
    afterEach(() => {
      dropUser();
      rmSync(join(paths.stateDir, "secrets"), { recursive: true, force: true });
    });

    it("chowns them right after the switch, before the startup checks", async () => {
      const file = await deliverPending();
      assert.equal(statSync(file).uid, 0, "root-owned until the owner exists");
      execFileSync("useradd", ["--system", "--user-group", "--no-create-home", user]); // what the new generation does
      const uid = Number(execFileSync("id", ["-u", user]).toString());
      const result = await activate({ checks: [{ name: "owned", phase: "startup", kind: "command", command: `test "$(stat -c %U ${file})" = ${user}` }] });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.equal(parseActivationResult(result.stdout)?.status, "switched");
      assert.equal(statSync(file).uid, uid);
    });

    it("rolls back when the new generation does not create the owner", async () => {
      await deliverPending();
      const result = await activate();
      assert.equal(result.code, 1);
      assert.equal(
        parseActivationResult(result.stdout)?.reason,
        `secret files still wait for owners that this generation does not create (see ${paths.stateDir}/secrets/.nixmox-pending-ownership); rolled back to the previous generation ${gen1}`,
      );
      assert.equal(readlinkSync(paths.currentSystem), gen1);
    });
  });

  it("keeps the new generation when startup checks pass", async () => {
    writeFileSync(join(host.dir, "units", "app.service.state"), "active");
    const result = await activate({
      checks: [
        { name: "app-unit", phase: "both", kind: "systemd", unit: "app.service" },
        { name: "quoted", phase: "startup", kind: "command", command: `test "$(echo 'a b')" = "a b"` },
      ],
    });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.equal(parseActivationResult(result.stdout)?.status, "switched");
  });

  it("rolls back by itself when the controller never confirms", async () => {
    const result = await activate({ confirmTimeoutSeconds: 2 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(parseActivationResult(result.stdout)?.status, "awaiting-confirmation");
    assert.equal(readlinkSync(paths.currentSystem), gen(2));
    await new Promise((resolve) => setTimeout(resolve, 3500));
    assert.equal(readlinkSync(paths.currentSystem), gen1);
    const late = await exec(renderConfirmCommand({ service: "web", configHash: "0123456789abcdef", paths: options().paths }));
    assert.equal(late.code, 1);
    assert.equal(parseActivationResult(late.stdout)?.reason, `no confirmation from the controller within 2s; rolled back to the previous generation ${gen1}`);
  });

  it("tries again when the same configuration is activated after an unconfirmed rollback nobody heard about (the controller was killed)", async () => {
    assert.equal(parseActivationResult((await activate({ confirmTimeoutSeconds: 1 })).stdout)?.status, "awaiting-confirmation");
    await new Promise((resolve) => setTimeout(resolve, 2500));
    assert.equal(readlinkSync(paths.currentSystem), gen1, "rolled back by itself");
    const again = await activate({ confirmTimeoutSeconds: 15 });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /^nixmox-activate: the earlier activation of web with config 0123456789abcdef was rolled back because no controller confirmed it, and nobody was told; trying again$/m);
    assert.equal(parseActivationResult(again.stdout)?.status, "awaiting-confirmation", "a new attempt, not the old result");
    const confirmed = await exec(renderConfirmCommand({ service: "web", configHash: "0123456789abcdef", paths: options().paths }));
    assert.equal(parseActivationResult(confirmed.stdout)?.status, "switched");
    assert.equal(readlinkSync(paths.currentSystem), gen(3));
  });

  it("keeps the generation when the controller confirms over a new connection", async () => {
    const result = await activate({ confirmTimeoutSeconds: 15 });
    assert.equal(parseActivationResult(result.stdout)?.status, "awaiting-confirmation");
    const confirmed = await exec(renderConfirmCommand({ service: "web", configHash: "0123456789abcdef", paths: options().paths }));
    assert.equal(confirmed.code, 0, confirmed.stderr);
    assert.equal(parseActivationResult(confirmed.stdout)?.status, "switched");
    assert.equal(readlinkSync(paths.currentSystem), gen(2));
  });

  it("survives a dropped SSH session: the re-run attaches and reports the activation's outcome", async () => {
    control("nixos-rebuild", "slow:3");
    const { command, stdin } = renderActivationCommand(options());
    const first = exec(command, stdin);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    assert.ok(host.dropConnections() >= 1);
    assert.equal((await first).connectionLost, true);
    const rerun = await exec(command, stdin);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.equal(parseActivationResult(rerun.stdout)?.status, "switched");
    assert.equal(rebuildCalls().length, 1);
    assert.equal(readlinkSync(paths.currentSystem), gen(2));
  });

  describe("an activation unit that dies (security review H1)", function () {
    // Generous bounds: the machine running the tests may be loaded; the assertions on promptness are separate.
    this.timeout(60_000);
    const unitPid = (hash = "0123456789ab") => Number(readFileSync(join(host.dir, "units", `nixmox-activate-web-${hash}.service.pid`), "utf8"));
    const checkPidFile = () => join(host.dir, "check.pid");
    // Passes once control/check-pass exists; until then it records its pid and sleeps (a slow startup check).
    const slowCheck = (): HealthCheckSpec[] => [{
      name: "slow", phase: "startup", kind: "command",
      command: `if [ -e ${join(host.dir, "control", "check-pass")} ]; then exit 0; fi; echo $$ > ${checkPidFile()}; exec sleep 20`,
    }];
    const timing = { intervalSeconds: 1, timeoutSeconds: 30, retries: 1, startPeriodSeconds: 0 };
    const waitFor = async (what: string, predicate: () => boolean, ms = 30_000) => {
      const until = Date.now() + ms;
      while (!predicate()) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const killCheck = () => {
      if (!existsSync(checkPidFile())) return;
      try {
        process.kill(Number(readFileSync(checkPidFile(), "utf8")), "SIGKILL");
      } catch {
        // already gone
      }
      rmSync(checkPidFile(), { force: true });
    };
    /**
     * What a host restart during the startup check leaves: the SSH session dropped, the run it started killed
     * (before it can see the unit die and roll back by itself), the unit and its check killed. Returns the command
     * and stdin Pulumi would re-run.
     */
    const restartDuringStartupCheck = async () => {
      const { command, stdin } = renderActivationCommand(options({ checks: slowCheck(), timing }));
      const first = exec(command, stdin);
      await waitFor("the startup check", () => existsSync(checkPidFile()));
      host.dropConnections();
      assert.equal((await first).connectionLost, true);
      const pkill = spawnSync("pkill", ["-KILL", "-f", " run --service web --config-hash 0123456789abcdef"]);
      assert.equal(pkill.status, 0, "the dropped session's run was still waiting for the unit");
      const pid = unitPid();
      process.kill(pid, "SIGKILL");
      killCheck();
      await waitFor("the unit to die", () => !alive(pid));
      return { command, stdin };
    };
    afterEach(killCheck);

    it("rolls back at once when the unit is SIGTERMed during the startup checks (systemctl stop)", async () => {
      const running = activate({ checks: slowCheck(), timing });
      await waitFor("the startup check", () => existsSync(checkPidFile()));
      assert.equal(readlinkSync(paths.currentSystem), gen(2), "switched, not yet checked");
      const started = Date.now();
      process.kill(unitPid(), "SIGTERM"); // KillMode=mixed: systemd sends SIGTERM to the main process only
      const result = await running;
      assert.ok(Date.now() - started < 8000, `the trap acted within ${Date.now() - started} ms, not after the 20 s check`);
      assert.equal(result.code, 1);
      assert.deepEqual(parseActivationResult(result.stdout), {
        configHash: "0123456789abcdef",
        generation: gen1,
        previousGeneration: gen1,
        reason: `activation interrupted by SIGTERM; rolled back to the previous generation ${gen1}`,
        service: "web",
        status: "rolled-back",
      });
      assert.equal(readlinkSync(paths.currentSystem), gen1);
      assert.equal(readlinkSync(paths.profile), "system-1-link");
      // What the trap logs reaches the attempt's log (shown to the controller), not the probe's output file.
      assert.match(result.stderr, /\[nixmox\] received SIGTERM\n\[nixmox\] rolling back to generation 1 /);
    });

    it("leaves the rollback to the next run when the SIGTERM comes from a host shutdown", async () => {
      const running = activate({ checks: slowCheck(), timing });
      await waitFor("the startup check", () => existsSync(checkPidFile()));
      control("system-state", "stopping");
      const pid = unitPid();
      process.kill(pid, "SIGTERM");
      // Here the run that waited recovers it at once; after a real shutdown it is the next run after the boot.
      const result = await running;
      const log = readFileSync(join(paths.stateDir, "web", "attempts", "0123456789abcdef", "log"), "utf8");
      assert.match(log, /\[nixmox\] the host is shutting down: the next run after the boot rolls this attempt back\n/);
      assert.ok(!log.includes("activation interrupted by SIGTERM"), "the unit itself did not re-activate while the host shut down");
      assert.equal(
        parseActivationResult(result.stdout)?.reason,
        `activation unit nixmox-activate-web-0123456789ab.service ended without a result (stopped, killed or the host restarted); rolled back to the previous generation ${gen1}`,
      );
      assert.equal(readlinkSync(paths.currentSystem), gen1);
    });

    it("rolls back at once when the unit is SIGTERMed while nixos-rebuild runs", async () => {
      control("nixos-rebuild", "slow:20");
      const running = activate();
      await waitFor("nixos-rebuild", () => rebuildCalls().length === 1);
      await waitFor("the unit", () => existsSync(join(host.dir, "units", "nixmox-activate-web-0123456789ab.service.pid")));
      const started = Date.now();
      process.kill(unitPid(), "SIGTERM");
      const result = await running;
      assert.ok(Date.now() - started < 8000, `the trap acted within ${Date.now() - started} ms, not after the 20 s rebuild`);
      assert.equal(result.code, 1);
      assert.equal(parseActivationResult(result.stdout)?.reason, `activation interrupted by SIGTERM; rolled back to the previous generation ${gen1}`);
      assert.equal(readlinkSync(paths.currentSystem), gen1);
    });

    it("rolls back an attempt whose unit was SIGKILLed (OOM), and the same configuration hash then retries", async () => {
      const running = activate({ checks: slowCheck(), timing });
      await waitFor("the startup check", () => existsSync(checkPidFile()));
      const pid = unitPid();
      process.kill(pid, "SIGKILL");
      killCheck();
      await waitFor("the unit to die", () => !alive(pid));
      const result = await running;
      assert.equal(result.code, 1);
      assert.deepEqual(parseActivationResult(result.stdout), {
        configHash: "0123456789abcdef",
        generation: gen1,
        previousGeneration: gen1,
        reason: "activation unit nixmox-activate-web-0123456789ab.service ended without a result (stopped, killed or the host restarted); " +
          `rolled back to the previous generation ${gen1}`,
        service: "web",
        status: "rolled-back",
      });
      assert.equal(readlinkSync(paths.currentSystem), gen1);
      assert.equal(readlinkSync(paths.profile), "system-1-link");

      control("check-pass", "");
      const retry = await activate({ checks: slowCheck(), timing });
      assert.equal(retry.code, 0, retry.stdout + retry.stderr);
      assert.equal(parseActivationResult(retry.stdout)?.status, "switched");
      assert.equal(readlinkSync(paths.currentSystem), gen(3));
      assert.equal(rebuildCalls().length, 2, "the same hash ran again instead of reporting the dead attempt");
    });

    it("after a restart that killed the unit and the session, the next run rolls the unchecked generation back before its own switch", async () => {
      await restartDuringStartupCheck();

      control("check-pass", "");
      const next = await activate({ configHash: "fedcba9876543210", checks: slowCheck(), timing });
      assert.equal(next.code, 0, next.stdout + next.stderr);
      const parsed = parseActivationResult(next.stdout);
      assert.equal(parsed?.status, "switched");
      assert.equal(parsed?.previousGeneration, gen1, "the new attempt's rollback target is the checked generation");
      assert.deepEqual(
        host.calls().filter((line) => /^(nix-env|nixos-rebuild|switch-to-configuration switch \(1\))/.test(line)),
        [
          "nixos-rebuild switch --flake /etc/nixmox#web",
          `nix-env -p ${paths.profile} --switch-generation 1`,
          "switch-to-configuration switch (1)",
          "nixos-rebuild switch --flake /etc/nixmox#web",
        ],
      );
      const abandoned = JSON.parse(readFileSync(join(paths.stateDir, "web", "attempts", "0123456789abcdef", "result"), "utf8"));
      assert.equal(abandoned.status, "rolled-back");
    });

    it("at boot, rolls back an attempt the restart interrupted with the wrapper copy the attempt holds (nixmox-activation-recover)", async () => {
      await restartDuringStartupCheck();
      const attemptDir = join(paths.stateDir, "web", "attempts", "0123456789abcdef");
      assert.equal(existsSync(join(attemptDir, "result")), false);
      assert.equal(readlinkSync(paths.currentSystem), gen(2), "the host runs the new, unchecked generation");
      // What the boot unit runs (nixos/core.nix): the attempt's own copy of the wrapper, in recover mode.
      const recoverCommand =
        `bash ${attemptDir}/nixmox-activate.sh recover --service web --config-hash 0123456789abcdef ` +
        `--state-dir ${paths.stateDir} --profile ${paths.profile} --current-system ${paths.currentSystem}`;
      const recover = await exec(recoverCommand);
      assert.equal(recover.code, 0, recover.stderr);
      const result = JSON.parse(readFileSync(join(attemptDir, "result"), "utf8"));
      assert.equal(result.status, "rolled-back");
      assert.equal(readlinkSync(paths.currentSystem), gen1);
      assert.equal(readlinkSync(paths.profile), "system-1-link");
      const again = await exec(recoverCommand);
      assert.equal(again.code, 0, "a second boot finds nothing left to recover");
      assert.equal(host.calls().filter((line) => line.startsWith("nix-env")).length, 1);
    });

    it("keeps the new generation of a killed unit when rollback is off (enable_rollback = false), and still fails", async () => {
      const running = activate({ checks: slowCheck(), timing, rollback: false });
      await waitFor("the startup check", () => existsSync(checkPidFile()));
      const pid = unitPid();
      process.kill(pid, "SIGKILL");
      killCheck();
      const result = await running;
      assert.equal(result.code, 1);
      assert.equal(parseActivationResult(result.stdout)?.status, "failed");
      assert.equal(
        parseActivationResult(result.stdout)?.reason,
        "activation unit nixmox-activate-web-0123456789ab.service ended without a result (stopped, killed or the host restarted); " +
          "not rolled back (enable_rollback = false): the host stays on the new generation",
      );
      assert.equal(readlinkSync(paths.currentSystem), gen(2));
    });

    it("after a restart that killed the unit and the session, a run with the same configuration hash rolls back and retries at once", async () => {
      const { command, stdin } = await restartDuringStartupCheck();

      control("check-pass", "");
      const rerun = await exec(command, stdin); // what Pulumi re-runs
      assert.equal(rerun.code, 0, rerun.stdout + rerun.stderr);
      assert.equal(parseActivationResult(rerun.stdout)?.status, "switched");
      assert.equal(parseActivationResult(rerun.stdout)?.previousGeneration, gen1);
      assert.match(rerun.stderr, /the earlier activation of web with config 0123456789abcdef ended without a result; it was rolled back, trying again/);
      assert.equal(readlinkSync(paths.currentSystem), gen(3));
      assert.equal(rebuildCalls().length, 2);
    });
  });

  describe("root's home-directory authorized_keys (security review M7)", () => {
    let revoked: { privateKey: string; publicKey: string };
    const sshdKeys = () => join(host.dir, "authorized_keys");
    before(() => {
      const dir = mkdtempSync(join(tmpdir(), "nixmox-m7-"));
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "departed-admin", "-f", join(dir, "id")]);
      revoked = { privateKey: readFileSync(join(dir, "id"), "utf8"), publicKey: readFileSync(join(dir, "id.pub"), "utf8").trim() };
      rmSync(dir, { recursive: true, force: true });
    });
    // What Proxmox wrote at creation: the deploy key (this test's client key) and an admin key listed back then.
    beforeEach(() => writeFileSync(sshdKeys(), `${revoked.publicKey}\n${host.clientPublicKey}\n`, { mode: 0o600 }));
    after(() => writeFileSync(sshdKeys(), `${host.clientPublicKey}\n`, { mode: 0o600 }));
    const login = (privateKey: string) => connectSsh({ host: host.host, port: host.port, privateKey, hostKeys: [host.hostKey] }).then((session) => session.close());
    const activateWithDeployKey = () =>
      activate({ deployPublicKey: `${host.clientPublicKey} deploy@controller`, paths: { ...options().paths, rootAuthorizedKeys: sshdKeys() } });

    it("keeps only the deploy key after a switch, so a key removed from the manifest no longer logs in", async () => {
      await login(revoked.privateKey); // the first-boot copy still lets the departed admin in
      const result = await activateWithDeployKey();
      assert.equal(parseActivationResult(result.stdout)?.status, "switched", result.stderr);
      assert.equal(readFileSync(sshdKeys(), "utf8"), `${host.clientPublicKey.split(" ").slice(0, 2).join(" ")}\n`);
      assert.equal(statSync(sshdKeys()).mode & 0o777, 0o600);
      await assert.rejects(login(revoked.privateKey), { name: "SshConnectionError", message: /SSH authentication as the deploy user failed/ });
      await login(host.clientPrivateKey);
    });

    it("rewrites it on a run that finds its configuration deployed (a rotated deploy key changes no configuration), so the old key stops working", async () => {
      const first = await activateWithDeployKey();
      assert.match(parseActivationResult(first.stdout)?.status ?? "", /^(switched|unchanged)$/, first.stderr);
      const rotated = await activate({ deployPublicKey: revoked.publicKey, paths: { ...options().paths, rootAuthorizedKeys: sshdKeys() } });
      assert.equal(parseActivationResult(rotated.stdout)?.status, "unchanged", rotated.stderr);
      assert.equal(readFileSync(sshdKeys(), "utf8"), `${revoked.publicKey.split(" ").slice(0, 2).join(" ")}\n`);
      await assert.rejects(login(host.clientPrivateKey), { name: "SshConnectionError", message: /SSH authentication as the deploy user failed/ });
      await login(revoked.privateKey);
    });

    it("leaves the file alone when the activation rolls back", async () => {
      control("nixos-rebuild", "fail-build");
      const result = await activateWithDeployKey();
      assert.equal(parseActivationResult(result.stdout)?.status, "rolled-back");
      assert.equal(readFileSync(sshdKeys(), "utf8"), `${revoked.publicKey}\n${host.clientPublicKey}\n`);
    });

    it("fails to render for a deploy key that is not a public key line, naming the service", () => {
      assert.throws(() => renderActivationCommand(options({ deployPublicKey: "ssh-ed25519 AAAA\nssh-rsa injected" })), {
        message: 'service "web": the deploy public key must look like "ssh-ed25519 AAAA…", got "ssh-ed25519 AAAA\\nssh-rsa injected"',
      });
    });
  });

  it("runs every startup check even when one reads stdin (security review M1)", async () => {
    const result = await activate({
      checks: [
        { name: "a-drains-stdin", phase: "startup", kind: "command", command: "cat >/dev/null; true" },
        { name: "b-must-fail", phase: "startup", kind: "command", command: "exit 1" },
      ],
    });
    assert.equal(result.code, 1, result.stdout);
    assert.equal(
      parseActivationResult(result.stdout)?.reason,
      `startup check "b-must-fail" (command) failed after 2 probe(s): exit code 1, last output: ; rolled back to the previous generation ${gen1}`,
    );
    assert.equal(readlinkSync(paths.currentSystem), gen1);
  });

  it("judges a running activation by its own checks when a concurrent run for another configuration is refused (security review M2)", async () => {
    control("nixos-rebuild", "slow:3");
    const failing = activate({ checks: [{ name: "a-fails", phase: "startup", kind: "command", command: "exit 1" }] });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const other = await activate({ configHash: "aaaaaaaaaaaaaaaa", checks: [{ name: "b-passes", phase: "startup", kind: "command", command: "true" }] });
    assert.equal(other.code, 1);
    assert.match(other.stderr, /another activation of web \(config 0123456789abcdef\) is still running/);
    const result = await failing;
    assert.equal(result.code, 1, result.stdout);
    assert.equal(parseActivationResult(result.stdout)?.status, "rolled-back");
    assert.match(parseActivationResult(result.stdout)?.reason ?? "", /^startup check "a-fails"/);
    assert.equal(readlinkSync(paths.currentSystem), gen1);
  });

  it("keeps only the newest five finished attempts", async () => {
    for (let n = 0; n < 7; n++) {
      const result = await activate({ configHash: `${n}`.repeat(16) });
      assert.equal(result.code, 0, result.stderr);
    }
    const attempts = readdirSync(join(paths.stateDir, "web", "attempts")).sort();
    assert.deepEqual(attempts, ["1111111111111111", "2222222222222222", "3333333333333333", "4444444444444444", "5555555555555555", "6666666666666666"]);
  });

  it("fails on invalid arguments with exit 2 and a message naming the option", async () => {
    const { stdin } = renderActivationCommand(options());
    const script = join(paths.stateDir, "manual.sh");
    mkdirSync(paths.stateDir, { recursive: true });
    writeFileSync(script, stdin);
    const result = await exec(`bash ${script} run --service web --config-hash 'x;reboot' --flake /etc/nixmox#web --state-dir ${paths.stateDir}`);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, "nixmox-activate: --config-hash must be lowercase hex, got 'x;reboot'\n");
    assert.ok(!existsSync(join(paths.stateDir, "web")));
  });

  it("fails to render a command for invalid input, naming the service and the field", () => {
    assert.throws(() => renderActivationCommand(options({ configHash: "XYZ" })), {
      message: 'service "web": configHash must be 8-128 lowercase hex characters, got "XYZ"',
    });
    assert.throws(() => renderActivationCommand(options({ flake: "/etc/nixmox#web; reboot" })), {
      message: 'service "web": flake must look like /etc/nixmox#<name>, got "/etc/nixmox#web; reboot"',
    });
  });

  it("keeps check text out of the command line and embeds it as base64 data", () => {
    const { command, stdin } = renderActivationCommand(options({ checks: [{ name: "db", phase: "startup", kind: "command", command: "pg_isready -h 127.0.0.1" }] }));
    assert.ok(!command.includes("pg_isready"));
    assert.ok(stdin.endsWith(`#nixmox-timing 1 2 2 0\n#nixmox-check ZGI= command ${Buffer.from("pg_isready -h 127.0.0.1").toString("base64")} -\n`));
    const fractional = renderActivationCommand(options({ timing: { intervalSeconds: 0.5, timeoutSeconds: 2.2, retries: 2, startPeriodSeconds: 0 } }));
    assert.ok(fractional.stdin.includes("\n#nixmox-timing 1 3 2 0\n"));
    assert.equal(readFileSync(join(__dirname, "..", "components", "activation", "nixmox-activate.sh"), "utf8").startsWith("#!/usr/bin/env bash\n"), true);
  });
});
