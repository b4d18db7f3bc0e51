/**
 * One confined run of the real `nix-instantiate`, shared by the manifest's evaluation (load.ts) and the parse check
 * of its custom modules (module-check.ts):
 * - a clean environment: under `pulumi up` the parent's holds PULUMI_CONFIG (the decrypted stack config) and
 *   tokens; nix-instantiate gets only PATH and an empty HOME/NIX_PATH (security review M5);
 * - a timeout that works: Nix defers SIGTERM to its interrupt checks, which a tight loop never reaches, so the
 *   timer sends SIGKILL; `ulimit -t` also caps the CPU time, so the kernel stops a run whose caller died;
 * - a memory cap (`ulimit -v`), so a runaway run fails ("out of memory") instead of exhausting the controller.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { displayPath } from "./problems";

export interface NixLimits {
  /** Wall-clock limit; the run is killed (SIGKILL) after it. */
  timeoutSeconds: number;
  /** Address-space limit (`ulimit -v`). */
  memoryMiB: number;
}

/** How a run ended, told apart so each caller can say it in its own words. */
export type NixOutcome =
  | { kind: "ok"; stdout: string }
  | { kind: "not-installed" }
  | { kind: "timed-out"; seconds: string }
  | { kind: "out-of-memory" }
  | { kind: "failed"; stderr: string };

/** Runs `nix-instantiate ARGS` confined; rejects only when the shell itself cannot be started. */
export function runNixInstantiate(args: string[], limits: NixLimits): Promise<NixOutcome> {
  // The CPU cap sits a little above the wall-clock timeout, so the timer (with its clear message) acts first.
  const cpuSeconds = String(Math.ceil(limits.timeoutSeconds) + 5);
  const home = mkdtempSync(path.join(tmpdir(), "nixmox-nix-"));
  return new Promise<NixOutcome>((resolve, reject) => {
    const started = Date.now();
    const script = 'ulimit -t "$0" 2>/dev/null; ulimit -v "$1" 2>/dev/null; shift; exec nix-instantiate "$@"';
    const child = spawn("/bin/sh", ["-c", script, cpuSeconds, String(limits.memoryMiB * 1024), ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, NIX_PATH: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stdout: Buffer[] = [];
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, limits.timeoutSeconds * 1000);
    child.once("error", (error) => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      reject(error);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      if (code === 0) return resolve({ kind: "ok", stdout: Buffer.concat(stdout).toString("utf8") });
      if (code === 127 && /nix-instantiate: (command )?not found|No such file/.test(stderr)) return resolve({ kind: "not-installed" });
      if (timedOut || signal === "SIGXCPU" || signal === "SIGKILL") return resolve({ kind: "timed-out", seconds: ((Date.now() - started) / 1000).toFixed(1) });
      if (/error: out of memory/.test(stderr)) return resolve({ kind: "out-of-memory" });
      resolve({ kind: "failed", stderr });
    });
  });
}

/** What to install when nix-instantiate is missing. */
export const installNixHint = "Install Nix (Debian/Ubuntu: `sudo apt-get install nix-bin`, elsewhere https://nixos.org/download)";

/** Turns nix's "error: …\n at /file.nix:3:7:" into one line "file.nix:3:7: …". */
export function formatNixError(stderr: string): string {
  const message = /error: ([^\n]*)/.exec(stderr)?.[1]?.trim() ?? stderr.trim().split("\n")[0];
  const at = /at (\/[^\n]*?):(\d+):(\d+):/.exec(stderr);
  return at ? `${displayPath(at[1])}:${at[2]}:${at[3]}: ${message}` : message;
}
