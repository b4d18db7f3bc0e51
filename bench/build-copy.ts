/**
 * Build once, copy closures (issue 18) against building on every host, for the example homelab's seven hosts and
 * their dependency graph, three deploys each: the first, the same again, and an edit of one host (vaultwarden).
 *
 *   npx tsx bench/build-copy.ts            (as root: each host gets its own Nix store and memory cgroup)
 *
 * Every host is a loopback OpenSSH server with a Nix store of its own (tests/support/sshd.ts privateNix) and the
 * builder is one more. Real Nix evaluates and builds each host's stand-in system (tests/support/standin-system.ts:
 * the attribute nixos-rebuild builds, without nixpkgs), real `nix copy` moves signed closures, and the activation
 * wrapper switches the hosts in dependency order, as the deploy does:
 * - builder: HostBuild on the builder (one evaluation per changed host) → ClosureCopy → wrapper --system;
 * - target: the wrapper's --flake mode, with a stand-in nixos-rebuild that evaluates and builds the host's flake
 *   with the host's own Nix and switches to it (what nixos-rebuild switch does, minus nixpkgs).
 *
 * Prints per deploy and mode: evaluations on the builder and on the hosts, NAR bytes copied, each host's peak memory
 * during its activation (its cgroup's memory.max_usage_in_bytes: RSS plus page cache, what an LXC memory limit
 * counts; "n/a" without a writable memory cgroup), and the makespan against the critical path (the longest chain of
 * measured steps through the dependency graph). Without nixpkgs the stand-in evaluations are tiny: the figures show
 * where evaluations run and what moves, not how big a NixOS evaluation is (nixpkgs#85148, nix#2664 for that).
 * No assertions: figures only.
 */
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseActivationResult, renderActivationCommand, type ActivationOptions } from "../components/activation";
import { closureCopyProvider } from "../components/build/closure-copy";
import { hostBuildProvider, type HostBuildInputs } from "../components/build/host-build";
import { generateNixSigningKey, trustedKeys } from "../components/build/nix-commands";
import { connectSsh } from "../components/ssh";
import type { SshTarget } from "../components/ssh/remote-command";
import { loadPlan } from "../manifest";
import { fileSources, renderAll } from "../render";
import { defaultStubBinDir, fakeNixosPaths, seedFakeNixos, startSshd, type TestSshd } from "../tests/support/sshd";
import { standInSystemFiles, testNixConf } from "../tests/support/standin-system";

type Mode = "builder" | "target";
interface Step {
  name: string;
  after: string[];
  seconds: number;
}

const caches = { substituters: [] as string[], trustedPublicKeys: [] as string[] };
const key = generateNixSigningKey("nixmox-bench-1");

/** The stand-in nixos-rebuild of target mode: evaluate and build the flake with the host's Nix, then switch. */
const standInRebuild = `#!/bin/bash
set -euo pipefail
echo "nixos-rebuild $*" >> "$NIXMOX_STUB_DIR/calls.log"
flake=$3 dir=\${3%#*} name=\${3#*#}
echo "evaluation $name" >> "$NIXMOX_STUB_DIR/evaluations.log"
nix build --extra-experimental-features 'nix-command flakes' --out-link "$NIXMOX_STUB_DIR/result" "path:$dir#nixosConfigurations.\\"$name\\".config.system.build.toplevel"
out=$(readlink -f "$NIXMOX_STUB_DIR/result")
nix-env -p "$NIXMOX_STUB_DIR/root/nix/var/nix/profiles/system" --set "$out"
"$out/bin/switch-to-configuration" switch
`;

function memoryCgroupRoot(): string | null {
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((entry) => /^\d+:memory:/.test(entry));
  const path = line ? `/sys/fs/cgroup/memory${line.split(":")[2]}` : "/sys/fs/cgroup/memory";
  try {
    const probe = join(path, `nixmox-bench-probe-${process.pid}`);
    mkdirSync(probe);
    rmdirSync(probe);
    return path;
  } catch {
    return null;
  }
}

async function run(host: TestSshd, command: string, stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
  try {
    return await session.exec(command, { stdin, timeoutMs: 600_000 });
  } finally {
    session.close();
  }
}

