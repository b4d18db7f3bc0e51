/**
 * The example homelab with a builder service, for the builder path in the twin (tests/twin-build.test.ts,
 * bench/twin-build.ts): no binary cache (the twin has no internet), and homepage's check a tcp check on its port (its
 * systemd unit comes from a custom NixOS module, which the twin's stand-in nixpkgs cannot evaluate).
 */
import { cpSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { loadManifestData } from "../../manifest";
import { repoDir } from "./real-engine";

/** The example homelab's hosts (what the builder builds). */
export const exampleHosts = ["authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "vaultwarden"];

/** Writes the manifest (JSON, with the modules folder next to it) into `dir`; `builder: false` leaves the builder out. */
export async function builderManifest(dir: string, options: { builder?: boolean } = {}): Promise<string> {
  const data = (await loadManifestData(path.join(repoDir, "manifest", "service-manifest.nix"))) as Record<string, any>;
  data.network.substituters = [];
  data.network.trusted_public_keys = [];
  if (options.builder !== false) data.core_services.builder = { ip: "192.168.99.20", hostname: "builder.nixmox.lan", vmid: 920, resources: { cores: 2, memory: 4096, disk_gb: 32 } };
  data.services.homepage.interface.health.checks = [{ type: "tcp", port: 8082 }];
  cpSync(path.join(repoDir, "manifest", "modules"), path.join(dir, "modules"), { recursive: true });
  const file = path.join(dir, "manifest.json");
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}
