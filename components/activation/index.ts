/**
 * The activation wrapper (`nixmox-activate.sh`, run on the host) and the command strings that run it.
 *
 * `renderActivationCommand` returns `{ command, stdin }` for a `remote.Command`: the command writes the
 * wrapper from stdin to a fresh `mktemp` file under the service's state dir and runs it; the run keeps the text,
 * deletes that file and, under the service's lock, gives the activation unit its own copy per attempt, so a
 * concurrent run for another configuration cannot swap the checks of a running activation (security review
 * M2). The wrapper text carries the service's startup checks
 * as comment lines, so the command line holds only validated names, a hash and paths (no check text, no
 * secret). Put `command` in `create`/`update` and `stdin` in `stdin`: a new config hash changes the command,
 * which re-runs it as an update (triggers would replace, pulumi/pulumi-command#855).
 */
import { readFileSync } from "node:fs";
import type { HealthCheckSpec } from "../../manifest/plan-types";
import { packageFile } from "../../manifest/package-root";
import type { HealthTiming } from "../health/runner";
import { shellCommand, shellQuote } from "../ssh/quote";

/** Where the wrapper finds things on the host. Tests point these into a temp dir. */
export interface ActivationPaths {
  /** @default "/var/lib/nixmox" (persistent, root-only: attempts, results, the deployed config hash) */
  stateDir: string;
  /** @default "/nix/var/nix/profiles/system" */
  profile: string;
  /** @default "/run/current-system" */
  currentSystem: string;
  /** Root's home-directory authorized_keys, rewritten to hold only the deploy key after a switch. @default "/root/.ssh/authorized_keys" */
  rootAuthorizedKeys: string;
  /** Where the wrapper reads proc/modules and sys/module to check kernelModules (tests point it elsewhere). @default "/" */
  kernelRoot: string;
}

/** The netfilter modules the NixOS nftables firewall needs from the Proxmox node's kernel (README, Inside the hosts). */
export const firewallKernelModules = ["nf_tables", "nft_ct", "nf_conntrack"] as const;

export const defaultActivationPaths: ActivationPaths = {
  stateDir: "/var/lib/nixmox",
  profile: "/nix/var/nix/profiles/system",
  currentSystem: "/run/current-system",
  rootAuthorizedKeys: "/root/.ssh/authorized_keys",
  kernelRoot: "/",
};

export interface ActivationOptions {
  service: string;
  /** Content hash of the host's rendered config (lowercase hex): same hash + same running generation = no-op. */
  configHash: string;
  /** @default `/etc/nixmox#<service>` (ignored when `system` is set) */
  flake?: string;
  /**
   * The system built elsewhere and copied to the host (components/build): the wrapper switches to this store path
   * (`nix-env --set`, `switch-to-configuration switch`) instead of running nixos-rebuild, after checking that its
   * closure is signed by one of `trustedPublicKeys`. @default none: nixos-rebuild on the host
   */
  system?: string;
  /** The keys a copied system's closure must be signed by (`name:base64`); required with `system`. @default [] */
  trustedPublicKeys?: string[];
  /** The service's health checks; the wrapper runs the host-side startup ones (phase startup|both). */
  checks: HealthCheckSpec[];
  timing: HealthTiming;
  /** Keep the new generation only if `renderConfirmCommand` runs within this many seconds; 0 = no confirmation. @default 0 */
  confirmTimeoutSeconds?: number;
  /** Kill and roll back a `nixos-rebuild switch` that runs longer than this. @default 1800 */
  activationTimeoutSeconds?: number;
  /** Roll a failed activation back to the previous generation (manifest enable_rollback); false keeps the new one and still fails. @default true */
  rollback?: boolean;
  /**
   * Kernel modules the new configuration needs and an unprivileged container cannot load: checked on the host
   * before the switch, so a Proxmox node without them fails the host with nothing switched (nixos-runtime review R8).
   * @default []
   */
  kernelModules?: string[];
  /** @default defaultActivationPaths */
  paths?: Partial<ActivationPaths>;
  /**
   * The deploy key's public half (`ssh-ed25519 AAAA…`). After a switch the wrapper makes it the only key in
   * root's home-directory authorized_keys, so keys removed from network.ssh_keys.root stop working (the NixOS
   * configuration holds the manifest keys). Omitted: that file is left as it is.
   */
  deployPublicKey?: string;
}

