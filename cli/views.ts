/**
 * Pure text views of a plan: the `plan` JSON and table, and the dependency graph in Mermaid or DOT.
 */
import type { Plan } from "../manifest";
import { pushTo } from "../manifest/plan";

/** Stable JSON: object keys sorted at every level, two-space indent, trailing newline. */
export function stableJson(value: unknown): string {
  const sort = (item: unknown): unknown => {
    if (Array.isArray(item)) return item.map(sort);
    if (item && typeof item === "object") {
      return Object.fromEntries(Object.keys(item).sort().map((key) => [key, sort((item as Record<string, unknown>)[key])]));
    }
    return item;
  };
  return `${JSON.stringify(sort(value), null, 2)}\n`;
}

/** The machine-readable plan (`nixmox plan --json`): no paths of the machine that produced it. */
export function renderPlanJson(plan: Plan): string {
  return stableJson({
    network: plan.network,
    secretsDir: plan.secretsDir,
    services: plan.services.map((service) => ({
      name: service.name,
      kind: service.kind,
      group: service.group,
      vmid: service.vmid,
      ip: service.ip,
      hostname: service.fqdn,
      node: service.node,
      dependsOn: service.dependsOn,
      ssoProviders: service.ssoProviders,
      wave: service.wave,
      startupOrder: service.startupOrder,
      stateful: service.stateful,
      resources: service.resources,
      ports: service.ports,
      udpPorts: service.udpPorts,
      publicPorts: service.publicPorts,
      firewall: service.firewall,
      sshPort: service.sshPort,
      tags: service.tags,
      nixosModules: service.nixosModules,
      health: service.health,
    })),
    disabled: plan.disabled,
    edges: plan.edges,
    waves: plan.waves,
    routes: plan.routes,
    dnsRecords: plan.dnsRecords,
    databases: plan.databases,
    authClients: plan.authClients,
    outposts: plan.outposts,
    secrets: plan.secrets,
    phases: plan.phases,
    rollback: plan.rollback,
    build: plan.build,
    nixCaches: plan.nixCaches,
    notes: plan.notes,
    warnings: plan.warnings,
  });
}

function groupBy<T>(items: T[], keyOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) pushTo(groups, keyOf(item), item);
  return groups;
}

/** The readable plan: waves, then per service its container and routes. */
export function renderPlanText(plan: Plan): string {
  const lines: string[] = [];
  const enabled = plan.services.length;
  lines.push(`Plan for ${plan.network.domain}: ${enabled} service${enabled === 1 ? "" : "s"} in ${plan.waves.length} wave${plan.waves.length === 1 ? "" : "s"}` +
    (plan.disabled.length > 0 ? ` (disabled: ${plan.disabled.join(", ")})` : ""));
  lines.push(`${plan.build.message[0].toUpperCase()}${plan.build.message.slice(1)}`);
  const byName = new Map(plan.services.map((service) => [service.name, service]));
  // Grouped once: a plan of 10,000 services is printed in linear time.
  const routesOf = groupBy(plan.routes, (route) => route.service);
  const databasesOf = groupBy(plan.databases, (database) => database.service);
  const outpostsOf = groupBy(plan.outposts, (outpost) => outpost.provider);
  plan.waves.forEach((wave, index) => {
    lines.push("", `Wave ${index}: ${wave.join(", ")}`);
    for (const name of wave) {
      const service = byName.get(name)!;
      const r = service.resources;
      lines.push(`  ${service.name} [${service.kind}] ct ${service.vmid ?? "(assigned at first deploy)"}${service.node ? ` on ${service.node}` : ""}  ${service.ip}/${service.prefixLength}  ${service.fqdn}`);
      lines.push(`    ${r.cores} core${r.cores === 1 ? "" : "s"}, ${r.memoryMiB} MiB, ${r.diskGiB} GiB${service.stateful ? ", stateful (protected)" : ""}`);
      lines.push(`    builds ${describeBuildPlace(plan, service.name)}`);
      if (service.dependsOn.length > 0) lines.push(`    after: ${service.dependsOn.join(", ")}`);
      if (service.ssoProviders.length > 0) lines.push(`    sso: ${service.ssoProviders.join(", ")} (does not order the deploy)`);
      for (const route of routesOf.get(name) ?? []) {
        const auth = route.auth ? ` (${route.auth} via ${route.authProvider})` : "";
        lines.push(`    route ${route.tls === "off" ? "http" : "https"}://${route.domain}${route.path} → ${route.upstream}${auth}`);
      }
      for (const database of databasesOf.get(name) ?? []) {
        const also = database.additional.length > 0 ? ` + ${database.additional.join(", ")}` : "";
        lines.push(`    database ${database.name}${also} (owner ${database.owner}) on ${database.server}`);
      }
      for (const outpost of outpostsOf.get(name) ?? []) {
        lines.push(`    outpost ${outpost.type}${outpost.type === "ldap" ? ` (base DN ${outpost.baseDn})` : ` (clients ${outpost.clientNetworks.join(", ")})`}`);
      }
    }
  });
  if (plan.phases.length > 0) {
    const waveOf = new Map(plan.services.map((service) => [service.name, service.wave]));
    lines.push("", "Phases (from deployment_phases; the deploy order comes from the waves above):");
    for (const phase of plan.phases) {
      const members = phase.services.map((name) => (waveOf.has(name) ? `${name} (wave ${waveOf.get(name)})` : `${name} (disabled)`));
      lines.push(`  ${phase.name}: ${members.join(", ")}`);
    }
  }
  if (!plan.rollback) lines.push("", "Rollback is off (enable_rollback = false): a failed activation stays on the new generation.");
  if (plan.notes.length > 0) lines.push("", "Notes:", ...plan.notes.map((note) => `  - ${note}`));
  if (plan.warnings.length > 0) lines.push("", "Warnings:", ...plan.warnings.map((warning) => `  - ${warning}`));
  return `${lines.join("\n")}\n`;
}

