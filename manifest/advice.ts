/**
 * Advice on a valid manifest: notes (what NixMox decided for the author: a derived domain, a default log database,
 * an ignored block) and warnings (valid, but probably not what the author meant). `validate` and `plan` print both;
 * neither stops a deploy. Like the cross-service rules (`rules.ts`), each piece of advice is a small named entry in
 * one list, so a reader finds it by its name.
 */
import { databaseApps, databaseUsers } from "./kinds";
import type { ServicePlan } from "./plan-types";
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
}

export interface Advice {
  notes: string[];
  warnings: string[];
}

interface AdviceEntry {
  name: string;
  check(context: AdviceContext): Partial<Advice>;
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
    check: ({ manifest }) => {
      const withBlock = withTerraform(manifest).map(([name]) => name);
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
    check: ({ manifest, network }) => ({
      warnings: withTerraform(manifest).flatMap(([name, block]) => {
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
  for (const entry of adviceEntries) {
    const found = entry.check(context);
    advice.notes.push(...(found.notes ?? []));
    advice.warnings.push(...(found.warnings ?? []));
  }
  return advice;
}
