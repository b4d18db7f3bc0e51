/**
 * Manifest → plan: pure functions, no Pulumi and no I/O. The plan is sorted and complete, so everything
 * downstream (render, components, CLI views) is deterministic for the same manifest.
 */
import { planBuild, planCaches } from "./build-plan";
import { planFirewall } from "./firewall";
import { appOfRoute, kindSpecs, postgresqlDefaultPort } from "./kinds";
import type {
  AuthClientPlan,
  DatabasePlan,
  DnsRecordPlan,
  EdgePlan,
  HealthCheckSpec,
  HealthPlan,
  OutpostPlan,
  Plan,
  RoutePlan,
  SecretPlan,
  ServiceKind,
  ServicePlan,
} from "./plan-types";
import { planAdvice } from "./advice";
import { addressesOf, authProviderOf, inferredEdges, redirectRoutes, resolveDomain, resolveService, restorableSecrets, servicesByAddress, type CheckedServices, type Edge, type ResolvedNetwork, type ResolvedRoute, type ResolvedService } from "./resolve";
import type { Manifest } from "./schema";

/** Root-only directory on every host that holds secret files; persistent, outside the Nix store. */
export const secretsDir = "/var/lib/nixmox/secrets";

/** Port of Authentik's embedded outpost, which answers forward-auth requests. */
export const authentikOutpostPort = 9000;

/** Ports of the LDAP (TCP) and RADIUS (UDP) outposts on the authentik host (authentik's defaults, unprivileged). */
export const ldapOutpostPort = 3389;
export const radiusOutpostPort = 1812;

/** Root-only directory on the authentik host holding the outposts' API tokens (outside the secrets push's directory,
 * whose undeclared files it removes). */
export const outpostTokenDir = "/var/lib/nixmox/outposts";

/** The PostgreSQL role pgAdmin logs in as on its own PostgreSQL host (over loopback, with the secret pgadmin_db_password). */
export const pgadminRole = "pgadmin";

/** The oneshot unit on the PostgreSQL host that (re)sets role passwords from the secret files. */
export const postgresPasswordsUnit = "nixmox-postgresql-passwords.service";

/** Where the OIDC provider sends users back: the app's callback (kinds.ts) on the route's origin, else the origin. */
function defaultRedirectUri(kind: ServiceKind, route: ResolvedRoute, origin: string, provider: string): string {
  const app = appOfRoute(kind, route.name);
  const callback = app === null ? "/" : kindSpecs[kind].apps[app].callback.replace("{provider}", provider);
  return `${origin}${callback}`;
}

