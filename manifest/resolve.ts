/**
 * The one resolve step: a schema-valid service plus the network → the service with every derived default applied.
 * Validation and planning both read services through this, so a default is decided in exactly one place.
 */
import { appOfRoute, kindSpecs } from "./kinds";
import { builtinKinds, type BuiltinKind, type RoutePlan, type ServiceKind } from "./plan-types";
import type { Manifest, ProxyRoute, ServiceManifest } from "./schema";

/** The manifest's network with its domain decided (given, or derived by `resolveDomain`). */
export type ResolvedNetwork = Manifest["network"] & { domain: string };

/** The homelab's domain: `network.domain`, else derived from the services' full hostnames; or why it cannot be. */
export type DomainResolution = { domain: string; derivedFrom: string[] | null } | { problem: string };

/**
 * `network.domain` when the manifest sets it; otherwise the suffix that every full hostname (one with a dot) shares
 * after its first label: dns.nixmox.lan and vault.nixmox.lan give "nixmox.lan" (older NixMox manifests had no
 * network.domain and named every host in full). No full hostname, or no shared suffix, is a problem naming the fix.
 * `hostnames` is called only when the domain has to be derived.
 */
export function resolveDomain(domain: string | undefined, hostnames: () => Iterable<string>): DomainResolution {
  if (domain !== undefined) return { domain, derivedFrom: null };
  const qualified = [...new Set([...hostnames()].filter((name) => name.includes(".")))].sort();
  const fix = 'set network.domain to the domain your hosts share, e.g. network.domain = "home.lab"';
  if (qualified.length === 0) {
    return { problem: `is required: no service has a full hostname (such as "dns.home.lab") to derive it from; ${fix}` };
  }
  let suffix = qualified[0].split(".").slice(1);
  for (const name of qualified) {
    const labels = name.split(".").slice(1);
    let shared = 0;
    while (shared < suffix.length && shared < labels.length && suffix[suffix.length - 1 - shared] === labels[labels.length - 1 - shared]) shared += 1;
    suffix = suffix.slice(suffix.length - shared);
  }
  if (suffix.length === 0) {
    const examples = qualified.slice(0, 3).map((name) => JSON.stringify(name)).join(", ");
    return { problem: `is required: the services' hostnames share no domain suffix (${examples}${qualified.length > 3 ? ", …" : ""}) to derive it from; ${fix}` };
  }
  return { domain: suffix.join("."), derivedFrom: qualified };
}

type AuthSettings = NonNullable<ServiceManifest["interface"]["auth"]>;

/** A route as the plan lists it, before the owning service and the auth provider are attached. */
export type ResolvedRoute = Omit<RoutePlan, "service" | "authProvider" | "forwardAuthUpstream" | "oidcClient" | "app"> & {
  /** Manifest path of the route, for error messages: `interface.proxy` or `interface.proxy.<name>`. */
  field: string;
  /** The route's own auth object (`interface.proxy.<name>.auth = { type; provider; … }`), or null: the service's applies. */
  ownAuth: AuthSettings | null;
  /**
   * Why `auth` is forward_auth although the manifest did not say so (routeAuth), for messages; null: as written.
   * "no-login": the app has no login of its own; "no-oidc": the service's oidc was inherited by an app that cannot do OIDC.
   */
  authDefault: "no-login" | "no-oidc" | null;
};

/** One database a service asks for (`interface.db`, or an entry of `interface.dbs`), defaults applied. */
export interface ResolvedDatabase {
  /** "db" for `interface.db`, else the `interface.dbs` entry name. */
  key: string;
  /** Manifest path, for error messages: `interface.db` or `interface.dbs.<key>`. */
  field: string;
  host: string;
  port: number;
  name: string;
  owner: string;
  /** More databases owned by the same role. */
  additional: string[];
  /** True when `additional` is the default log database of an *arr app (the manifest lists none). */
  additionalDefaulted: boolean;
  /** The secret holding the owner's password: `db_password`, or `<key>_db_password` for an `interface.dbs` entry. */
  passwordSecret: string;
}

/** One OIDC client: the service's (`interface.auth`) or a route's own. */
export interface ResolvedOidcClient {
  /** null for the service's client, else the route name. */
  route: string | null;
  field: string;
  provider: string | undefined;
  settings: AuthSettings["oidc"];
  /** Default client id and Authentik application slug: the service name, or "<service>-<route>". */
  defaultId: string;
  /** Secret holding the client secret (confidential clients), else null. */
  secretName: string | null;
}

