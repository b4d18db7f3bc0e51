/**
 * Plan → the data one host consumes (its `host.json`). Pure.
 *
 * The slice is minimal on purpose: the host's directory (and so its content hash and its rebuild) changes
 * exactly when something it uses changes. Container-only facts (vmid, node, cores, memory, disk, tags,
 * startup order, health checks, dependencies) are never here; the DNS host gets the records, the proxy the
 * routes, PostgreSQL the database requests, an application its own database and OIDC client.
 *
 * The JSON shape is the option tree `nixmox.*` declared by nixos/core.nix and nixos/services/<kind>.nix; the
 * host's flake assigns the parsed file to `config.nixmox`, so the NixOS module system type-checks every key.
 */
import { ManifestError, type Problem } from "../manifest";
import type { AuthClientPlan, BuiltinKind, DatabasePlan, Plan, RoutePlan, ServiceKind, ServicePlan } from "../manifest/plan-types";
import { defaultStateVersion } from "./nixpkgs-pin";

/** Bump when the layout of host.json changes incompatibly with the shipped modules. */
export const hostDataSchemaVersion = 1;

/** The container NIC the Pulumi component creates (net0). */
export const containerInterface = "eth0";

/** Where each built-in app listens when none of its routes points at the host itself. */
export const defaultListenPorts: Record<AppKind, number> = { authentik: 9000, vaultwarden: 8222, guacamole: 8080 };

export type AppKind = Extract<BuiltinKind, "authentik" | "vaultwarden" | "guacamole">;

export interface HostFacts {
  name: string;
  kind: ServiceKind;
  hostName: string;
  domain: string;
  ip: string;
  prefixLength: number;
  networkCidr: string;
  gateway: string;
  dnsServer: string;
  interface: string;
  ports: number[];
  sshPort: number;
  rootSshKeys: string[];
  stateVersion: string;
  system: string;
  secretsDir: string;
}

export interface DnsData {
  records: Array<{ name: string; type: "A"; value: string; source: "host" | "route" }>;
  forwarders: string[];
  allowedNetworks: string[];
  /** The homelab domain: a static local zone (unknown names under it are NXDOMAIN, never forwarded). */
  localZone: string;
  dnssec: boolean;
}

export interface CaddyRouteData {
  service: string;
  name: string;
  domain: string;
  path: string;
  upstream: string;
  tls: RoutePlan["tls"];
  forwardAuthUpstream: string | null;
  extraConfig: string;
}

export interface CaddyData {
  routes: CaddyRouteData[];
}

export interface PostgresqlData {
  port: number;
  databases: Array<{ service: string; name: string; owner: string; clientIp: string; credential: string; passwordFile: string }>;
}

export interface AppData {
  listen: { address: string; port: number };
  publicUrl: string | null;
  database: { host: string; port: number; name: string; owner: string; passwordFile: string } | null;
  oidc: {
    provider: string;
    clientId: string;
    clientType: "confidential" | "public";
    clientSecretFile: string | null;
    issuer: string;
    authorizationEndpoint: string;
    tokenEndpoint: string;
    jwksEndpoint: string;
    redirectUris: string[];
    scopes: string[];
    usernameClaim: string;
    groupsClaim: string;
  } | null;
}

export interface HostData {
  schemaVersion: number;
  host: HostFacts;
  /** Secret name → path on this host. Secrets owned by another service are keyed "<owner>/<name>". */
  secrets: Record<string, string>;
  dns?: DnsData;
  caddy?: CaddyData;
  postgresql?: PostgresqlData;
  authentik?: AppData;
  vaultwarden?: AppData;
  guacamole?: AppData;
}

