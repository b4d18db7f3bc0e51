/**
 * Probes over one reused SSH connection (what HealthCheck and `nixmox status` do) versus a new connection per
 * probe (the `ssh host cmd` loop of shell orchestrators), against a loopback sshd.
 *
 *   npx tsx bench/ssh-probes.ts [probes=200]
 *
 * Prints probes per second for each and the ratio (target: at least 10×). No assertions: figures only.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { connectSsh } from "../components/ssh";
import { startSshd } from "../tests/support/sshd";

async function main(): Promise<void> {
  const probes = Number(process.argv[2] ?? 200);
  const host = await startSshd({ host: "127.0.0.11" });
  try {
    const probe = "systemctl is-active -- caddy.service || true";

    const reusedStarted = process.hrtime.bigint();
    const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
    for (let index = 0; index < probes; index++) {
      const result = await session.exec(probe);
      if (result.code !== 0) throw new Error(`probe failed: ${result.stderr}`);
    }
    session.close();
    const reusedSeconds = Number(process.hrtime.bigint() - reusedStarted) / 1e9;

    // The shell-orchestrator way: OpenSSH's client, host key pinned through a known_hosts file (strict
    // checking on), a fresh TCP + key exchange + auth per probe.
    const knownHosts = join(host.dir, "bench_known_hosts");
    writeFileSync(knownHosts, `[${host.host}]:${host.port} ${host.hostKey}\n`);
    const identity = join(host.dir, "client_ed25519");
    const freshProbes = Math.max(10, Math.floor(probes / 4));
    const freshStarted = process.hrtime.bigint();
    for (let index = 0; index < freshProbes; index++) {
      const result = spawnSync(
        "ssh",
        ["-i", identity, "-p", String(host.port), "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", `root@${host.host}`, probe],
        { encoding: "utf8" },
      );
      if (result.status !== 0) throw new Error(`ssh probe failed: ${result.stderr}`);
    }
    const freshSeconds = Number(process.hrtime.bigint() - freshStarted) / 1e9;

    const reusedRate = probes / reusedSeconds;
    const freshRate = freshProbes / freshSeconds;
    console.log(`reused connection : ${probes} probes in ${reusedSeconds.toFixed(2)} s = ${reusedRate.toFixed(1)} probes/s`);
    console.log(`new connection    : ${freshProbes} probes in ${freshSeconds.toFixed(2)} s = ${freshRate.toFixed(1)} probes/s`);
    console.log(`ratio             : ${(reusedRate / freshRate).toFixed(1)}x (target >= 10x)`);
  } finally {
    await host.stop();
  }
}

main().catch((error: unknown) => {
  console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