export interface ResolvedService {
  name: string;
  group: "core_services" | "services";
  enable: boolean;
  kind: ServiceKind;
  ip: string;
  hostName: string;
  fqdn: string;
  /** The manifest's vmid; null: Proxmox assigns one at the first deploy. */
  vmid: number | null;
  version: string | null;
  node: string | null;
  resources: ServiceManifest["resources"];
  onboot: boolean;
  start: boolean;
  stateful: boolean;
  tags: string[];
  /** The ports the manifest lists (the plan adds the ones the kind and the routes need). */
  ports: number[];
  /** The manifest's public_ports: open to every address. */
  publicPorts: number[];
  sshPort: number;
  dependsOn: string[];
  nixosModules: string[];
  /** Manifest `state_version`, null when omitted. */
  stateVersion: string | null;
  routes: ResolvedRoute[];
  auth: ServiceManifest["interface"]["auth"];
  /** The service's OIDC client and every route's own, service first, then by route name. */
  oidcClients: ResolvedOidcClient[];
  health: ServiceManifest["interface"]["health"];
  databases: ResolvedDatabase[];
  declaredSecrets: ServiceManifest["secrets"];
  /** Secret names NixMox declares itself for this service (see plan.ts `planSecrets`). */
  builtinSecretNames: string[];
}

const routeKeys = ["domain", "path", "upstream", "tls", "authz", "auth", "extra_config"];

/** True when `proxy` is one route (it has a route field) rather than an attribute set of named routes. */
export function isSingleRoute(proxy: object): boolean {
  return Object.keys(proxy).some((key) => routeKeys.includes(key));
}

function isBuiltin(name: string): name is BuiltinKind {
  return (builtinKinds as readonly string[]).includes(name);
}

export function resolveService(
  name: string,
  group: "core_services" | "services",
  service: ServiceManifest,
  network: ResolvedNetwork,
): ResolvedService {
  const kind: ServiceKind = service.kind ?? (isBuiltin(name) ? name : "custom");
  const hostname = service.hostname ?? name;
  const fqdn = hostname.includes(".") ? hostname : `${hostname}.${network.domain}`;
  const routes = resolveRoutes(kind, service);
  const oidcClients = resolveOidcClients(name, service, routes);
  const databases = resolveDatabases(name, kind, service);
  const serviceAuth = service.interface.auth;
  const builtinSecretNames = builtinSecretNamesOf(name, kind, { routes, oidcClients, databases }, network);
  const dot = fqdn.indexOf(".");
  return {
    name,
    group,
    enable: service.enable,
    kind,
    ip: service.ip,
    hostName: dot === -1 ? fqdn : fqdn.slice(0, dot),
    fqdn,
    vmid: service.vmid ?? null,
    version: service.version ?? null,
    node: service.node ?? null,
    resources: service.resources,
    onboot: service.onboot,
    start: service.start,
    stateful: service.stateful ?? kind === "postgresql",
    tags: [...new Set(["nixmox", kind, ...service.tags])].sort(),
    ports: sortedNumbers(service.ports),
    publicPorts: sortedNumbers(service.public_ports),
    sshPort: service.ssh.port,
    dependsOn: service.depends_on,
    nixosModules: service.nixos_modules.map((path) => (path.startsWith("./") ? path.slice(2) : path)),
    stateVersion: service.state_version ?? null,
    routes,
    auth: serviceAuth,
    oidcClients,
    health: service.interface.health,
    databases,
    declaredSecrets: service.secrets,
    builtinSecretNames,
  };
}

type DbSettings = NonNullable<ServiceManifest["interface"]["db"]>;