export interface ActivationResult {
  status: "switched" | "unchanged" | "rolled-back" | "rollback-failed" | "failed" | "awaiting-confirmation";
  service: string;
  configHash: string;
  generation: string | null;
  previousGeneration: string | null;
  reason: string | null;
}

const servicePattern = /^[a-z][a-z0-9-]{0,62}$/;
const hashPattern = /^[0-9a-f]{8,128}$/;
const pathPattern = /^\/[A-Za-z0-9/._-]*$/;
const flakePattern = /^\/[A-Za-z0-9/._-]*#[A-Za-z0-9._-]+$/;
const storePathPattern = /^\/nix\/store\/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+._?=-]+$/;
const nixKeyPattern = /^[A-Za-z0-9._-]+:[A-Za-z0-9+/]+={0,2}$/;

/** `--flake REF`, or `--system PATH --trusted-keys K1,K2` for a system built and copied by components/build. */
function sourceArguments(options: ActivationOptions): string[] {
  if (options.system === undefined) {
    const flake = options.flake ?? `/etc/nixmox#${options.service}`;
    if (!flakePattern.test(flake)) throw new Error(`service "${options.service}": flake must look like /etc/nixmox#<name>, got ${JSON.stringify(flake)}`);
    return ["--flake", flake];
  }
  if (!storePathPattern.test(options.system)) throw new Error(`service "${options.service}": system must be a Nix store path /nix/store/<hash>-<name>, got ${JSON.stringify(options.system)}`);
  const keys = options.trustedPublicKeys ?? [];
  if (keys.length === 0 || keys.some((key) => !nixKeyPattern.test(key))) throw new Error(`service "${options.service}": a copied system needs its trusted public keys ("name:base64"), got ${JSON.stringify(keys)}`);
  return ["--system", options.system, "--trusted-keys", keys.join(",")];
}

export const activationScriptPath = packageFile("components", "activation", "nixmox-activate.sh");

function resolvePaths(options: { service: string; paths?: Partial<ActivationPaths> }): ActivationPaths {
  const paths = { ...defaultActivationPaths, ...(options.paths ?? {}) };
  for (const [key, value] of Object.entries(paths)) {
    if (!pathPattern.test(value)) throw new Error(`service "${options.service}": activation path ${key} must be an absolute path of [A-Za-z0-9/._-], got ${JSON.stringify(value)}`);
  }
  return paths;
}

function validate(options: { service: string; configHash: string }): void {
  if (!servicePattern.test(options.service)) throw new Error(`service ${JSON.stringify(options.service)}: name must match [a-z][a-z0-9-]* to be activated`);
  if (!hashPattern.test(options.configHash)) throw new Error(`service "${options.service}": configHash must be 8-128 lowercase hex characters, got ${JSON.stringify(options.configHash)}`);
}

function kernelModules(service: string, modules: string[]): string {
  const bad = modules.filter((module) => !/^[a-z0-9_]{1,64}$/.test(module));
  if (bad.length > 0) throw new Error(`service "${service}": kernelModules must be module names of [a-z0-9_], got ${JSON.stringify(bad)}`);
  return modules.join(",");
}

function seconds(service: string, field: string, value: number): string {
  if (!Number.isInteger(value) || value < 0 || value > 999_999) throw new Error(`service "${service}": ${field} must be a whole number of seconds, got ${value}`);
  return String(value);
}

const encode = (text: string) => (text === "" ? "-" : Buffer.from(text, "utf8").toString("base64"));

