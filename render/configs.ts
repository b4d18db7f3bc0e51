/**
 * `nixmox render --configs`: the daemon configuration files a host's NixOS modules will produce (Caddyfile,
 * unbound.conf, pg_hba.conf and the PostgreSQL setup script, resolv.conf, the nftables firewall), for reading before a deploy and for the tests
 * that feed them to the real daemons.
 *
 * Nothing here knows a config format. Each file comes from the `configFiles` function of the host's own
 * shipped builder (nixos/lib/<kind>.nix, the code the host's module calls), applied to the host's own
 * host.json and evaluated with the real `nix-instantiate`: the files are the rendered host's bytes, written to
 * a private temporary directory, so what is evaluated is exactly what the host will build.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { ServiceKind } from "../manifest/plan-types";
import type { RenderedHost } from "./host";

/** The shipped builders (paths under nixos/) whose `configFiles` give a host's files: the core module's
 * (every host: resolv.conf, the nftables firewall) and its kind's daemon files. */
export const configBuilders: Partial<Record<ServiceKind | "core", string[]>> = {
  core: ["lib/resolv.nix", "lib/firewall.nix"],
  caddy: ["lib/caddy.nix"],
  dns: ["lib/dns.nix"],
  postgresql: ["lib/postgresql.nix"],
};

/** File name → content; empty for kinds without a builder. */
export type HostConfigs = Record<string, string>;

/** Thrown when nix-instantiate is missing or the evaluation fails; the message says which host and why. */
export class ConfigEvaluationError extends Error {}

function hostKind(host: RenderedHost): ServiceKind {
  return (JSON.parse(host.files["host.json"]) as { host: { kind: ServiceKind } }).host.kind;
}

/** Evaluates the host's builders on its host.json with nix-instantiate. */
export function renderHostConfigs(host: RenderedHost): HostConfigs {
  const builders = [...configBuilders.core!, ...(configBuilders[hostKind(host)] ?? [])];
  const configs: HostConfigs = {};
  for (const builder of builders) Object.assign(configs, evaluateBuilder(host, builder));
  return Object.fromEntries(Object.keys(configs).sort().map((name) => [name, configs[name]]));
}

function evaluateBuilder(host: RenderedHost, builder: string): HostConfigs {
  const source = host.files[`nixos/${builder}`];
  if (source === undefined) throw new ConfigEvaluationError(`service "${host.service}": nixos/${builder} is not part of the rendered host (renderer bug)`);

  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-configs-"));
  try {
    const lib = path.join(dir, "builder.nix");
    const data = path.join(dir, "host.json");
    writeFileSync(lib, source);
    writeFileSync(data, host.files["host.json"]);
    // Paths are mkdtemp's (no quote or `${`), so they are safe as Nix path literals.
    const expression = `(import ${lib}).configFiles (builtins.fromJSON (builtins.readFile ${data}))`;
    let out: string;
    try {
      out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--expr", expression], {
        encoding: "utf8",
        timeout: 60_000,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (error) {
      const failure = error as NodeJS.ErrnoException & { stderr?: string };
      if (failure.code === "ENOENT") {
        throw new ConfigEvaluationError("--configs needs nix-instantiate on the PATH (Debian: apt install nix-bin; or install Nix)");
      }
      const detail = (failure.stderr ?? String(error)).split("\n").filter((line) => line.startsWith("error") || line.includes("error:")).join("\n");
      throw new ConfigEvaluationError(`service "${host.service}": evaluating nixos/${builder} configFiles failed: ${detail || failure.message}`);
    }
    const files = JSON.parse(out) as Record<string, unknown>;
    const configs: HostConfigs = {};
    for (const name of Object.keys(files).sort()) {
      const content = files[name];
      if (typeof content !== "string" || !/^[A-Za-z0-9._-]+$/.test(name)) {
        throw new ConfigEvaluationError(`service "${host.service}": nixos/${builder} configFiles gave a bad entry ${JSON.stringify(name)} (renderer bug)`);
      }
      configs[name] = content;
    }
    return configs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every host's daemon files, keyed by service. */
export function renderConfigs(hosts: RenderedHost[]): Record<string, HostConfigs> {
  return Object.fromEntries(hosts.map((host) => [host.service, renderHostConfigs(host)]));
}
