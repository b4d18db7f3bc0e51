/**
 * The one resolve step: a schema-valid service plus the network → the service with every derived default applied.
 * Validation and planning both read services through this, so a default is decided in exactly one place.
 */
import { builtinKinds, type BuiltinKind, type RoutePlan, type ServiceKind } from "./plan-types";
import type { Manifest, ServiceManifest } from "./schema";

/** A route as the plan lists it, before the owning service and the auth provider are attached. */
export type ResolvedRoute = Omit<RoutePlan, "service" | "authProvider"> & {
  /** Manifest path of the route, for error messages: `interface.proxy` or `interface.proxy.<name>`. */
  field: string;
};

export interface ResolvedService {
  name: string;
  group: "core_services" | "services";
  enable: boolean;
  kind: ServiceKind;
  ip: string;
  hostName: string;
  fqdn: string;
  vmid: number;
  version: string | null;
  node: string | null;
  resources: ServiceManifest["resources"];
  onboot: boolean;
  start: boolean;
  stateful: boolean;
  tags: string[];
  ports: number[];
  sshPort: number;
  dependsOn: string[];
  nixosModules: string[];
  routes: ResolvedRoute[];
  auth: ServiceManifest["interface"]["auth"];
  health: ServiceManifest["interface"]["health"];
  db: (Required<Pick<NonNullable<ServiceManifest["interface"]["db"]>, "host" | "port">> & { name: string; owner: string }) | undefined;
  declaredSecrets: ServiceManifest["secrets"];
  /** Secret names NixMox declares itself for this service (see plan.ts `planSecrets`). */
  builtinSecretNames: string[];
}

const routeKeys = ["domain", "path", "upstream", "tls", "authz", "auth", "extra_config"];

function isBuiltin(name: string): name is BuiltinKind {
  return (builtinKinds as readonly string[]).includes(name);
}

export function resolveService(
  name: string,
  group: "core_services" | "services",
  service: ServiceManifest,
  network: Manifest["network"],
): ResolvedService {
  const kind: ServiceKind = service.kind ?? (isBuiltin(name) ? name : "custom");
  const hostname = service.hostname ?? name;
  const fqdn = hostname.includes(".") ? hostname : `${hostname}.${network.domain}`;
  const proxy = service.interface.proxy;
  // A single route is recognised by its route fields; anything else is an attribute set of named routes.
  const single = proxy !== undefined && Object.keys(proxy).some((key) => routeKeys.includes(key));
  const namedRoutes: Array<[string, string, ServiceManifest["interface"]["proxy"] & { domain: string }]> = proxy
    ? single
      ? [["default", "interface.proxy", proxy as never]]
      : Object.keys(proxy).sort().map((routeName) => [routeName, `interface.proxy.${routeName}`, (proxy as Record<string, never>)[routeName]])
    : [];
  const authType = service.interface.auth?.type ?? null;
  const routes = namedRoutes.map(([routeName, field, route]): ResolvedRoute => {
    const r = route as unknown as {
      domain: string; path: string; upstream: string; tls: boolean | "internal" | "acme" | "off";
      authz: boolean; auth?: boolean | "oidc" | "forward_auth" | "none"; extra_config: string;
    };
    let auth: ResolvedRoute["auth"];
    if (r.auth === false || r.auth === "none") auth = null;
    else if (r.auth === "oidc" || r.auth === "forward_auth") auth = r.auth;
    else if (r.auth === true) auth = authType ?? "forward_auth";
    else auth = authType ?? (r.authz ? "forward_auth" : null);
    const tls = r.tls === true ? "internal" : r.tls === false ? "off" : r.tls;
    return { name: routeName, field, domain: r.domain, path: r.path, upstream: r.upstream, tls, auth, extraConfig: r.extra_config };
  });
  const db = service.interface.db;
  const dbName = db?.name ?? name.replace(/-/g, "_");
  const builtinSecretNames = [
    ...(db ? ["db_password"] : []),
    ...(service.interface.auth?.type === "oidc" && service.interface.auth.oidc.client_type === "confidential" ? ["oidc_client_secret"] : []),
    ...(kind === "authentik" ? ["secret_key", "bootstrap_password", "bootstrap_token"] : []),
  ];
  return {
    name,
    group,
    enable: service.enable,
    kind,
    ip: service.ip,
    hostName: fqdn.split(".")[0],
    fqdn,
    vmid: service.vmid,
    version: service.version ?? null,
    node: service.node ?? null,
    resources: service.resources,
    onboot: service.onboot,
    start: service.start,
    stateful: service.stateful ?? kind === "postgresql",
    tags: [...new Set(["nixmox", kind, ...service.tags])].sort(),
    ports: [...new Set(service.ports)].sort((a, b) => a - b),
    sshPort: service.ssh.port,
    dependsOn: service.depends_on,
    nixosModules: service.nixos_modules.map((path) => path.replace(/^\.\//, "")),
    routes,
    auth: service.interface.auth,
    health: service.interface.health,
    db: db ? { host: db.host, port: db.port, name: dbName, owner: db.owner ?? dbName } : undefined,
    declaredSecrets: service.secrets,
    builtinSecretNames,
  };
}

/** The names a manifest may use to point at a service: its ip, fqdn, service name and short host name. */
export function addressesOf(service: ResolvedService): string[] {
  return [service.ip, service.fqdn, service.name, service.hostName];
}

/** Address → service; the first service (in the given order) keeps an address that two could claim. */
export function servicesByAddress(services: ResolvedService[]): Map<string, ResolvedService> {
  const byAddress = new Map<string, ResolvedService>();
  for (const service of services) for (const key of addressesOf(service)) if (!byAddress.has(key)) byAddress.set(key, service);
  return byAddress;
}

export interface Edge {
  from: string;
  to: string;
  reason: string;
}

/**
 * Declared and inferred dependency edges ("from" deploys after "to"), with a reason each.
 * Inferred: the database host, the auth provider, a forward-auth upstream, and the manifest's DNS server
 * (every host resolves names through it while it rebuilds, so it must be up first).
 */
export function inferredEdges(services: ResolvedService[], dnsServer: string | undefined): Edge[] {
  const byAddress = servicesByAddress(services);
  const authentiks = services.filter((service) => service.kind === "authentik").map((service) => service.name);
  const edges: Edge[] = [];
  const dnsService = dnsServer === undefined ? undefined : services.find((service) => service.ip === dnsServer);
  for (const service of services) {
    const add = (to: string | undefined, reason: string) => {
      if (to !== undefined && to !== service.name) edges.push({ from: service.name, to, reason });
    };
    for (const dependency of service.dependsOn) add(dependency, "depends_on");
    if (service.db) {
      const server = byAddress.get(service.db.host)?.name;
      add(server, `interface.db.host is ${server}'s address`);
    }
    const provider = service.auth?.provider ?? (authentiks.length === 1 ? authentiks[0] : undefined);
    if (service.auth) add(provider, "interface.auth.provider");
    const forwardAuth = service.routes.some((route) => route.auth === "forward_auth");
    if (forwardAuth && !service.auth) add(provider, "forward_auth route needs the SSO provider");
    const upstream = service.auth?.forward_auth_upstream;
    if (upstream) {
      const target = byAddress.get(upstream.split(":")[0])?.name;
      add(target, "interface.auth.forward_auth_upstream points at it");
    }
    if (dnsService) add(dnsService.name, `resolves names through ${dnsService.name} (network.dns_server)`);
  }
  return edges;
}
