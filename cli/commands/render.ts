import type { Command } from "commander";
import * as path from "node:path";
import { ManifestError } from "../../manifest/problems";
import { displayPath, exampleManifestPath, projectRoot } from "../paths";
import { action, manifestModule, print } from "../run";

function parsePin(json: string | undefined): unknown {
  if (json === undefined) return undefined;
  try {
    return JSON.parse(json);
  } catch {
    throw new ManifestError("--nixpkgs", [{ subject: "--nixpkgs", field: "", message: 'must be JSON such as {"rev":"<40 hex>","narHash":"sha256-…=","ref":"nixos-25.11"}' }]);
  }
}

export function register(program: Command): void {
  program
    .command("render")
    .description("Write one self-contained NixOS flake per enabled service to DIR/<service>/ (what the deploy pushes to /etc/nixmox).")
    .argument("[manifest]", "manifest file (.nix, .json, .yaml)", displayPath(exampleManifestPath))
    .requiredOption("--out <dir>", "output directory")
    .option("--nixpkgs <json>", "nixpkgs pin as JSON { rev, narHash, ref?, lastModified? } (the CLI form of the stack config nixmox:nixpkgsRev/nixmox:nixpkgsNarHash); default: the pinned nixos-25.11")
    .action(action(async (manifest: string, options: { out: string; nixpkgs?: string }) => {
      const { fileSources, renderAll, resolveNixpkgsPin, writeRenderedHosts } = require("../../render") as typeof import("../../render");
      const nixpkgs = resolveNixpkgsPin(parsePin(options.nixpkgs));
      const plan = await manifestModule().loadPlan(manifest);
      // The shipped modules of this checkout (nixos/), also when the CLI runs from dist/.
      const hosts = renderAll(plan, fileSources(plan.manifestDir, path.join(projectRoot, "nixos")), { nixpkgs });
      writeRenderedHosts(options.out, hosts);
      const lines = hosts.map((host) => `${host.service} ${host.contentHash}`);
      print([`rendered ${hosts.length} host${hosts.length === 1 ? "" : "s"} into ${path.resolve(options.out)}`, ...lines].join("\n"));
    }));
}
