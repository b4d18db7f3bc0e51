/**
 * Validation at the boundary: the zod schema checks each field, then cross-service rules check the whole.
 * Every problem is collected before anything is reported (see `ManifestError`).
 */
import { z } from "zod";
import { kindSpecs } from "./kinds";
import { builtinKinds } from "./plan-types";
import { authentikOutpostPort } from "./plan";
import { addressesOf, authProviderOf, inferredEdges, resolveService, servicesByAddress, type Edge, type ResolvedService } from "./resolve";
import { ManifestError, closest, describeValue, didYouMean, formatPath, type Problem } from "./problems";
import { manifestSchema, networkSchema, serviceSchema, type Manifest } from "./schema";
import { buildPlacementProblems } from "./build-plan";

const serviceGroups = ["core_services", "services"] as const;

/** Keys that hold a secret value, which belongs in the stack config, not in the manifest. */
const secretLikeKey = /(pass(word|wd)?|secret|token|api_?key|private_?key|credential)/i;

/** Where the value of a secret found at `path` goes instead, as a `pulumi config set` hint. */
function secretHint(path: ReadonlyArray<PropertyKey>, key: string): string {
  const [head, name] = path;
  const joined = path.map(String).join(".");
  if (joined === "network.outposts.radius") {
    return "looks like a secret: secret values never go in the manifest. NixMox generates the RADIUS shared secret; to choose it, run " +
      "`pulumi config set --secret --path 'nixmox:secrets.<authentik service>.radius_shared_secret' <value>`";
  }
  const service = (head === "core_services" || head === "services") && name !== undefined ? String(name) : "<service>";
  const secretName = service === "<service>" ? "<name>" : key;
  return "looks like a secret: secret values never go in the manifest. Declare it under secrets and set the value with " +
    `\`pulumi config set --secret --path 'nixmox:secrets.${service}.${secretName}' <value>\``;
}

/** True when the value at `path` may be a secret, so no message may echo it. */
function mayHoldSecret(path: ReadonlyArray<PropertyKey>): boolean {
  return path.some((key, index) => (key === "secrets" && index <= 2) || (typeof key === "string" && secretLikeKey.test(key)));
}

