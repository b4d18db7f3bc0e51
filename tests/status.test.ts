// Real processes: `nixmox status` runs as a child process against three loopback sshd hosts with stub
// systemctl (tests/support). Not proven here: a real NixOS host's systemctl output format.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { AddressInfo, createServer } from "node:net";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatKnownHostsLine, parseHostKey } from "../components/ssh";
import { describeFailures, renderStatusTable } from "../cli/commands/status";
import { TestSshd, seedFakeNixos, startSshd } from "./support/sshd";

const cli = join(__dirname, "..", "bin", "nixmox.js");

function runCli(args: string[]) {
  const result = spawnSync(process.execPath, [cli, "status", ...args], { encoding: "utf8", timeout: 50_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("nixmox status over three real sshd hosts", function () {
  this.timeout(60_000);
  let hosts: TestSshd[];
  let work: string;
  let manifest: string;
  let knownHosts: string;
  let identity: string;
  let currentSystem: string;

  before(async () => {
    hosts = await Promise.all(["127.0.0.8", "127.0.0.9", "127.0.0.10"].map((host) => startSshd({ host })));
    work = mkdtempSync(join(tmpdir(), "nixmox-status-"));
    for (const host of hosts) mkdirSync(join(host.dir, "units"), { recursive: true });
    // The hosts share this machine's file system: one fake running system serves all three.
    seedFakeNixos(work);
    currentSystem = join(work, "root", "run", "current-system");
    // gamma's app unit has failed; alpha and beta are fine.
    writeFileSync(join(hosts[0].dir, "units", "app.service.state"), "active");
    writeFileSync(join(hosts[1].dir, "units", "app.service.state"), "active");
    writeFileSync(join(hosts[2].dir, "units", "app.service.state"), "failed");
    const service = (host: TestSshd, vmid: number) => ({
      ip: host.host,
      vmid,
      ssh: { port: host.port },
      nixos_modules: ["app.nix"],
      interface: { health: { liveness: "systemctl is-active app.service", interval: 1, timeout: 3, retries: 1 } },
    });
    writeFileSync(join(work, "app.nix"), "{ ... }: { }\n");
    manifest = join(work, "manifest.json");
    writeFileSync(
      manifest,
      JSON.stringify({
        network: { domain: "lan", dns_server: "127.0.0.1", gateway: "127.0.0.1", network_cidr: "127.0.0.0/8" },
        services: { alpha: service(hosts[0], 201), beta: service(hosts[1], 202), gamma: service(hosts[2], 203) },
      }),
    );
    knownHosts = join(work, "known_hosts");
    writeFileSync(knownHosts, hosts.map((host) => formatKnownHostsLine(host.host, host.port, parseHostKey(host.hostKey))).join("\n") + "\n");
    // One deploy key for every host, as in production.
    identity = join(work, "id_ed25519");
    writeFileSync(identity, hosts[0].clientPrivateKey, { mode: 0o600 });
    for (const host of hosts.slice(1)) writeFileSync(join(host.dir, "authorized_keys"), `${hosts[0].clientPublicKey}\n`);
  });
  after(async () => {
    await Promise.all((hosts ?? []).map((host) => host.stop()));
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const gen1 = `${"g" + "1".padStart(31, "0")}-nixos-system-test-1`;

  it("fails with exit 1 and a table naming the unhealthy service, its failed unit and its output", () => {
    const result = runCli([manifest, "--identity", identity, "--known-hosts", knownHosts, "--current-system", currentSystem]);
    assert.equal(result.code, 1, result.stderr);
    assert.equal(result.stderr, "");
    const rows = result.stdout.trimEnd().split("\n").map((line) => line.split(/ {2,}/));
    assert.deepEqual(rows, [
      ["SERVICE", "HEALTHY", "GENERATION", "FAILED UNITS", "LAST OUTPUT"],
      ["alpha", "yes", gen1, "-", "-"],
      ["beta", "yes", gen1, "-", "-"],
      ["gamma", "no", gen1, "app.service", "liveness: failed"],
    ]);
  });

  it("on a terminal, shows on stderr which hosts have answered, then clears the line; piped, stderr stays empty (above)", () => {
    const screen = join(work, "typescript");
    const quote = (text: string) => `'${text}'`;
    const command = [process.execPath, cli, "status", manifest, "--identity", identity, "--known-hosts", knownHosts, "--current-system", currentSystem, "--json"].map(quote).join(" ");
    // util-linux `script` gives the command a pseudo-terminal; stdout goes to a file so only stderr is on it.
    const result = spawnSync("script", ["-qec", `${command} > ${quote(join(work, "status.json"))}`, screen], { encoding: "utf8", timeout: 50_000 });
    assert.equal(result.status, 1, result.stderr);
    const terminal = readFileSync(screen, "utf8");
    assert.match(terminal, /\r\u001b\[Kchecking 3 services over SSH…/);
    assert.match(terminal, /\r\u001b\[Kchecked 3\/3: /);
    assert.match(terminal, /gamma unhealthy/);
    assert.equal((JSON.parse(readFileSync(join(work, "status.json"), "utf8")) as unknown[]).length, 3);
  });

  it("says whether each host runs its last build with --systems (pulumi stack output systems --json)", () => {
    const systems = join(work, "systems.json");
    const running = join(work, "root", "nix", "store", gen1);
    writeFileSync(systems, JSON.stringify({ alpha: running, beta: "/nix/store/00000000000000000000000000000000-nixos-system-beta" }));
    const result = runCli([manifest, "--identity", identity, "--known-hosts", knownHosts, "--current-system", currentSystem, "--systems", systems]);
    assert.equal(result.code, 1, result.stderr);
    const rows = result.stdout.trimEnd().split("\n").map((line) => line.split(/ {2,}/));
    assert.deepEqual(rows, [
      ["SERVICE", "HEALTHY", "GENERATION", "LAST BUILD", "FAILED UNITS", "LAST OUTPUT"],
      ["alpha", "yes", gen1, "runs it", "-", "-"],
      ["beta", "yes", gen1, "differs: 00000000000000000000000000000000-nixos-system-beta", "-", "-"],
      ["gamma", "no", gen1, "-", "app.service", "liveness: failed"],
    ]);
    const json = runCli([manifest, "--json", "--identity", identity, "--known-hosts", knownHosts, "--current-system", currentSystem, "--systems", systems]);
    assert.deepEqual((JSON.parse(json.stdout) as Array<{ matchesLastBuild: boolean | null }>).map((row) => row.matchesLastBuild), [true, false, null]);
    writeFileSync(systems, "[1]");
    const bad = runCli([manifest, "--identity", identity, "--known-hosts", knownHosts, "--systems", systems]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, `nixmox status: ${systems} must map service names to store paths, as \`pulumi stack output systems --json\` prints them\n`);
  });

  it("prints JSON with --json, same verdicts", () => {
    const result = runCli([manifest, "--json", "--identity", identity, "--known-hosts", knownHosts, "--current-system", currentSystem]);
    assert.equal(result.code, 1);
    const parsed = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    assert.deepEqual(
      parsed.map((row) => [row.service, row.healthy, row.port, row.failedUnits, row.lastOutput]),
      [
        ["alpha", true, hosts[0].port, [], ""],
        ["beta", true, hosts[1].port, [], ""],
        ["gamma", false, hosts[2].port, ["app.service"], "liveness: failed"],
      ],
    );
    assert.deepEqual(parsed.map((row) => row.generation), Array(3).fill(join(work, "root", "nix", "store", gen1)));
  });

  it("fails a host whose key does not match known_hosts, without stopping the others", () => {
    const swapped = join(work, "known_hosts_swapped");
    const lines = [
      formatKnownHostsLine(hosts[0].host, hosts[0].port, parseHostKey(hosts[1].hostKey)),
      formatKnownHostsLine(hosts[1].host, hosts[1].port, parseHostKey(hosts[1].hostKey)),
    ];
    writeFileSync(swapped, `${lines.join("\n")}\n`);
    const result = runCli([manifest, "--json", "--identity", identity, "--known-hosts", swapped]);
    assert.equal(result.code, 1);
    const parsed = JSON.parse(result.stdout) as Array<{ service: string; healthy: boolean; lastOutput: string }>;
    assert.match(parsed[0].lastOutput, new RegExp(`^host key mismatch for 127\\.0\\.0\\.8:${hosts[0].port}: expected SHA256:`));
    assert.equal(parsed[1].healthy, true);
    assert.equal(parsed[2].lastOutput, `no known host key for 127.0.0.10:${hosts[2].port} (add it to the known_hosts file)`);
  });

  it("reports a host that hangs up after its SSH banner as unhealthy, instead of hanging or exiting 0 with no output (security review M4)", async () => {
    // A real loopback TCP server in this process: the CLI runs asynchronously so the server keeps answering.
    const peer = createServer((socket) => {
      socket.on("error", () => undefined);
      socket.write("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
      socket.once("data", () => socket.end());
    });
    await new Promise<void>((resolve) => peer.listen(0, "127.0.0.11", resolve));
    const port = (peer.address() as AddressInfo).port;
    try {
      const broken = join(work, "broken.json");
      writeFileSync(broken, JSON.stringify({
        network: { domain: "lan", dns_server: "127.0.0.1", gateway: "127.0.0.1", network_cidr: "127.0.0.0/8" },
        services: { delta: { ip: "127.0.0.11", vmid: 204, ssh: { port }, nixos_modules: ["app.nix"], interface: { health: { liveness: "true", interval: 1, timeout: 3, retries: 1 } } } },
      }));
      const known = join(work, "known_hosts_broken");
      writeFileSync(known, `${formatKnownHostsLine("127.0.0.11", port, parseHostKey(hosts[0].hostKey))}\n`);
      const started = Date.now();
      const child = spawn(process.execPath, [cli, "status", broken, "--json", "--identity", identity, "--known-hosts", known], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), 40_000);
        child.once("close", (exit) => {
          clearTimeout(timer);
          resolve(exit);
        });
      });
      assert.equal(code, 1, `exit ${code} after ${Date.now() - started} ms`);
      const [row] = JSON.parse(stdout) as Array<{ service: string; healthy: boolean; lastOutput: string }>;
      assert.equal(row.healthy, false);
      assert.match(row.lastOutput, new RegExp(`SSH connection to 127\\.0\\.0\\.11:${port} closed before the handshake finished`));
    } finally {
      peer.close();
    }
  });

  it("fails with exit 2 when no key is given", () => {
    const result = spawnSync(process.execPath, [cli, "status", manifest, "--known-hosts", knownHosts], {
      encoding: "utf8",
      env: { ...process.env, NIXMOX_SSH_IDENTITY: "" },
    });
    assert.equal(result.status, 2);
    assert.equal(result.stderr, "nixmox status: no SSH key: pass --identity FILE (or set NIXMOX_SSH_IDENTITY) with the deploy key (nixmox:sshPrivateKey), or pass --stack NAME to use the stack's\n");
  });

  it("defaults to .nixmox/known_hosts in the project (gitignored, where the README writes it) and says how to write it", () => {
    const result = spawnSync(process.execPath, [cli, "status", manifest, "--identity", identity], { encoding: "utf8", cwd: join(__dirname, ".."), timeout: 50_000 });
    assert.equal(result.status, 2);
    assert.equal(
      result.stderr,
      "nixmox status: known_hosts file .nixmox/known_hosts does not exist: write the keys NixMox pinned with `mkdir -p .nixmox && pulumi stack output knownHosts > .nixmox/known_hosts`, pass --known-hosts FILE, or pass --stack NAME to read them from the stack\n",
    );
    assert.ok(readFileSync(join(__dirname, "..", ".gitignore"), "utf8").split("\n").includes("/.nixmox/"), ".nixmox/ is gitignored");
  });

  it("fails with exit 1 on an invalid manifest, listing the problem (as validate and plan do)", () => {
    const bad = join(work, "bad.json");
    writeFileSync(bad, JSON.stringify({ network: { domain: "lan", dns_server: "127.0.0.1", gateway: "127.0.0.1", network_cidr: "127.0.0.0/8" }, services: { x: { ip: "127.0.0.8" } } }));
    const result = runCli([bad, "--identity", identity, "--known-hosts", knownHosts]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /service "x"/);
  });

  it("names a failure shared by several checks once, with the checks that gave it", () => {
    assert.equal(
      describeFailures([
        { name: "dns-a", output: "connect ECONNREFUSED 127.0.0.1:22" },
        { name: "dns-b", output: "connect ECONNREFUSED 127.0.0.1:22" },
        { name: "unit", output: "exit code 3" },
      ]),
      "dns-a, dns-b: connect ECONNREFUSED 127.0.0.1:22; unit: exit code 3",
    );
  });

  it("renders an empty last output and missing generation as dashes", () => {
    assert.equal(
      renderStatusTable([{ service: "web", host: "10.0.0.5", port: 22, healthy: false, generation: null, failedUnits: [], lastOutput: "a\nb", lastBuild: null, matchesLastBuild: null }]),
      "SERVICE  HEALTHY  GENERATION  FAILED UNITS  LAST OUTPUT\nweb      no       -           -             a | b",
    );
  });
});
