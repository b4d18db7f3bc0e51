/**
 * Advice on a valid manifest: notes (what NixMox decided for the author: a derived domain, a default log database,
 * an ignored block) and warnings (valid, but probably not what the author meant). `validate` and `plan` print both;
 * neither stops a deploy. Like the cross-service rules (`rules.ts`), each piece of advice is a small named entry in
 * one list, so a reader finds it by its name.
 */
import { databaseApps, databaseUsers, kindSpecs, outpostUnit } from "./kinds";
import type { ServicePlan } from "./plan-types";
import { closest } from "./problems";
import type { ResolvedNetwork, ResolvedService } from "./resolve";
import type { Manifest } from "./schema";

export interface AdviceContext {
  manifest: Manifest;
  network: ResolvedNetwork;
  /** The full hostnames the domain was derived from, or null when the manifest sets network.domain. */
  domainDerivedFrom: string[] | null;
  /** Enabled services, resolved, sorted by name. */
  enabled: ResolvedService[];
  /** The planned services (same order), for what only the plan knows (health checks). */
  planned: ServicePlan[];
  /** The PostgreSQL service a database host names, if any. */
  serverOf: (host: string) => string | undefined;
  /** Address → enabled service: the plan's lookup (resolve.ts servicesByAddress). */
  byAddress: Map<string, ResolvedService>;
}

export interface Advice {
  notes: string[];
  warnings: string[];
}

/** What several entries read, listed once per manifest by `planAdvice`. */
interface AdviceLists {
  /** The service entries (enabled or not) that carry an interface.terraform block, sorted by name. */
  terraformBlocks: ReturnType<typeof withTerraform>;
  /** The manifest's own health checks of each enabled service, with their field path. */
  healthChecks: ReturnType<typeof manifestChecks>;
}

interface AdviceEntry {
  name: string;
  check(context: AdviceContext & AdviceLists): Partial<Advice>;
}

const serviceGroups = ["core_services", "services"] as const;