/** Parses and validates a raw manifest (the output of the loader); throws `ManifestError` with every problem. */
export function validateManifest(raw: unknown, source: string): Manifest {
  const problems: Problem[] = [];
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...issueProblems(issue, [], raw));
  }
  problems.push(...crossServiceProblems(raw), ...buildPlacementProblems(raw));
  if (problems.length > 0 || !parsed.success) throw new ManifestError(source, dedupe(problems));
  return parsed.data;
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.subject}\0${problem.field}\0${problem.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Schema issues → problems

function subjectOf(path: ReadonlyArray<PropertyKey>): { subject: string; rest: ReadonlyArray<PropertyKey> } {
  const [head, name, ...rest] = path;
  if (head === "network") return { subject: "network", rest: path.slice(1) };
  if ((head === "core_services" || head === "services") && name !== undefined) {
    return { subject: `service "${String(name)}"`, rest };
  }
  return { subject: "manifest", rest: path };
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value: unknown = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function expectedText(expected: string): string {
  switch (expected) {
    case "object":
    case "record":
      return "an attribute set";
    case "array":
      return "a list";
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    default:
      return expected;
  }
}

/** The schema that validates the value at `path`, for listing the known fields of an object. */
function schemaAt(schema: z.core.$ZodType, path: ReadonlyArray<PropertyKey>, root: unknown, resolveUnion = true): z.core.$ZodType | undefined {
  let current: z.core.$ZodType | undefined = schema;
  const unwrap = (type: z.core.$ZodType | undefined, at: ReadonlyArray<PropertyKey>): z.core.$ZodType | undefined => {
    while (type) {
      const def = type._zod.def as unknown as Record<string, unknown>;
      if (def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable") {
        type = def.innerType as z.core.$ZodType;
      } else if (def.type === "pipe") {
        type = def.in as z.core.$ZodType;
      } else if (def.type === "union") {
        // Pick the branch that fits the value: a plain route, or a set of named routes (see meantBranch).
        const value = valueAt(root, at);
        const options = (def.options as z.core.$ZodType[]).map(unwrapType);
        const keys = value && typeof value === "object" ? Object.keys(value) : [];
        const objects = options.filter((option) => shapeOf(option).length > 0 && overlap(shapeOf(option), keys) > 0);
        const record = options.find((option) => (option._zod.def as unknown as Record<string, unknown>).type === "record");
        type = objects.sort((a, b) => overlap(shapeOf(b), keys) - overlap(shapeOf(a), keys))[0] ?? record ?? options.find((option) => shapeOf(option).length > 0);
        return unwrap(type, at);
      } else {
        return type;
      }
    }
    return type;
  };
  for (let index = 0; index < path.length && current; index += 1) {
    current = unwrap(current, path.slice(0, index));
    const def = current?._zod.def as unknown as Record<string, unknown> | undefined;
    if (!def) return undefined;
    if (def.type === "object") current = (def.shape as Record<string, z.core.$ZodType>)[String(path[index])];
    else if (def.type === "record") current = def.valueType as z.core.$ZodType;
    else if (def.type === "array") current = def.element as z.core.$ZodType;
    else return undefined;
  }
  return resolveUnion ? unwrap(current, path) : current && unwrapType(current);
}

/**
 * The union branch the author meant, told by the value's shape rather than by which branch has fewer errors:
 * for an attribute set, the object branch sharing the most keys with it (a single route has `domain`,
 * `upstream`…), else a record branch (named routes); for anything else, the first non-object branch.
 * Returns that branch's issues, or undefined when nothing tells.
 */
function meantBranch(union: z.core.$ZodType | undefined, value: unknown, errors: z.core.$ZodIssue[][]): z.core.$ZodIssue[] | undefined {
  const def = union?._zod.def as unknown as Record<string, unknown> | undefined;
  if (def?.type !== "union") return undefined;
  const options = (def.options as z.core.$ZodType[]).map((option) => unwrapType(option));
  const typeOf = (option: z.core.$ZodType | undefined) => (option?._zod.def as unknown as Record<string, unknown> | undefined)?.type;
  let index = -1;
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    let best = 0;
    options.forEach((option, at) => {
      const score = overlap(shapeOf(option), keys);
      if (typeOf(option) === "object" && score > best) [best, index] = [score, at];
    });
    if (index === -1) index = options.findIndex((option) => typeOf(option) === "record");
  } else {
    index = options.findIndex((option) => typeOf(option) !== "object" && typeOf(option) !== "record");
  }
  const chosen = index === -1 ? undefined : errors[index];
  return chosen && chosen.length > 0 ? chosen : undefined;
}

function unwrapType(type: z.core.$ZodType): z.core.$ZodType {
  let current = type;
  for (;;) {
    const def = current._zod.def as unknown as Record<string, unknown>;
    if (def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable") current = def.innerType as z.core.$ZodType;
    else if (def.type === "pipe") current = def.in as z.core.$ZodType;
    else return current;
  }
}

function shapeOf(type: z.core.$ZodType | undefined): string[] {
  const def = type?._zod.def as unknown as Record<string, unknown> | undefined;
  return def?.type === "object" ? Object.keys(def.shape as object) : [];
}

function overlap(shape: string[], keys: string[]): number {
  return keys.filter((key) => shape.includes(key)).length;
}

function issueProblems(issue: z.core.$ZodIssue, prefix: ReadonlyArray<PropertyKey>, raw: unknown): Problem[] {
  const path = [...prefix, ...issue.path];
  const { subject, rest } = subjectOf(path);
  const field = formatPath(rest);
  const value = valueAt(raw, path);
  const got = mayHoldSecret(path) ? "" : `, got ${describeValue(value)}`;
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = shapeOf(schemaAt(manifestSchema, path, raw));
      return issue.keys.map((key) => ({
        subject,
        field: formatPath([...rest, key]),
        message: secretLikeKey.test(key) ? secretHint(path, key) : `is not a known field${didYouMean(key, known)}`,
      }));
    }
    case "invalid_type":
      if (value === undefined) return [{ subject, field, message: "is required" }];
      // `secrets = { db_password = "hunter2"; }`: a value where a declaration belongs. Say where it goes, never echo it.
      if (rest[0] === "secrets" && rest.length === 2 && subject.startsWith("service ")) {
        const service = String(path[1]);
        return [{
          subject,
          field,
          message: `must be a secret declaration (an attribute set such as { owner = "app"; restart_units = [ "app.service" ]; }), not the secret's value; ` +
            `the value goes in the stack config: \`pulumi config set --secret --path 'nixmox:secrets.${service}.${String(rest[1])}' <value>\``,
        }];
      }
      return [{ subject, field, message: `must be ${expectedText(issue.expected)}${got}` }];
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
      const relation = issue.code === "too_small" ? (issue.inclusive ? "at least" : "more than") : issue.inclusive ? "at most" : "less than";
      const unit = issue.origin === "string" ? " characters long" : issue.origin === "array" ? " items" : "";
      const what = issue.origin === "string" || issue.origin === "array" ? "have" : "be";
      const message =
        issue.origin === "string" && issue.code === "too_small" && Number(bound) === 1
          ? `must not be empty${got}`
          : `must ${what} ${relation} ${String(bound)}${unit}${got}`;
      return [{ subject, field, message }];
    }
    case "invalid_value":
      return [{ subject, field, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}${got}` }];
    case "invalid_union": {
      if ("discriminator" in issue && issue.discriminator) {
        const options = (issue as unknown as { options?: unknown[] }).options ?? [];
        return [{ subject, field, message: `must be one of ${options.map((v) => JSON.stringify(v)).join(", ")}${got}` }];
      }
      const branches = issue.errors.filter((branch) => branch.length > 0);
      if (branches.length === 0) return [{ subject, field, message: `is not valid${got}` }];
      const meant = meantBranch(schemaAt(manifestSchema, path, raw, false), value, issue.errors);
      const best = meant ?? [...branches].sort((a, b) => a.length - b.length)[0];
      return best.flatMap((inner) => issueProblems(inner, path, raw));
    }
    case "invalid_key":
      return [{ subject, field, message: `has an invalid name: ${issue.issues.map((inner) => inner.message).join("; ")}, got ${describeValue(String(path[path.length - 1]))}` }];
    case "invalid_element":
      return issue.issues.flatMap((inner) => issueProblems(inner, path, raw));
    default:
      return [{ subject, field, message: `${issue.message}${got}` }];
  }
}


// ---------------------------------------------------------------------------------------------------------------
// Cross-service rules: each rule is small and named, registered in `crossServiceRules` (STYLE §14).

interface Candidate {
  name: string;
  group: (typeof serviceGroups)[number];
  service: ResolvedService | undefined;
  enabled: boolean;
}

/** What every rule reads: the services that passed the schema (resolved), the network, and lookups. */
interface RuleContext {
  root: Record<string, unknown>;
  network: Manifest["network"] | undefined;
  candidates: Candidate[];
  byName: Map<string, Candidate>;
  allNames: string[];
  /** False when some service failed the schema: "there is no X" may then be wrong, so such rules stay quiet. */
  allParsed: boolean;
  services: ResolvedService[];
  enabled: ResolvedService[];
  byAddress: Map<string, ResolvedService>;
  proxies: ResolvedService[];
  authentiks: string[];
}

interface CrossServiceRule {
  name: string;
  check(context: RuleContext): Problem[];
}

const subjectOfService = (name: string) => `service "${name}"`;

function ipToNumber(ip: string): number {
  return ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

/** True when `ip` lies inside `cidr` and is not its network or broadcast address. */
export function ipInCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split("/");
  const prefix = Number(bits);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipToNumber(base) / size) * size;
  const value = ipToNumber(ip);
  if (value < network || value >= network + size) return false;
  return prefix >= 31 || (value !== network && value !== network + size - 1);
}

/**
 * Parses with unknown fields dropped, so that a typo in one field (already reported by the schema pass)
 * does not hide the cross-service problems of the rest of the entry.
 */
function parseLeniently<T extends z.ZodType>(schema: T, value: unknown): ReturnType<T["safeParse"]> {
  let current = structuredClone(value);
  for (let attempt = 0; ; attempt += 1) {
    const result = schema.safeParse(current) as ReturnType<T["safeParse"]>;
    const unknownKeys = result.success ? [] : result.error!.issues.filter((issue) => issue.code === "unrecognized_keys");
    if (result.success || unknownKeys.length === 0 || attempt === 3) return result;
    for (const issue of unknownKeys) {
      const parent = valueAt(current, issue.path) as Record<string, unknown> | undefined;
      if (parent && typeof parent === "object") for (const key of (issue as { keys: string[] }).keys) delete parent[key];
    }
    current = structuredClone(current);
  }
}

/** The problems of a value that must be unique across services: the first service by name keeps it. */
function uniqueAcross(services: ResolvedService[], field: string, valueOf: (service: ResolvedService) => string | number, what = field): Problem[] {
  const problems: Problem[] = [];
  const owners = new Map<string | number, string>();
  for (const service of services) {
    const value = valueOf(service);
    const owner = owners.get(value);
    if (owner !== undefined) problems.push({ subject: subjectOfService(service.name), field, message: `${JSON.stringify(value)} is already the ${what} of service "${owner}"` });
    else owners.set(value, service.name);
  }
  return problems;
}

/** The problems of an auth provider reference (`interface.auth.provider` or a route's own). */
function providerProblems(context: RuleContext, subject: string, field: string, provider: string | undefined): Problem[] {
  const { authentiks, allParsed, byName, allNames } = context;
  if (provider === undefined) {
    if (authentiks.length > 1) return [{ subject, field, message: `must name one of ${authentiks.map((n) => JSON.stringify(n)).join(", ")}` }];
    if (authentiks.length === 0 && allParsed) return [{ subject, field, message: 'is needed: add an enabled service of kind "authentik"' }];
    return [];
  }
  const target = byName.get(provider);
  if (!target) return [{ subject, field, message: `${JSON.stringify(provider)} is not a service of this manifest${didYouMean(provider, allNames)}` }];
  if (!target.enabled) return [{ subject, field, message: `${JSON.stringify(provider)} is disabled; enable it or choose another provider` }];
  if (target.service && target.service.kind !== "authentik") return [{ subject, field, message: `${JSON.stringify(provider)} is not an authentik service (its kind is "${target.service.kind}")` }];
  return [];
}

/** Directories under /var/lib/nixmox that a service's activation state (/var/lib/nixmox/<service>) must not take. */
const reservedServiceNames = ["secrets", "outposts"];

/** Kinds whose module refuses to start without a database (authentik.nix, forgejo.nix, nextcloud.nix). */
const kindsNeedingDatabase: string[] = ["authentik", "forgejo", "nextcloud"];

/** The *arr apps of the media kind that keep their data in PostgreSQL (nixos/lib/media.nix). */
const arrApps = ["prowlarr", "radarr", "sonarr"];

/** True when the kind's app sends a client secret, so its OIDC client cannot be public. */
function confidentialOnly(kind: string, hasRoutes: boolean, route: string | null): boolean {
  // These modules read the service's own client (interface.auth); pgAdmin also runs on a PostgreSQL host with a route.
  const sendsSecret = ["vaultwarden", "forgejo", "nextcloud", "openbao", "pgadmin"].includes(kind) || (kind === "postgresql" && hasRoutes);
  return sendsSecret && route === null;
}

/** PostgreSQL roles that exist already or have a special meaning in pg_hba.conf; never an application's owner. */
const reservedRoles = ["postgres", "all", "replication", "sameuser", "samerole", "samegroup", "public", "pg_database_owner"];

const crossServiceRules: CrossServiceRule[] = [
  {
    name: "gatewayInsideNetwork",
    check: ({ network }) =>
      network && !ipInCidr(network.gateway, network.network_cidr)
        ? [{ subject: "network", field: "gateway", message: `${JSON.stringify(network.gateway)} is not a host address inside network_cidr ${JSON.stringify(network.network_cidr)}` }]
        : [],
  },
  {
    name: "serviceIpInsideNetwork",
    check: ({ network, services }) =>
      !network
        ? []
        : services.flatMap((service): Problem[] => {
            const subject = subjectOfService(service.name);
            if (!ipInCidr(service.ip, network.network_cidr)) return [{ subject, field: "ip", message: `${JSON.stringify(service.ip)} is not a host address inside network_cidr ${JSON.stringify(network.network_cidr)}` }];
            if (service.ip === network.gateway) return [{ subject, field: "ip", message: `${JSON.stringify(service.ip)} is the network's gateway; choose a free address` }];
            return [];
          }),
  },
  { name: "uniqueIp", check: ({ services }) => uniqueAcross(services, "ip", (service) => service.ip) },
  { name: "uniqueVmid", check: ({ services }) => uniqueAcross(services, "vmid", (service) => service.vmid) },
  { name: "uniqueHostname", check: ({ services }) => uniqueAcross(services, "hostname", (service) => service.fqdn) },
  {
    name: "hostnameIsNotAnAddressOrAnotherService",
    check: ({ services }) => {
      const names = new Map(services.flatMap((service) => [[service.name, service.name], [service.ip, service.name]] as Array<[string, string]>));
      return services.flatMap((service): Problem[] => {
        const subject = subjectOfService(service.name);
        if (/^[0-9]+(\.[0-9]+){3}$/.test(service.hostName) || /^[0-9.]+$/.test(service.fqdn)) {
          return [{ subject, field: "hostname", message: `${JSON.stringify(service.fqdn)} looks like an IPv4 address; use a name such as "${service.name}"` }];
        }
        // Another service's full hostname is reported by uniqueHostname already.
        const sameFqdn = services.some((candidate) => candidate !== service && candidate.fqdn === service.fqdn);
        if (sameFqdn) return [];
        const other = names.get(service.hostName);
        if (other !== undefined && other !== service.name) {
          return [{ subject, field: "hostname", message: `${JSON.stringify(service.hostName)} is the name of service "${other}", so references to it would be ambiguous; choose another hostname` }];
        }
        // Two services with one short name: blame the one whose short name is not its own service name.
        const shortTwin = services.find(
          (candidate) => candidate !== service && candidate.hostName === service.hostName && (candidate.hostName === candidate.name || (service.hostName !== service.name && candidate.name < service.name)),
        );
        if (shortTwin) {
          return [{ subject, field: "hostname", message: `${JSON.stringify(service.fqdn)} has the short name ${JSON.stringify(service.hostName)} of service "${shortTwin.name}" (${shortTwin.fqdn}), so references to it would be ambiguous; choose another hostname` }];
        }
        return [];
      });
    },
  },
  {
    name: "serviceNameStartsWithLetter",
    check: ({ candidates }) =>
      candidates
        .filter((candidate) => /^[0-9]/.test(candidate.name))
        .map((candidate) => ({ subject: subjectOfService(candidate.name), field: "", message: "has a name starting with a digit, which NixOS host names and Nix attributes refuse; start it with a letter" })),
  },
  {
    name: "routeIsUnique",
    check: ({ enabled }) => {
      const problems: Problem[] = [];
      const owners = new Map<string, string>();
      for (const service of enabled) {
        for (const route of service.routes) {
          const key = `${route.domain}${route.path}`;
          const owner = owners.get(key);
          if (owner !== undefined) {
            problems.push({ subject: subjectOfService(service.name), field: `${route.field}.domain`, message: `${JSON.stringify(route.domain)} with path ${JSON.stringify(route.path)} is already routed by service "${owner}"; change the domain or the path` });
          } else {
            owners.set(key, service.name);
          }
        }
      }
      return problems;
    },
  },
  {
    name: "routeMatcherNamesAreDistinct",
    // nixos/lib/caddy.nix names a route's path matcher "nixmox_<service>_<route>" with '-' and '.' folded to '_', and
    // one domain is one Caddy site: two routes of a domain whose names fold alike define one matcher twice.
    check: ({ enabled }) => {
      const problems: Problem[] = [];
      const seen = new Map<string, string>();
      for (const service of enabled) {
        for (const route of service.routes) {
          const key = `${route.domain}\0${`${service.name}_${route.name}`.replace(/[-.]/g, "_")}`;
          const other = seen.get(key);
          if (other !== undefined) {
            problems.push({ subject: subjectOfService(service.name), field: route.field, message: `and ${other} on ${JSON.stringify(route.domain)} differ only in '-' and '_', which the proxy's matcher names do not tell apart; rename one` });
          } else {
            seen.set(key, `route "${route.name}" of service "${service.name}"`);
          }
        }
      }
      return problems;
    },
  },
  {
    name: "routeDomainIsNotAHostname",
    check: ({ enabled }) => {
      const hostOwners = new Map(enabled.map((service) => [service.fqdn, service]));
      return enabled.flatMap((service) =>
        service.routes.flatMap((route): Problem[] => {
          const host = hostOwners.get(route.domain);
          if (!host || host.kind === "caddy") return [];
          const [first, ...others] = route.domain.split(".");
          return [{
            subject: subjectOfService(service.name),
            field: `${route.field}.domain`,
            message: `${JSON.stringify(route.domain)} is also the hostname of service "${host.name}"; DNS cannot point it at both that host and the reverse proxy. Use another route domain (e.g. "${first}-app.${others.join(".")}") or hostname`,
          }];
        }),
      );
    },
  },
  {
    name: "routeUpstreamIsNotTheProxy",
    // A route sent to the proxy's own HTTP(S) port would loop inside Caddy until the client gives up.
    check: ({ proxies, enabled }) =>
      proxies.slice(0, 1).flatMap((proxy) =>
        enabled.flatMap((service) =>
          service.routes.flatMap((route): Problem[] => {
            const [host, port] = route.upstream.split(":");
            return addressesOf(proxy).includes(host) && (port === "80" || port === "443")
              ? [{ subject: subjectOfService(service.name), field: `${route.field}.upstream`, message: `${JSON.stringify(route.upstream)} is the reverse proxy itself, so requests would loop; point it at the service behind the proxy (or remove the route)` }]
              : [];
          }),
        ),
      ),
  },
  {
    name: "routeUpstreamPortIsFree",
    // Ports the kind uses for itself (the proxy's 80/443, DNS 53, SMTP) cannot also be an app's listen port.
    check: ({ enabled, byAddress }) =>
      enabled.flatMap((service) =>
        service.routes.flatMap((route): Problem[] => {
          const [host, port] = route.upstream.split(":");
          const target = byAddress.get(host);
          if (!target || target.kind === "caddy") return [];
          const reserved = [...kindSpecs[target.kind].tcpPorts, target.sshPort];
          return reserved.includes(Number(port))
            ? [{ subject: subjectOfService(service.name), field: `${route.field}.upstream`, message: `port ${port} of service "${target.name}" is taken by its ${Number(port) === target.sshPort ? "SSH server" : `${target.kind} module`}; route to the port the app listens on` }]
            : [];
        }),
      ),
  },
  {
    name: "oneReverseProxy",
    check: ({ proxies }) =>
      proxies.slice(1).map((proxy) => ({ subject: subjectOfService(proxy.name), field: "kind", message: `"caddy" is already the kind of service "${proxies[0].name}"; NixMox runs one reverse proxy` })),
  },
  {
    name: "routesNeedAProxy",
    check: ({ enabled, proxies, allParsed }) => {
      const firstRouted = enabled.find((service) => service.routes.length > 0);
      return firstRouted && proxies.length === 0 && allParsed
        ? [{ subject: subjectOfService(firstRouted.name), field: "interface.proxy", message: 'needs a reverse proxy: add an enabled service of kind "caddy"' }]
        : [];
    },
  },
  {
    name: "oneTlsPerDomain",
    // One domain is one Caddy site, so its routes share one TLS setting.
    check: ({ enabled }) => {
      const problems: Problem[] = [];
      const tlsOfDomain = new Map<string, { tls: string; service: string }>();
      for (const service of enabled) {
        for (const route of service.routes) {
          const first = tlsOfDomain.get(route.domain);
          if (!first) tlsOfDomain.set(route.domain, { tls: route.tls, service: service.name });
          else if (first.tls !== route.tls) {
            problems.push({ subject: subjectOfService(service.name), field: `${route.field}.tls`, message: `is "${route.tls}" but another route of ${JSON.stringify(route.domain)} (service "${first.service}") is "${first.tls}"; one domain is one Caddy site, give its routes the same tls` });
          }
        }
      }
      return problems;
    },
  },
  {
    name: "oneOutpostPerDomain",
    // One Caddy site proxies its forward-auth requests to one outpost (nixos/lib/caddy.nix conflictingOutposts).
    check: ({ enabled, authentiks, byAddress }) => {
      const problems: Problem[] = [];
      const first = new Map<string, { upstream: string; who: string }>();
      for (const service of enabled) {
        for (const route of service.routes) {
          if (route.auth !== "forward_auth") continue;
          const settings = route.ownAuth ?? service.auth;
          const provider = authProviderOf(settings?.provider, authentiks);
          const upstream = settings?.forward_auth_upstream ?? (provider ? `${byAddress.get(provider)?.ip}:${authentikOutpostPort}` : undefined);
          if (upstream === undefined) continue;
          const seen = first.get(route.domain);
          if (!seen) first.set(route.domain, { upstream, who: `service "${service.name}"` });
          else if (seen.upstream !== upstream) {
            problems.push({ subject: subjectOfService(service.name), field: `${route.field}.auth`, message: `asks outpost ${JSON.stringify(upstream)} but ${seen.who} protects ${JSON.stringify(route.domain)} through ${JSON.stringify(seen.upstream)}; one domain is one Caddy site with one outpost` });
          }
        }
      }
      return problems;
    },
  },
  {
    name: "sshPortIsNotListed",
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.ports.includes(service.sshPort))
        .map((service) => ({ subject: subjectOfService(service.name), field: "ports", message: `lists the SSH port ${service.sshPort}; remove it, SSH is always open` })),
  },
  {
    name: "dependsOnNamesAnEnabledService",
    check: ({ enabled, byName, allNames }) =>
      enabled.flatMap((service) =>
        service.dependsOn.flatMap((dependency, index): Problem[] => {
          const subject = subjectOfService(service.name);
          const field = `depends_on[${index}]`;
          const target = byName.get(dependency);
          if (dependency === service.name) return [{ subject, field, message: "names the service itself; remove it" }];
          if (!target) return [{ subject, field, message: `${JSON.stringify(dependency)} is not a service of this manifest${didYouMean(dependency, allNames)}` }];
          if (!target.enabled) return [{ subject, field, message: `${JSON.stringify(dependency)} is disabled; enable it or remove the dependency` }];
          return [];
        }),
      ),
  },
  {
    name: "authProviderIsAnAuthentik",
    check: (context) =>
      context.enabled.flatMap((service) => {
        const subject = subjectOfService(service.name);
        const problems = service.auth ? providerProblems(context, subject, "interface.auth.provider", service.auth.provider) : [];
        for (const route of service.routes) {
          if (route.ownAuth) problems.push(...providerProblems(context, subject, `${route.field}.auth.provider`, route.ownAuth.provider));
        }
        const noProvider = !service.auth && (context.authentiks.length > 1 || (context.authentiks.length === 0 && context.allParsed));
        const bare = service.routes.filter((route) => route.auth === "forward_auth" && route.ownAuth === null);
        if (noProvider && bare.some((route) => route.authDefault !== "no-login")) {
          problems.push({ subject, field: "interface.auth", message: 'is needed for forward_auth routes: set interface.auth.provider, or add exactly one enabled service of kind "authentik"' });
        }
        // Apps without a login of their own get forward auth by default (resolve.ts routeAuth): say why, and both ways out.
        for (const route of noProvider ? bare.filter((candidate) => candidate.authDefault === "no-login") : []) {
          problems.push({
            subject,
            field: `${route.field}.auth`,
            message: `is not set, and the app behind this route has no login of its own, so NixMox protects it with forward auth, which needs exactly one enabled service of kind "authentik" (or interface.auth.provider); add one, or set auth = "none" to leave the app open to everyone who reaches the proxy`,
          });
        }
        return problems;
      }),
  },
  {
    name: "oidcClientIdsAreUnique",
    check: ({ enabled }) => {
      const problems: Problem[] = [];
      const owners = new Map<string, string>();
      for (const service of enabled) {
        for (const client of service.oidcClients) {
          const clientId = client.settings.client_id ?? client.defaultId;
          const owner = owners.get(clientId);
          if (owner) problems.push({ subject: subjectOfService(service.name), field: `${client.field}.oidc.client_id`, message: `${JSON.stringify(clientId)} is already the client id of service "${owner}"` });
          else owners.set(clientId, service.name);
        }
      }
      return problems;
    },
  },
  {
    name: "oidcRedirectUrisAreKnown",
    check: ({ enabled }) =>
      enabled.flatMap((service) =>
        service.oidcClients
          .filter((client) => client.settings.redirect_uris === undefined && client.route === null && service.routes.length === 0)
          .map((client) => ({ subject: subjectOfService(service.name), field: `${client.field}.oidc.redirect_uris`, message: "is required when the service has no interface.proxy route to derive it from" })),
      ),
  },
  {
    name: "databaseHostIsPostgresql",
    check: ({ enabled, byAddress, byName, allNames }) =>
      enabled.flatMap((service) =>
        service.databases.flatMap((db): Problem[] => {
          const subject = subjectOfService(service.name);
          const field = `${db.field}.host`;
          const target = byAddress.get(db.host);
          // A service by that name that failed the schema pass has its own problems already; do not call it missing.
          if (!target) return byName.has(db.host) ? [] : [{ subject, field, message: `${JSON.stringify(db.host)} is not the ip, hostname or name of a service of this manifest${didYouMean(db.host, allNames)}` }];
          if (!target.enable) return [{ subject, field, message: `${JSON.stringify(db.host)} is service "${target.name}", which is disabled` }];
          if (target.kind !== "postgresql") return [{ subject, field, message: `${JSON.stringify(db.host)} is service "${target.name}", which is not a postgresql service (its kind is "${target.kind}")` }];
          return [];
        }),
      ),
  },
  {
    name: "databaseOwnerIsNotReserved",
    check: ({ enabled }) =>
      enabled.flatMap((service) =>
        service.databases
          .filter((db) => reservedRoles.includes(db.owner) || db.owner.startsWith("pg_"))
          .map((db) => ({ subject: subjectOfService(service.name), field: `${db.field}.owner`, message: `${JSON.stringify(db.owner)} is a reserved PostgreSQL role; name the owner after the app, e.g. ${JSON.stringify(db.key === "db" ? service.name.replace(/-/g, "_") : db.key)}` })),
      ),
  },
  {
    name: "databaseNamesAndOwnersAreUnique",
    // One database or role on one server belongs to one service: two claimants would share data or a password.
    check: ({ enabled, byAddress }) => {
      const problems: Problem[] = [];
      const names = new Map<string, string>();
      const owners = new Map<string, string>();
      for (const service of enabled) {
        for (const db of service.databases) {
          const server = byAddress.get(db.host)?.name ?? db.host;
          const subject = subjectOfService(service.name);
          for (const [index, name] of [db.name, ...db.additional].entries()) {
            const field = index === 0 ? `${db.field}.name` : `${db.field}.additionaldbs[${index - 1}]`;
            const claimant = names.get(`${server}\0${name}`);
            if (claimant !== undefined) problems.push({ subject, field, message: `database ${JSON.stringify(name)} on "${server}" is already claimed by ${claimant}; give it another name` });
            else names.set(`${server}\0${name}`, `${subject} (${field})`);
          }
          const ownerKey = `${server}\0${db.owner}`;
          const owner = owners.get(ownerKey);
          if (owner !== undefined) problems.push({ subject, field: `${db.field}.owner`, message: `role ${JSON.stringify(db.owner)} on "${server}" is already the owner for ${owner}; each entry needs its own role (it has its own password)` });
          else owners.set(ownerKey, `${subject} (${db.field})`);
        }
      }
      return problems;
    },
  },
  {
    name: "databasePortsAgreePerServer",
    // One PostgreSQL listens on one port.
    check: ({ enabled, byAddress }) => {
      const problems: Problem[] = [];
      const first = new Map<string, { port: number; who: string }>();
      for (const service of enabled) {
        for (const db of service.databases) {
          const server = byAddress.get(db.host);
          if (!server || server.kind !== "postgresql") continue;
          const seen = first.get(server.name);
          if (!seen) first.set(server.name, { port: db.port, who: `service "${service.name}"` });
          else if (seen.port !== db.port) problems.push({ subject: subjectOfService(service.name), field: `${db.field}.port`, message: `is ${db.port} but ${seen.who} uses ${seen.port} on "${server.name}"; one PostgreSQL listens on one port, make them agree` });
        }
      }
      return problems;
    },
  },
  {
    name: "serviceNameIsNotReserved",
    // Activation state lives in /var/lib/nixmox/<service>, next to these directories.
    check: ({ candidates }) =>
      candidates
        .filter((candidate) => reservedServiceNames.includes(candidate.name))
        .map((candidate) => ({ subject: subjectOfService(candidate.name), field: "", message: `is a name NixMox uses for its own directory on every host (/var/lib/nixmox/${candidate.name}); rename the service` })),
  },
  {
    name: "databaseIsNotOnItself",
    check: ({ enabled, byAddress }) =>
      enabled.flatMap((service) =>
        service.databases
          .filter((db) => byAddress.get(db.host)?.name === service.name)
          .map((db) => ({ subject: subjectOfService(service.name), field: `${db.field}.host`, message: `${JSON.stringify(db.host)} is this service itself; a PostgreSQL host serves databases to other services, so remove this ${db.field}` })),
      ),
  },
  {
    name: "kindHasItsDatabase",
    check: ({ enabled }) =>
      enabled
        .filter((service) => kindsNeedingDatabase.includes(service.kind) && service.databases.length === 0)
        .map((service) => ({ subject: subjectOfService(service.name), field: "interface.db", message: `is required: ${service.kind} keeps its data in PostgreSQL; set interface.db = { host = "<your postgresql service>"; }` })),
  },
  {
    name: "kindGetsAConfidentialClient",
    check: ({ enabled }) =>
      enabled.flatMap((service) =>
        service.oidcClients
          .filter((client) => client.settings.client_type === "public" && confidentialOnly(service.kind, service.routes.length > 0, client.route))
          .map((client) => ({
            subject: subjectOfService(service.name),
            field: `${client.field}.oidc.client_type`,
            message: `must be "confidential": ${service.kind === "postgresql" ? "pgAdmin" : service.kind} sends a client secret to the SSO provider`,
          })),
      ),
  },
  {
    name: "forgejoUsernameClaim",
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.kind === "forgejo")
        .flatMap((service) => service.oidcClients.filter((client) => client.route === null && !["preferred_username", "sub", "email"].includes(client.settings.username_claim)).map((client) => ({ service, client })))
        .map(({ service, client }) => ({ subject: subjectOfService(service.name), field: `${client.field}.oidc.username_claim`, message: `must be preferred_username, sub or email: Forgejo takes user names only from those claims, got ${JSON.stringify(client.settings.username_claim)}` })),
  },
  {
    name: "mediaDatabasesBelongToArrApps",
    // nixos/services/media.nix: Sonarr, Radarr and Prowlarr each use a main and a log database.
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.kind === "media")
        .flatMap((service) =>
          service.databases.flatMap((db): Problem[] => {
            const subject = subjectOfService(service.name);
            if (!arrApps.includes(db.key)) return [{ subject, field: db.field, message: `belongs to no app that uses PostgreSQL here; name the entry after one of ${arrApps.join(", ")}` }];
            if (db.additional.length === 0) return [{ subject, field: `${db.field}.additionaldbs`, message: `is required: ${db.key} also needs a log database, e.g. [ "${db.key}-log" ]` }];
            return [];
          }),
        ),
  },
  {
    name: "jellyfinListensOnItsPort",
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.kind === "media")
        .flatMap((service) => service.routes.filter((route) => route.name === "jellyfin" && Number(route.upstream.split(":")[1]) !== kindSpecs.media.apps.jellyfin.port).map((route) => ({ service, route })))
        .map(({ service, route }) => ({
          subject: subjectOfService(service.name),
          field: `${route.field}.upstream`,
          message: `must use port ${kindSpecs.media.apps.jellyfin.port}: Jellyfin sets its port in its own network.xml, which NixOS does not manage`,
        })),
  },
  {
    name: "grafanaCallbackIsARedirectUri",
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.kind === "monitoring")
        .flatMap((service) => {
          const route = service.routes.find((candidate) => candidate.name === "grafana");
          const client = route?.ownAuth?.type === "oidc" ? service.oidcClients.find((candidate) => candidate.route === "grafana") : route?.auth === "oidc" ? service.oidcClients.find((candidate) => candidate.route === null) : undefined;
          if (!route || !client || client.settings.redirect_uris === undefined) return [];
          const callback = `${route.tls === "off" ? "http" : "https"}://${route.domain}${route.path === "/" ? "" : route.path.replace(/\*$/, "").replace(/\/$/, "")}${kindSpecs.monitoring.apps.grafana.callback}`;
          return client.settings.redirect_uris.includes(callback)
            ? []
            : [{ subject: subjectOfService(service.name), field: `${client.field}.oidc.redirect_uris`, message: `must list ${JSON.stringify(callback)}, where Grafana sends users back after login (or omit redirect_uris to derive it)` }];
        }),
  },
  {
    name: "openbaoLeavesRoomForItsClusterPort",
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.kind === "openbao")
        .flatMap((service) => service.routes.filter((route) => route.upstream.endsWith(":65535")).map((route) => ({ service, route })))
        .map(({ service, route }) => ({ subject: subjectOfService(service.name), field: `${route.field}.upstream`, message: "must use a port below 65535: OpenBao's cluster listener takes the next port" })),
  },
  {
    name: "customServiceHasModules",
    check: ({ enabled }) =>
      enabled
        .filter((service) => service.kind === "custom" && service.nixosModules.length === 0)
        .map((service) => {
          const builtin = closest(service.name, builtinKinds);
          return {
            subject: subjectOfService(service.name),
            field: "nixos_modules",
            message: `is required: "${service.name}" has no built-in module${builtin ? ` (did you mean kind "${builtin}"?)` : ""}; list the NixOS module files that configure it`,
          };
        }),
  },
  {
    name: "builtinSecretOverridesOnlyAccess",
    // A built-in secret (db_password, oidc_client_secret, …) may be declared to set who can read the file; its value,
    // generation and description stay NixMox's.
    check: ({ enabled, root }) =>
      enabled.flatMap((service) =>
        Object.keys(service.declaredSecrets)
          .filter((secret) => service.builtinSecretNames.includes(secret))
          .flatMap((secret) => {
            const raw = valueAt(root, [service.group, service.name, "secrets", secret]);
            const fixed = raw && typeof raw === "object" ? Object.keys(raw).filter((key) => key === "generate" || key === "description").sort() : [];
            return fixed.map((key) => ({
              subject: subjectOfService(service.name),
              field: `secrets.${secret}.${key}`,
              message: `cannot be set: "${secret}" is a secret NixMox declares for this service; only owner, group, mode and restart_units may be set on it`,
            }));
          }),
      ),
  },
  {
    name: "phasesNameServices",
    check: ({ root, byName, allNames }) => {
      const phases = root.deployment_phases;
      if (!phases || typeof phases !== "object" || Array.isArray(phases)) return [];
      return Object.keys(phases).sort().flatMap((phase) => {
        const names = (phases as Record<string, unknown>)[phase];
        if (!Array.isArray(names)) return [];
        return names.flatMap((name, index): Problem[] =>
          typeof name === "string" && !byName.has(name)
            ? [{ subject: "manifest", field: `deployment_phases.${phase}[${index}]`, message: `${JSON.stringify(name)} is not a service of this manifest${didYouMean(name, allNames)}` }]
            : [],
        );
      });
    },
  },
  {
    name: "outpostsHaveAProvider",
    check: (context) => {
      const outposts = context.network?.outposts;
      if (!outposts) return [];
      return (["ldap", "radius"] as const).flatMap((type) =>
        outposts[type] ? providerProblems(context, "network", `outposts.${type}.provider`, outposts[type]!.provider) : [],
      );
    },
  },
  {
    name: "noDependencyCycle",
    // Hard edges only: an SSO relation never orders hosts, so it cannot close a cycle (plan.ts).
    check: ({ enabled, network }) => {
      const cycle = findCycle(enabled, network?.dns_server);
      if (!cycle) return [];
      const first = cycle[0];
      const steps = cycle.map((edge) => `${edge.from} → ${edge.to} (${edge.reason})`);
      const declared = cycle.filter((edge) => edge.reason === "depends_on").map((edge) => `${edge.from}'s depends_on "${edge.to}"`);
      return [{
        subject: subjectOfService(first.from),
        field: first.reason === "depends_on" ? "depends_on" : first.reason.startsWith("interface.") ? first.reason.split(" ")[0] : "",
        message: `forms a dependency cycle: ${steps.join(", ")}; ` +
          (declared.length > 0 ? `remove one of: ${declared.join(", ")}` : "change one of these references"),
      }];
    },
  },
];

