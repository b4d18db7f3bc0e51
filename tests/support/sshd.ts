/**
 * A throwaway OpenSSH server on a loopback address: the stand-in for a NixMox host in tests.
 *
 * Each instance has its own temp dir with a fresh ed25519 host key, a client key pair (authorized for root),
 * and an sshd_config that puts `stubBinDir` (tests/support/stub-bin by default) first on PATH of every
 * session through `SetEnv`, plus `NIXMOX_STUB_DIR` = this instance's dir, so stub `nixos-rebuild`,
 * `systemctl`, `systemd-run` and `nix-env` record calls and read their instructions per host.
 * `seedFakeNixos` builds a fake system profile (generations as symlinks) under `<dir>/root`.
 *
 * Reusable by other tests: `const host = await startSshd(); … await host.stop();`
 */
import { execFileSync, spawn, spawnSync, ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, existsSync, symlinkSync, chmodSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const defaultStubBinDir = join(__dirname, "stub-bin");

export interface StartSshdOptions {
  /** Loopback address to listen on. @default "127.0.0.1" */
  host?: string;
  /** Directory put first on PATH of sessions; null for the system PATH only. @default defaultStubBinDir */
  stubBinDir?: string | null;
  /** Extra environment for sessions (sshd `SetEnv`). Values must not contain spaces or quotes. */
  env?: Record<string, string>;
  /** Extra sshd_config lines. */
  extraConfig?: string[];
  /**
   * Give the host a Nix store of its own: sshd runs in a private mount namespace with `<dir>/nix` bound on /nix
   * (real Nix sees only this host's store, as in a container), and sessions get `NIX_CONF_DIR=<dir>/nix-conf`
   * holding these nix.conf lines. Needs root. @default none: the machine's /nix
   */
  privateNix?: { nixConf: string[] };
}

export interface TestSshd {
  host: string;
  port: number;
  username: "root";
  /** Per-instance temp dir; also `NIXMOX_STUB_DIR` in sessions. */
  dir: string;
  /** `ssh-ed25519 AAAA…` as the server presents it. */
  hostKey: string;
  /** A private key the server accepts for root. */
  clientPrivateKey: string;
  clientPublicKey: string;
  /** Stops the server and its sessions, removes the temp dir. */
  stop(): Promise<void>;
  /** Kills every live session (drops connections) but keeps listening. Returns how many were killed. */
  dropConnections(): number;
  /** Stops listening and drops sessions without removing the dir (the host "goes away"). */
  kill(): Promise<void>;
  /** Reads the stub call log (`<dir>/calls.log`), one line per call. */
  calls(): string[];
}

/** Creates `/run/sshd`, sshd's privilege separation dir, when missing (containers often lack it). */
function ensurePrivsepDir(): void {
  if (!existsSync("/run/sshd")) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForBanner(host: string, port: number, deadlineMs: number, child: ChildProcess): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (Date.now() < until) {
    if (child.exitCode !== null) throw new Error(`sshd exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host, port });
      const done = (value: boolean) => {
        socket.destroy();
        resolve(value);
      };
      socket.setTimeout(500, () => done(false));
      socket.once("data", (chunk) => done(chunk.toString().startsWith("SSH-")));
      socket.once("error", () => done(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`sshd on ${host}:${port} did not answer within ${deadlineMs} ms`);
}

function childPids(parentPid: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Field 4 (after the parenthesised command name) is the parent pid.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parentPid) pids.push(Number(entry));
    } catch {
      continue;
    }
  }
  return pids;
}

export async function startSshd(options: StartSshdOptions = {}): Promise<TestSshd> {
  ensurePrivsepDir();
  const host = options.host ?? "127.0.0.1";
  const dir = mkdtempSync(join(tmpdir(), "nixmox-sshd-"));
  chmodSync(dir, 0o755);
  const keygen = (file: string, comment: string) =>
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], { stdio: "ignore" });
  keygen(join(dir, "host_ed25519"), "nixmox-test-host");
  keygen(join(dir, "client_ed25519"), "nixmox-test-client");
  const clientPublicKey = readFileSync(join(dir, "client_ed25519.pub"), "utf8").trim();
  writeFileSync(join(dir, "authorized_keys"), `${clientPublicKey}\n`, { mode: 0o600 });
  const [type, base64] = readFileSync(join(dir, "host_ed25519.pub"), "utf8").trim().split(/\s+/);
  const stubBinDir = options.stubBinDir === undefined ? defaultStubBinDir : options.stubBinDir;
  const path = [stubBinDir, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"].filter(Boolean).join(":");
  // HOME points at the temp dir so the machine's own ~/.bashrc (which bash sources for SSH sessions) cannot
  // add noise to command output.
  const env: Record<string, string> = { PATH: path, NIXMOX_STUB_DIR: dir, HOME: dir, ...(options.env ?? {}) };
  if (options.privateNix) {
    mkdirSync(join(dir, "nix"), { recursive: true });
    mkdirSync(join(dir, "nix-conf"), { recursive: true });
    writeFileSync(join(dir, "nix-conf", "nix.conf"), `${options.privateNix.nixConf.join("\n")}\n`);
    env.NIX_CONF_DIR = join(dir, "nix-conf");
  }
  mkdirSync(join(dir, "control"), { recursive: true });
  mkdirSync(join(dir, "units"), { recursive: true });

  let child: ChildProcess | null = null;
  let port = 0;
  for (let attempt = 0; attempt < 3 && !child; attempt++) {
    port = await freePort(host);
    const config = [
      `ListenAddress ${host}:${port}`,
      `HostKey ${join(dir, "host_ed25519")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      // The temp dir is not root-owned-only in every CI; the key file itself is 0600.
      "StrictModes no",
      // Sessions start with stubs first on PATH; SetEnv is applied after sshd's default PATH (sshd_config(5)).
      `SetEnv ${Object.entries(env).map(([key, value]) => `${key}=${value}`).join(" ")}`,
      "MaxSessions 32",
      "MaxStartups 64:30:128",
      "LogLevel ERROR",
      ...(options.extraConfig ?? []),
    ];
    writeFileSync(join(dir, "sshd_config"), `${config.join("\n")}\n`);
    const sshdArgs = ["-D", "-e", "-f", join(dir, "sshd_config")];
    // unshare and sh exec, so the pid stays sshd's (dropConnections and kill find its sessions).
    const started = options.privateNix
      ? spawn("unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", 'mount --bind "$0" /nix && exec /usr/sbin/sshd "$@"', join(dir, "nix"), ...sshdArgs], { stdio: ["ignore", "ignore", "pipe"] })
      : spawn("/usr/sbin/sshd", sshdArgs, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    started.stderr?.on("data", (chunk) => (stderr += chunk.toString()));
    try {
      await waitForBanner(host, port, 5000, started);
      child = started;
    } catch (error) {
      started.kill("SIGKILL");
      if (attempt === 2) throw new Error(`cannot start sshd: ${(error as Error).message}: ${stderr.trim()}`);
    }
  }
  const server = child as ChildProcess;
  const exited = new Promise<void>((resolve) => server.once("exit", () => resolve()));

  const dropConnections = (): number => {
    if (server.pid === undefined) return 0;
    const sessions = childPids(server.pid);
    for (const pid of sessions) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        continue;
      }
    }
    return sessions.length;
  };
  const kill = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const sessions = server.pid === undefined ? [] : childPids(server.pid);
      server.kill("SIGTERM");
      await exited;
      for (const pid of sessions) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          continue;
        }
      }
    }
  };

  return {
    host,
    port,
    username: "root",
    dir,
    hostKey: `${type} ${base64}`,
    clientPrivateKey: readFileSync(join(dir, "client_ed25519"), "utf8"),
    clientPublicKey,
    dropConnections,
    kill,
    stop: async () => {
      await kill();
      // A private store's files are read-only (Nix's canonical permissions): make them removable first.
      if (options.privateNix) spawnSync("chmod", ["-R", "u+w", join(dir, "nix")]);
      rmSync(dir, { recursive: true, force: true });
    },
    calls: () => {
      const file = join(dir, "calls.log");
      return existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];
    },
  };
}

