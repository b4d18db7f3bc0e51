/**
 * Manifest → plan: pure functions, no Pulumi and no I/O. The plan is sorted and complete, so everything
 * downstream (render, components, CLI views) is deterministic for the same manifest.
 */
import type {
  AuthClientPlan,
  DatabasePlan,
  DnsRecordPlan,
  EdgePlan,
  HealthCheckSpec,
  HealthPlan,
  Plan,
  RoutePlan,
  SecretPlan,
  ServiceKind,
  ServicePlan,
} from "./plan-types";
import { inferredEdges, resolveService, servicesByAddress, type ResolvedService } from "./resolve";
import type { Manifest } from "./schema";

/** Root-only directory on every host that holds secret files; persistent, outside the Nix store. */
export const secretsDir = "/var/lib/nixmox/secrets";

/** Port of Authentik's embedded outpost, which answers forward-auth requests. */
export const authentikOutpostPort = 9000;

/** The systemd units of each built-in module: the default health checks and what a secret change restarts. */
const builtinUnits: Record<ServiceKind, string[]> = {
  dns: ["unbound.service"],
  caddy: ["caddy.service"],
  postgresql: ["postgresql.service"],
  authentik: ["authentik.service", "authentik-worker.service"],
  vaultwarden: ["vaultwarden.service"],
  guacamole: ["guacamole-server.service", "tomcat.service"],
  custom: [],
};

/** The oneshot unit on the PostgreSQL host that (re)sets role passwords from the secret files. */
export const postgresPasswordsUnit = "nixmox-postgresql-passwords.service";

