/**
 * The rule `buildPlacement` (registered in rules.ts): every problem of the manifest's `build` section, against the raw
 * manifest: `build.builder` names an enabled builder service, `on = "builder"` has one to use, several builders need
 * `build.builder`, and `on_target` names services of the manifest (manifest/build-plan.ts places the builds).
 */
import { builderNames } from "./build-plan";
import { builtinKinds } from "./plan-types";
import { didYouMean, type Problem } from "./problems";
import { buildSchema } from "./schema";

export function buildPlacementProblems(raw: unknown): Problem[] {
  if (raw === null || typeof raw !== "object") return [];
  const root = raw as Record<string, unknown>;
  const parsed = buildSchema.safeParse(root.build);
  if (!parsed.success) return []; // the schema pass reports it
  const build = parsed.data;
  const services: Array<{ name: string; kind: string; enable: boolean }> = [];
  for (const group of ["core_services", "services"] as const) {
    const entries = root[group];
    if (entries === null || typeof entries !== "object") continue;
    for (const [name, value] of Object.entries(entries as Record<string, unknown>)) {
      const entry = (value ?? {}) as Record<string, unknown>;
      const kind = typeof entry.kind === "string" ? entry.kind : (builtinKinds as readonly string[]).includes(name) ? name : "custom";
      services.push({ name, kind, enable: entry.enable !== false });
    }
  }
  // Sorted only for a "did you mean" (most manifests have nothing to suggest): sorting 10,000 names costs.
  let sorted: string[] | undefined;
  const names = () => (sorted ??= services.map((service) => service.name).sort());
  const builders = builderNames(services);
  const problems: Problem[] = [];
  const problem = (field: string, message: string) => problems.push({ subject: "manifest", field: `build.${field}`, message });
  if (build.builder !== undefined) {
    const named = services.find((service) => service.name === build.builder);
    if (!named) problem("builder", `names no service of the manifest${didYouMean(build.builder, names())}; name a service of kind builder`);
    else if (named.kind !== "builder") problem("builder", `names "${build.builder}", a service of kind ${named.kind}; name a service of kind builder (kind = "builder")`);
    else if (!named.enable) problem("builder", `names "${build.builder}", which is disabled; enable it or build elsewhere`);
  } else if (builders.length > 1 && (build.on === "auto" || build.on === "builder")) {
    problem("builder", `is not set and the manifest has several builder services (${builders.join(", ")}); name the one that builds`);
  }
  if (build.on === "builder" && builders.length === 0) {
    problem("on", 'is "builder" but the manifest has no service of kind builder; add one (a container with the memory and disk for NixOS builds), or choose "controller" or "target"');
  }
  build.on_target.forEach((name, index) => {
    if (!services.some((service) => service.name === name)) problem(`on_target[${index}]`, `names no service of the manifest${didYouMean(name, names())}`);
  });
  return problems;
}

