/**
 * Plan → one self-contained flake directory per enabled host. Pure: file contents come from an injected
 * reader (`RenderSources`), so the same plan and sources always give the same bytes.
 *
 * Layout of `<out>/<service>/` (pushed to /etc/nixmox on the host):
 *   flake.nix, flake.lock, host.json        generated
 *   nixos/core.nix, nixos/lib/…             shipped modules this host imports (and nothing else)
 *   nixos/services/<kind>.nix
 *   custom/<manifest-relative path>         the manifest's own modules for this service
 */
import { ManifestError } from "../manifest";
import { contentHash } from "./content-hash";
import type { Plan, ServiceKind } from "../manifest/plan-types";
import { renderFlakeLock, renderFlakeNix } from "./flake";
import { moduleClosure } from "../manifest/module-files";
import { findService, planHostData, type HostData, type HostDataOptions } from "./host-data";
import { defaultNixpkgsPin, type NixpkgsPin } from "./nixpkgs-pin";
import { stableJson } from "./stable-json";

/** Where file contents come from. */
export interface RenderSources {
  /** A shipped module, by its path under `nixos/` (e.g. "services/caddy.nix"). */
  shipped(relativePath: string): string;
  /** A manifest module, by its path relative to the manifest's directory. */
  manifest(relativePath: string): string;
}

export interface RenderOptions extends HostDataOptions {
  /** The nixpkgs every host is pinned to (stack config `nixmox:nixpkgsRev`/`nixmox:nixpkgsNarHash`). @default defaultNixpkgsPin */
  nixpkgs?: NixpkgsPin;
}

export interface RenderedHost {
  service: string;
  /** Relative path → content, keys sorted. */
  files: Record<string, string>;
  /** sha256 (hex) of the sorted file list and contents; changes exactly when a file of the host changes. */
  contentHash: string;
}

/** Shipped files per module (paths under nixos/), including the helpers each one imports. */
export const shippedFiles: Record<ServiceKind | "core", string[]> = {
  core: ["core.nix", "lib/firewall.nix", "lib/resolv.nix", "lib/shell.nix"],
  dns: ["services/dns.nix", "lib/dns.nix"],
  caddy: ["services/caddy.nix", "lib/caddy.nix"],
  postgresql: ["services/postgresql.nix", "lib/postgresql.nix", "lib/shell.nix"],
  authentik: ["services/authentik.nix", "services/app-options.nix"],
  vaultwarden: ["services/vaultwarden.nix", "services/app-options.nix"],
  guacamole: ["services/guacamole.nix", "services/app-options.nix", "lib/guacamole.nix"],
  forgejo: ["services/forgejo.nix", "services/app-options.nix", "lib/forgejo.nix", "lib/oidc.nix"],
  nextcloud: ["services/nextcloud.nix", "services/app-options.nix", "lib/nextcloud.nix", "lib/oidc.nix"],
  monitoring: ["services/monitoring.nix", "services/app-options.nix", "lib/monitoring.nix"],
  media: ["services/media.nix", "services/app-options.nix", "lib/media.nix"],
  openbao: ["services/openbao.nix", "services/app-options.nix", "lib/openbao.nix"],
  mail: ["services/mail.nix", "services/app-options.nix"],
  pgadmin: ["services/pgadmin.nix", "services/app-options.nix", "lib/pgadmin.nix", "lib/oidc.nix"],
  builder: ["services/builder.nix"],
  custom: ["services/custom.nix", "services/app-options.nix"],
};

const outpostFiles = ["services/authentik-outposts.nix", "lib/authentik-outposts.nix"];

/**
 * The shipped modules a host imports, in import order: its kind's, then pgAdmin on a PostgreSQL host with a route,
 * then the outposts on an authentik host that runs them (paths under nixos/).
 */
export function hostModules(data: HostData): string[] {
  return [
    `services/${data.host.kind}.nix`,
    ...(data.host.kind === "postgresql" && data.pgadmin ? ["services/pgadmin.nix"] : []),
    ...(data.outposts ? ["services/authentik-outposts.nix"] : []),
  ];
}

