/**
 * Where each host's NixOS system is built (issue 18, docs/building.md), from the manifest's `build` section and its
 * services. Pure: no I/O, the same manifest gives the same placement on any machine, so a preview on a laptop and
 * an `up` in CI build the same way.
 *
 * - `build.on = "auto"` (the default): on the builder when the manifest has a service of kind `builder`, else on each
 *   host (`target`, what nixos-rebuild on the host did before). "controller" is chosen by name only: whether this
 *   machine can build x86_64-linux is a fact of the machine, checked when the program starts
 *   (components/build/controller.ts), never a silent switch of where a homelab builds.
 * - The builder service itself, and the services in `build.on_target`, build on their own host.
 * - A host that builds itself needs the memory of a NixOS evaluation: a warning names every such host below
 *   `evaluationMemoryMiB` of memory + swap (nixpkgs#85148: nixos-rebuild fails at 512 MB; nix#2664: killed by the
 *   OOM killer at 1 GB).
 *
 * The manifest rule of the build section is `buildPlacementProblems` (build-rule.ts, registered in rules.ts).
 */
import type { Manifest } from "./schema";
import type { BuildPlan, BuildPlace, ServicePlan } from "./plan-types";

/** Memory (RAM + swap, MiB) below which a host that evaluates NixOS itself gets a warning. */
export const evaluationMemoryMiB = 2048;

/** The services of kind builder (named "builder" or with `kind = "builder"`), sorted, enabled ones only. */
export function builderNames(services: Array<{ name: string; kind: string; enable?: boolean }>): string[] {
  return services.filter((service) => service.kind === "builder" && service.enable !== false).map((service) => service.name).sort();
}

export function planBuild(manifest: Pick<Manifest, "build">, services: ServicePlan[]): { build: BuildPlan; warnings: string[] } {
  const requested = manifest.build.on;
  const builders = builderNames(services);
  const builder = manifest.build.builder ?? (builders.length === 1 ? builders[0] : null);
  const mode: BuildPlace = requested === "auto" ? (builder !== null ? "builder" : "target") : requested;
  const onTarget = new Set(manifest.build.on_target);
  // What the builder boots after (its hard dependencies, transitively) cannot wait for the builder: built on target.
  const byName = new Map(services.map((service) => [service.name, service]));
  const needed = new Set<string>();
  const visit = (name: string) => {
    for (const dependency of byName.get(name)?.dependsOn ?? []) {
      if (!needed.has(dependency)) {
        needed.add(dependency);
        visit(dependency);
      }
    }
  };
  if (mode === "builder" && builder !== null) visit(builder);
  for (const name of needed) onTarget.add(name);
  const hosts: Record<string, BuildPlace> = {};
  // The plan passes its services sorted by name already (sorting 10,000 again is not free).
  const sorted = services.every((service, index) => index === 0 || services[index - 1].name < service.name);
  for (const service of sorted ? services : [...services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    hosts[service.name] = service.kind === "builder" || onTarget.has(service.name) ? "target" : mode;
  }
  const elsewhere = Object.values(hosts).filter((place) => place !== "target").length;
  const why =
    requested === "auto"
      ? builder !== null
        ? `the manifest has the builder service "${builder}"; set build.on to choose`
        : 'no service of kind builder in the manifest; add one, or set build.on = "controller" to build on the machine that runs Pulumi'
      : `build.on = "${requested}"`;
  const where = mode === "builder" ? `on the builder "${builder}"` : mode === "controller" ? "on the machine that runs Pulumi (the controller)" : "on each host itself (nixos-rebuild on the host)";
  const exceptions = Object.keys(hosts).filter((name) => hosts[name] === "target" && mode !== "target");
  const message =
    `builds: ${where} (${why})` +
    (exceptions.length > 0 ? `; ${exceptions.join(", ")} build${exceptions.length === 1 ? "s" : ""} on ${exceptions.length === 1 ? "its own host" : "their own hosts"}` : "") +
    (elsewhere > 0 ? `; ${elsewhere} host${elsewhere === 1 ? "" : "s"} only receive${elsewhere === 1 ? "s" : ""} a signed closure and switch${elsewhere === 1 ? "es" : ""} to it` : "");
  const small = services
    .filter((service) => hosts[service.name] === "target" && service.resources.memoryMiB + service.resources.swapMiB < evaluationMemoryMiB)
    .map((service) => `${service.name} (${service.resources.memoryMiB} MiB + ${service.resources.swapMiB} MiB swap)`);
  const warnings =
    small.length === 0
      ? []
      : [
          `builds on the host itself with less memory than a NixOS evaluation needs (${evaluationMemoryMiB} MiB of memory + swap; nixpkgs#85148, nix#2664): ` +
            `${small.join(", ")}; add a service of kind builder, set build.on = "controller", or give ${small.length === 1 ? "it" : "them"} more memory`,
        ];
  return {
    build: { requested, mode, builder: mode === "builder" ? builder : null, hosts, message },
    warnings,
  };
}

/** The manifest's caches (network.substituters, network.trusted_public_keys) as the plan carries them. */
export function planCaches(network: Pick<Manifest["network"], "substituters" | "trusted_public_keys">): { substituters: string[]; trustedPublicKeys: string[] } {
  return { substituters: [...new Set(network.substituters)], trustedPublicKeys: [...new Set(network.trusted_public_keys)] };
}