/** The startup checks the wrapper can run on the host, as `#nixmox-*` lines (base64 fields, sorted by name). */
export function renderEmbeddedChecks(service: string, checks: HealthCheckSpec[], timing: HealthTiming): string {
  // The manifest allows fractional seconds; bash arithmetic needs whole ones, so round up (never shorter).
  const whole = (field: string, value: number) => seconds(service, field, Math.ceil(value));
  const lines = [
    `#nixmox-timing ${whole("health.interval", timing.intervalSeconds)} ${whole("health.timeout", timing.timeoutSeconds)} ` +
      `${whole("health.retries", timing.retries)} ${whole("health.start_period", timing.startPeriodSeconds)}`,
  ];
  const startup = checks
    .filter((check) => check.phase === "startup" || check.phase === "both")
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const check of startup) {
    switch (check.kind) {
      case "command":
        lines.push(`#nixmox-check ${encode(check.name)} command ${encode(check.command)} -`);
        break;
      case "systemd":
        lines.push(`#nixmox-check ${encode(check.name)} systemd ${encode(check.unit)} -`);
        break;
      case "tcp":
        lines.push(`#nixmox-check ${encode(check.name)} tcp ${encode(check.host)} ${encode(String(check.port))}`);
        break;
      case "http":
        // Controller-side HTTP checks are the HealthCheck resource's job; the host cannot run them.
        if (check.from === "host") lines.push(`#nixmox-check ${encode(check.name)} http ${encode(check.url)} ${encode(String(check.expectStatus))}`);
        break;
      default: {
        const never: never = check;
        throw new Error(`unknown check kind ${(never as { kind: string }).kind}`);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}

const publicKeyPattern = /^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*$/;

/** The wrapper text with this service's checks (and the deploy key) appended (what goes to the host). */
export function renderActivationScript(options: ActivationOptions): string {
  validate(options);
  const script = readFileSync(activationScriptPath, "utf8");
  let data = renderEmbeddedChecks(options.service, options.checks, options.timing);
  if (options.deployPublicKey !== undefined) {
    const line = options.deployPublicKey.trim();
    const key = line.split(" ").slice(0, 2).join(" ");
    if (!publicKeyPattern.test(key) || /[\u0000-\u001f\u007f]/.test(line)) throw new Error(`service "${options.service}": the deploy public key must look like "ssh-ed25519 AAAA…", got ${JSON.stringify(options.deployPublicKey.slice(0, 40))}`);
    data += `#nixmox-deploy-key ${encode(key)}\n`;
  }
  return `${script}\n# Startup checks of service "${options.service}" (data, never executed as code):\n${data}`;
}

/** Remote path of the service's wrapper that `confirm` runs (the last attempt's copy, written under the lock). */
export function activationScriptRemotePath(service: string, paths?: Partial<ActivationPaths>): string {
  return `${resolvePaths({ service, paths }).stateDir}/${service}/nixmox-activate.sh`;
}

export function renderActivationCommand(options: ActivationOptions): { command: string; stdin: string } {
  validate(options);
  const paths = resolvePaths(options);
  const source = sourceArguments(options);
  const dir = `${paths.stateDir}/${options.service}`;
  // `$wrapper` is the only expansion in the command: mktemp's output, a path under the validated state dir.
  const install = `umask 077 && mkdir -p ${shellQuote(dir)} && wrapper=$(mktemp ${shellQuote(`${dir}/.nixmox-activate.XXXXXXXXXX`)}) && cat > "$wrapper"`;
  const run = `bash "$wrapper" ${shellCommand([
    "run",
    "--service", options.service,
    "--config-hash", options.configHash,
    ...source,
    "--confirm-timeout", seconds(options.service, "confirmTimeoutSeconds", options.confirmTimeoutSeconds ?? 0),
    "--activation-timeout", seconds(options.service, "activationTimeoutSeconds", options.activationTimeoutSeconds ?? 1800),
    "--rollback", options.rollback === false ? "0" : "1",
    "--state-dir", paths.stateDir,
    "--profile", paths.profile,
    "--current-system", paths.currentSystem,
    "--root-authorized-keys", paths.rootAuthorizedKeys,
    "--kernel-modules", kernelModules(options.service, options.kernelModules ?? []),
    "--kernel-root", paths.kernelRoot,
  ])}`;
  return { command: `${install} && ${run}`, stdin: renderActivationScript(options) };
}

/** Confirms an activation that waits for the controller (run it over a *new* SSH connection). */
export function renderConfirmCommand(options: { service: string; configHash: string; waitTimeoutSeconds?: number; paths?: Partial<ActivationPaths> }): string {
  validate(options);
  const paths = resolvePaths(options);
  return shellCommand([
    "bash", activationScriptRemotePath(options.service, paths), "confirm",
    "--service", options.service,
    "--config-hash", options.configHash,
    "--wait-timeout", seconds(options.service, "waitTimeoutSeconds", options.waitTimeoutSeconds ?? 300),
    "--state-dir", paths.stateDir,
    "--profile", paths.profile,
    "--current-system", paths.currentSystem,
  ]);
}

/** Parses the wrapper's last `NIXMOX_RESULT {…}` line; null when there is none (e.g. usage error). */
export function parseActivationResult(stdout: string): ActivationResult | null {
  const line = stdout
    .split("\n")
    .reverse()
    .find((candidate) => candidate.startsWith("NIXMOX_RESULT "));
  if (!line) return null;
  try {
    return JSON.parse(line.slice("NIXMOX_RESULT ".length)) as ActivationResult;
  } catch {
    return null;
  }
}