function crossServiceProblems(raw: unknown): Problem[] {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return [];
  const root = raw as Record<string, unknown>;
  const networkResult = parseLeniently(networkSchema, root.network);
  const network = networkResult.success ? networkResult.data : undefined;
  const problems: Problem[] = [];

  // Parse each service on its own, so the services that are valid still take part in the cross checks.
  const candidates: Candidate[] = [];
  const seenGroup = new Map<string, string>();
  for (const group of serviceGroups) {
    const entries = root[group];
    if (!entries || typeof entries !== "object" || Array.isArray(entries)) continue;
    for (const name of Object.keys(entries).sort()) {
      const other = seenGroup.get(name);
      if (other) problems.push({ subject: subjectOfService(name), field: "", message: `is defined in both ${other} and ${group}; rename one of them` });
      seenGroup.set(name, group);
      // zod's record skips a "__proto__" key without an issue (it would replace the output's prototype), so the
      // service would vanish from the plan silently; JSON.parse does create such a key.
      if (name === "__proto__") problems.push({ subject: subjectOfService(name), field: "", message: `has an invalid name: must be a service name (a-z, 0-9 and inner '-'), got "${name}"` });
      const parsed = parseLeniently(serviceSchema, (entries as Record<string, unknown>)[name]);
      const service = parsed.success && network ? resolveService(name, group, parsed.data, network) : undefined;
      const enabled = parsed.success ? parsed.data.enable : (entries as Record<string, { enable?: unknown }>)[name]?.enable !== false;
      candidates.push({ name, group, service, enabled });
    }
  }
  const services = candidates.flatMap((candidate) => (candidate.service ? [candidate.service] : []));
  const enabled = services.filter((service) => service.enable);
  const context: RuleContext = {
    root,
    network,
    candidates,
    byName: new Map(candidates.map((candidate) => [candidate.name, candidate])),
    allNames: candidates.map((candidate) => candidate.name),
    allParsed: candidates.every((candidate) => candidate.service !== undefined),
    services,
    enabled,
    byAddress: servicesByAddress(services),
    proxies: enabled.filter((service) => service.kind === "caddy"),
    authentiks: enabled.filter((service) => service.kind === "authentik").map((service) => service.name),
  };
  for (const rule of crossServiceRules) problems.push(...rule.check(context));
  return problems;
}

