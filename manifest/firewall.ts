/**
 * Who may open each port of a host: the gate behind forward auth. Pure, called by the plan.
 *
 * A port is open to exactly the hosts that use it, never to the whole LAN unless the manifest says so:
 *
 * | the port exists for                                           | open to                                   |
 * |---------------------------------------------------------------|-------------------------------------------|
 * | a route (its upstream port) or a forward-auth outpost          | the proxy host(s)                         |
 * | a database (`interface.db.port` on the PostgreSQL host)        | that database's clients                   |
 * | Loki on a monitoring host (its push endpoint)                   | every host of the homelab                 |
 * | `ports` of a service that others list in `depends_on`, used by nothing above | those services               |
 * | the kind's own (proxy 80/443, DNS, SMTP), the LDAP outpost, an authentik without a route, `public_ports` | every address |
 * | the RADIUS outpost (UDP)                                       | `network.outposts.radius.client_networks` |
 * | anything else (an app without a route, a `ports` entry nothing uses) | only the host itself (a plan warning says how to open it) |
 *
 * So `http://<app ip>:<port>` is no way around the proxy's forward auth, and an app without a login is reachable
 * only through its route. The NixOS side renders these as nftables rules (nixos/lib/firewall.nix).
 */
import { appOfRoute, kindSpecs } from "./kinds";
import type { DatabasePlan, EdgePlan, FirewallRulePlan, OutpostPlan, RoutePlan, ServiceKind } from "./plan-types";

/** The outposts' ports on the authentik host (plan.ts ldapOutpostPort, TCP; radiusOutpostPort, UDP), passed in by the plan. */
export interface OutpostPorts {
  ldap: number;
  radius: number;
}

export interface FirewallService {
  name: string;
  kind: ServiceKind;
  ip: string;
  /** Every TCP port the host listens on (the plan's ports). */
  ports: number[];
  udpPorts: number[];
  publicPorts: number[];
}

export interface FirewallInput {
  /** The planned services, sorted by name. */
  services: FirewallService[];
  /** The manifest's own `ports` of a service. */
  declaredPorts: (service: string) => number[];
  /** The service an address (ip, full or short hostname, service name) names: the plan's lookup (resolve.ts servicesByAddress). */
  serviceAt: (address: string) => string | undefined;
  routes: RoutePlan[];
  databases: DatabasePlan[];
  outposts: OutpostPlan[];
  edges: EdgePlan[];
  outpostPorts: OutpostPorts;
}