/** The service entries (enabled or not) that carry an interface.terraform block, sorted by name. */
function withTerraform(manifest: Manifest): Array<[string, NonNullable<Manifest["services"][string]["interface"]["terraform"]>]> {
  const found: Array<[string, NonNullable<Manifest["services"][string]["interface"]["terraform"]>]> = [];
  for (const group of serviceGroups) {
    for (const name in manifest[group]) {
      const block = manifest[group][name].interface.terraform;
      if (block !== undefined) found.push([name, block]);
    }
  }
  return found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** The manifest's own health checks of each service (interface.health.checks), with their field path. */
function manifestChecks(enabled: ResolvedService[]): Array<{ service: ResolvedService; check: NonNullable<ResolvedService["health"]>["checks"][number]; field: string }> {
  return enabled.flatMap((service) => (service.health?.checks ?? []).map((check, index) => ({ service, check, field: `interface.health.checks[${index}]` })));
}

/** Host names that mean "this host" to a probe run on it. */
const loopbackNames = ["localhost", "127.0.0.1", "::1", "[::1]"];

/** The port a tcp or http check connects to, and the service that listens there (null: a host outside the manifest). */
function probedPort(service: ResolvedService, check: NonNullable<ResolvedService["health"]>["checks"][number], byAddress: Map<string, ResolvedService>): { port: number; target: ResolvedService | null; what: string } | null {
  switch (check.type) {
    case "systemd":
      return null;
    case "tcp": {
      // tcp probes run on the host itself (components/health/probes.ts), so a loopback name is the service.
      const host = check.host ?? service.ip;
      const target = loopbackNames.includes(host) ? service : byAddress.get(host) ?? null;
      return { port: check.port, target, what: `${host}:${check.port}` };
    }
    case "http": {
      const url = new URL(check.url);
      const port = url.port === "" ? (url.protocol === "https:" ? 443 : 80) : Number(url.port);
      // From the controller, a loopback name is the controller itself: nothing of the manifest to compare with.
      const loopback = loopbackNames.includes(url.hostname);
      const target = loopback ? (check.from === "host" ? service : null) : byAddress.get(url.hostname) ?? null;
      return { port, target, what: check.url };
    }
    default: {
      const unreachable: never = check;
      throw new Error(`unknown health check ${JSON.stringify(unreachable)}`);
    }
  }
}

/** A unit name as systemctl reads it: without a type suffix, ".service". */
function unitName(unit: string): string {
  return /\.(service|socket|target|timer|mount|path|scope|slice|swap|device|automount)$/.test(unit) ? unit : `${unit}.service`;
}

const list = (names: string[], max = 5) => `${names.slice(0, max).join(", ")}${names.length > max ? `, … (${names.length} in all)` : ""}`;

const adviceEntries: AdviceEntry[] = [
  {
    name: "domainDerivedFromHostnames",
    check: ({ network, domainDerivedFrom }) =>
      domainDerivedFrom === null
        ? {}
        : {
            notes: [
              `network: domain is not set: NixMox uses ${JSON.stringify(network.domain)}, the suffix the hostnames share (${list(domainDerivedFrom, 3)}); ` +
                `set network.domain = ${JSON.stringify(network.domain)} to make it explicit`,
            ],
          },
  },
  {
    name: "terraformBlocksAreIgnored",
    // One note per manifest, not per service: older NixMox manifests carry the block on every service.
    check: ({ terraformBlocks }) => {
      const withBlock = terraformBlocks.map(([name]) => name);
      if (withBlock.length === 0) return {};
      return {
        notes: [
          `manifest: interface.terraform of ${withBlock.length === 1 ? "service" : `${withBlock.length} services`} ${list(withBlock)} is ignored: ` +
            "the Pulumi program creates the containers now (no per-service Terraform modules); remove the blocks when convenient",
        ],
      };
    },
  },
  {
    name: "terraformVariablesAgreeWithNetwork",
    check: ({ terraformBlocks, network }) => ({
      warnings: terraformBlocks.flatMap(([name, block]) => {
        const variables = block.variables ?? {};
        const compared: Array<[string, string]> = [["domain", network.domain], ["network_cidr", network.network_cidr]];
        return compared
          .filter(([key, value]) => variables[key] !== undefined && variables[key] !== value)
          .map(([key, value]) =>
            `service "${name}": interface.terraform.variables.${key} is ${JSON.stringify(variables[key])} but network.${key} is ${JSON.stringify(value)}; ` +
              `the block is ignored and network.${key} applies (fix whichever is wrong)`,
          );
      }),
    }),
  },
  {
    name: "databaseIsUsedByABuiltinApp",
    // Created anyway (role, password, pg_hba line), so a module of the author's own can use it: not an error.
    check: ({ enabled, serverOf }) => ({
      warnings: enabled.flatMap((service) => {
        if (service.databases.length === 0 || service.kind === "custom") return [];
        const keys = service.databases.map((db) => db.key);
        return service.databases
          .filter((db) => databaseUsers(service.kind, db.key, keys).length === 0)
          .map((db) => {
            const apps = databaseApps(service.kind);
            const users = apps.length > 0
              ? `on a ${service.kind} host PostgreSQL is used by ${apps.join(", ")}${service.kind === "media" ? ", each through interface.dbs.<app>" : " through interface.db"}`
              : `no built-in app of kind "${service.kind}" uses PostgreSQL`;
            return `service "${service.name}": ${db.field} is used by no built-in app on this host (${users}); ` +
              `NixMox still creates database ${JSON.stringify(db.name)} and role ${JSON.stringify(db.owner)} on "${serverOf(db.host) ?? db.host}" for a module of your own (nixos_modules)`;
          });
      }),
    }),
  },
  {
    name: "arrLogDatabaseDefaulted",
    check: ({ enabled }) => ({
      notes: enabled.flatMap((service) =>
        service.databases
          .filter((db) => db.additionalDefaulted)
          .map((db) => `service "${service.name}": ${db.field} lists no additionaldbs: ${db.key}'s log database is ${JSON.stringify(db.additional[0])} (owner ${JSON.stringify(db.owner)})`),
      ),
    }),
  },
  {
    name: "dnsServerIsTheHomelabsDns",
    // A warning, not an error: the resolver named may forward the homelab's domain to the dns service (a router or
    // Pi-hole with conditional forwarding), or the domain may be public with records of its own; otherwise the hosts
    // cannot resolve the homelab's names (apps reach their SSO provider by its route domain) and the dns service no
    // longer deploys first.
    check: ({ network, enabled }) => {
      const dnsServices = enabled.filter((service) => service.kind === "dns");
      if (dnsServices.length === 0 || dnsServices.some((service) => service.ip === network.dns_server)) return {};
      const named = dnsServices.map((service) => `"${service.name}" (${service.ip})`).join(", ");
      return {
        warnings: [
          `network: dns_server ${JSON.stringify(network.dns_server)} is not the homelab's DNS service ${named}: every host asks ${network.dns_server}, which knows ` +
            `the names under ${JSON.stringify(network.domain)} (hosts, route domains) only if it forwards them to ${JSON.stringify(dnsServices[0].name)}, and ` +
            `"${dnsServices[0].name}" no longer deploys first; set network.dns_server = ${JSON.stringify(dnsServices[0].ip)} ` +
            `(network.fallback_dns_servers takes a second resolver)`,
        ],
      };
    },
  },
  {
    name: "healthCheckPortIsListenedOn",
    // A warning, not an error: the listening ports NixMox knows (the plan's: ports, route upstreams, the kind's apps,
    // databases) are what it opens; an app may also listen on a port only its own host reaches, and tcp and
    // host-side http probes run on the host, so a port outside them may be intended.
    check: ({ healthChecks, planned, byAddress }) => {
      const plannedByName = new Map(planned.map((service) => [service.name, service]));
      return {
        warnings: healthChecks.flatMap(({ service, check, field }) => {
          const probed = probedPort(service, check, byAddress);
          if (!probed?.target) return [];
          const target = plannedByName.get(probed.target.name);
          // A planned service's ports are sorted, distinct and without its SSH port, which always listens.
          if (!target || target.ports.includes(probed.port) || probed.port === target.sshPort) return [];
          const whose = probed.target === service ? "this service" : `service "${probed.target.name}"`;
          const listening = target.ports;
          return [
            `service "${service.name}": ${field} probes port ${probed.port} (${probed.what}), but ${whose} listens on no such port as far as NixMox knows ` +
              `(${listening.length > 0 ? `its ports: ${listening.join(", ")}` : "it has no port besides SSH"}); point the check at the port the app listens on, ` +
              `or, if it does listen on ${probed.port}, add ${probed.port} to ${probed.target === service ? "ports" : `the ports of "${probed.target.name}"`}`,
          ];
        }),
      };
    },
  },
  {
    name: "healthUnitIsTheKinds",
    // A warning, not an error: a host runs more units than the kind's (NixOS's own such as sshd.service, helpers of
    // the shipped module, those of nixos_modules), so an unknown name may exist. With nixos_modules, only a near miss
    // of the kind's units is reported; a custom service's units are its modules' and are not checked.
    check: ({ manifest, healthChecks }) => ({
      warnings: healthChecks.flatMap(({ service, check, field }) => {
        if (check.type !== "systemd" || service.kind === "custom") return [];
        const spec = kindSpecs[service.kind];
        const outposts = service.kind === "authentik" ? (["ldap", "radius"] as const).filter((type) => manifest.network.outposts[type] !== undefined).map(outpostUnit) : [];
        const kindUnits = [...new Set([...spec.units, ...Object.values(spec.apps).map((app) => app.unit), ...outposts])].sort();
        const restarted = Object.values(service.declaredSecrets).flatMap((secret) => secret.restart_units.map(unitName));
        const unit = unitName(check.unit);
        if (kindUnits.includes(unit) || restarted.includes(unit) || unit === "sshd.service") return [];
        const near = closest(unit, kindUnits);
        if (service.nixosModules.length > 0 && near === undefined) return [];
        return [
          `service "${service.name}": ${field}.unit ${JSON.stringify(check.unit)} is not a unit the ${service.kind} kind runs (${kindUnits.join(", ")})` +
            `${near ? `: did you mean ${JSON.stringify(near)}?` : "."} A unit that does not exist is never active, so this check would fail every time` +
            `${near ? "" : "; check the name with systemctl list-units on the host"}`,
        ];
      }),
    }),
  },
  {
    name: "deployIsHealthGated",
    check: ({ planned }) => ({
      warnings: planned
        .filter((service) => service.health.checks.length === 0)
        .map((service) =>
          `service "${service.name}": has no health checks, so its deploy is gated on nothing; add interface.health (startup, liveness or checks) or secrets with restart_units`,
        ),
    }),
  },
];

/** The names of the advice entries, in the order they report. */
export const adviceNames = adviceEntries.map((entry) => entry.name);

/** Every note and warning for a planned manifest, in the order of `adviceEntries`. */
export function planAdvice(context: AdviceContext): Advice {
  const advice: Advice = { notes: [], warnings: [] };
  const withLists = { ...context, terraformBlocks: withTerraform(context.manifest), healthChecks: manifestChecks(context.enabled) };
  for (const entry of adviceEntries) {
    const found = entry.check(withLists);
    advice.notes.push(...(found.notes ?? []));
    advice.warnings.push(...(found.warnings ?? []));
  }
  return advice;
}