export interface HostDataOptions {
  /** system.stateVersion for every host. @default "25.11" (the default nixpkgs pin's release) */
  stateVersion?: string;
  /** nixpkgs.hostPlatform. @default "x86_64-linux" */
  system?: string;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function fail(service: string, field: string, message: string): never {
  const problem: Problem = { subject: `service "${service}"`, field, message };
  throw new ManifestError("render", [problem]);
}

export function findService(plan: Plan, name: string): ServicePlan {
  const service = plan.services.find((candidate) => candidate.name === name);
  if (!service) {
    const known = plan.services.map((candidate) => candidate.name).join(", ");
    const disabled = plan.disabled.includes(name) ? " (it is disabled: set enable = true to render it)" : "";
    fail(name, "", `is not an enabled service of the manifest${disabled}; enabled services: ${known || "none"}`);
  }
  return service;
}

function splitHostPort(value: string): { host: string; port: number } {
  const index = value.lastIndexOf(":");
  return { host: value.slice(0, index), port: Number(value.slice(index + 1)) };
}

function routeOrigin(route: RoutePlan): string {
  return `${route.tls === "off" ? "http" : "https"}://${route.domain}`;
}

function routeUrl(route: RoutePlan): string {
  return `${routeOrigin(route)}${route.path === "/" ? "" : route.path.replace(/\*$/, "")}`;
}

/** The path of a secret file on `host`, from the plan, or the documented layout when the plan lists none. */
function secretPath(plan: Plan, host: string, owner: string, name: string): string {
  const entry = plan.secrets.find((secret) => secret.service === host && secret.configService === owner && secret.name === name);
  return entry?.path ?? `${plan.secretsDir}/${owner}/${name}`;
}

/** The routes that reach this service: their upstream is its IP or one of its names. */
function ownRoutes(plan: Plan, service: ServicePlan): RoutePlan[] {
  return plan.routes.filter((route) => route.service === service.name);
}

function listenPort(plan: Plan, service: ServicePlan, kind: AppKind): number {
  const names = new Set([service.ip, service.fqdn, service.hostName, service.name]);
  const own = ownRoutes(plan, service).find((route) => names.has(splitHostPort(route.upstream).host));
  return own ? splitHostPort(own.upstream).port : defaultListenPorts[kind];
}

function planHostFacts(plan: Plan, service: ServicePlan, options: HostDataOptions): HostFacts {
  return {
    name: service.name,
    kind: service.kind,
    hostName: service.hostName,
    domain: plan.network.domain,
    ip: service.ip,
    prefixLength: service.prefixLength,
    networkCidr: plan.network.networkCidr,
    gateway: plan.network.gateway,
    dnsServer: plan.network.dnsServer,
    interface: containerInterface,
    ports: [...service.ports].sort((a, b) => a - b),
    sshPort: service.sshPort,
    // Sorted: the order of authorized keys means nothing, and must not change the host.
    rootSshKeys: [...(plan.network.sshKeys.root ?? [])].sort(),
    stateVersion: options.stateVersion ?? defaultStateVersion,
    system: options.system ?? "x86_64-linux",
    secretsDir: plan.secretsDir,
  };
}

function planHostSecrets(plan: Plan, service: ServicePlan): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const secret of plan.secrets) {
    if (secret.service !== service.name) continue;
    const key = secret.configService === service.name ? secret.name : `${secret.configService}/${secret.name}`;
    secrets[key] = secret.path;
  }
  return secrets;
}

function planDnsData(plan: Plan): DnsData {
  return {
    records: plan.dnsRecords
      .map((record) => ({ name: record.name, type: record.type, value: record.value, source: record.source }))
      .sort((a, b) => byString(a.name, b.name) || byString(a.value, b.value)),
    forwarders: [...plan.network.dns.forwarders],
    allowedNetworks: [plan.network.networkCidr, ...plan.network.dns.allowedNetworks],
    localZone: plan.network.domain,
    dnssec: plan.network.dns.dnssec,
  };
}

function forwardAuthUpstream(plan: Plan, route: RoutePlan): string | null {
  if (route.auth !== "forward_auth") return null;
  const client = plan.authClients.find(
    (candidate): candidate is Extract<AuthClientPlan, { type: "forward_auth" }> =>
      candidate.type === "forward_auth" && candidate.service === route.service && candidate.domains.includes(route.domain),
  );
  if (!client) {
    fail(route.service, `interface.proxy${route.name === "default" ? "" : `.${route.name}`}.auth`,
      `route ${route.domain}${route.path} asks for forward_auth but no authentik provider serves it; add an authentik service or set interface.auth.provider`);
  }
  return client.upstream;
}