export interface FirewallPlan {
  rules: Map<string, FirewallRulePlan[]>;
  /** Ports nobody but their host can reach, with how to open them. */
  warnings: string[];
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function hostPort(value: string): { host: string; port: number } {
  const index = value.lastIndexOf(":");
  return { host: value.slice(0, index), port: Number(value.slice(index + 1)) };
}

/** Port → who may reach it (null: everyone) and why, for one host. */
type PortAccess = Map<number, { from: Set<string> | null; reasons: Set<string> }>;

/** Opens `port` of `service` (when it listens there) to `from` (null: everyone; never the host itself), for `reason`. */
function allow(tcp: PortAccess, service: FirewallService, port: number, from: readonly string[] | null, reason: string): void {
  if (!service.ports.includes(port)) return;
  const entry = tcp.get(port) ?? { from: new Set<string>(), reasons: new Set<string>() };
  if (from === null) entry.from = null;
  else if (entry.from !== null) for (const address of from) if (address !== service.ip) entry.from.add(address);
  entry.reasons.add(reason);
  tcp.set(port, entry);
}

/** What a lookup of a host with nothing listed gives (one shared empty list: this runs for every host). */
const none: readonly never[] = [];

/** What `hostRules` looks up about the other hosts, built once by `planFirewall`. */
interface HostLookups {
  input: FirewallInput;
  proxies: string[];
  everyHost: string[];
  servicesByName: Map<string, FirewallService>;
  routesTo: Map<string, Array<{ port: number; reason: string }>>;
  routedServices: Set<string>;
  lokiRoutes: Map<string, FirewallInput["routes"][number]>;
  databasesOn: Map<string, FirewallInput["databases"]>;
  consumersOf: Map<string, string[]>;
  outpostsOf: Map<string, FirewallInput["outposts"]>;
}

/** One host's rules, sorted by protocol and port; a port open to no other host adds a warning. */
function hostRules(service: FirewallService, lookups: HostLookups, warnings: string[]): FirewallRulePlan[] {
  const { input, proxies, everyHost, servicesByName, routesTo, routedServices, lokiRoutes, databasesOn, consumersOf, outpostsOf } = lookups;
  // port → sources (null: everyone) and reasons
  const tcp: PortAccess = new Map();
  const outposts = outpostsOf.get(service.name) ?? none;

  for (const port of kindSpecs[service.kind].tcpPorts) allow(tcp, service, port, null, `${service.kind} port`);
  for (const port of service.publicPorts) allow(tcp, service, port, null, "public_ports");
  if (outposts.some((outpost) => outpost.type === "ldap")) allow(tcp, service, input.outpostPorts.ldap, null, "LDAP outpost");
  for (const routed of routesTo.get(service.name) ?? none) allow(tcp, service, routed.port, proxies, routed.reason);
  // Without a route, users' browsers log in at the authentik host itself (render/host-data.ts oidcEndpoints).
  if (service.kind === "authentik" && !routedServices.has(service.name)) {
    allow(tcp, service, kindSpecs.authentik.apps.authentik.port, null, "authentik without a route (browsers log in here)");
  }
  for (const db of databasesOn.get(service.name) ?? none) allow(tcp, service, db.port, [db.clientIp], `database ${db.name} (${db.service})`);
  if (service.kind === "monitoring") {
    const lokiRoute = lokiRoutes.get(service.name);
    allow(tcp, service, lokiRoute ? hostPort(lokiRoute.upstream).port : kindSpecs.monitoring.apps.loki.port, everyHost, "Loki push (every homelab host)");
  }
  // The manifest's own ports that nothing above explains are an API for the services that depend_on this one. A
  // route's or a database's port stays with the proxy or the database's clients.
  const consumers = consumersOf.get(service.name);
  if (consumers) {
    const apiPorts = input.declaredPorts(service.name).filter((port) => !tcp.has(port));
    for (const name of consumers) {
      const consumer = servicesByName.get(name);
      if (consumer) for (const port of apiPorts) allow(tcp, service, port, [consumer.ip], `depends_on (${consumer.name})`);
    }
  }

  const list: FirewallRulePlan[] = [];
  for (const port of service.ports) {
    const entry = tcp.get(port);
    if (!entry) {
      warnings.push(
        `service "${service.name}": port ${port} is open to no other host (no route, database or depends_on uses it); route it through the proxy, or list it in public_ports to open it to the LAN`,
      );
      list.push({ protocol: "tcp", port, from: [], reasons: ["nothing uses it: only this host"] });
      continue;
    }
    list.push({ protocol: "tcp", port, from: entry.from === null ? null : [...entry.from].sort(byString), reasons: [...entry.reasons].sort(byString) });
  }
  for (const port of service.udpPorts) {
    const radius = outposts.find((outpost) => outpost.type === "radius");
    if (radius?.type === "radius" && port === input.outpostPorts.radius) {
      const everywhere = radius.clientNetworks.includes("0.0.0.0/0");
      list.push({ protocol: "udp", port, from: everywhere ? null : [...radius.clientNetworks].sort(byString), reasons: ["RADIUS outpost"] });
    } else {
      list.push({ protocol: "udp", port, from: null, reasons: [`${service.kind} port`] });
    }
  }
  return list.sort((a, b) => byString(a.protocol, b.protocol) || a.port - b.port);
}

export function planFirewall(input: FirewallInput): FirewallPlan {
  const proxies = input.services.filter((service) => service.kind === "caddy").map((service) => service.ip);
  const everyHost = input.services.map((service) => service.ip);
  const warnings: string[] = [];
  const rules = new Map<string, FirewallRulePlan[]>();
  // Indexes, so the plan stays linear in the number of services (bench/manifest-scale.ts).
  const servicesByName = new Map(input.services.map((service) => [service.name, service]));
  const targetOf = (upstream: string) => input.serviceAt(hostPort(upstream).host);
  const routesTo = new Map<string, Array<{ port: number; reason: string }>>();
  const routedServices = new Set<string>();
  const lokiRoutes = new Map<string, FirewallInput["routes"][number]>();
  for (const route of input.routes) {
    routedServices.add(route.service);
    const target = targetOf(route.upstream);
    if (target !== undefined) pushTo(routesTo, target, { port: hostPort(route.upstream).port, reason: `route ${route.domain}${route.path === "/" ? "" : route.path}` });
    if (route.forwardAuthUpstream !== null) {
      const outpost = targetOf(route.forwardAuthUpstream);
      if (outpost !== undefined) pushTo(routesTo, outpost, { port: hostPort(route.forwardAuthUpstream).port, reason: "forward-auth outpost" });
    }
    const owner = servicesByName.get(route.service);
    if (owner?.kind === "monitoring" && target === owner.name && appOfRoute(owner.kind, route.name) === "loki" && !lokiRoutes.has(owner.name)) lokiRoutes.set(owner.name, route);
  }
  const databasesOn = new Map<string, FirewallInput["databases"]>();
  for (const db of input.databases) pushTo(databasesOn, db.server, db);
  const consumersOf = new Map<string, string[]>();
  for (const edge of input.edges) if (edge.reasons.includes("depends_on")) pushTo(consumersOf, edge.to, edge.from);
  const outpostsOf = new Map<string, FirewallInput["outposts"]>();
  for (const outpost of input.outposts) pushTo(outpostsOf, outpost.provider, outpost);

  const lookups: HostLookups = { input, proxies, everyHost, servicesByName, routesTo, routedServices, lokiRoutes, databasesOn, consumersOf, outpostsOf };
  for (const service of input.services) rules.set(service.name, hostRules(service, lookups, warnings));
  return { rules, warnings };
}
