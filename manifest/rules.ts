/**
 * The cross-service rules, one named entry each in `crossServiceRules` (STYLE §14): adding a rule is adding an
 * entry, and a reader finds it by its name. Each rule reads the `RuleContext` (the services that passed the schema,
 * resolved, and lookups over them) and returns its problems; `validate.ts` runs them after the schema pass.
 */
import { buildPlacementProblems } from "./build-rule";
import { z } from "zod";
import { appOfRoute, kindSpecs } from "./kinds";
import { builtinKinds } from "./plan-types";
import { authentikOutpostPort } from "./plan";
import { addressesOf, authProviderOf, inferredEdges, redirectRoutes, resolveDomain, resolveService, servicesByAddress, type CheckedServices, type Edge, type ResolvedNetwork, type ResolvedService } from "./resolve";
import { closest, didYouMean, formatPath, type Problem } from "./problems";
import { secretHint, secretLikeKey, valueAt } from "./schema-issues";
import { isDnsName, networkSchema, serviceSchema, type Manifest } from "./schema";

const serviceGroups = ["core_services", "services"] as const;

export interface Candidate {
  name: string;
  group: (typeof serviceGroups)[number];
  service: ResolvedService | undefined;
  enabled: boolean;
}

/** What every rule reads: the services that passed the schema (resolved), the network, and lookups. */
export interface RuleContext {
  root: Record<string, unknown>;
  /** The network with its domain decided; undefined when it failed the schema or no domain could be derived. */
  network: ResolvedNetwork | undefined;
  candidates: Candidate[];
  byName: Map<string, Candidate>;
  allNames: string[];
  /** False when some service failed the schema: "there is no X" may then be wrong, so such rules stay quiet. */
  allParsed: boolean;
  services: ResolvedService[];
  enabled: ResolvedService[];
  byAddress: Map<string, ResolvedService>;
  /** The dependency edges of the enabled services (resolve.ts inferredEdges over `byAddress`), computed once. */
  edges: Edge[];
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
  return hostAddressTest(cidr)(ip);
}

