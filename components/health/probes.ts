/**
 * One probe of one health check. Command, systemd, TCP and host-side HTTP probes run on the service's host
 * over the shared SSH session; `http` with `from: "controller"` runs from the controller (as morph's
 * `check-health` and Colmena #104 ask: "is it reachable from where the users are?").
 * TCP runs on the host because manifests name ports like 127.0.0.1:5432 that only the host can reach, and
 * so the activation wrapper (which can only probe from the host) and this probe reach the same verdict.
 */
import type { HealthCheckSpec } from "../../manifest/plan-types";
import type { ExecResult } from "../ssh/connection";
import { shellCommand } from "../ssh/quote";

/** Runs a command on the service's host; resolves (never rejects) for anything but a refused host key. */
export type RemoteExec = (command: string, timeoutMs: number) => Promise<ExecResult>;

export interface ProbeOutcome {
  ok: boolean;
  /** Exit code of the remote command; null for controller-side probes, timeouts and dropped connections. */
  exitCode: number | null;
  /** What the probe printed or why it failed (unmasked: the runner masks secrets). */
  output: string;
}

/** systemd unit names (systemd.unit(5)): letters, digits, ":-_.\@", with a type suffix or a bare service. */
const unitPattern = /^[A-Za-z0-9:_.\\@-]+$/;

export function validateCheck(service: string, check: HealthCheckSpec): void {
  const where = `service "${service}": health check "${check.name}"`;
  switch (check.kind) {
    case "command":
      if (check.command.trim() === "") throw new Error(`${where}: command is empty; give a shell command that exits 0 when healthy`);
      return;
    case "systemd":
      if (!unitPattern.test(check.unit)) throw new Error(`${where}: unit must be a systemd unit name like "caddy.service", got ${JSON.stringify(check.unit)}`);
      return;
    case "tcp":
      if (!/^[A-Za-z0-9.:-]+$/.test(check.host) || !Number.isInteger(check.port) || check.port < 1 || check.port > 65535) {
        throw new Error(`${where}: tcp needs a host name or IP and a port 1-65535, got ${JSON.stringify(`${check.host}:${check.port}`)}`);
      }
      return;
    case "http": {
      let url: URL | null = null;
      try {
        url = new URL(check.url);
      } catch {
        url = null;
      }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
        throw new Error(`${where}: url must be an http:// or https:// URL, got ${JSON.stringify(check.url)}`);
      }
      return;
    }
    default: {
      const never: never = check;
      throw new Error(`${where}: unknown kind ${JSON.stringify((never as { kind: string }).kind)}`);
    }
  }
}

/** The remote command for host-side probes; null for controller-side ones. Every value is quoted. */
export function remoteProbeCommand(check: HealthCheckSpec, timeoutSeconds: number): string | null {
  // coreutils `timeout` bounds the probe on the host even if the SSH channel is gone; exit 124 = timed out.
  const bounded = ["timeout", "--kill-after=2", String(timeoutSeconds)];
  switch (check.kind) {
    case "command":
      return shellCommand([...bounded, "bash", "-c", check.command]);
    case "systemd":
      return shellCommand([...bounded, "systemctl", "is-active", "--", check.unit]);
    case "http":
      if (check.from !== "host") return null;
      // curl is in NixOS's requiredPackages (nixos/modules/config/system-path.nix), so every host has it.
      return shellCommand([...bounded, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", String(timeoutSeconds), "--", check.url]);
    case "tcp":
      // bash's /dev/tcp redirection opens the connection; no netcat needed on the host.
      return shellCommand([...bounded, "bash", "-c", 'exec 3<>"/dev/tcp/$1/$2"', "nixmox-tcp-probe", check.host, String(check.port)]);
    default: {
      const never: never = check;
      return never;
    }
  }
}

export async function runProbe(check: HealthCheckSpec, timeoutSeconds: number, exec: RemoteExec): Promise<ProbeOutcome> {
  const command = remoteProbeCommand(check, timeoutSeconds);
  if (command !== null) {
    const result = await exec(command, (timeoutSeconds + 5) * 1000);
    const output = `${result.stdout}${result.stderr}`.trim();
    if (result.timedOut || result.code === 124) {
      return { ok: false, exitCode: result.code, output: `timed out after ${timeoutSeconds}s${output ? `: ${output}` : ""}` };
    }
    if (check.kind === "http") {
      const status = result.stdout.trim();
      const ok = result.code === 0 && status === String(check.expectStatus);
      const detail = result.code === 0 ? `HTTP ${status} (expected ${check.expectStatus})` : result.stderr.trim();
      return { ok, exitCode: result.code, output: detail };
    }
    return { ok: result.code === 0, exitCode: result.code, output };
  }
  if (check.kind === "http") return probeHttpFromController(check.url, check.expectStatus, timeoutSeconds);
  throw new Error(`no controller-side probe for kind ${check.kind}`);
}

async function probeHttpFromController(url: string, expectStatus: number, timeoutSeconds: number): Promise<ProbeOutcome> {
  try {
    // redirect "manual": a 301/302 is reported as is, so `expectStatus: 302` can be checked.
    const response = await fetch(url, { redirect: "manual", signal: AbortSignal.timeout(timeoutSeconds * 1000) });
    await response.body?.cancel();
    return { ok: response.status === expectStatus, exitCode: null, output: `HTTP ${response.status} (expected ${expectStatus})` };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    const reason = (error as Error).name === "TimeoutError" ? `timed out after ${timeoutSeconds}s` : (cause?.code ?? (error as Error).message);
    return { ok: false, exitCode: null, output: `${url}: ${reason}` };
  }
}