/** The names of the cross-service rules, in the order they report (for tests and docs). */
export const crossServiceRuleNames = crossServiceRules.map((rule) => rule.name);

/** The first cycle of hard edges found (as its edges, in order), or undefined. */
function findCycle(enabled: ResolvedService[], dnsServer: string | undefined): Edge[] | undefined {
  const names = new Set(enabled.map((service) => service.name));
  const adjacency = new Map<string, Edge[]>();
  for (const edge of inferredEdges(enabled, dnsServer)) {
    if (!edge.hard || !names.has(edge.to)) continue;
    const list = adjacency.get(edge.from) ?? [];
    if (!list.some((existing) => existing.to === edge.to)) list.push(edge);
    adjacency.set(edge.from, list);
  }
  for (const list of adjacency.values()) list.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
  const state = new Map<string, "open" | "done">();
  const stack: Edge[] = [];
  const visit = (name: string): Edge[] | undefined => {
    state.set(name, "open");
    for (const edge of adjacency.get(name) ?? []) {
      stack.push(edge);
      if (state.get(edge.to) === "open") return stack.slice(stack.findIndex((entry) => entry.from === edge.to));
      if (!state.has(edge.to)) {
        const found = visit(edge.to);
        if (found) return found;
      }
      stack.pop();
    }
    state.set(name, "done");
    return undefined;
  };
  for (const name of [...names].sort()) {
    if (!state.has(name)) {
      const found = visit(name);
      if (found) return found;
    }
  }
  return undefined;
}