/** The secret names NixMox declares itself for a service (see plan.ts `planSecrets`), in this order. */
function builtinSecretNamesOf(
  name: string,
  kind: ServiceKind,
  { routes, oidcClients, databases }: { routes: ResolvedRoute[]; oidcClients: ResolvedOidcClient[]; databases: ResolvedDatabase[] },
  network: ResolvedNetwork,
): string[] {
  const radius = network.outposts.radius;
  const runsRadius = kind === "authentik" && radius !== undefined && (radius.provider === undefined || radius.provider === name);
  // pgAdmin runs on a pgadmin host, and on a PostgreSQL host that has a route (the original NixMox layout).
  const runsPgadmin = kind === "pgadmin" || (kind === "postgresql" && routes.length > 0);
  // Pushed one by one: this runs for every service (linear at 10,000 services, bench/manifest-scale.ts).
  const names: string[] = [];
  for (const db of databases) names.push(db.passwordSecret);
  for (const client of oidcClients) if (client.secretName) names.push(client.secretName);
  if (kind === "authentik") names.push("secret_key", "bootstrap_password", "bootstrap_token");
  if (runsRadius) names.push("radius_shared_secret");
  if (kind === "nextcloud") names.push("admin_password");
  // Keys an app encrypts its data with: stack secrets, so a restore of its data to a new container can read it (D2).
  for (const entry of restorableSecrets[kind] ?? []) names.push(entry.name);
  if (runsPgadmin) names.push("pgadmin_password");
  // pgAdmin on a PostgreSQL host logs in to it as its own role (nixos/lib/postgresql.nix adminSetup).
  if (runsPgadmin && kind === "postgresql") names.push("pgadmin_db_password");
  return names;
}

/** The service's routes: its one route (`interface.proxy`), or each named route, sorted by name. */
function resolveRoutes(kind: ServiceKind, service: ServiceManifest): ResolvedRoute[] {
  const proxy = service.interface.proxy;
  const namedRoutes: Array<[string, string, ProxyRoute]> = proxy
    ? isSingleRoute(proxy)
      ? [["default", "interface.proxy", proxy as ProxyRoute]]
      : Object.keys(proxy).sort().map((routeName) => [routeName, `interface.proxy.${routeName}`, (proxy as Record<string, ProxyRoute>)[routeName]])
    : [];
  const authType = service.interface.auth?.type ?? null;
  return namedRoutes.map(([routeName, field, route]): ResolvedRoute => {
    const own = typeof route.auth === "object" ? route.auth : null;
    const { auth, authDefault } = own ? { auth: own.type, authDefault: null } : routeAuth(kind, routeName, route, authType);
    const tls = route.tls === true ? "internal" : route.tls === false ? "off" : route.tls;
    return { name: routeName, field, domain: route.domain, path: route.path, upstream: route.upstream, tls, auth, extraConfig: route.extra_config, ownAuth: own, authDefault };
  });
}

/** The service's OIDC client (interface.auth), then each route's own, in route order. */
function resolveOidcClients(name: string, service: ServiceManifest, routes: ResolvedRoute[]): ResolvedOidcClient[] {
  const oidcClients: ResolvedOidcClient[] = [];
  const serviceAuth = service.interface.auth;
  if (serviceAuth?.type === "oidc") {
    oidcClients.push({
      route: null,
      field: "interface.auth",
      provider: serviceAuth.provider,
      settings: serviceAuth.oidc,
      defaultId: name,
      secretName: serviceAuth.oidc.client_type === "confidential" ? "oidc_client_secret" : null,
    });
  }
  for (const route of routes) {
    if (route.ownAuth?.type !== "oidc") continue;
    oidcClients.push({
      route: route.name,
      field: `${route.field}.auth`,
      provider: route.ownAuth.provider,
      settings: route.ownAuth.oidc,
      defaultId: `${name}-${route.name}`,
      secretName: route.ownAuth.oidc.client_type === "confidential" ? `${route.name}_oidc_client_secret` : null,
    });
  }
  return oidcClients;
}

/** The service's databases: `interface.db`, then each `interface.dbs` entry by name, defaults applied. */
function resolveDatabases(name: string, kind: ServiceKind, service: ServiceManifest): ResolvedDatabase[] {
  const databases: ResolvedDatabase[] = [];
  const databaseUse = kindSpecs[kind].databases;
  const addDatabase = (key: string, field: string, db: DbSettings, defaultName: string, passwordSecret: string) => {
    const dbName = db.name ?? defaultName;
    // An *arr app keeps its logs in a second database; older manifests name only the main one: "<name>-log".
    const logDefault = databaseUse.by === "by-entry" && databaseUse.logDatabase.includes(key) && db.additionaldbs.length === 0;
    const additional = logDefault ? [`${dbName}-log`] : [...db.additionaldbs];
    databases.push({ key, field, host: db.host, port: db.port, name: dbName, owner: db.owner ?? dbName, additional, additionalDefaulted: logDefault, passwordSecret });
  };
  if (service.interface.db) addDatabase("db", "interface.db", service.interface.db, name, "db_password");
  if (service.interface.dbs) {
    for (const key of Object.keys(service.interface.dbs).sort()) addDatabase(key, `interface.dbs.${key}`, service.interface.dbs[key], key, `${key}_db_password`);
  }
  return databases;
}


