/**
 * A small manifest for the twin's user-facing tests (tests/twin-cli.test.ts, tests/twin-automation.test.ts): the
 * example homelab's dns, caddy and homepage (whose custom module, modules/homepage.nix, is copied beside it), as
 * JSON in `dir`, so a test edits it as data. Three hosts, three waves: a deploy takes tens of seconds.
 */
import { cpSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { loadManifestData } from "../../manifest";
import { repoDir } from "./real-engine";

export async function writeSmallTwinManifest(dir: string): Promise<{ manifest: string; data: Record<string, any>; write(): void }> {
  const data = (await loadManifestData(path.join(repoDir, "manifest", "service-manifest.nix"))) as Record<string, any>;
  for (const name of ["postgresql", "authentik"]) delete data.core_services[name];
  for (const name of ["vaultwarden", "guacamole"]) delete data.services[name];
  // Forward auth needs an Authentik host, which this manifest leaves out.
  delete data.services.homepage.interface.proxy.authz;
  cpSync(path.join(repoDir, "manifest", "modules"), path.join(dir, "modules"), { recursive: true });
  const manifest = path.join(dir, "manifest.json");
  const write = () => writeFileSync(manifest, `${JSON.stringify(data, null, 2)}\n`);
  write();
  return { manifest, data, write };
}