/** Health timings the manifest sets for every service (health_check_timeout, retry_attempts, retry_delay). */
export interface HealthDefaults {
  intervalSeconds: number;
  retries: number;
  startPeriodSeconds: number;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Appends to the list stored under `key`, creating it on first use. */
export function pushTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function prefixLength(cidr: string): number {
  return Number(cidr.split("/")[1]);
}

function planHealth(service: ResolvedService, defaults: HealthDefaults): HealthPlan {
  const health = service.health;
  const checks: HealthCheckSpec[] = kindSpecs[service.kind].units.map((unit) => ({ name: `systemd:${unit}`, phase: "both", kind: "systemd", unit }));
  for (const check of kindSpecs[service.kind].healthCommands ?? []) checks.push({ ...check, kind: "command" });
  if (health?.startup) checks.push({ name: "startup", phase: "startup", kind: "command", command: health.startup });
  if (health?.liveness) checks.push({ name: "liveness", phase: "liveness", kind: "command", command: health.liveness });
  for (const check of health?.checks ?? []) {
    switch (check.type) {
      case "systemd":
        checks.push({ name: `systemd:${check.unit}`, phase: check.phase, kind: "systemd", unit: check.unit });
        break;
      case "tcp": {
        const host = check.host ?? service.ip;
        checks.push({ name: `tcp:${host}:${check.port}`, phase: check.phase, kind: "tcp", host, port: check.port });
        break;
      }
      case "http":
        checks.push({ name: `http:${check.url}`, phase: check.phase, kind: "http", url: check.url, expectStatus: check.expect_status, from: check.from });
        break;
      default: {
        const unreachable: never = check;
        throw new Error(`unknown health check ${JSON.stringify(unreachable)}`);
      }
    }
  }
  // A service is never silently healthy: without checks, the units its secrets restart are its checks.
  if (checks.length === 0) {
    const units = [...new Set(Object.values(service.declaredSecrets).flatMap((secret) => secret.restart_units))].sort();
    for (const unit of units) checks.push({ name: `systemd:${unit}`, phase: "both", kind: "systemd", unit });
  }
  return {
    // Most services have one check or none: nothing to deduplicate.
    checks: checks.length < 2 ? checks : firstOfEachName(checks),
    intervalSeconds: health?.interval ?? defaults.intervalSeconds,
    timeoutSeconds: health?.timeout ?? 5,
    retries: health?.retries ?? defaults.retries,
    startPeriodSeconds: health?.start_period ?? defaults.startPeriodSeconds,
  };
}

/** The checks with a name not seen before, in order. */
function firstOfEachName(checks: HealthCheckSpec[]): HealthCheckSpec[] {
  const seen = new Set<string>();
  return checks.filter((check) => !seen.has(check.name) && seen.add(check.name));
}

function secret(configService: string, name: string, host: string, fields: Partial<SecretPlan> & Pick<SecretPlan, "description">): SecretPlan {
  return {
    name,
    configService,
    service: host,
    path: `${secretsDir}/${configService}/${name}`,
    owner: "root",
    group: "root",
    mode: "0400",
    restartUnits: [],
    generated: true,
    required: true,
    ...fields,
  };
}

/**
 * Every secret file, per receiving host. Built-in secrets are root-only (the built-in modules read them through
 * systemd's LoadCredential=); a service may declare one of them under `secrets` to give its own copy an owner,
 * group, mode or restart units, so that a custom module's service user can read its password file.
 */
function planSecrets(services: ResolvedService[], serverOf: (host: string) => string | undefined): SecretPlan[] {
  const planned: SecretPlan[] = [];
  for (const service of services) {
    const start = planned.length;
    planServiceSecrets(service, serverOf, planned);
    for (let index = start; index < planned.length; index += 1) {
      const entry = planned[index];
      const override = service.declaredSecrets[entry.name];
      if (!override || entry.service !== service.name || entry.configService !== service.name || !service.builtinSecretNames.includes(entry.name)) continue;
      entry.owner = override.owner;
      entry.group = override.group;
      entry.mode = override.mode.padStart(4, "0");
      entry.restartUnits = [...new Set([...entry.restartUnits, ...override.restart_units])].sort();
    }
  }
  return planned.sort((a, b) => byString(a.service, b.service) || byString(a.configService, b.configService) || byString(a.name, b.name));
}

function planServiceSecrets(service: ResolvedService, serverOf: (host: string) => string | undefined, secrets: SecretPlan[]): void {
  {
    const units = kindSpecs[service.kind].units;
    for (const db of service.databases) {
      const description = `password of PostgreSQL role "${db.owner}"`;
      secrets.push(secret(service.name, db.passwordSecret, service.name, { description, restartUnits: units }));
      const server = serverOf(db.host);
      if (server) secrets.push(secret(service.name, db.passwordSecret, server, { description, restartUnits: [postgresPasswordsUnit] }));
    }
    for (const client of service.oidcClients) {
      if (client.secretName === null) continue;
      const what = client.route === null ? "OIDC client secret" : `OIDC client secret of route ${client.route}`;
      secrets.push(secret(service.name, client.secretName, service.name, { description: `${what} (also set in Authentik)`, restartUnits: units }));
    }
    if (service.kind === "authentik") {
      secrets.push(secret(service.name, "secret_key", service.name, { description: "Authentik's secret key (signs sessions)", restartUnits: units }));
      secrets.push(secret(service.name, "bootstrap_password", service.name, { description: "password of Authentik's akadmin user", restartUnits: units }));
      secrets.push(secret(service.name, "bootstrap_token", service.name, { description: "API token NixMox uses to configure Authentik", restartUnits: units }));
    }
    if (service.builtinSecretNames.includes("admin_password")) {
      secrets.push(secret(service.name, "admin_password", service.name, { description: "password of Nextcloud's first admin account", restartUnits: [] }));
    }
    if (service.builtinSecretNames.includes("pgadmin_password")) {
      secrets.push(secret(service.name, "pgadmin_password", service.name, { description: "password of pgAdmin's initial account", restartUnits: ["pgadmin.service"] }));
    }
    for (const entry of restorableSecrets[service.kind] ?? []) {
      secrets.push(secret(service.name, entry.name, service.name, { description: entry.description, restartUnits: units }));
    }
    if (service.builtinSecretNames.includes("pgadmin_db_password")) {
      secrets.push(secret(service.name, "pgadmin_db_password", service.name, { description: `password of pgAdmin's PostgreSQL role "${pgadminRole}"`, restartUnits: [postgresPasswordsUnit] }));
    }
    if (service.builtinSecretNames.includes("radius_shared_secret")) {
      secrets.push(secret(service.name, "radius_shared_secret", service.name, { description: "shared secret of the RADIUS outpost (network.outposts.radius)", restartUnits: [] }));
    }
    for (const name of Object.keys(service.declaredSecrets).sort()) {
      if (service.builtinSecretNames.includes(name)) continue;
      const declared = service.declaredSecrets[name];
      secrets.push(
        secret(service.name, name, service.name, {
          owner: declared.owner,
          group: declared.group,
          mode: declared.mode.padStart(4, "0"),
          restartUnits: [...declared.restart_units].sort(),
          generated: declared.generate,
          description: declared.description || `declared by service "${service.name}"`,
        }),
      );
    }
  }
}

/** Topological levels (Kahn's algorithm): wave 0 has no dependencies; each later wave depends only on earlier ones. */
function planWaves(names: string[], dependsOn: Map<string, string[]>): Map<string, number> {
  const wave = new Map<string, number>();
  const remaining = new Map(names.map((name) => [name, dependsOn.get(name)?.length ?? 0]));
  const dependents = new Map<string, string[]>();
  for (const name of names) for (const dependency of dependsOn.get(name) ?? []) pushTo(dependents, dependency, name);
  let current = names.filter((name) => remaining.get(name) === 0);
  for (let level = 0; current.length > 0; level += 1) {
    const next: string[] = [];
    for (const name of current) {
      wave.set(name, level);
      for (const dependent of dependents.get(name) ?? []) {
        const count = (remaining.get(dependent) ?? 0) - 1;
        remaining.set(dependent, count);
        if (count === 0) next.push(dependent);
      }
    }
    current = next;
  }
  if (wave.size !== names.length) throw new Error("dependency cycle: validate the manifest before planning it");
  return wave;
}

/** The default LDAP base DN: one dc= per label of the domain ("nixmox.lan" → "dc=nixmox,dc=lan"). */
export function defaultBaseDn(domain: string): string {
  return domain.split(".").map((label) => `dc=${label}`).join(",");
}

function hostPort(value: string): { host: string; port: number } {
  const index = value.lastIndexOf(":");
  return { host: value.slice(0, index), port: Number(value.slice(index + 1)) };
}

/** The enabled services, sorted by name, with the lookups every stage of the plan reads. */
interface PlanServices {
  enabled: ResolvedService[];
  byName: Map<string, ResolvedService>;
  byAddress: Map<string, ResolvedService>;
  authentiks: string[];
  /** The service an address names (ip, full or short hostname, service name). */
  serverOf: (host: string) => string | undefined;
}

/**
 * Plans a validated manifest. `manifestDir` resolves relative NixOS module paths; `resolved` is what validation
 * computed from this very manifest (`checkManifest`): the plan then does not resolve the services again, and when
 * every service is enabled it also takes validation's address lookup and dependency edges, which are then the same.
 *
 * A pipeline of named stages, each a function of its own: every stage loops over every service once, and V8 compiles
 * small functions quickly (as one 300-line function, the plan was compiled whole again for each of its loops, at
 * 10,000 services for about as long as it ran: bench/manifest-scale.ts, node --trace-opt).
 */
export function planManifest(manifest: Manifest, options: { manifestDir: string; resolved?: CheckedServices }): Plan {
  const hostnames = () => (["core_services", "services"] as const).flatMap((group) => Object.values(manifest[group]).flatMap((service) => (service.hostname ? [service.hostname] : [])));
  const domain = resolveDomain(manifest.network.domain, hostnames);
  if ("problem" in domain) throw new Error(`network.domain ${domain.problem} (validate the manifest before planning it)`);
  const network: ResolvedNetwork = { ...manifest.network, domain: domain.domain };
  const all = resolveAll(manifest, network, options.resolved);
  const enabled = all.filter((service) => service.enable);
  // Validation's lookup covers every service, disabled ones too: the plan's, over the enabled ones, is the same only
  // when none is disabled (servicesByAddress gives the same map whatever the order). Its edges then are the plan's
  // too: inferredEdges over the same services and lookup (planEdges undoes the order they come in).
  const validated = options.resolved && enabled.length === all.length ? options.resolved : undefined;
  const byAddress = validated?.byAddress ?? servicesByAddress(enabled);
  const context: PlanServices = {
    enabled,
    byName: new Map(enabled.map((service) => [service.name, service])),
    byAddress,
    authentiks: enabled.filter((service) => service.kind === "authentik").map((service) => service.name),
    serverOf: (host) => byAddress.get(host)?.name,
  };

  const edges = planEdges(validated?.edges ?? inferredEdges(enabled, network.dns_server, byAddress));
  const { dependsOn, ssoProviders } = planDependencies(edges);
  const names = enabled.map((service) => service.name);
  const wave = planWaves(names, dependsOn);
  const routes = planRoutes(context);
  const dnsRecords = planDnsRecords(enabled, routes);
  const databases = planDatabases(context);
  const authClients = planAuthClients(context, routes);
  const outposts = planOutposts(network, context.authentiks);
  const tcpPorts = planTcpPorts(context, routes, databases, outposts);
  const phases = Object.keys(manifest.deployment_phases)
    .sort()
    .map((name) => ({ name, services: [...manifest.deployment_phases[name]] }));
  const healthDefaults: HealthDefaults = {
    intervalSeconds: manifest.retry_delay ?? 10,
    retries: manifest.retry_attempts ?? 3,
    startPeriodSeconds: manifest.health_check_timeout ?? 0,
  };
  const secrets = planSecrets(enabled, context.serverOf);
  const services = planServices(enabled, { network, tcpPorts, outposts, dependsOn, ssoProviders, wave, healthDefaults, secrets });

  const { notes, warnings } = planAdvice({ manifest, network, domainDerivedFrom: domain.derivedFrom, enabled, planned: services, serverOf: context.serverOf, byAddress });
  const firewall = planFirewall({
    services,
    declaredPorts: (name) => context.byName.get(name)!.ports,
    serviceAt: context.serverOf,
    routes,
    databases,
    outposts,
    edges,
    outpostPorts: { ldap: ldapOutpostPort, radius: radiusOutpostPort },
  });
  for (const service of services) service.firewall = firewall.rules.get(service.name) ?? [];
  warnings.push(...firewall.warnings);
  const build = planBuild(manifest, services);
  warnings.push(...build.warnings);

  return {
    network: {
      domain: network.domain,
      dnsServer: network.dns_server,
      fallbackDnsServers: [...new Set(network.fallback_dns_servers)].filter((server) => server !== network.dns_server),
      gateway: network.gateway,
      networkCidr: network.network_cidr,
      prefixLength: prefixLength(network.network_cidr),
      vlanTag: network.vlan_tag,
      sshKeys: Object.fromEntries(Object.keys(network.ssh_keys).sort().map((user) => [user, network.ssh_keys[user]])),
      dns: {
        forwarders: network.dns.forwarders ?? [network.gateway],
        allowedNetworks: [...network.dns.allowed_networks],
        dnssec: network.dns.dnssec,
      },
      firewall: network.firewall,
    },
    build: build.build,
    nixCaches: planCaches(network),
    secretsDir,
    services,
    disabled: all.filter((service) => !service.enable).map((service) => service.name),
    edges,
    waves: wavesOf(names, wave),
    routes,
    dnsRecords,
    databases,
    authClients: authClients.sort(
      (a, b) => byString(a.service, b.service) || byString(a.type, b.type) || byString(a.type === "oidc" ? a.slug : a.provider, b.type === "oidc" ? b.slug : b.provider),
    ),
    outposts,
    secrets,
    phases,
    rollback: manifest.enable_rollback,
    notes,
    warnings,
    manifestDir: options.manifestDir,
  };
}

/** Every service, resolved (or as validation resolved them), sorted by name. */
function resolveAll(manifest: Manifest, network: ResolvedNetwork, resolved: CheckedServices | undefined): ResolvedService[] {
  const all: ResolvedService[] = resolved ? [...resolved.services] : [];
  if (!resolved) {
    for (const group of ["core_services", "services"] as const) {
      for (const [name, service] of Object.entries(manifest[group])) all.push(resolveService(name, group, service, network));
    }
  }
  return all.sort((a, b) => byString(a.name, b.name));
}

/** One edge per (from, to), its reasons merged and sorted; the edges sorted by from, then to. */
function planEdges(inferred: Edge[]): EdgePlan[] {
  // from → to → edge: nested maps, so no "from\0to" key string is built per edge.
  const edgeMap = new Map<string, Map<string, EdgePlan>>();
  const edgeList: EdgePlan[] = [];
  for (const edge of inferred) {
    let targets = edgeMap.get(edge.from);
    if (!targets) edgeMap.set(edge.from, (targets = new Map()));
    const existing = targets.get(edge.to);
    if (existing) {
      if (!existing.reasons.includes(edge.reason)) existing.reasons.push(edge.reason);
      existing.hard ||= edge.hard;
    } else {
      const created = { from: edge.from, to: edge.to, reasons: [edge.reason], hard: edge.hard };
      targets.set(edge.to, created);
      edgeList.push(created);
    }
  }
  // The plan's own objects (created above): their reasons are sorted in place.
  for (const edge of edgeList) if (edge.reasons.length > 1) edge.reasons.sort();
  return edgeList.sort((a, b) => byString(a.from, b.from) || byString(a.to, b.to));
}

/** What each service waits for (hard edges) and the SSO providers it uses (soft edges), in the edges' order. */
function planDependencies(edges: EdgePlan[]): { dependsOn: Map<string, string[]>; ssoProviders: Map<string, string[]> } {
  const dependsOn = new Map<string, string[]>();
  const ssoProviders = new Map<string, string[]>();
  for (const edge of edges) pushTo(edge.hard ? dependsOn : ssoProviders, edge.from, edge.to);
  return { dependsOn, ssoProviders };
}

/** The services of each wave, in `names`' order. */
function wavesOf(names: string[], wave: Map<string, number>): string[][] {
  let waveCount = 0;
  for (const level of wave.values()) if (level >= waveCount) waveCount = level + 1;
  const waves: string[][] = Array.from({ length: waveCount }, () => []);
  for (const name of names) waves[wave.get(name)!].push(name);
  return waves;
}

/** Every route of every enabled service, with its auth provider, sorted by domain, path and service. */
function planRoutes({ enabled, byName, authentiks }: PlanServices): RoutePlan[] {
  const outpostUpstream = (provider: string) => `${byName.get(provider)!.ip}:${authentikOutpostPort}`;
  return enabled
    .flatMap((service) =>
      service.routes.map((route): RoutePlan => {
        const settings = route.ownAuth ?? service.auth;
        const authProvider = route.auth === null ? null : authProviderOf(settings?.provider, authentiks) ?? null;
        const ownClient = route.ownAuth?.type === "oidc" ? service.oidcClients.find((client) => client.route === route.name) : undefined;
        return {
          service: service.name,
          name: route.name,
          domain: route.domain,
          path: route.path,
          upstream: route.upstream,
          tls: route.tls,
          auth: route.auth,
          authProvider,
          forwardAuthUpstream:
            route.auth === "forward_auth" && authProvider !== null ? settings?.forward_auth_upstream ?? outpostUpstream(authProvider) : null,
          oidcClient: ownClient ? ownClient.settings.client_id ?? ownClient.defaultId : null,
          app: appOfRoute(service.kind, route.name),
          extraConfig: route.extraConfig,
        };
      }),
    )
    .sort((a, b) => byString(a.domain, b.domain) || byString(a.path, b.path) || byString(a.service, b.service));
}

/** An A record per host, and per route domain (the proxy's address) that is not a host's; sorted by name. */
function planDnsRecords(enabled: ResolvedService[], routes: RoutePlan[]): DnsRecordPlan[] {
  const proxy = enabled.find((service) => service.kind === "caddy");
  const dnsByName = new Map<string, DnsRecordPlan>();
  for (const service of enabled) dnsByName.set(service.fqdn, { name: service.fqdn, type: "A", value: service.ip, source: "host", service: service.name });
  for (const route of routes) {
    if (proxy && !dnsByName.has(route.domain)) dnsByName.set(route.domain, { name: route.domain, type: "A", value: proxy.ip, source: "route", service: route.service });
  }
  return [...dnsByName.values()].sort((a, b) => byString(a.name, b.name));
}

/** Every database on the PostgreSQL host it names, sorted by server and name. */
function planDatabases({ enabled, byName, serverOf }: PlanServices): DatabasePlan[] {
  return enabled
    .flatMap((service) =>
      service.databases.flatMap((db): DatabasePlan[] => {
        const server = serverOf(db.host);
        if (!server) return [];
        return [{
          service: service.name,
          key: db.key,
          server,
          host: byName.get(server)!.ip,
          port: db.port,
          name: db.name,
          owner: db.owner,
          additional: [...db.additional],
          clientIp: service.ip,
          passwordSecret: db.passwordSecret,
        }];
      }),
    )
    .sort((a, b) => byString(a.server, b.server) || byString(a.name, b.name));
}

/** The OIDC clients, and one forward-auth client per service, provider and outpost (its domains: the routes that ask it). */
function planAuthClients({ enabled, authentiks }: PlanServices, routes: RoutePlan[]): AuthClientPlan[] {
  const routesByService = new Map<string, RoutePlan[]>();
  for (const route of routes) pushTo(routesByService, route.service, route);
  const origin = (route: { tls: string; domain: string }) => `${route.tls === "off" ? "http" : "https"}://${route.domain}`;
  const authClients: AuthClientPlan[] = [];
  for (const service of enabled) {
    for (const client of service.oidcClients) {
      const provider = authProviderOf(client.provider, authentiks);
      if (!provider) continue;
      const routesForUris = redirectRoutes(service, client);
      const redirectUris = client.settings.redirect_uris ?? [
        ...new Set(routesForUris.map((route) => defaultRedirectUri(service.kind, route, origin(route), provider))),
      ];
      const launchRoute = routesForUris[0];
      authClients.push({
        type: "oidc",
        service: service.name,
        route: client.route,
        slug: client.defaultId,
        provider,
        clientId: client.settings.client_id ?? client.defaultId,
        clientType: client.settings.client_type,
        redirectUris,
        scopes: client.settings.scopes,
        usernameClaim: client.settings.username_claim,
        groupsClaim: client.settings.groups_claim,
        clientSecret: client.secretName,
        launchUrl: launchRoute ? `${origin(launchRoute)}${launchRoute.path.replace(/\*$/, "")}` : null,
      });
    }
    // One forward-auth client per provider and outpost; its domains are the routes that ask it.
    let forward: Map<string, { provider: string; upstream: string; domains: Set<string> }> | undefined;
    for (const route of routesByService.get(service.name) ?? []) {
      if (route.auth !== "forward_auth" || route.authProvider === null) continue;
      forward ??= new Map();
      const key = `${route.authProvider}\0${route.forwardAuthUpstream}`;
      const entry = forward.get(key) ?? { provider: route.authProvider, upstream: route.forwardAuthUpstream!, domains: new Set<string>() };
      entry.domains.add(route.domain);
      forward.set(key, entry);
    }
    for (const entry of forward?.values() ?? []) {
      authClients.push({ type: "forward_auth", service: service.name, provider: entry.provider, domains: [...entry.domains].sort(), upstream: entry.upstream });
    }
  }
  return authClients;
}

/** The LDAP and RADIUS outposts the network asks for, each on its authentik. */
function planOutposts(network: ResolvedNetwork, authentiks: string[]): OutpostPlan[] {
  const outposts: OutpostPlan[] = [];
  const { ldap, radius } = network.outposts;
  if (ldap) {
    const provider = authProviderOf(ldap.provider, authentiks);
    if (provider) outposts.push({ type: "ldap", provider, baseDn: ldap.base_dn ?? defaultBaseDn(network.domain) });
  }
  if (radius) {
    const provider = authProviderOf(radius.provider, authentiks);
    if (provider) outposts.push({ type: "radius", provider, clientNetworks: [...radius.client_networks].sort(), sharedSecret: "radius_shared_secret" });
  }
  return outposts;
}

/**
 * The TCP ports each host listens on. Ports follow from what runs: the kind's own, each app's listen port, every
 * route's upstream port on the upstream host, the PostgreSQL port on the database host; the manifest's ports add
 * anything else.
 */
function planTcpPorts({ enabled, byAddress }: PlanServices, routes: RoutePlan[], databases: DatabasePlan[], outposts: OutpostPlan[]): Map<string, Set<number>> {
  const tcpPorts = new Map<string, Set<number>>();
  for (const service of enabled) {
    const ports = new Set(service.ports);
    for (const port of service.publicPorts) ports.add(port);
    for (const port of kindSpecs[service.kind].tcpPorts) ports.add(port);
    tcpPorts.set(service.name, ports);
  }
  for (const service of enabled) {
    const apps = kindSpecs[service.kind].apps;
    // An app listens on the port of its route when that route's upstream is this host (opened below, with every
    // route's upstream port), else on its default port (render/host-data.ts appListenPort): a route to another host
    // moves nothing here. pgAdmin runs on a PostgreSQL host only when the host has a route.
    const runsApps = service.kind !== "postgresql" || service.routes.length > 0;
    const appEntries = Object.entries(apps);
    if (!runsApps || appEntries.length === 0) continue;
    const addresses = addressesOf(service);
    const ownRouted = new Set(service.routes.filter((route) => addresses.includes(hostPort(route.upstream).host)).map((route) => appOfRoute(service.kind, route.name)));
    for (const [appName, app] of appEntries) if (!ownRouted.has(appName)) tcpPorts.get(service.name)!.add(app.port);
  }
  for (const route of routes) {
    const { host, port } = hostPort(route.upstream);
    const target = byAddress.get(host);
    if (target && target.kind !== "caddy") tcpPorts.get(target.name)!.add(port);
  }
  for (const db of databases) tcpPorts.get(db.server)!.add(db.port);
  // A PostgreSQL host that no database names still listens on the default port (render/host-data.ts): open it, so a
  // service whose kind became postgresql gets its port whatever ports it listed before (security review N5).
  const serving = new Set(databases.map((db) => db.server));
  for (const service of enabled) if (service.kind === "postgresql" && !serving.has(service.name)) tcpPorts.get(service.name)!.add(postgresqlDefaultPort);
  for (const outpost of outposts) if (outpost.type === "ldap") tcpPorts.get(outpost.provider)!.add(ldapOutpostPort);
  return tcpPorts;
}

/** What `planServices` puts on each host besides the service itself. */
interface HostPlanInputs {
  network: ResolvedNetwork;
  tcpPorts: Map<string, Set<number>>;
  outposts: OutpostPlan[];
  dependsOn: Map<string, string[]>;
  ssoProviders: Map<string, string[]>;
  wave: Map<string, number>;
  healthDefaults: HealthDefaults;
  secrets: SecretPlan[];
}

/** One planned host per enabled service (its firewall filled in later, once every host's ports are known). */
function planServices(enabled: ResolvedService[], inputs: HostPlanInputs): ServicePlan[] {
  const { tcpPorts, outposts, dependsOn, ssoProviders, wave, healthDefaults } = inputs;
  const secretsByHost = new Map<string, SecretPlan[]>();
  for (const entry of inputs.secrets) pushTo(secretsByHost, entry.service, entry);
  const hostPrefixLength = prefixLength(inputs.network.network_cidr);
  const radiusHost = outposts.find((outpost) => outpost.type === "radius")?.provider;
  return enabled.map((service) => {
    const health = planHealth(service, healthDefaults);
    return {
      name: service.name,
      kind: service.kind,
      group: service.group,
      vmid: service.vmid,
      ip: service.ip,
      prefixLength: hostPrefixLength,
      hostName: service.hostName,
      fqdn: service.fqdn,
      version: service.version,
      node: service.node,
      resources: {
        cores: service.resources.cores,
        memoryMiB: service.resources.memory,
        swapMiB: service.resources.swap,
        diskGiB: service.resources.disk_gb,
      },
      onboot: service.onboot,
      start: service.start,
      stateful: service.stateful,
      tags: service.tags,
      ports: [...tcpPorts.get(service.name)!].filter((port) => port !== service.sshPort).sort((a, b) => a - b),
      udpPorts: [...kindSpecs[service.kind].udpPorts, ...(radiusHost === service.name ? [radiusOutpostPort] : [])].sort((a, b) => a - b),
      publicPorts: service.publicPorts,
      // Filled by planManifest, once every host's ports are known.
      firewall: [],
      sshPort: service.sshPort,
      dependsOn: dependsOn.get(service.name) ?? [],
      ssoProviders: ssoProviders.get(service.name) ?? [],
      wave: wave.get(service.name)!,
      startupOrder: wave.get(service.name)! + 1,
      nixosModules: service.nixosModules,
      stateVersion: service.stateVersion,
      health,
      secrets: secretsByHost.get(service.name) ?? [],
    };
  });
}