/** Where each built-in app expects the OIDC provider to send users back, per route domain. */
function defaultRedirectUri(kind: ServiceKind, origin: string): string {
  switch (kind) {
    case "vaultwarden":
      return `${origin}/identity/connect/oidc-signin`;
    case "guacamole":
      return `${origin}/guacamole/`;
    case "dns":
    case "caddy":
    case "postgresql":
    case "authentik":
    case "custom":
      return `${origin}/`;
    default: {
      const unreachable: never = kind;
      return unreachable;
    }
  }
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

function planHealth(service: ResolvedService): HealthPlan {
  const health = service.health;
  const checks: HealthCheckSpec[] = builtinUnits[service.kind].map((unit) => ({ name: `systemd:${unit}`, phase: "both", kind: "systemd", unit }));
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
  const seen = new Set<string>();
  return {
    checks: checks.filter((check) => !seen.has(check.name) && seen.add(check.name)),
    intervalSeconds: health?.interval ?? 10,
    timeoutSeconds: health?.timeout ?? 5,
    retries: health?.retries ?? 3,
    startPeriodSeconds: health?.start_period ?? 0,
  };
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

/** Every secret file, per receiving host. Built-in secrets are root-only; modules read them through systemd. */
function planSecrets(services: ResolvedService[], serverOf: (service: ResolvedService) => string | undefined): SecretPlan[] {
  const secrets: SecretPlan[] = [];
  for (const service of services) {
    const units = builtinUnits[service.kind];
    if (service.db) {
      const description = `password of PostgreSQL role "${service.db.owner}"`;
      secrets.push(secret(service.name, "db_password", service.name, { description, restartUnits: units }));
      const server = serverOf(service);
      if (server) secrets.push(secret(service.name, "db_password", server, { description, restartUnits: [postgresPasswordsUnit] }));
    }
    if (service.builtinSecretNames.includes("oidc_client_secret")) {
      secrets.push(secret(service.name, "oidc_client_secret", service.name, { description: "OIDC client secret (also set in Authentik)", restartUnits: units }));
    }
    if (service.kind === "authentik") {
      secrets.push(secret(service.name, "secret_key", service.name, { description: "Authentik's secret key (signs sessions)", restartUnits: units }));
      secrets.push(secret(service.name, "bootstrap_password", service.name, { description: "password of Authentik's akadmin user", restartUnits: units }));
      secrets.push(secret(service.name, "bootstrap_token", service.name, { description: "API token NixMox uses to configure Authentik", restartUnits: units }));
    }
    for (const name of Object.keys(service.declaredSecrets).sort()) {
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
  return secrets.sort((a, b) => byString(a.service, b.service) || byString(a.configService, b.configService) || byString(a.name, b.name));
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

/** Plans a validated manifest. `manifestDir` resolves relative NixOS module paths. */
export function planManifest(manifest: Manifest, options: { manifestDir: string }): Plan {
  const network = manifest.network;
  const all: ResolvedService[] = [];
  for (const group of ["core_services", "services"] as const) {
    for (const [name, service] of Object.entries(manifest[group])) all.push(resolveService(name, group, service, network));
  }
  all.sort((a, b) => byString(a.name, b.name));
  const enabled = all.filter((service) => service.enable);
  const byName = new Map(enabled.map((service) => [service.name, service]));

  const edgeMap = new Map<string, EdgePlan>();
  for (const edge of inferredEdges(enabled, network.dns_server)) {
    const key = `${edge.from}\0${edge.to}`;
    const existing = edgeMap.get(key);
    if (existing) {
      if (!existing.reasons.includes(edge.reason)) existing.reasons.push(edge.reason);
    } else {
      edgeMap.set(key, { from: edge.from, to: edge.to, reasons: [edge.reason] });
    }
  }
  const edges = [...edgeMap.values()]
    .map((edge) => ({ ...edge, reasons: [...edge.reasons].sort() }))
    .sort((a, b) => byString(a.from, b.from) || byString(a.to, b.to));
  const dependsOn = new Map<string, string[]>();
  for (const edge of edges) pushTo(dependsOn, edge.from, edge.to);
  const names = enabled.map((service) => service.name);
  const wave = planWaves(names, dependsOn);
  const waveCount = Math.max(-1, ...wave.values()) + 1;
  const waves: string[][] = Array.from({ length: waveCount }, () => []);
  for (const name of names) waves[wave.get(name)!].push(name);

  const byAddress = servicesByAddress(enabled);
  const proxy = enabled.find((service) => service.kind === "caddy");
  const authentiks = enabled.filter((service) => service.kind === "authentik");
  const providerOf = (service: ResolvedService) => service.auth?.provider ?? (authentiks.length === 1 ? authentiks[0].name : null);
  const serverOf = (service: ResolvedService) => (service.db ? byAddress.get(service.db.host)?.name : undefined);

  const routes: RoutePlan[] = enabled
    .flatMap((service) =>
      service.routes.map((route) => ({
        service: service.name,
        name: route.name,
        domain: route.domain,
        path: route.path,
        upstream: route.upstream,
        tls: route.tls,
        auth: route.auth,
        authProvider: route.auth === null ? null : providerOf(service),
        extraConfig: route.extraConfig,
      })),
    )
    .sort((a, b) => byString(a.domain, b.domain) || byString(a.path, b.path) || byString(a.service, b.service));

  const dnsByName = new Map<string, DnsRecordPlan>();
  for (const service of enabled) dnsByName.set(service.fqdn, { name: service.fqdn, type: "A", value: service.ip, source: "host", service: service.name });
  for (const route of routes) {
    if (proxy && !dnsByName.has(route.domain)) dnsByName.set(route.domain, { name: route.domain, type: "A", value: proxy.ip, source: "route", service: route.service });
  }
  const dnsRecords = [...dnsByName.values()].sort((a, b) => byString(a.name, b.name));

  const databases: DatabasePlan[] = enabled.flatMap((service) => {
    const server = serverOf(service);
    if (!service.db || !server) return [];
    return [{
      service: service.name,
      server,
      host: byName.get(server)!.ip,
      port: service.db.port,
      name: service.db.name,
      owner: service.db.owner,
      clientIp: service.ip,
      passwordSecret: "db_password",
    }];
  });

  const authClients: AuthClientPlan[] = [];
  for (const service of enabled) {
    const provider = providerOf(service);
    if (!provider) continue;
    // The app's own OIDC login happens on its oidc routes; a forward-auth-only route never redirects to it.
    const oidcRoutes = service.routes.filter((route) => route.auth === "oidc");
    const origin = (route: { tls: string; domain: string }) => `${route.tls === "off" ? "http" : "https"}://${route.domain}`;
    const origins = [...new Set((oidcRoutes.length > 0 ? oidcRoutes : service.routes).map(origin))];
    const launchRoute = oidcRoutes[0] ?? service.routes[0];
    if (service.auth?.type === "oidc") {
      const oidc = service.auth.oidc;
      authClients.push({
        type: "oidc",
        service: service.name,
        provider,
        clientId: oidc.client_id ?? service.name,
        clientType: oidc.client_type,
        redirectUris: oidc.redirect_uris ?? origins.map((origin) => defaultRedirectUri(service.kind, origin)),
        scopes: oidc.scopes,
        usernameClaim: oidc.username_claim,
        groupsClaim: oidc.groups_claim,
        clientSecret: oidc.client_type === "confidential" ? "oidc_client_secret" : null,
        launchUrl: launchRoute ? `${origin(launchRoute)}${launchRoute.path.replace(/\*$/, "")}` : null,
      });
    }
    const forwardDomains = [...new Set(service.routes.filter((route) => route.auth === "forward_auth").map((route) => route.domain))].sort();
    if (forwardDomains.length > 0) {
      authClients.push({
        type: "forward_auth",
        service: service.name,
        provider,
        domains: forwardDomains,
        upstream: service.auth?.forward_auth_upstream ?? `${byName.get(provider)!.ip}:${authentikOutpostPort}`,
      });
    }
  }

  const secrets = planSecrets(enabled, serverOf);
  const secretsByHost = new Map<string, SecretPlan[]>();
  for (const entry of secrets) pushTo(secretsByHost, entry.service, entry);
  const services: ServicePlan[] = enabled.map((service) => ({
    name: service.name,
    kind: service.kind,
    group: service.group,
    vmid: service.vmid,
    ip: service.ip,
    prefixLength: prefixLength(network.network_cidr),
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
    ports: service.ports,
    sshPort: service.sshPort,
    dependsOn: dependsOn.get(service.name) ?? [],
    wave: wave.get(service.name)!,
    startupOrder: wave.get(service.name)! + 1,
    nixosModules: service.nixosModules,
    health: planHealth(service),
    secrets: secretsByHost.get(service.name) ?? [],
  }));

  return {
    network: {
      domain: network.domain,
      dnsServer: network.dns_server,
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
    },
    secretsDir,
    services,
    disabled: all.filter((service) => !service.enable).map((service) => service.name),
    edges,
    waves,
    routes,
    dnsRecords,
    databases,
    authClients: authClients.sort((a, b) => byString(a.service, b.service) || byString(a.type, b.type)),
    secrets,
    manifestDir: options.manifestDir,
  };
}