/** The distinct numbers of `values`, ascending (a new array; most services list none or one). */
function sortedNumbers(values: number[]): number[] {
  return values.length < 2 ? [...values] : [...new Set(values)].sort((a, b) => a - b);
}

/**
 * Secrets an app would otherwise generate on its host and keep beside its data: the keys it encrypts stored data with,
 * and the first admin password. They are stack secrets, generated by NixMox when the stack sets none and delivered
 * like the others (review D2), so restoring the app's database to a new container needs nothing from the old one.
 * Per kind; docs/restorable-secrets.md lists them with what each protects.
 */
export const restorableSecrets: Partial<Record<ServiceKind, Array<{ name: string; description: string }>>> = {
  monitoring: [
    { name: "grafana_secret_key", description: "Grafana's secret_key (encrypts data-source passwords and tokens in its database)" },
    { name: "grafana_admin_password", description: "password of Grafana's local admin account" },
  ],
  forgejo: [{ name: "secret_key", description: "Forgejo's SECRET_KEY (encrypts two-factor secrets and stored credentials in its database)" }],
};

/**
 * The auth of a route without an auth object of its own. `auth = false`/"none" and an explicit "oidc"/"forward_auth"
 * are taken as written. Otherwise the route inherits the service's interface.auth type (forward_auth when only
 * `authz` asks for a login), with two exceptions for the built-in app it serves (kinds.ts `login`):
 * - an app that cannot be an OIDC client does not inherit "oidc", which would leave its route open: the service's SSO
 *   reaches it as forward auth through the same provider;
 * - an app with no login of its own (Prometheus, Alertmanager, Loki, Transmission's RPC) gets forward auth through the
 *   manifest's authentik by default, so a route never opens it to everyone who reaches the proxy (review N3).
 *   Validation refuses the route when there is no authentik to ask, naming both fixes.
 */
function routeAuth(kind: ServiceKind, routeName: string, route: ProxyRoute, serviceAuth: "oidc" | "forward_auth" | null): Pick<ResolvedRoute, "auth" | "authDefault"> {
  if (route.auth === false || route.auth === "none") return { auth: null, authDefault: null };
  if (route.auth === "oidc" || route.auth === "forward_auth") return { auth: route.auth, authDefault: null };
  const app = appOfRoute(kind, routeName);
  const login = app === null ? null : kindSpecs[kind].apps[app].login;
  const inherited = route.auth === true ? serviceAuth ?? "forward_auth" : serviceAuth ?? (route.authz ? "forward_auth" : null);
  if (inherited === "oidc" && login !== null && login !== "oidc") return { auth: "forward_auth", authDefault: "no-oidc" };
  if (inherited === null && login === "none") return { auth: "forward_auth", authDefault: "no-login" };
  return { auth: inherited, authDefault: null };
}

/**
 * The routes an OIDC client's default redirect URIs (and its launch URL) come from: the service's client logs in on
 * its oidc routes that have no client of their own, else on every route of the service; a route's client on that route.
 */
export function redirectRoutes(service: ResolvedService, client: ResolvedOidcClient): ResolvedRoute[] {
  if (client.route !== null) return service.routes.filter((route) => route.name === client.route);
  const own = service.routes.filter((route) => route.auth === "oidc" && route.ownAuth === null);
  return own.length > 0 ? own : service.routes;
}

/** The names a manifest may use to point at a service: its ip, fqdn, service name and short host name. */
export function addressesOf(service: ResolvedService): string[] {
  return [service.ip, service.fqdn, service.name, service.hostName];
}

/**
 * Address → service, the same for validation and the plan whatever order the caller has: a service's name always
 * resolves to it, then IPs, full hostnames and short host names, each by service name. An address two services
 * could claim goes to the first of these; validation refuses such manifests (hostnameIsNotAnAddressOrAnotherService).
 */
