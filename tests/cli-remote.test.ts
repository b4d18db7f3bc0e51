// Real processes: `nixmox logs|ssh|exec|status` through the compiled CLI against three loopback sshd hosts
// (tests/support/sshd.ts), with a real stack of the real Pulumi CLI (tools/engine) holding the manifest, the deploy key
// as a secret and the pinned host keys as its knownHosts output (put there with `pulumi stack import`, as a deploy
// leaves it). journalctl on the hosts is a stub that records its arguments (tests/support/stub-bin/journalctl); the
// arguments are also run through this machine's real journalctl, which must accept them.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { formatKnownHostsLine, parseHostKey } from "../components/ssh";
import { expandTags } from "../cli/tags";
import { engineEnvironment, repoDir } from "./support/real-engine";
import { startSshd, type TestSshd } from "./support/sshd";

const bin = path.join(repoDir, "bin", "nixmox.js");

describe("@tag selections (pure)", () => {
  const plan = {
    services: [
      { name: "alpha", kind: "custom", tags: ["web"] },
      { name: "beta", kind: "custom", tags: ["web", "db"] },
      { name: "dns", kind: "dns", tags: [] },
    ],
  } as unknown as Parameters<typeof expandTags>[0];

  it("expands a tag to the services with that manifest tag or kind, keeps names, sorts and merges", () => {
    assert.deepEqual(expandTags(plan, ["@web"]), ["alpha", "beta"]);
    assert.deepEqual(expandTags(plan, ["dns", "@db"]), ["beta", "dns"]);
    assert.deepEqual(expandTags(plan, ["@custom", "alpha"]), ["alpha", "beta"]);
    assert.deepEqual(expandTags(plan, ["@dns"]), ["dns"]);
  });

  it("fails for a tag no service has, listing the tags there are", () => {
    assert.throws(() => expandTags(plan, ["@media"], "--on"), {
      name: "SelectionError",
      message: '--on: no enabled service has tag "media" (a tag is one of a service\'s manifest tags, or its kind); tags: @custom, @db, @dns, @web',
    });
  });
});

