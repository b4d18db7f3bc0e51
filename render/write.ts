/**
 * Writing rendered hosts to an output directory. Each host directory is written to a temporary sibling and
 * renamed into place, so a reader (the config push) never sees half a host. Host directories that an
 * earlier render wrote and this one did not (a service disabled or removed) are deleted; anything else in
 * the output directory is left alone. The list lives in `<out>/.nixmox-render.json`, outside every host
 * directory, so it is never pushed to a host.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { HostConfigs } from "./configs";
import type { RenderedHost } from "./host";
import { stableJson } from "./stable-json";

export const renderIndexFile = ".nixmox-render.json";

function previousHosts(outDir: string): string[] {
  const file = path.join(outDir, renderIndexFile);
  if (!existsSync(file)) return [];
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { hosts?: unknown };
    return Array.isArray(parsed.hosts) ? parsed.hosts.filter((host): host is string => typeof host === "string" && /^[a-z0-9-]+$/.test(host)) : [];
  } catch {
    return [];
  }
}

/**
 * `configs` (from `nixmox render --configs`) go to `<out>/<service>/configs/<file>`, inside the same atomic
 * rename. They are for reading and tests only: the deploy pushes the rendered files, never this directory,
 * and they are not part of the content hash.
 */
export function writeRenderedHosts(outDir: string, hosts: RenderedHost[], configs: Record<string, HostConfigs> = {}): void {
  mkdirSync(outDir, { recursive: true });
  const stale = previousHosts(outDir).filter((name) => !hosts.some((host) => host.service === name));
  for (const host of hosts) {
    const target = path.join(outDir, host.service);
    const temporary = path.join(outDir, `.${host.service}.tmp`);
    rmSync(temporary, { recursive: true, force: true });
    for (const [relative, content] of Object.entries(host.files)) {
      const file = path.join(temporary, relative);
      mkdirSync(path.dirname(file), { recursive: true });
      writeFileSync(file, content);
    }
    for (const [name, content] of Object.entries(configs[host.service] ?? {})) {
      mkdirSync(path.join(temporary, "configs"), { recursive: true });
      writeFileSync(path.join(temporary, "configs", name), content);
    }
    rmSync(target, { recursive: true, force: true });
    renameSync(temporary, target);
  }
  for (const name of stale) rmSync(path.join(outDir, name), { recursive: true, force: true });
  const index = { hosts: hosts.map((host) => host.service), contentHashes: Object.fromEntries(hosts.map((host) => [host.service, host.contentHash])) };
  writeFileSync(path.join(outDir, renderIndexFile), stableJson(index));
}