export function servicesByAddress(services: ResolvedService[]): Map<string, ResolvedService> {
  const byAddress = new Map<string, ResolvedService>();
  // The plan passes its services sorted already; sorting again would be the costliest step at 10,000 services.
  const sorted = services.every((service, index) => index === 0 || services[index - 1].name < service.name);
  const byName = sorted ? services : [...services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const service of byName) if (!byAddress.has(service.name)) byAddress.set(service.name, service);
  for (const service of byName) if (!byAddress.has(service.ip)) byAddress.set(service.ip, service);
  for (const service of byName) if (!byAddress.has(service.fqdn)) byAddress.set(service.fqdn, service);
  for (const service of byName) if (!byAddress.has(service.hostName)) byAddress.set(service.hostName, service);
  return byAddress;
}

export interface Edge {
  from: string;
  to: string;
  reason: string;
  /**
   * Hard edges order hosts: `from` boots only after `to` is healthy (declared depends_on, its database host,
   * the DNS server). Soft edges are SSO relations: a client does not need its provider to boot, so they never
   * order hosts; the SSO objects wait for both ends instead.
   */
  hard: boolean;
}

/**
 * What validation computed about the services that passed the schema (rules.ts `crossServiceCheck`), which the plan
 * reuses instead of computing it again (plan.ts `planManifest`'s `resolved`): the services, resolved; the address
 * lookup over all of them (`servicesByAddress`); and the dependency edges of the enabled ones over that lookup.
 */
export interface CheckedServices {
  services: ResolvedService[];
  byAddress: Map<string, ResolvedService>;
  edges: Edge[];
}

/** The SSO provider of an auth setting: the one it names, or the manifest's only authentik service. */
export function authProviderOf(named: string | undefined, authentiks: string[]): string | undefined {
  return named ?? (authentiks.length === 1 ? authentiks[0] : undefined);
}

/**
 * Declared and inferred dependency edges ("from" deploys after "to"), with a reason each.
 * Hard, inferred: the database hosts, and the manifest's DNS server (every host resolves names through it while
 * it rebuilds, so it must be up first). Soft: the auth provider of the service and of each route, a forward-auth
 * upstream.
 */
export function inferredEdges(services: ResolvedService[], dnsServer: string | undefined, byAddress = servicesByAddress(services)): Edge[] {
  const authentiks = services.filter((service) => service.kind === "authentik").map((service) => service.name);
  const edges: Edge[] = [];
  const dnsService = dnsServer === undefined ? undefined : services.find((service) => service.ip === dnsServer);
  // One reason string for every service's DNS edge (10,000 services would otherwise build 10,000 equal strings).
  const dns = dnsService ? { name: dnsService.name, reason: `resolves names through ${dnsService.name} (network.dns_server)` } : undefined;
  for (const service of services) serviceEdges(service, { byAddress, authentiks, dns }, edges);
  return edges;
}

/** The edges from one service, appended to `edges` (a function of its own: it runs for every service). */
function serviceEdges(
  service: ResolvedService,
  { byAddress, authentiks, dns }: { byAddress: Map<string, ResolvedService>; authentiks: string[]; dns: { name: string; reason: string } | undefined },
  edges: Edge[],
): void {
  const add = (to: string | undefined, reason: string, hard: boolean) => {
    if (to !== undefined && to !== service.name) edges.push({ from: service.name, to, reason, hard });
  };
  for (const dependency of service.dependsOn) add(dependency, "depends_on", true);
  for (const db of service.databases) {
    const server = byAddress.get(db.host)?.name;
    add(server, `${db.field}.host is ${server}'s address`, true);
  }
  if (service.auth) add(authProviderOf(service.auth.provider, authentiks), "interface.auth.provider", false);
  for (const route of service.routes) {
    if (route.ownAuth) add(authProviderOf(route.ownAuth.provider, authentiks), `${route.field}.auth.provider`, false);
    else if (route.auth === "forward_auth" && !service.auth) add(authProviderOf(undefined, authentiks), "forward_auth route needs the SSO provider", false);
  }
  const upstream = service.auth?.forward_auth_upstream;
  if (upstream) add(byAddress.get(upstream.split(":")[0])?.name, "interface.auth.forward_auth_upstream points at it", false);
  for (const route of service.routes) {
    const routeUpstream = route.ownAuth?.forward_auth_upstream;
    if (routeUpstream) add(byAddress.get(routeUpstream.split(":")[0])?.name, `${route.field}.auth.forward_auth_upstream points at it`, false);
  }
  // A builder deploys before every host it builds (the DNS service too): it also asks the upstream forwarders.
  if (dns && service.kind !== "builder") add(dns.name, dns.reason, true);
}