/** Paths of the fake NixOS system inside a test host's dir (what the activation wrapper is pointed at). */
export interface FakeNixosPaths {
  root: string;
  profile: string;
  currentSystem: string;
  stateDir: string;
  store: string;
}

export function fakeNixosPaths(dir: string): FakeNixosPaths {
  const root = join(dir, "root");
  return {
    root,
    profile: join(root, "nix/var/nix/profiles/system"),
    currentSystem: join(root, "run/current-system"),
    stateDir: join(root, "var/lib/nixmox"),
    store: join(root, "nix/store"),
  };
}

/**
 * Creates generation 1 of a fake NixOS system: a "store path" with `bin/switch-to-configuration`, the profile
 * link `system-1-link`, `system` → it, and `run/current-system` → the store path. Returns the store path.
 */
export function seedFakeNixos(dir: string): string {
  const paths = fakeNixosPaths(dir);
  mkdirSync(join(paths.root, "nix/var/nix/profiles"), { recursive: true });
  mkdirSync(join(paths.root, "run"), { recursive: true });
  mkdirSync(paths.store, { recursive: true });
  const storePath = execFileSync(join(defaultStubBinDir, "nixmox-stub-make-generation"), [paths.store, "1"], {
    encoding: "utf8",
  }).trim();
  symlinkSync(storePath, `${paths.profile}-1-link`);
  symlinkSync("system-1-link", paths.profile);
  symlinkSync(storePath, paths.currentSystem);
  return storePath;
}