function planCaddyData(plan: Plan): CaddyData {
  return {
    routes: plan.routes
      .map((route) => ({
        service: route.service,
        name: route.name,
        domain: route.domain,
        path: route.path,
        upstream: route.upstream,
        tls: route.tls,
        forwardAuthUpstream: forwardAuthUpstream(plan, route),
        extraConfig: route.extraConfig,
      }))
      .sort((a, b) => byString(a.domain, b.domain) || byString(a.path, b.path) || byString(a.service, b.service) || byString(a.name, b.name)),
  };
}

function planPostgresqlData(plan: Plan, service: ServicePlan): PostgresqlData {
  const databases = plan.databases.filter((db) => db.server === service.name);
  const ports = [...new Set(databases.map((db) => db.port))];
  if (ports.length > 1) {
    const users = databases.map((db) => `${db.service}: ${db.port}`).join(", ");
    fail(service.name, "", `its clients ask for different ports (${users}); one PostgreSQL listens on one port, make interface.db.port agree`);
  }
  const port = ports[0] ?? 5432;
  return {
    port,
    databases: databases
      .map((db: DatabasePlan) => ({
        service: db.service,
        name: db.name,
        owner: db.owner,
        clientIp: db.clientIp,
        credential: `${db.service}-${db.passwordSecret}`,
        passwordFile: secretPath(plan, service.name, db.service, db.passwordSecret),
      }))
      .sort((a, b) => byString(a.name, b.name)),
  };
}

/** Authentik's OIDC endpoints, from the provider's first route (https unless that route is plain HTTP).
 * The application slug is the client service's name: NixMox's Authentik provider creates it so. */
function oidcEndpoints(plan: Plan, providerName: string, slug: string) {
  const provider = findService(plan, providerName);
  const route = ownRoutes(plan, provider)[0];
  const base = route ? routeOrigin(route) : `http://${provider.ip}:${listenPort(plan, provider, "authentik")}`;
  return {
    issuer: `${base}/application/o/${slug}/`,
    authorizationEndpoint: `${base}/application/o/authorize/`,
    tokenEndpoint: `${base}/application/o/token/`,
    jwksEndpoint: `${base}/application/o/${slug}/jwks/`,
  };
}

function planAppData(plan: Plan, service: ServicePlan, kind: AppKind): AppData {
  const db = plan.databases.find((candidate) => candidate.service === service.name);
  const client = plan.authClients.find(
    (candidate): candidate is Extract<AuthClientPlan, { type: "oidc" }> => candidate.type === "oidc" && candidate.service === service.name,
  );
  const firstRoute = ownRoutes(plan, service)[0];
  return {
    listen: { address: service.ip, port: listenPort(plan, service, kind) },
    publicUrl: firstRoute ? routeUrl(firstRoute) : null,
    database: db
      ? { host: db.host, port: db.port, name: db.name, owner: db.owner, passwordFile: secretPath(plan, service.name, service.name, db.passwordSecret) }
      : null,
    oidc: client
      ? {
          provider: client.provider,
          clientId: client.clientId,
          clientType: client.clientType,
          clientSecretFile: client.clientSecret ? secretPath(plan, service.name, service.name, client.clientSecret) : null,
          ...oidcEndpoints(plan, client.provider, service.name),
          redirectUris: [...client.redirectUris],
          scopes: [...client.scopes],
          usernameClaim: client.usernameClaim,
          groupsClaim: client.groupsClaim,
        }
      : null,
  };
}

/** The data file of one enabled host. */
export function planHostData(plan: Plan, name: string, options: HostDataOptions = {}): HostData {
  const service = findService(plan, name);
  const data: HostData = {
    schemaVersion: hostDataSchemaVersion,
    host: planHostFacts(plan, service, options),
    secrets: planHostSecrets(plan, service),
  };
  const kind = service.kind;
  switch (kind) {
    case "dns":
      data.dns = planDnsData(plan);
      break;
    case "caddy":
      data.caddy = planCaddyData(plan);
      break;
    case "postgresql":
      data.postgresql = planPostgresqlData(plan, service);
      break;
    case "authentik":
    case "vaultwarden":
    case "guacamole":
      data[kind] = planAppData(plan, service, kind);
      break;
    case "custom":
      break;
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown service kind ${String(unreachable)}`);
    }
  }
  return data;
}
