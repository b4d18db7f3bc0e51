/**
 * Validation at the boundary: the zod schema checks each field, then cross-service rules check the whole.
 * Every problem is collected before anything is reported (see `ManifestError`).
 */
import { z } from "zod";
import { pushTo } from "./plan";
import { addressesOf, inferredEdges, resolveService, servicesByAddress, type ResolvedService } from "./resolve";
import { ManifestError, closest, describeValue, didYouMean, formatPath, type Problem } from "./problems";
import { manifestSchema, networkSchema, serviceSchema, type Manifest } from "./schema";

const serviceGroups = ["core_services", "services"] as const;

/** Keys that hold a secret value, which belongs in the stack config, not in the manifest. */
const secretLikeKey = /(pass(word|wd)?|secret|token|api_?key|private_?key|credential)/i;

/** Parses and validates a raw manifest (the output of the loader); throws `ManifestError` with every problem. */
export function validateManifest(raw: unknown, source: string): Manifest {
  const problems: Problem[] = [];
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...issueProblems(issue, [], raw));
  }
  problems.push(...crossServiceProblems(raw));
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
function schemaAt(schema: z.core.$ZodType, path: ReadonlyArray<PropertyKey>, root: unknown): z.core.$ZodType | undefined {
  let current: z.core.$ZodType | undefined = schema;
  const unwrap = (type: z.core.$ZodType | undefined, at: ReadonlyArray<PropertyKey>): z.core.$ZodType | undefined => {
    while (type) {
      const def = type._zod.def as unknown as Record<string, unknown>;
      if (def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable") {
        type = def.innerType as z.core.$ZodType;
      } else if (def.type === "pipe") {
        type = def.in as z.core.$ZodType;
      } else if (def.type === "union") {
        // Pick the object branch that fits the value best: a plain route, or a set of named routes.
        const value = valueAt(root, at);
        const options = def.options as z.core.$ZodType[];
        const keys = value && typeof value === "object" ? Object.keys(value) : [];
        type = options
          .map((option) => ({ option, shape: shapeOf(unwrap(option, at)) }))
          .sort((a, b) => overlap(b.shape, keys) - overlap(a.shape, keys) || a.shape.length - b.shape.length)[0]?.option;
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
  return unwrap(current, path);
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
  const got = `, got ${describeValue(value)}`;
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = shapeOf(schemaAt(manifestSchema, path, raw));
      return issue.keys.map((key) => ({
        subject,
        field: formatPath([...rest, key]),
        message: secretLikeKey.test(key)
          ? "looks like a secret: secret values never go in the manifest. Declare it under secrets and set the value with " +
            "`pulumi config set --secret --path 'nixmox:secrets.<service>.<name>' <value>`"
          : `is not a known field${didYouMean(key, known)}`,
      }));
    }
    case "invalid_type":
      if (value === undefined) return [{ subject, field, message: "is required" }];
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
      const best = [...branches].sort((a, b) => a.length - b.length)[0];
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
// Cross-service rules

interface Candidate {
  name: string;
  group: (typeof serviceGroups)[number];
  service: ResolvedService | undefined;
  enabled: boolean;
}

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

function crossServiceProblems(raw: unknown): Problem[] {
  const problems: Problem[] = [];
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return problems;
  const root = raw as Record<string, unknown>;
  const network = parseLeniently(networkSchema, root.network);

  // Parse each service on its own, so the services that are valid still take part in the cross checks.
  const candidates: Candidate[] = [];
  const seenGroup = new Map<string, string>();
  for (const group of serviceGroups) {
    const entries = root[group];
    if (!entries || typeof entries !== "object" || Array.isArray(entries)) continue;
    for (const name of Object.keys(entries).sort()) {
      const other = seenGroup.get(name);
      if (other) {
        problems.push({ subject: `service "${name}"`, field: "", message: `is defined in both ${other} and ${group}; rename one of them` });
      }
      seenGroup.set(name, group);
      // zod's record skips a "__proto__" key without an issue (it would replace the output's prototype), so the
      // service would vanish from the plan silently; JSON.parse does create such a key.
      if (name === "__proto__") problems.push({ subject: `service "${name}"`, field: "", message: `has an invalid name: must be a service name (a-z, 0-9 and inner '-'), got "${name}"` });
      const parsed = parseLeniently(serviceSchema, (entries as Record<string, unknown>)[name]);
      const service = parsed.success && network.success ? resolveService(name, group, parsed.data, network.data) : undefined;
      const enabled = parsed.success ? parsed.data.enable : (entries as Record<string, { enable?: unknown }>)[name]?.enable !== false;
      candidates.push({ name, group, service, enabled });
    }
  }
  const allNames = candidates.map((candidate) => candidate.name);
  // "There is no caddy/authentik" is only true when every service parsed: an invalid one may be it, and its own
  // problems are reported already.
  const allParsed = candidates.every((candidate) => candidate.service !== undefined);
  const byName = new Map(candidates.map((candidate) => [candidate.name, candidate]));
  const services = candidates.flatMap((candidate) => (candidate.service ? [candidate.service] : []));
  const enabled = services.filter((service) => service.enable);
  const byAddress = servicesByAddress(services);

  if (network.success) {
    const { gateway, network_cidr: cidr } = network.data;
    if (!ipInCidr(gateway, cidr)) {
      problems.push({ subject: "network", field: "gateway", message: `${JSON.stringify(gateway)} is not a host address inside network_cidr ${JSON.stringify(cidr)}` });
    }
    for (const service of services) {
      if (!ipInCidr(service.ip, cidr)) {
        problems.push({ subject: `service "${service.name}"`, field: "ip", message: `${JSON.stringify(service.ip)} is not a host address inside network_cidr ${JSON.stringify(cidr)}` });
      } else if (service.ip === gateway) {
        problems.push({ subject: `service "${service.name}"`, field: "ip", message: `${JSON.stringify(service.ip)} is the network's gateway; choose a free address` });
      }
    }
  }

  // Uniqueness: the first service by name keeps the value, the others are told who holds it.
  const unique = (field: string, valueOf: (service: ResolvedService) => string | number, what = field) => {
    const owners = new Map<string | number, string>();
    for (const service of services) {
      const value = valueOf(service);
      const owner = owners.get(value);
      if (owner !== undefined) {
        problems.push({ subject: `service "${service.name}"`, field, message: `${JSON.stringify(value)} is already the ${what} of service "${owner}"` });
      } else {
        owners.set(value, service.name);
      }
    }
  };
  unique("ip", (service) => service.ip);
  unique("vmid", (service) => service.vmid);
  unique("hostname", (service) => service.fqdn);

  const routeOwners = new Map<string, string>();
  const hostOwners = new Map(enabled.map((service) => [service.fqdn, service]));
  const proxies = enabled.filter((service) => service.kind === "caddy");
  for (const service of enabled) {
    for (const route of service.routes) {
      const key = `${route.domain}${route.path}`;
      const owner = routeOwners.get(key);
      const field = `${route.field}.domain`;
      if (owner !== undefined) {
        problems.push({ subject: `service "${service.name}"`, field, message: `${JSON.stringify(route.domain)} with path ${JSON.stringify(route.path)} is already routed by service "${owner}"; change the domain or the path` });
      } else {
        routeOwners.set(key, service.name);
      }
      const host = hostOwners.get(route.domain);
      if (host && !(host.kind === "caddy")) {
        problems.push({
          subject: `service "${service.name}"`,
          field,
          message: `${JSON.stringify(route.domain)} is also the hostname of service "${host.name}"; DNS cannot point it at both that host and the reverse proxy. Use another route domain (e.g. "${route.domain.split(".")[0]}-app.${route.domain.split(".").slice(1).join(".")}") or hostname`,
        });
      }
    }
  }
  // A route sent to the proxy's own HTTP(S) port would loop inside Caddy until the client gives up.
  for (const proxy of proxies.slice(0, 1)) {
    for (const service of enabled) {
      for (const route of service.routes) {
        const [host, port] = route.upstream.split(":");
        if (addressesOf(proxy).includes(host) && (port === "80" || port === "443")) {
          problems.push({
            subject: `service "${service.name}"`,
            field: `${route.field}.upstream`,
            message: `${JSON.stringify(route.upstream)} is the reverse proxy itself, so requests would loop; point it at the service behind the proxy (or remove the route)`,
          });
        }
      }
    }
  }
  if (proxies.length > 1) {
    for (const proxy of proxies.slice(1)) {
      problems.push({ subject: `service "${proxy.name}"`, field: "kind", message: `"caddy" is already the kind of service "${proxies[0].name}"; NixMox runs one reverse proxy` });
    }
  }
  const firstRouted = enabled.find((service) => service.routes.length > 0);
  if (firstRouted && proxies.length === 0 && allParsed) {
    problems.push({ subject: `service "${firstRouted.name}"`, field: "interface.proxy", message: 'needs a reverse proxy: add an enabled service of kind "caddy"' });
  }
  // One domain is one Caddy site, so its routes share one TLS setting.
  const tlsOfDomain = new Map<string, { tls: string; service: string }>();
  for (const service of enabled) {
    for (const route of service.routes) {
      const first = tlsOfDomain.get(route.domain);
      if (!first) tlsOfDomain.set(route.domain, { tls: route.tls, service: service.name });
      else if (first.tls !== route.tls) {
        problems.push({ subject: `service "${service.name}"`, field: `${route.field}.tls`, message: `is "${route.tls}" but another route of ${JSON.stringify(route.domain)} (service "${first.service}") is "${first.tls}"; one domain is one Caddy site, give its routes the same tls` });
      }
    }
  }
  const proxy = proxies[0];
  if (proxy && enabled.some((service) => service.routes.some((route) => route.tls !== "off")) && !proxy.ports.includes(443)) {
    problems.push({ subject: `service "${proxy.name}"`, field: "ports", message: "must include 443: the reverse proxy serves TLS routes (add 80 too for HTTP→HTTPS redirects and ACME)" });
  }
  for (const service of enabled) {
    if (service.ports.includes(service.sshPort)) {
      problems.push({ subject: `service "${service.name}"`, field: "ports", message: `lists the SSH port ${service.sshPort}; remove it, SSH is always open` });
    }
  }

  // References: depends_on, auth.provider, db.host.
  const authentiks = enabled.filter((service) => service.kind === "authentik").map((service) => service.name);
  const clientIds = new Map<string, string>();
  for (const service of enabled) {
    const subject = `service "${service.name}"`;
    service.dependsOn.forEach((dependency, index) => {
      const field = `depends_on[${index}]`;
      const target = byName.get(dependency);
      if (dependency === service.name) problems.push({ subject, field, message: "names the service itself; remove it" });
      else if (!target) problems.push({ subject, field, message: `${JSON.stringify(dependency)} is not a service of this manifest${didYouMean(dependency, allNames)}` });
      else if (!target.enabled) problems.push({ subject, field, message: `${JSON.stringify(dependency)} is disabled; enable it or remove the dependency` });
    });
    if (service.auth) {
      const field = "interface.auth.provider";
      const provider = service.auth.provider;
      if (provider === undefined) {
        if (authentiks.length > 1 || (authentiks.length === 0 && allParsed)) {
          problems.push({ subject, field, message: authentiks.length === 0 ? 'is needed: add an enabled service of kind "authentik"' : `must name one of ${authentiks.map((n) => JSON.stringify(n)).join(", ")}` });
        }
      } else {
        const target = byName.get(provider);
        if (!target) problems.push({ subject, field, message: `${JSON.stringify(provider)} is not a service of this manifest${didYouMean(provider, allNames)}` });
        else if (!target.enabled) problems.push({ subject, field, message: `${JSON.stringify(provider)} is disabled; enable it or choose another provider` });
        else if (target.service && target.service.kind !== "authentik") problems.push({ subject, field, message: `${JSON.stringify(provider)} is not an authentik service (its kind is "${target.service.kind}")` });
      }
      if (service.auth.type === "oidc") {
        const clientId = service.auth.oidc.client_id ?? service.name;
        const owner = clientIds.get(clientId);
        if (owner) problems.push({ subject, field: "interface.auth.oidc.client_id", message: `${JSON.stringify(clientId)} is already the client id of service "${owner}"` });
        else clientIds.set(clientId, service.name);
        if (service.auth.oidc.redirect_uris === undefined && service.routes.length === 0) {
          problems.push({ subject, field: "interface.auth.oidc.redirect_uris", message: "is required when the service has no interface.proxy route to derive it from" });
        }
      }
    }
    if (service.routes.some((route) => route.auth === "forward_auth") && !service.auth && (authentiks.length > 1 || (authentiks.length === 0 && allParsed))) {
      problems.push({ subject, field: "interface.auth", message: 'is needed for forward_auth routes: set interface.auth.provider, or add exactly one enabled service of kind "authentik"' });
    }
    if (service.db) {
      const field = "interface.db.host";
      const target = byAddress.get(service.db.host);
      if (!target) {
        // A service by that name that failed the schema pass has its own problems already; do not call it missing.
        if (!byName.has(service.db.host)) problems.push({ subject, field, message: `${JSON.stringify(service.db.host)} is not the ip, hostname or name of a service of this manifest${didYouMean(service.db.host, allNames)}` });
      } else if (!target.enable) {
        problems.push({ subject, field, message: `${JSON.stringify(service.db.host)} is service "${target.name}", which is disabled` });
      } else if (target.kind !== "postgresql") {
        problems.push({ subject, field, message: `${JSON.stringify(service.db.host)} is service "${target.name}", which is not a postgresql service (its kind is "${target.kind}")` });
      } else if (!target.ports.includes(service.db.port)) {
        problems.push({ subject, field: "interface.db.port", message: `${service.db.port} is not in the ports of service "${target.name}", so its firewall would refuse the connection; add it there` });
      }
    }
    if (service.kind === "custom" && service.nixosModules.length === 0) {
      const builtin = closest(service.name, ["dns", "caddy", "postgresql", "authentik", "vaultwarden", "guacamole"]);
      problems.push({
        subject,
        field: "nixos_modules",
        message: `is required: "${service.name}" has no built-in module${builtin ? ` (did you mean kind "${builtin}"?)` : ""}; list the NixOS module files that configure it`,
      });
    }
    for (const secret of Object.keys(service.declaredSecrets)) {
      if (service.builtinSecretNames.includes(secret)) {
        problems.push({ subject, field: `secrets.${secret}`, message: "is declared by NixMox already for this service; remove it or choose another name" });
      }
    }
  }

  // Cycles over declared and inferred edges of enabled services.
  const cycle = findCycle(enabled, network.success ? network.data.dns_server : undefined);
  if (cycle) {
    problems.push({ subject: `service "${cycle[0]}"`, field: "depends_on", message: `forms a dependency cycle: ${cycle.join(" → ")}; remove one of these dependencies` });
  }
  return problems;
}

/** The first dependency cycle found (as names, first name repeated at the end), or undefined. */
function findCycle(enabled: ResolvedService[], dnsServer: string | undefined): string[] | undefined {
  const names = new Set(enabled.map((service) => service.name));
  const adjacency = new Map<string, string[]>();
  for (const edge of inferredEdges(enabled, dnsServer)) {
    if (!names.has(edge.to)) continue;
    pushTo(adjacency, edge.from, edge.to);
  }
  for (const list of adjacency.values()) list.sort();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    state.set(name, "open");
    stack.push(name);
    for (const next of adjacency.get(name) ?? []) {
      if (state.get(next) === "open") return [...stack.slice(stack.indexOf(next)), next];
      if (!state.has(next)) {
        const found = visit(next);
        if (found) return found;
      }
    }
    stack.pop();
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