/** Longest chain of step durations through `after` (the critical path), in seconds. */
function criticalPath(steps: Step[]): number {
  const byName = new Map(steps.map((step) => [step.name, step]));
  const memo = new Map<string, number>();
  const finish = (name: string): number => {
    if (memo.has(name)) return memo.get(name)!;
    const step = byName.get(name);
    const value = step ? step.seconds + Math.max(0, ...step.after.map(finish)) : 0;
    memo.set(name, value);
    return value;
  };
  return Math.max(0, ...steps.map((step) => finish(step.name)));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root: each host gets its own Nix store (a private mount namespace)");
  const plan = await loadPlan();
  const names = plan.services.map((service) => service.name).sort();
  const dependsOn = Object.fromEntries(plan.services.map((service) => [service.name, service.dependsOn]));
  const rendered = Object.fromEntries(renderAll(plan, fileSources(plan.manifestDir)).map((host) => [host.service, host]));
  const cgroupRoot = memoryCgroupRoot();
  const stubs = mkdtempSync(join(tmpdir(), "nixmox-bench-stubs-"));
  for (const name of ["systemd-run", "systemctl", "sync"]) symlinkSync(join(defaultStubBinDir, name), join(stubs, name));
  writeFileSync(join(stubs, "nixos-rebuild"), standInRebuild);
  chmodSync(join(stubs, "nixos-rebuild"), 0o755);

  console.log(`example homelab: ${names.length} hosts (${names.join(", ")}), ${plan.waves.length} waves; memory cgroups: ${cgroupRoot ?? "not writable (peak memory n/a)"}`);
  for (const mode of ["builder", "target"] as Mode[]) {
    const builder = mode === "builder" ? await startSshd({ host: "127.0.0.150", privateNix: { nixConf: testNixConf } }) : null;
    const hosts: Record<string, TestSshd> = {};
    const cgroups: Record<string, string> = {};
    for (const [index, name] of names.entries()) {
      hosts[name] = await startSshd({ host: `127.0.0.${151 + index}`, stubBinDir: stubs, privateNix: { nixConf: testNixConf } });
      seedFakeNixos(hosts[name].dir);
      if (cgroupRoot) {
        cgroups[name] = join(cgroupRoot, `nixmox-bench-${mode}-${name}-${process.pid}`);
        mkdirSync(cgroups[name]);
        writeFileSync(join(cgroups[name], "cgroup.procs"), readFileSync(join(hosts[name].dir, "sshd.pid"), "utf8").trim());
      }
    }
    const target = (host: TestSshd): SshTarget => ({ host: host.host, port: host.port, user: "root", privateKey: host.clientPrivateKey, hostKey: host.hostKey });
    const built: Record<string, { hash: string; path: string }> = {};
    const copied: Record<string, string> = {};
    try {
      for (const deploy of ["first deploy", "same manifest again", "edit of vaultwarden"]) {
        const revision = deploy === "edit of vaultwarden" ? 2 : 1;
        const files = (name: string) => {
          const hostJson = name === "vaultwarden" && revision === 2 ? rendered[name].files["host.json"].replace('"schemaVersion"', '"benchEdit": 2, "schemaVersion"') : rendered[name].files["host.json"];
          return standInSystemFiles(name, hostJson);
        };
        const steps: Step[] = [];
        const peaks: Record<string, number | null> = {};
        let builderEvaluations = 0;
        let bytes = 0;
        let paths = 0;
        const done = new Map<string, Promise<void>>();
        const step = (name: string, after: string[], work: () => Promise<void>) => {
          const promise = (async () => {
            await Promise.all(after.map((dependency) => done.get(dependency)));
            const started = process.hrtime.bigint();
            await work();
            steps.push({ name, after, seconds: Number(process.hrtime.bigint() - started) / 1e9 });
          })();
          done.set(name, promise);
          return promise;
        };
        const startedAt = process.hrtime.bigint();
        for (const name of plan.waves.flat()) {
          const host = hosts[name];
          const hostFiles = files(name);
          const hash = createHash("sha256").update(JSON.stringify(hostFiles)).digest("hex");
          const activation: Partial<ActivationOptions> = {};
          const stepsBefore: string[] = [];
          if (mode === "builder") {
            if (built[name]?.hash !== hash) {
              step(`build ${name}`, [], async () => {
                const inputs: HostBuildInputs = {
                  service: name, buildOn: "builder", builderName: "builder", builder: target(builder!), slots: 2, host: target(host), files: hostFiles, contentHash: hash,
                  caches, signingPublicKey: key.publicKey, signingSecretKey: key.secretKey, timeoutSeconds: 600, stateVersionFile: join(host.dir, "state-version"),
                };
                built[name] = { hash, path: (await hostBuildProvider.create(inputs)).outs.storePath };
                builderEvaluations += 1;
              });
              stepsBefore.push(`build ${name}`);
            }
            step(`copy ${name}`, [...stepsBefore], async () => {
              if (copied[name] === built[name].path) return; // unchanged: the copy does not re-run
              const result = await closureCopyProvider.create({
                service: name, buildOn: "builder", builderName: "builder", builder: target(builder!), host: target(host), storePath: built[name].path,
                trustedPublicKeys: trustedKeys(name, caches, key.publicKey), timeoutSeconds: 600,
              });
              copied[name] = built[name].path;
              bytes += result.outs.copiedBytes;
              paths += result.outs.copiedPaths;
            });
            stepsBefore.push(`copy ${name}`);
          } else {
            // Target: the pushed flake directory is where nixos-rebuild reads it.
            const dir = join(host.dir, "etc-nixmox");
            rmSync(dir, { recursive: true, force: true });
            mkdirSync(dir, { recursive: true });
            for (const [file, text] of Object.entries(hostFiles)) writeFileSync(join(dir, file), text);
            activation.flake = `${dir}#${name}`;
          }
          step(`activate ${name}`, [...stepsBefore, ...dependsOn[name].map((dependency) => `activate ${dependency}`)], async () => {
            if (mode === "builder") Object.assign(activation, { system: built[name].path, trustedPublicKeys: trustedKeys(name, caches, key.publicKey) });
            const paths = fakeNixosPaths(host.dir);
            const options: ActivationOptions = {
              service: name, configHash: hash, checks: [], timing: { intervalSeconds: 1, timeoutSeconds: 2, retries: 1, startPeriodSeconds: 0 },
              paths: { stateDir: paths.stateDir, profile: paths.profile, currentSystem: paths.currentSystem, rootAuthorizedKeys: join(paths.root, "root/.ssh/authorized_keys") },
              ...activation,
            };
            if (cgroups[name]) writeFileSync(join(cgroups[name], "memory.max_usage_in_bytes"), "0");
            const { command, stdin } = renderActivationCommand(options);
            const result = await run(host, command, stdin);
            const status = parseActivationResult(result.stdout)?.status;
            if (status !== "switched" && status !== "unchanged") throw new Error(`${mode} ${deploy}: ${name} did not switch: ${result.stdout}\n${result.stderr}`);
            peaks[name] = cgroups[name] ? Number(readFileSync(join(cgroups[name], "memory.max_usage_in_bytes"), "utf8")) : null;
          });
        }
        await Promise.all(done.values());
        const makespan = Number(process.hrtime.bigint() - startedAt) / 1e9;
        const hostEvaluations = names.reduce((sum, name) => {
          const log = join(hosts[name].dir, "evaluations.log");
          return sum + (existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean).length : 0);
        }, 0);
        for (const name of names) rmSync(join(hosts[name].dir, "evaluations.log"), { force: true });
        const mib = (value: number | null) => (value === null ? "n/a" : `${(value / 1048576).toFixed(1)}`);
        console.log(`\n[${mode}] ${deploy}`);
        console.log(`  evaluations: ${builderEvaluations} on the ${mode === "builder" ? "builder" : "controller/builder (none)"}, ${hostEvaluations} on the hosts`);
        console.log(`  copied: ${paths} store paths, ${bytes} bytes (NAR)${mode === "target" ? " (target: nothing copied; a real host downloads nixpkgs and substitutes its own closure)" : ""}`);
        console.log(`  peak memory during activation (MiB): ${names.map((name) => `${name} ${mib(peaks[name] ?? null)}`).join(", ")}`);
        console.log(`  makespan ${makespan.toFixed(2)} s, critical path ${criticalPath(steps).toFixed(2)} s`);
      }
    } finally {
      await Promise.all([builder, ...Object.values(hosts)].map((host) => host?.stop()));
      for (const cgroup of Object.values(cgroups)) {
        try {
          rmdirSync(cgroup);
        } catch {
          // A process that has not exited yet keeps it; it empties itself.
        }
      }
    }
  }
  rmSync(stubs, { recursive: true, force: true });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.stack ?? error.message : error);
  process.exit(1);
});
