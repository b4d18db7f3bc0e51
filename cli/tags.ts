/**
 * `@tag` in a selection of services (`--only @media`, `exec --on dns,@db`), as colmena's `--on @tag`: every enabled
 * service whose manifest `tags` hold it, or whose kind it is (`@custom` is every custom app). Pure.
 */
import type { Plan } from "../manifest/plan-types";
import { SelectionError } from "./select";

/** The tags a service answers to: its manifest tags and its kind. */
function tagsOf(service: Plan["services"][number]): string[] {
  return [service.kind, ...service.tags];
}

/** Names with every `@tag` replaced by the services it selects (sorted, no duplicates); a tag that selects nothing is an error. */
export function expandTags(plan: Pick<Plan, "services">, names: string[], option = "--only"): string[] {
  const out = new Set<string>();
  for (const name of names) {
    if (!name.startsWith("@")) {
      out.add(name);
      continue;
    }
    const tag = name.slice(1);
    const tagged = plan.services.filter((service) => tagsOf(service).includes(tag)).map((service) => service.name);
    if (tagged.length === 0) {
      const known = [...new Set(plan.services.flatMap(tagsOf))].sort().map((candidate) => `@${candidate}`);
      throw new SelectionError(`${option}: no enabled service has tag "${tag}" (a tag is one of a service's manifest tags, or its kind); tags: ${known.join(", ")}`);
    }
    for (const service of tagged) out.add(service);
  }
  return [...out].sort();
}
