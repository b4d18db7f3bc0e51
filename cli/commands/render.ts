import type { Command } from "commander";
import * as path from "node:path";
import { ManifestError } from "../../manifest/problems";
import { projectDir } from "../paths";
import { action, manifestModule, print } from "../run";
import { manifestArgumentHelp, offlineLoadOptions, offlineManifest, stackManifestOptions, type ManifestFlags } from "../stack-manifest";

/** The renderer, loaded by this command only. */
const renderModule = () => require("../../render") as typeof import("../../render");

function parsePin(json: string | undefined): unknown {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json);
  } catch {
    throw new ManifestError("--nixpkgs", [{ subject: "--nixpkgs", field: "", message: 'must be JSON such as {"rev":"<40 hex>","narHash":"sha256-…=","ref":"nixos-25.11"}' }]);
  }
}

function evaluateConfigs(render: () => Parameters<typeof import("../../render").renderConfigs>[0]): ReturnType<typeof import("../../render").renderConfigs> {
  const { ConfigEvaluationError, StandInCaError, renderConfigs } = renderModule();
  try {
    return renderConfigs(render());
  } catch (error) {
    if (error instanceof ConfigEvaluationError || error instanceof StandInCaError) throw new ManifestError("render --configs", [{ subject: "--configs", field: "", message: error.message }]);
    throw error;
  }
}

export function register(program: Command): void {
  const command = program
    .command("render")
    .description("Write one self-contained NixOS flake per enabled service to DIR/<service>/ (what the deploy pushes to /etc/nixmox).")
    .argument("[manifest]", manifestArgumentHelp)
    .requiredOption("--out <dir>", "output directory")
    .option("--configs", "also write DIR/<service>/configs/: the daemon files the host's modules produce (Caddyfile, unbound.conf, pg_hba.conf, setup.sql, resolv.conf, nftables.conf), evaluated with nix-instantiate; the proxy's with a stand-in CA made by openssl for this run")
    .option("--nixpkgs <json>", "nixpkgs pin as JSON { rev, narHash, ref?, lastModified? } (the CLI form of the stack config nixmox:nixpkgsRev/nixmox:nixpkgsNarHash); default: the pinned nixos-25.11");
  stackManifestOptions(command, projectDir).action(action(async (argument: string | undefined, options: ManifestFlags & { out: string; nixpkgs?: string; configs?: boolean }) => {
      const { fileSources, renderAll, resolveNixpkgsPin, standInCaCertificate, standInCaSubject, writeRenderedHosts } = renderModule();
      const nixpkgs = resolveNixpkgsPin(parsePin(options.nixpkgs));
      const plan = await manifestModule().loadPlan(offlineManifest(argument, options), offlineLoadOptions(options));
      // NixMox's shipped modules (nixos/ of its package folder), also when the CLI runs from dist/.
      const sources = fileSources(plan.manifestDir);
      // The flakes render without a CA (no stack here), so their bytes and hashes are the same on every run.
      const hosts = renderAll(plan, sources, { nixpkgs });
      // The configs show what a deploy runs: the proxy signs with the stack's managed CA there, so here with a stand-in
      // made for this run (render/stand-in-ca.ts). The configs name only its credential files, never its bytes, so
      // they are the same on every run too. Evaluated before anything is written, so a failure leaves DIR as it was.
      const configs = options.configs ? evaluateConfigs(() => renderAll(plan, sources, { nixpkgs, caRootCertificate: standInCaCertificate() })) : {};
      writeRenderedHosts(options.out, hosts, configs);
      const lines = hosts.map((host) => {
        const files = Object.keys(configs[host.service] ?? {});
        return `${host.service} ${host.contentHash}${files.length > 0 ? ` configs: ${files.join(" ")}` : ""}`;
      });
      const standIn = options.configs ? [`configs rendered with a stand-in CA made for this run ("${standInCaSubject}"); a deploy uses the stack's managed CA`] : [];
      print([`rendered ${hosts.length} host${hosts.length === 1 ? "" : "s"} into ${path.resolve(options.out)}`, ...lines, ...standIn].join("\n"));
    }));
}