/** "on the builder "builder"", "on the controller", "on its own host". */
export function describeBuildPlace(plan: Plan, service: string): string {
  const place = plan.build.hosts[service];
  switch (place) {
    case "builder":
      return `on the builder "${plan.build.builder}" (receives a signed closure)`;
    case "controller":
      return "on the controller (receives a signed closure)";
    case "target":
      return "on its own host (nixos-rebuild)";
    default: {
      const unreachable: never = place;
      throw new Error(`unknown build place ${String(unreachable)}`);
    }
  }
}

export type GraphFormat = "mermaid" | "dot";

/**
 * The dependency graph; an edge points from a service to what it needs first, labelled with its reasons.
 * Hard edges (they order the deploy) are solid; soft SSO edges (they never order hosts) are dashed.
 */
export function renderGraph(plan: Plan, format: GraphFormat): string {
  const label = (reasons: string[]) => reasons.join("; ");
  switch (format) {
    case "mermaid": {
      const id = (name: string) => name.replace(/-/g, "_");
      const lines = ["graph LR"];
      for (const service of plan.services) lines.push(`  ${id(service.name)}["${service.name}"]`);
      for (const edge of plan.edges) {
        const arrow = edge.hard ? "-->" : "-.->";
        lines.push(`  ${id(edge.from)} ${arrow}|"${label(edge.reasons).replace(/"/g, "#quot;")}"| ${id(edge.to)}`);
      }
      return `${lines.join("\n")}\n`;
    }
    case "dot": {
      const quote = (text: string) => JSON.stringify(text);
      const lines = ["digraph nixmox {", "  rankdir=LR;"];
      for (const service of plan.services) lines.push(`  ${quote(service.name)};`);
      for (const edge of plan.edges) {
        lines.push(`  ${quote(edge.from)} -> ${quote(edge.to)} [label=${quote(label(edge.reasons))}${edge.hard ? "" : ", style=dashed"}];`);
      }
      lines.push("}");
      return `${lines.join("\n")}\n`;
    }
    default: {
      const unreachable: never = format;
      throw new Error(`unknown graph format ${String(unreachable)}`);
    }
  }
}

/** A DOT string literal: quoted, with `\` and `"` escaped; `lines` are left-justified (DOT's `\l`). */
function dotLabel(lines: string[]): string {
  return `"${lines.map((line) => `${line.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}\\l`).join("")}"`;
}

/**
 * The plan as a picture (`nixmox graph --format svg`): hosts grouped by wave, each with its address, route domains
 * and databases; hard edges solid and SSO edges dashed, each labelled with its reasons. Deterministic DOT.
 */
export function renderGraphPicture(plan: Plan): string {
  const quote = (text: string) => JSON.stringify(text);
  const lines = [
    "digraph nixmox {",
    "  rankdir=LR;",
    '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=9];',
  ];
  plan.waves.forEach((wave, index) => {
    lines.push(`  subgraph cluster_wave_${index} {`, `    label=${quote(`wave ${index}`)};`, '    style="dashed";');
    for (const name of [...wave].sort()) {
      const service = plan.services.find((candidate) => candidate.name === name)!;
      const routes = plan.routes.filter((route) => route.service === name).map((route) => `route ${route.domain}${route.path === "/" ? "" : route.path}`);
      const databases = plan.databases.filter((database) => database.server === name).map((database) => `db ${database.name} (for ${database.service})`);
      const used = plan.databases.filter((database) => database.service === name).map((database) => `uses db ${database.name} on ${database.server}`);
      lines.push(`    ${quote(name)} [label=${dotLabel([`${name} (${service.kind})`, `${service.ip}`, ...routes.sort(), ...databases.sort(), ...used.sort()])}];`);
    }
    lines.push("  }");
  });
  for (const edge of plan.edges) {
    lines.push(`  ${quote(edge.from)} -> ${quote(edge.to)} [label=${quote(edge.reasons.join("; "))}${edge.hard ? "" : ", style=dashed"}];`);
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}