/** Every shipped file a host needs (its modules and the helpers they import), sorted, paths under nixos/. */
export function hostShippedFiles(data: HostData): string[] {
  const extras = [
    ...(data.host.kind === "postgresql" && data.pgadmin ? shippedFiles.pgadmin : []),
    ...(data.outposts ? outpostFiles : []),
  ];
  return [...new Set([...shippedFiles.core, ...shippedFiles[data.host.kind], ...extras])].sort();
}

/** sha256 over every file as "<path>\0<byte length>\0<content>", in path order (render/content-hash.ts). */
export { contentHash };

/** "./modules/x.nix" → "modules/x.nix"; refuses anything that could leave the manifest's directory. */
function normalizeModulePath(service: string, index: number, relative: string): string {
  const normalized = relative.replace(/^\.\//, "");
  const segments = normalized.split("/");
  if (relative.startsWith("/") || segments.some((segment) => segment === ".." || segment === "." || segment === "") || !normalized.endsWith(".nix")) {
    throw new ManifestError("render", [{
      subject: `service "${service}"`,
      field: `nixos_modules[${index}]`,
      message: `must be a relative path to a .nix file inside the manifest's directory, got ${JSON.stringify(relative)}`,
    }]);
  }
  return normalized;
}

function readManifestModule(sources: RenderSources, service: string, index: number, relative: string, normalized: string): string {
  try {
    return sources.manifest(normalized);
  } catch (error) {
    const reason = error instanceof Error && "code" in error && error.code === "ENOENT" ? "file not found" : error instanceof Error ? error.message : String(error);
    throw new ManifestError("render", [{
      subject: `service "${service}"`,
      field: `nixos_modules[${index}]`,
      message: `cannot read ${JSON.stringify(relative)} (relative to the manifest's directory): ${reason}`,
    }]);
  }
}

export function renderHost(plan: Plan, name: string, sources: RenderSources, options: RenderOptions = {}): RenderedHost {
  const service = findService(plan, name);
  const pin = options.nixpkgs ?? defaultNixpkgsPin;
  const files: Record<string, string> = {};

  const data = planHostData(plan, service.name, options);
  for (const relative of hostShippedFiles(data)) files[`nixos/${relative}`] = sources.shipped(relative);

  const customModules = service.nixosModules.map((relative, index) => {
    const normalized = normalizeModulePath(service.name, index, relative);
    files[`custom/${normalized}`] = readManifestModule(sources, service.name, index, relative, normalized);
    return `custom/${normalized}`;
  });
  // What the modules import or read by relative path (sibling modules, data files) goes into the flake too.
  const closure = moduleClosure(customModules.map((module) => module.slice("custom/".length)), (relative) => {
    try {
      return sources.manifest(relative);
    } catch {
      return null;
    }
  });
  if (closure.problems.length > 0) {
    throw new ManifestError("render", closure.problems.map((problem) => ({
      subject: `service "${service.name}"`,
      field: "nixos_modules",
      message: `${JSON.stringify(problem.module)} ${problem.message}`,
    })));
  }
  for (const [relative, text] of closure.files) files[`custom/${relative}`] = text;

  const modules = ["nixos/core.nix", ...hostModules(data).map((module) => `nixos/${module}`), ...customModules];
  files["flake.nix"] = renderFlakeNix(service.name, modules, pin);
  files["flake.lock"] = renderFlakeLock(pin);
  files["host.json"] = stableJson(data);
  // The release a new host is installed with; the config push keeps the one of the first install (nixos/core.nix).
  files["state-version"] = `${data.host.stateVersion}\n`;

  const sorted = Object.fromEntries(Object.keys(files).sort().map((path) => [path, files[path]]));
  return { service: service.name, files: sorted, contentHash: contentHash(sorted) };
}

/** Every enabled host, sorted by service name; disabled services render nothing. */
export function renderAll(plan: Plan, sources: RenderSources, options: RenderOptions = {}): RenderedHost[] {
  return [...plan.services]
    .map((service) => service.name)
    .sort()
    .map((name) => renderHost(plan, name, sources, options));
}