describe("nixmox logs, ssh, exec and status on a stack's hosts", function () {
  this.timeout(300_000);
  let hosts: TestSshd[];
  let root: string;
  let project: string;
  let env: NodeJS.ProcessEnv;
  const names = ["alpha", "beta", "gamma"];

  const pulumi = (args: string[], input?: string) => {
    const result = spawnSync("pulumi", args, { cwd: project, env, encoding: "utf8", input, timeout: 120_000 });
    assert.equal(result.status, 0, `pulumi ${args.join(" ")}: ${result.stdout}${result.stderr}`);
    return result;
  };
  const nixmox = (args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> =>
    spawnSync(process.execPath, [bin, ...args], { cwd: project, env: options.env ?? env, encoding: "utf8", input: options.input ?? "", timeout: 120_000 });

  before(async () => {
    hosts = await Promise.all(["127.0.0.21", "127.0.0.22", "127.0.0.23"].map((host) => startSshd({ host })));
    root = mkdtempSync(path.join(tmpdir(), "nixmox-remote-"));
    project = path.join(root, "project");
    for (const dir of [project, path.join(root, "state"), path.join(root, "home")]) mkdirSync(dir);
    // One deploy key for every host, as in production.
    for (const host of hosts.slice(1)) writeFileSync(path.join(host.dir, "authorized_keys"), `${hosts[0].clientPublicKey}\n`);
    const service = (host: TestSshd, vmid: number, tags: string[]) => ({
      ip: host.host,
      vmid,
      tags,
      ssh: { port: host.port },
      nixos_modules: ["app.nix"],
      interface: { health: { liveness: "true", interval: 1, timeout: 3, retries: 1 } },
    });
    writeFileSync(path.join(project, "app.nix"), "{ ... }: { }\n");
    writeFileSync(
      path.join(project, "homelab.json"),
      JSON.stringify({
        network: { domain: "lan", dns_server: "127.0.0.1", gateway: "127.0.0.1", network_cidr: "127.0.0.0/8" },
        services: { alpha: service(hosts[0], 201, ["web"]), beta: service(hosts[1], 202, ["web"]), gamma: service(hosts[2], 203, []) },
      }),
    );
    // The project: NixMox's Pulumi.yaml (its config schema), a stack whose manifest, deploy key and host keys these are.
    writeFileSync(path.join(project, "Pulumi.yaml"), readFileSync(path.join(repoDir, "Pulumi.yaml"), "utf8"));
    env = engineEnvironment(path.join(root, "home"), `file://${path.join(root, "state")}`);
    pulumi(["stack", "init", "homelab", "--non-interactive"]);
    pulumi(["config", "set", "nixmox:manifest", "homelab.json"]);
    pulumi(["config", "set", "--secret", "nixmox:sshPrivateKey"], hosts[0].clientPrivateKey);
    const knownHosts = hosts.map((host) => formatKnownHostsLine(host.host, host.port, parseHostKey(host.hostKey))).join("\n") + "\n";
    const exported = JSON.parse(pulumi(["stack", "export"]).stdout) as { deployment: Record<string, unknown> };
    exported.deployment.resources = [{ urn: "urn:pulumi:homelab::nixmox::pulumi:pulumi:Stack::nixmox-homelab", custom: false, type: "pulumi:pulumi:Stack", outputs: { knownHosts } }];
    writeFileSync(path.join(root, "deployment.json"), JSON.stringify(exported));
    pulumi(["stack", "import", "--file", path.join(root, "deployment.json")]);
  });
  after(async () => {
    await Promise.all((hosts ?? []).map((host) => host.stop()));
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("exec runs one command on every host of --on NAME,@TAG in parallel, each line prefixed, exit codes summarised", () => {
    const result = nixmox(["exec", "--on", "gamma,@web", "--", "echo", "hello from", "$(basename $NIXMOX_STUB_DIR)", ";", "echo", "oops", ">&2"]);
    assert.equal(result.status, 0, result.stderr);
    const out = result.stdout.trimEnd().split("\n").sort();
    assert.deepEqual(out, hosts.map((host, index) => `${names[index].padEnd(5)} | hello from ${path.basename(host.dir)}`).sort());
    const err = result.stderr.trimEnd().split("\n");
    assert.deepEqual(err.slice(0, -1).sort(), names.map((name) => `${name.padEnd(5)} | oops`));
    assert.equal(err[err.length - 1], "exit codes: alpha 0, beta 0, gamma 0; all 3 succeeded");
  });

  it("exec exits 1 and names each host's exit code when some fail, and an unreachable host as such", async () => {
    const failing = nixmox(["exec", "--on", "@web", "--", "test", "$(basename $NIXMOX_STUB_DIR)", "=", path.basename(hosts[0].dir)]);
    assert.equal(failing.status, 1);
    assert.equal(failing.stdout, "");
    assert.equal(failing.stderr, "exit codes: alpha 0, beta 1; 1 of 2 failed\n");
    // gamma goes away for the rest of this file.
    await hosts[2].kill();
    const unreachable = nixmox(["exec", "--on", "gamma,alpha", "--", "true"]);
    assert.equal(unreachable.status, 1);
    assert.match(unreachable.stderr, /^gamma \| unreachable: .*127\.0\.0\.23/m);
    assert.match(unreachable.stderr, /\nexit codes: alpha 0, gamma unreachable; 1 of 2 failed\n$/);
  });

  it("never trusts a host key on first use: a host with no pinned key, or that presents another key, is refused", () => {
    const onlyAlpha = path.join(root, "known_hosts_alpha");
    writeFileSync(onlyAlpha, `${formatKnownHostsLine(hosts[0].host, hosts[0].port, parseHostKey(hosts[0].hostKey))}\n`);
    const unpinned = nixmox(["exec", "--on", "beta", "--known-hosts", onlyAlpha, "--", "true"]);
    assert.equal(unpinned.status, 1);
    assert.match(unpinned.stderr, /^beta \| unreachable: no pinned host key for beta \(127\.0\.0\.22:\d+\) in .*known_hosts_alpha; NixMox never trusts a key on first use$/m);
    const swapped = path.join(root, "known_hosts_swapped");
    writeFileSync(swapped, `${formatKnownHostsLine(hosts[0].host, hosts[0].port, parseHostKey(hosts[1].hostKey))}\n`);
    const mismatch = nixmox(["ssh", "alpha", "--known-hosts", swapped, "--", "true"]);
    assert.equal(mismatch.status, 255);
    assert.match(mismatch.stderr, /^nixmox ssh: alpha: host key mismatch for 127\.0\.0\.21:\d+: expected SHA256:/);
  });

  it("ssh runs one command with the host's exit code, passing stdin on", () => {
    const result = nixmox(["ssh", "beta", "--", "cat", ";", "exit", "7"], { input: "piped in\n" });
    assert.equal(result.status, 7, result.stderr);
    assert.equal(result.stdout, "piped in\n");
  });

  it("ssh without a command opens a shell; on a terminal a pseudo-terminal (tty on the host)", () => {
    const plain = nixmox(["ssh", "alpha"], { input: "echo shell on $(basename $NIXMOX_STUB_DIR)\nexit 3\n" });
    assert.equal(plain.status, 3, plain.stderr);
    assert.match(plain.stdout, new RegExp(`shell on ${path.basename(hosts[0].dir)}\\n`));
    // util-linux `script` gives the CLI a terminal; the host's shell then has one too.
    const typescript = path.join(root, "typescript");
    const command = [process.execPath, bin, "ssh", "alpha"].map((word) => `'${word}'`).join(" ");
    const screen = spawnSync("script", ["-qec", command, typescript], { cwd: project, env, encoding: "utf8", input: "tty\nexit 4\n", timeout: 60_000 });
    assert.equal(screen.status, 4, screen.stdout);
    const terminal = readFileSync(typescript, "utf8");
    assert.match(terminal, /\r\/dev\/pts\/\d+\r/);
    assert.doesNotMatch(terminal, /not a tty/);
  });

  it("carries a backup out of one host and into another through ssh, byte for byte (docs/backup-restore.md)", () => {
    // The hosts share this machine's file system: each host's own folder stands for its /var/lib/<service>.
    const source = path.join(hosts[0].dir, "data");
    mkdirSync(path.join(source, "attachments"), { recursive: true });
    const binary = Buffer.from(Array.from({ length: 65_536 }, (_, index) => (index * 7919) % 256));
    writeFileSync(path.join(source, "attachments", "blob.bin"), binary);
    writeFileSync(path.join(source, "db.sqlite3"), "rows\n");
    const backup = spawnSync(process.execPath, [bin, "ssh", "alpha", "--", "tar", "-C", source, "-c", "."], { cwd: project, env, timeout: 120_000 });
    assert.equal(backup.status, 0, String(backup.stderr));
    assert.ok(backup.stdout.length > binary.length);
    const target = path.join(hosts[1].dir, "restored");
    const restore = spawnSync(process.execPath, [bin, "ssh", "beta", "--", "mkdir", "-p", target, "&&", "tar", "-C", target, "-x"], { cwd: project, env, input: backup.stdout, timeout: 120_000 });
    assert.equal(restore.status, 0, String(restore.stderr));
    assert.ok(readFileSync(path.join(target, "attachments", "blob.bin")).equals(binary));
    assert.equal(readFileSync(path.join(target, "db.sqlite3"), "utf8"), "rows\n");
    const failed = spawnSync(process.execPath, [bin, "ssh", "beta", "--", "tar", "-C", path.join(root, "missing"), "-x"], { cwd: project, env, input: backup.stdout, timeout: 120_000 });
    assert.equal(failed.status, 2, "tar's own exit code");
  });

  it("logs prints the host's journal with the units, --since and --lines quoted through the remote shell, which the real journalctl accepts", () => {
    const result = nixmox(["logs", "beta", "-u", "caddy.service", "-u", "nixmox-activate@x.service", "--since", "10 min ago", "-n", "20"]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `entry 1 of ${path.basename(hosts[1].dir)}\nentry 2 of ${path.basename(hosts[1].dir)}\nentry 3 of ${path.basename(hosts[1].dir)}\n`);
    const args = readFileSync(path.join(hosts[1].dir, "journalctl.args"), "utf8").trimEnd().split("\n");
    assert.deepEqual(args, ["--no-pager", "--unit", "caddy.service", "--unit", "nixmox-activate@x.service", "--since", "10 min ago", "--lines", "20"]);
    const real = spawnSync("/usr/bin/journalctl", args, { encoding: "utf8" });
    assert.equal(real.status, 0, real.stderr);
    const defaults = nixmox(["logs", "alpha"]);
    assert.equal(defaults.status, 0, defaults.stderr);
    assert.deepEqual(readFileSync(path.join(hosts[0].dir, "journalctl.args"), "utf8").trimEnd().split("\n"), ["--no-pager", "--lines", "100"]);
    const bad = nixmox(["logs", "alpha", "-u", "x; rm -rf /"]);
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, 'nixmox logs: --unit must be a systemd unit name such as caddy.service, got "x; rm -rf /"\n');
  });

  it("logs -f streams new entries until interrupted, then ends", async () => {
    const child = spawn(process.execPath, [bin, "logs", "alpha", "-f"], { cwd: project, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    const host = path.basename(hosts[0].dir);
    const deadline = Date.now() + 60_000;
    while (!stdout.includes(`entry 6 of ${host}`) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(stdout.includes(`entry 6 of ${host}`), stdout);
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    assert.notEqual(code, null, "ended by itself after the interrupt, not killed");
    assert.deepEqual(readFileSync(path.join(hosts[0].dir, "journalctl.args"), "utf8").trimEnd().split("\n"), ["--no-pager", "--follow", "--lines", "100"]);
  });

  it("status uses the stack's manifest, deploy key and pinned host keys, with no flag", () => {
    const result = nixmox(["status", "--json"]);
    assert.equal(result.status, 1, result.stderr);
    const rows = JSON.parse(result.stdout) as Array<{ service: string; healthy: boolean; lastOutput: string }>;
    // gamma was stopped above.
    assert.deepEqual(rows.map((row) => [row.service, row.healthy]), [["alpha", true], ["beta", true], ["gamma", false]]);
    assert.match(rows[2].lastOutput, /127\.0\.0\.23/);
  });

  it("refuses a service the stack's manifest does not have, a manifest other than the stack's, and works without a stack from files", () => {
    const unknown = nixmox(["ssh", "delta", "--", "true"]);
    assert.equal(unknown.status, 2);
    assert.equal(unknown.stderr, 'nixmox ssh: "delta" is not a service of the manifest; enabled services: alpha, beta, gamma\n');
    const other = nixmox(["logs", "alpha", "--manifest", path.join(repoDir, "manifest", "service-manifest.nix")]);
    assert.equal(other.status, 2);
    assert.match(other.stderr, /^nixmox logs: the manifest argument .*manifest\/service-manifest\.nix is not the manifest of stack "homelab", which deploys homelab\.json \(its nixmox:manifest\)/);
    const identity = path.join(root, "id_ed25519");
    writeFileSync(identity, hosts[0].clientPrivateKey, { mode: 0o600 });
    const knownHosts = path.join(root, "known_hosts");
    writeFileSync(knownHosts, `${formatKnownHostsLine(hosts[1].host, hosts[1].port, parseHostKey(hosts[1].hostKey))}\n`);
    // No Pulumi CLI at all: the files say everything.
    const stackless = nixmox(["ssh", "beta", "--manifest", path.join(project, "homelab.json"), "--identity", identity, "--known-hosts", knownHosts, "--", "echo", "ok"], { env: { ...process.env, PATH: "/usr/bin:/bin" } });
    assert.equal(stackless.status, 0, stackless.stderr);
    assert.equal(stackless.stdout, "ok\n");
  });
});