/** `ipInCidr` for one `cidr` and many addresses: the network is parsed once. */
function hostAddressTest(cidr: string): (ip: string) => boolean {
  const [base, bits] = cidr.split("/");
  const prefix = Number(bits);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipToNumber(base) / size) * size;
  return (ip) => {
    const value = ipToNumber(ip);
    if (value < network || value >= network + size) return false;
    return prefix >= 31 || (value !== network && value !== network + size - 1);
  };
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
function uniqueAcross(services: ResolvedService[], field: string, valueOf: (service: ResolvedService) => string | number | null, what = field): Problem[] {
  const problems: Problem[] = [];
  const owners = new Map<string | number, string>();
  for (const service of services) {
    const value = valueOf(service);
    // null: nothing to collide (a vmid Proxmox assigns).
    if (value === null) continue;
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

/** True when the kind's app sends a client secret, so its OIDC client cannot be public. */
function confidentialOnly(kind: string, hasRoutes: boolean, route: string | null): boolean {
  // These modules read the service's own client (interface.auth); pgAdmin also runs on a PostgreSQL host with a route.
  const sendsSecret = ["vaultwarden", "forgejo", "nextcloud", "openbao", "pgadmin"].includes(kind) || (kind === "postgresql" && hasRoutes);
  return sendsSecret && route === null;
}

/** The databases every PostgreSQL cluster has (nixos/lib/postgresql.nix systemDatabases); never an application's. */
export const systemDatabases = ["postgres", "template0", "template1"];

/** PostgreSQL roles that exist already or have a special meaning in pg_hba.conf; never an application's owner. */
const reservedRoles = ["postgres", "all", "replication", "sameuser", "samerole", "samegroup", "public", "pg_database_owner"];

/**
 * Name suffixes no public CA issues certificates for, with why. An ACME order for such a name is refused (Let's
 * Encrypt: "Domain name does not end with a valid public suffix (TLD)"), and the CA/Browser Forum Baseline
 * Requirements forbid certificates for names outside the public DNS ("Internal Names", since 2015). Caddy does not
 * even ask for .local, .internal and .home.arpa: it signs them with its own CA, which no device trusts
 * (caddyserver/certmagic certificates.go SubjectIsInternal). Where the list comes from:
 * - the IANA Special-Use Domain Names registry, https://www.iana.org/assignments/special-use-domain-names/
 *   (RFC 6761, RFC 2606, RFC 6762, RFC 8375, RFC 9476);
 * - .internal, reserved from delegation for private use by the ICANN Board on 29 July 2024 (SAC113);
 * - .home, .corp and .mail, which the ICANN Board decided on 4 February 2018 not to delegate (name collisions);
 * - .lan and .localdomain, the usual home-router suffixes, which are not in the root zone
 *   (https://data.iana.org/TLD/tlds-alpha-by-domain.txt) nor reserved, so no CA can validate them today.
 */
export const privateNameSuffixes: ReadonlyArray<readonly [suffix: string, why: string]> = [
  ["home.arpa", "is reserved for home networks (RFC 8375)"],
  ["example.com", "is reserved for documentation (RFC 2606)"],
  ["example.net", "is reserved for documentation (RFC 2606)"],
  ["example.org", "is reserved for documentation (RFC 2606)"],
  ["local", "is reserved for multicast DNS (RFC 6762)"],
  ["localhost", "is special-use (RFC 6761)"],
  ["test", "is special-use (RFC 6761)"],
  ["invalid", "is special-use (RFC 6761)"],
  ["example", "is special-use (RFC 6761)"],
  ["alt", "is special-use (RFC 9476)"],
  ["internal", "is reserved for private networks by ICANN (2024) and never delegated"],
  ["home", "is a name ICANN decided not to delegate (2018)"],
  ["corp", "is a name ICANN decided not to delegate (2018)"],
  ["mail", "is a name ICANN decided not to delegate (2018)"],
  ["lan", "is not a top-level domain of the public DNS"],
  ["localdomain", "is not a top-level domain of the public DNS"],
];

/** The suffix of `domain` that no public CA issues for, with why; undefined for a name that may be public. */
export function privateNameSuffix(domain: string): { suffix: string; why: string } | undefined {
  const found = privateNameSuffixes.find(([suffix]) => domain === suffix || domain.endsWith(`.${suffix}`));
  return found && { suffix: found[0], why: found[1] };
}

/** Hostnames that look like an IPv4 address (module constants: a regular expression literal is a new object each time it runs). */
const dottedQuad = /^[0-9]+(\.[0-9]+){3}$/;
const digitsAndDots = /^[0-9.]+$/;

const crossServiceRules: CrossServiceRule[] = [
  // Where hosts' systems are built (issue 18): manifest/build-plan.ts, checked on the raw manifest.
  { name: "buildPlacement", check: ({ root }) => buildPlacementProblems(root) },
  {
    name: "gatewayInsideNetwork",
    check: ({ network }) =>
      network && !ipInCidr(network.gateway, network.network_cidr)
        ? [{ subject: "network", field: "gateway", message: `${JSON.stringify(network.gateway)} is not a host address inside network_cidr ${JSON.stringify(network.network_cidr)}` }]
        : [],
  },
  {
    name: "serviceIpInsideNetwork",
    check: ({ network, services }) => {
      if (!network) return [];
      const inside = hostAddressTest(network.network_cidr);
      return services.flatMap((service): Problem[] => {
        const subject = subjectOfService(service.name);
        if (!inside(service.ip)) return [{ subject, field: "ip", message: `${JSON.stringify(service.ip)} is not a host address inside network_cidr ${JSON.stringify(network.network_cidr)}` }];
        if (service.ip === network.gateway) return [{ subject, field: "ip", message: `${JSON.stringify(service.ip)} is the network's gateway; choose a free address` }];
        return [];
      });
    },
  },
  { name: "uniqueIp", check: ({ services }) => uniqueAcross(services, "ip", (service) => service.ip) },
  { name: "uniqueVmid", check: ({ services }) => uniqueAcross(services, "vmid", (service) => service.vmid) },
  { name: "uniqueHostname", check: ({ services }) => uniqueAcross(services, "hostname", (service) => service.fqdn) },
  {
    name: "hostnameIsNotAnAddressOrAnotherService",
    // Linear: the lookups are maps built once (a service's twins are found by key, not by scanning every service).
    check: ({ services }) => {
      // A short hostname has no dot, so it can be another service's name but never an address.
      const names = new Set(services.map((service) => service.name));
      const fqdnCount = new Map<string, number>();
      for (const service of services) fqdnCount.set(service.fqdn, (fqdnCount.get(service.fqdn) ?? 0) + 1);
      // Services that share a short name (a list only for those: most short names are one service's).
      const firstWithShortName = new Map<string, ResolvedService>();
      const sharingShortName = new Map<string, ResolvedService[]>();
      for (const service of services) {
        const first = firstWithShortName.get(service.hostName);
        if (first === undefined) firstWithShortName.set(service.hostName, service);
        else {
          const sharing = sharingShortName.get(service.hostName);
          if (sharing) sharing.push(service);
          else sharingShortName.set(service.hostName, [first, service]);
        }
      }
      return services.flatMap((service): Problem[] => {
        const subject = subjectOfService(service.name);
        if (dottedQuad.test(service.hostName) || digitsAndDots.test(service.fqdn)) {
          return [{ subject, field: "hostname", message: `${JSON.stringify(service.fqdn)} looks like an IPv4 address; use a name such as "${service.name}"` }];
        }
        // Another service's full hostname is reported by uniqueHostname already.
        if (fqdnCount.get(service.fqdn)! > 1) return [];
        const other = names.has(service.hostName) ? service.hostName : undefined;
        if (other !== undefined && other !== service.name) {
          return [{ subject, field: "hostname", message: `${JSON.stringify(service.hostName)} is the name of service "${other}", so references to it would be ambiguous; choose another hostname` }];
        }
        // Two services with one short name: blame the one whose short name is not its own service name.
        const shortTwin = sharingShortName.get(service.hostName)?.find(
          (candidate) => candidate !== service && (candidate.hostName === candidate.name || (service.hostName !== service.name && candidate.name < service.name)),
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
      // Only routes of a domain with several routes can collide: most domains have one, and need no matcher name.
      const routesOfDomain = new Map<string, number>();
      for (const service of enabled) for (const route of service.routes) routesOfDomain.set(route.domain, (routesOfDomain.get(route.domain) ?? 0) + 1);
      for (const service of enabled) {
        for (const route of service.routes) {
          if (routesOfDomain.get(route.domain)! < 2) continue;
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
      proxies.slice(0, 1).flatMap((proxy) => {
        const proxyAddresses = addressesOf(proxy);
        return enabled.flatMap((service) =>
          service.routes.flatMap((route): Problem[] => {
            const [host, port] = route.upstream.split(":");
            return proxyAddresses.includes(host) && (port === "80" || port === "443")
              ? [{ subject: subjectOfService(service.name), field: `${route.field}.upstream`, message: `${JSON.stringify(route.upstream)} is the reverse proxy itself, so requests would loop; point it at the service behind the proxy (or remove the route)` }]
              : [];
          }),
        );
      }),
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
          const taken = Number(port) === target.sshPort || kindSpecs[target.kind].tcpPorts.includes(Number(port));
          return taken
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
    name: "customAppOidcClientNamesItsRedirectUris",
    // An error, not a warning: without redirect_uris, a client whose app NixMox does not know (a custom service, or a
    // route no built-in app is named after) gets the route's root URL as its only redirect URI (plan.ts
    // defaultRedirectUri). The provider accepts no other, and apps send users back to a callback path of their own
    // (/oauth2/callback, /auth/oidc/callback, …), so the login would fail after the deploy. An app whose callback is
    // the root writes it out: one line, and the manifest then says it.
    check: ({ enabled }) =>
      enabled.flatMap((service) =>
        service.oidcClients
          .filter((client) => client.settings.redirect_uris === undefined)
          .flatMap((client): Problem[] => {
            const unknown = redirectRoutes(service, client).filter((route) => appOfRoute(service.kind, route.name) === null);
            if (unknown.length === 0) return [];
            const roots = unknown.map((route) => `${route.tls === "off" ? "http" : "https"}://${route.domain}/`);
            const app = service.kind === "custom" ? `"${service.name}" is a custom app` : `route "${unknown[0].name}" serves no built-in ${service.kind} app`;
            return [{
              subject: subjectOfService(service.name),
              field: `${client.field}.oidc.redirect_uris`,
              message: `is required: ${app}, so NixMox does not know where it sends users back after login. Without this list it would allow only ` +
                `${roots.map((root) => JSON.stringify(root)).join(", ")}, and the SSO provider refuses any other callback; list the app's, e.g. redirect_uris = [ "${roots[0]}<its callback path>" ]`,
            }];
          }),
      ),
  },
  {
    name: "acmeNameIsPublic",
    // An error, not a warning: no public CA issues for these names (privateNameSuffixes), so a route with tls = "acme"
    // never gets a trusted certificate; Caddy retries the order without end, or signs with its own CA, trusted by nobody.
    check: ({ enabled }) =>
      enabled.flatMap((service) =>
        service.routes.flatMap((route): Problem[] => {
          const found = route.tls === "acme" ? privateNameSuffix(route.domain) : undefined;
          return found
            ? [{
                subject: subjectOfService(service.name),
                field: `${route.field}.tls`,
                message: `is "acme", but no public CA issues certificates for ${JSON.stringify(route.domain)}: ".${found.suffix}" ${found.why}; ` +
                  'use tls = "internal" (NixMox\'s own CA, which your devices can be set to trust), or a public domain that points at your proxy',
              }]
            : [];
        }),
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
    name: "databaseNameIsNotReserved",
    // Security review N1: an application owning `postgres` owns the superuser's setup connection (escalation to
    // superuser on PostgreSQL 15), one owning `template1` puts its code into every database created after it.
    check: ({ enabled }) =>
      enabled.flatMap((service) =>
        service.databases.flatMap((db) =>
          [db.name, ...db.additional].flatMap((name, index): Problem[] =>
            systemDatabases.includes(name)
              ? [{
                  subject: subjectOfService(service.name),
                  field: index === 0 ? `${db.field}.name` : `${db.field}.additionaldbs[${index - 1}]`,
                  message: `${JSON.stringify(name)} is one of PostgreSQL's own databases (${systemDatabases.join(", ")}), which no application may own; name it after the app, e.g. ${JSON.stringify(db.key === "db" ? service.name : db.key)}`,
                }]
              : [],
          ),
        ),
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
    name: "terraformBlockHoldsNoSecret",
    // interface.terraform is accepted as written (older manifests passed anything to their Terraform modules), so
    // the schema's unknown-field check never sees a secret in it: a plain-text secret is still the one thing refused.
    check: ({ root }) =>
      serviceGroups.flatMap((group) => {
        const entries = root[group];
        if (!entries || typeof entries !== "object" || Array.isArray(entries)) return [];
        return Object.keys(entries).sort().flatMap((name) => {
          const path: PropertyKey[] = [group, name, "interface", "terraform"];
          return secretKeysIn(valueAt(root, path), path).map((at) => ({
            subject: subjectOfService(name),
            field: formatPath(at.slice(2)),
            message: secretHint(at, String(at[at.length - 1])),
          }));
        });
      }),
  },
  {
    name: "noDependencyCycle",
    // Hard edges only: an SSO relation never orders hosts, so it cannot close a cycle (plan.ts).
    check: ({ enabled, edges }) => {
      const cycle = findCycle(enabled, edges);
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

/**
 * Runs every rule. `parsed` is the whole manifest's schema result when it passed: its entries are used as they are;
 * otherwise each entry is parsed on its own (leniently), so the valid ones still take part.
 */
export function crossServiceProblems(raw: unknown, parsed?: Manifest): Problem[] {
  return crossServiceCheck(raw, parsed).problems;
}

/** `crossServiceProblems`, plus what the rules computed (the plan can reuse it). */
export function crossServiceCheck(raw: unknown, parsed?: Manifest): { problems: Problem[]; checked: CheckedServices } {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return { problems: [], checked: { services: [], byAddress: new Map(), edges: [] } };
  const root = raw as Record<string, unknown>;
  const networkResult = parsed ? { success: true as const, data: parsed.network } : parseLeniently(networkSchema, root.network);
  const problems: Problem[] = [];
  const domain = resolveDomain(networkResult.success ? networkResult.data.domain : undefined, () => rawHostnames(root));
  if ("problem" in domain && networkResult.success) problems.push({ subject: "network", field: "domain", message: domain.problem });
  const network: ResolvedNetwork | undefined = networkResult.success && "domain" in domain ? { ...networkResult.data, domain: domain.domain } : undefined;

  const candidates = parseCandidates(root, parsed, network, problems);
  const services = candidates.flatMap((candidate) => (candidate.service ? [candidate.service] : []));
  const enabled = services.filter((service) => service.enable);
  const byAddress = servicesByAddress(services);
  const context: RuleContext = {
    root,
    network,
    candidates,
    byName: new Map(candidates.map((candidate) => [candidate.name, candidate])),
    allNames: candidates.map((candidate) => candidate.name),
    allParsed: candidates.every((candidate) => candidate.service !== undefined),
    services,
    enabled,
    byAddress,
    // The context's address map (disabled services too): findCycle drops an edge to a disabled service.
    edges: inferredEdges(enabled, network?.dns_server, byAddress),
    proxies: enabled.filter((service) => service.kind === "caddy"),
    authentiks: enabled.filter((service) => service.kind === "authentik").map((service) => service.name),
  };
  for (const rule of crossServiceRules) problems.push(...rule.check(context));
  return { problems, checked: { services, byAddress, edges: context.edges } };
}

/**
 * Every service entry, parsed on its own (so the services that are valid still take part in the cross checks) and
 * resolved; problems of the entries' names go to `problems`. Taken from `parsed`, the whole manifest's schema result,
 * when it passed.
 */
function parseCandidates(root: Record<string, unknown>, parsed: Manifest | undefined, network: ResolvedNetwork | undefined, problems: Problem[]): Candidate[] {
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
      candidates.push(candidateOf(name, group, (entries as Record<string, unknown>)[name], parsed, network));
    }
  }
  return candidates;
}

/** One service entry: from the whole manifest's schema result when it passed, else parsed leniently; then resolved. */
function candidateOf(name: string, group: Candidate["group"], raw: unknown, parsed: Manifest | undefined, network: ResolvedNetwork | undefined): Candidate {
  const fromWhole = parsed && Object.hasOwn(parsed[group], name) ? parsed[group][name] : undefined;
  const entry = fromWhole ? { success: true as const, data: fromWhole } : parseLeniently(serviceSchema, raw);
  const service = entry.success && network ? resolveService(name, group, entry.data, network) : undefined;
  const enabled = entry.success ? entry.data.enable : (raw as { enable?: unknown } | undefined)?.enable !== false;
  return { name, group, service, enabled };
}

/** Paths of the keys under `value` that name a secret and hold a value (not an empty string or null). */
function secretKeysIn(value: unknown, path: PropertyKey[]): PropertyKey[][] {
  if (!value || typeof value !== "object") return [];
  return Object.keys(value).sort().flatMap((key) => {
    const inner = (value as Record<string, unknown>)[key];
    const at = [...path, Array.isArray(value) ? Number(key) : key];
    if (secretLikeKey.test(key) && inner !== null && inner !== "" && typeof inner !== "object") return [at];
    return secretKeysIn(inner, at);
  });
}

/** Every service's `hostname` that is a DNS name, whether or not the rest of its entry passed the schema. */
function rawHostnames(root: Record<string, unknown>): string[] {
  return serviceGroups.flatMap((group) => {
    const entries = root[group];
    if (!entries || typeof entries !== "object" || Array.isArray(entries)) return [];
    return Object.values(entries as Record<string, unknown>).flatMap((entry) => {
      const hostname = entry && typeof entry === "object" ? (entry as { hostname?: unknown }).hostname : undefined;
      return typeof hostname === "string" && isDnsName(hostname) ? [hostname] : [];
    });
  });
}

/** The names of the cross-service rules, in the order they report (for tests and docs). */
export const crossServiceRuleNames = crossServiceRules.map((rule) => rule.name);

/**
 * The first cycle of hard edges found (as its edges, in order), or undefined. An iterative depth-first search, so a
 * dependency chain of any length (10,000 services in a row) never exhausts the call stack.
 */
function findCycle(enabled: ResolvedService[], edges: Edge[]): Edge[] | undefined {
  // Services by index in name order: the search starts from them in this order, and follows each one's edges in it.
  const order = [...new Set(enabled.map((service) => service.name))].sort();
  const indexOf = new Map(order.map((name, index) => [name, index]));
  // Each service's hard edges to an enabled service: the first one per target, by target.
  const adjacency: Edge[][] = [];
  for (const edge of edges) {
    const from = indexOf.get(edge.from);
    if (!edge.hard || from === undefined || !indexOf.has(edge.to)) continue;
    const list = (adjacency[from] ??= []);
    if (!list.some((existing) => existing.to === edge.to)) list.push(edge);
  }
  for (const list of adjacency) if (list && list.length > 1) list.sort((a, b) => (a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
  const none: Edge[] = [];
  // 0: not seen, 1: open (on the current path), 2: done.
  const state = new Uint8Array(order.length);
  for (let root = 0; root < order.length; root += 1) {
    if (state[root] !== 0) continue;
    // The stack of nodes and the index of each one's next edge; `path` holds the edges from the root to the top node.
    const nodes = [root];
    const next = [0];
    const path: Edge[] = [];
    state[root] = 1;
    while (nodes.length > 0) {
      const top = nodes.length - 1;
      const edge = (adjacency[nodes[top]] ?? none)[next[top]];
      if (edge === undefined) {
        state[nodes[top]] = 2;
        nodes.pop();
        next.pop();
        path.pop();
        continue;
      }
      next[top] += 1;
      const to = indexOf.get(edge.to)!;
      if (state[to] === 1) {
        // edge.to is on the current path (an ancestor): the cycle starts at the path's edge leaving it.
        const walk = [...path, edge];
        return walk.slice(walk.findIndex((entry) => entry.from === edge.to));
      }
      if (state[to] === 0) {
        state[to] = 1;
        path.push(edge);
        nodes.push(to);
        next.push(0);
      }
    }
  }
  return undefined;
}
