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
import { ManifestError, ldapOutpostPort, outpostTokenDir, pgadminRole, radiusOutpostPort, type Problem } from "../manifest";
import { kindSpecs, postgresqlDefaultPort } from "../manifest/kinds";
import { defaultSubstituters, defaultTrustedPublicKeys } from "../manifest/nix-defaults";
import type { AuthClientPlan, DatabasePlan, Plan, RoutePlan, SecretPlan, ServiceKind, ServicePlan } from "../manifest/plan-types";
import { defaultStateVersion } from "./nixpkgs-pin";

/** Bump when the layout of host.json changes incompatibly with the shipped modules. */
export const hostDataSchemaVersion = 1;

/** The container NIC the Pulumi component creates (net0). */
export const containerInterface = "eth0";

/** The kinds whose module reads an `AppData` slice under `nixmox.<kind>` (every kind that runs an app, and custom). */
export const appKinds = ["authentik", "vaultwarden", "guacamole", "forgejo", "nextcloud", "monitoring", "media", "openbao", "mail", "pgadmin", "custom"] as const;
export type AppKind = (typeof appKinds)[number];

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
  /** Resolvers after dnsServer (manifest network.fallback_dns_servers). */
  fallbackDnsServers: string[];
  interface: string;
  ports: number[];
  udpPorts: number[];
  /** Manifest network.firewall. */
  firewall: "nftables" | "proxmox";
  /** Who may open each port (manifest/firewall.ts): from null is every address, else these sources only. */
  firewallRules: Array<{ protocol: "tcp" | "udp"; port: number; from: string[] | null; reasons: string[] }>;
  sshPort: number;
  rootSshKeys: string[];
  stateVersion: string;
  /**
   * True when the manifest sets the host's state_version. Otherwise `stateVersion` is only the default for a new
   * host: the host keeps the release of its first install (the config push carries its `state-version` file).
   */
  stateVersionFromManifest: boolean;
  system: string;
  secretsDir: string;
  /** PEM roots the host trusts besides the public ones: the managed CA's root (empty without one). */
  caCertificates: string[];
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
  /** Paths the proxy answers 403 instead of proxying (Loki's push endpoints: only the homelab's hosts push, directly). */
  blockedPaths: string[];
}

export interface CaddyData {
  routes: CaddyRouteData[];
  /** The managed CA's root certificate and key on the proxy host (secret files); null: Caddy's own CA. */
  ca: { certFile: string; intermediateCertFile: string; intermediateKeyFile: string } | null;
}

export interface PostgresqlData {
  port: number;
  databases: Array<{ service: string; name: string; owner: string; clientIp: string; credential: string; passwordFile: string }>;
  /** pgAdmin's own role on this host (it runs pgAdmin), logging in over loopback with a password; null: no pgAdmin. */
  admin: { role: string; credential: string; passwordFile: string } | null;
}

export interface DatabaseData {
  host: string;
  port: number;
  name: string;
  owner: string;
  passwordFile: string;
  /** More databases owned by the same role (interface.db.additionaldbs). */
  additional: string[];
}

export interface OidcData {
  provider: string;
  clientId: string;
  clientType: "confidential" | "public";
  clientSecretFile: string | null;
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  userinfoEndpoint: string;
  jwksEndpoint: string;
  redirectUris: string[];
  scopes: string[];
  usernameClaim: string;
  groupsClaim: string;
}

export interface RouteData {
  domain: string;
  path: string;
  /** The public URL of the route (scheme from its tls, path without a trailing '*'). */
  url: string;
  /** Port the route sends requests to on its upstream. */
  upstreamPort: number;
  auth: RoutePlan["auth"];
}

/** One app a kind runs (kinds.ts), with where it listens and how users log in. */
export interface AppInstanceData {
  listen: { address: string; port: number };
  publicUrl: string | null;
  /** The route's own OIDC client, else the service's when the app's route logs in with oidc, else null. */
  oidc: OidcData | null;
  /** The app's route auth: forward_auth means the proxy asks the SSO provider before every request. */
  auth: RoutePlan["auth"];
}

export interface AppData {
  /** The kind's main app (its only one, or the first routed one). */
  listen: { address: string; port: number };
  publicUrl: string | null;
  /** `interface.db` (or the only `interface.dbs` entry); null: none. */
  database: DatabaseData | null;
  /** Every database of the service: "db" for interface.db, else the interface.dbs entry name. */
  databases: Record<string, DatabaseData>;
  /** The service's own OIDC client (interface.auth type oidc); null: none. */
  oidc: OidcData | null;
  /** Every route of the service, by route name ("default" for a single route). */
  routes: Record<string, RouteData>;
  /** The apps of the kind (kinds.ts), by app name. */
  apps: Record<string, AppInstanceData>;
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
  forgejo?: AppData;
  nextcloud?: AppData;
  monitoring?: AppData;
  media?: AppData;
  openbao?: AppData;
  mail?: AppData;
  pgadmin?: AppData;
  custom?: AppData;
  /** A builder's settings (components/build builds the other hosts' systems on it). */
  builder?: BuilderData;
  /** The authentik host's outposts besides the embedded one (manifest network.outposts). */
  outposts?: OutpostsData;
  /**
   * The binary caches and keys the host's Nix uses (nix.settings.substituters, trusted-public-keys): the manifest's,
   * and first the stack's signing key when systems are built once and copied. Omitted: Nix's defaults (the manifest
   * sets none and every host builds itself).
   */
  nix?: NixData;
}

export interface BuilderData {
  /** Builds at once (nix.settings.max-jobs): the builder's cores. */
  maxJobs: number;
  /** Upstream resolvers the builder asks after the manifest's: it deploys before the DNS service. */
  forwarders: string[];
}

export interface NixData {
  substituters: string[];
  trustedPublicKeys: string[];
}

export interface OutpostsData {
  ldap: { baseDn: string; port: number } | null;
  radius: { clientNetworks: string[]; port: number; sharedSecretFile: string } | null;
  /** Secret file that will hold each outpost's API token (delivered after Authentik created the outpost). */
  tokenFiles: Record<string, string>;
}

export interface HostDataOptions {
  /**
   * system.stateVersion of a host whose manifest entry has no `state_version`. A host keeps the release of its
   * first install anyway: nixos/core.nix prefers /etc/nixmox/state-version, written on the host at that install
   * and carried by every config push (components/config-push.ts), so bumping this never moves a running host.
   * @default defaultStateVersion (the default nixpkgs pin's release)
   */
  stateVersion?: string;
  /**
   * The public half of the stack's signing key (`name:base64`) when some host's system is built elsewhere and copied
   * (components/build): every host trusts it. Omitted: no host trusts a NixMox key.
   */
  buildSigningPublicKey?: string;
  /**
   * The managed CA's root certificate (PEM) for `tls = "internal"` routes. Every host trusts it, and the proxy
   * host signs with its intermediate (delivered there as the proxy service's secrets `ca_intermediate_cert` and
   * `ca_intermediate_key`, the root as `ca_root_cert`; the root's key never leaves the stack). Omitted: Caddy's own
   * internal CA, trusted by no other host.
   */
  caRootCertificate?: string;
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

/** True when the route's upstream is this service itself (by ip or one of its names). */
function pointsAt(service: ServicePlan, route: RoutePlan): boolean {
  return [service.ip, service.fqdn, service.hostName, service.name].includes(splitHostPort(route.upstream).host);
}

/** Where an app of the kind listens: its route's upstream port when the route points at the host, else the kind's default. */
function appListenPort(plan: Plan, service: ServicePlan, app: string, kindForDefaults: ServiceKind = service.kind): number {
  const own = ownRoutes(plan, service).find((route) => route.app === app && pointsAt(service, route));
  return own ? splitHostPort(own.upstream).port : kindSpecs[kindForDefaults].apps[app].port;
}

/** The host's system.stateVersion as rendered: the manifest's, else the default for a new host (see `stateVersion`). */
export function hostStateVersion(service: ServicePlan, options: HostDataOptions = {}): string {
  return service.stateVersion ?? options.stateVersion ?? defaultStateVersion;
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
    fallbackDnsServers: [...plan.network.fallbackDnsServers],
    interface: containerInterface,
    ports: [...service.ports].sort((a, b) => a - b),
    udpPorts: [...service.udpPorts].sort((a, b) => a - b),
    firewall: plan.network.firewall,
    firewallRules: service.firewall.map((rule) => ({ protocol: rule.protocol, port: rule.port, from: rule.from === null ? null : [...rule.from], reasons: [...rule.reasons] })),
    sshPort: service.sshPort,
    // Sorted: the order of authorized keys means nothing, and must not change the host.
    rootSshKeys: [...(plan.network.sshKeys.root ?? [])].sort(),
    stateVersion: hostStateVersion(service, options),
    stateVersionFromManifest: service.stateVersion !== null && service.stateVersion !== undefined,
    system: options.system ?? "x86_64-linux",
    secretsDir: plan.secretsDir,
    caCertificates: options.caRootCertificate === undefined ? [] : [caRootPem(options.caRootCertificate)],
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

/**
 * The managed CA's secrets on the proxy host: the root certificate (the top of the chain Caddy builds) and the
 * intermediate's certificate and key, which sign the sites. The root's key stays in the stack (components/managed-ca.ts).
 */
export const managedCaSecrets = { cert: "ca_root_cert", intermediateCert: "ca_intermediate_cert", intermediateKey: "ca_intermediate_key" } as const;

/** The root certificate and the intermediate, as secret files of the proxy host (`managedCaSecrets`). */
export function managedCaSecretPlans(plan: Plan): SecretPlan[] {
  const proxy = plan.services.find((service) => service.kind === "caddy");
  if (!proxy) return [];
  const file = (name: string, description: string): SecretPlan => ({
    name,
    configService: proxy.name,
    service: proxy.name,
    path: `${plan.secretsDir}/${proxy.name}/${name}`,
    owner: "root",
    group: "root",
    mode: "0400",
    restartUnits: ["caddy.service"],
    generated: true,
    required: true,
    description,
  });
  return [
    file(managedCaSecrets.cert, "the managed CA's root certificate"),
    file(managedCaSecrets.intermediateCert, "the managed CA's intermediate certificate"),
    file(managedCaSecrets.intermediateKey, "the managed CA's intermediate key"),
  ];
}



const pemCertificate = /^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n?$/;

function caRootPem(pem: string): string {
  const normalized = pem.replace(/\r\n/g, "\n").trim() + "\n";
  if (!pemCertificate.test(normalized)) {
    throw new ManifestError("render", [{ subject: "managed CA", field: "caRootCertificate", message: "must be one PEM certificate (-----BEGIN CERTIFICATE----- … -----END CERTIFICATE-----)" }]);
  }
  return normalized;
}

/**
 * Loki's push endpoints (HTTP API docs: /loki/api/v1/push, the legacy /api/prom/push, OTLP /otlp/v1/logs), under the
 * route's path (Loki's http_path_prefix, nixos/lib/monitoring.nix). Through the proxy nobody pushes, logged in or not:
 * the homelab's hosts push to Loki directly, the only sources its firewall lets in besides the proxy (manifest/firewall.ts).
 */
export const lokiPushPaths = ["/loki/api/v1/push", "/api/prom/push", "/otlp/v1/logs"];

function blockedPaths(plan: Plan, route: RoutePlan): string[] {
  const owner = plan.services.find((candidate) => candidate.name === route.service);
  if (owner?.kind !== "monitoring" || route.app !== "loki") return [];
  const prefix = route.path.replace(/\*$/, "").replace(/\/$/, "");
  return lokiPushPaths.map((pushPath) => `${prefix}${pushPath}`);
}

function planCaddyData(plan: Plan, service: ServicePlan, options: HostDataOptions): CaddyData {
  return {
    ca: options.caRootCertificate === undefined
      ? null
      : {
          certFile: secretPath(plan, service.name, service.name, managedCaSecrets.cert),
          intermediateCertFile: secretPath(plan, service.name, service.name, managedCaSecrets.intermediateCert),
          intermediateKeyFile: secretPath(plan, service.name, service.name, managedCaSecrets.intermediateKey),
        },
    routes: plan.routes
      .map((route) => ({
        service: route.service,
        name: route.name,
        domain: route.domain,
        path: route.path,
        upstream: route.upstream,
        tls: route.tls,
        forwardAuthUpstream: route.forwardAuthUpstream,
        extraConfig: route.extraConfig,
        blockedPaths: blockedPaths(plan, route),
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
  const port = ports[0] ?? postgresqlDefaultPort;
  return {
    port,
    admin: runsPgadmin(plan, service)
      ? { role: pgadminRole, credential: "pgadmin-db-password", passwordFile: secretPath(plan, service.name, service.name, "pgadmin_db_password") }
      : null,
    // One entry per database; the additional databases of an entry share its owner and password.
    databases: databases
      .flatMap((db: DatabasePlan) =>
        [db.name, ...db.additional].map((name) => ({
          service: db.service,
          name,
          owner: db.owner,
          clientIp: db.clientIp,
          credential: `${db.service}-${db.passwordSecret}`,
          passwordFile: secretPath(plan, service.name, db.service, db.passwordSecret),
        })),
      )
      .sort((a, b) => byString(a.name, b.name)),
  };
}

/** Authentik's OIDC endpoints, from the provider's first route (https unless that route is plain HTTP). */
function oidcEndpoints(plan: Plan, providerName: string, slug: string) {
  const provider = findService(plan, providerName);
  const route = ownRoutes(plan, provider)[0];
  const base = route ? routeOrigin(route) : `http://${provider.ip}:${appListenPort(plan, provider, "authentik")}`;
  return {
    issuer: `${base}/application/o/${slug}/`,
    authorizationEndpoint: `${base}/application/o/authorize/`,
    tokenEndpoint: `${base}/application/o/token/`,
    userinfoEndpoint: `${base}/application/o/userinfo/`,
    jwksEndpoint: `${base}/application/o/${slug}/jwks/`,
  };
}

type OidcClientPlan = Extract<AuthClientPlan, { type: "oidc" }>;

function planOidcData(plan: Plan, service: ServicePlan, client: OidcClientPlan): OidcData {
  return {
    provider: client.provider,
    clientId: client.clientId,
    clientType: client.clientType,
    clientSecretFile: client.clientSecret ? secretPath(plan, service.name, service.name, client.clientSecret) : null,
    ...oidcEndpoints(plan, client.provider, client.slug),
    redirectUris: [...client.redirectUris],
    scopes: [...client.scopes],
    usernameClaim: client.usernameClaim,
    groupsClaim: client.groupsClaim,
  };
}

/** The app data of `service` as a host of `kind` (its own kind, or pgadmin on a PostgreSQL host). */
function planAppData(plan: Plan, service: ServicePlan, kind: AppKind): AppData {
  const oidcClients = plan.authClients.filter((candidate): candidate is OidcClientPlan => candidate.type === "oidc" && candidate.service === service.name);
  const serviceClient = oidcClients.find((client) => client.route === null);
  const routes = ownRoutes(plan, service);
  const dbs = plan.databases.filter((candidate) => candidate.service === service.name);
  const databases: Record<string, DatabaseData> = {};
  for (const db of dbs) {
    databases[db.key] = {
      host: db.host,
      port: db.port,
      name: db.name,
      owner: db.owner,
      passwordFile: secretPath(plan, service.name, service.name, db.passwordSecret),
      additional: [...db.additional],
    };
  }
  const apps: Record<string, AppInstanceData> = {};
  for (const app of Object.keys(kindSpecs[kind].apps).sort()) {
    const route = routes.find((candidate) => candidate.app === app);
    const ownClient = route ? oidcClients.find((client) => client.route === route.name) : undefined;
    const client = ownClient ?? (route?.auth === "oidc" || (!route && kind !== "monitoring" && kind !== "media") ? serviceClient : undefined);
    apps[app] = {
      listen: { address: service.ip, port: appListenPort(plan, service, app, kind) },
      publicUrl: route ? routeUrl(route) : null,
      oidc: client ? planOidcData(plan, service, client) : null,
      auth: route?.auth ?? null,
    };
  }
  const mainApp = Object.keys(apps).find((app) => routes.some((route) => route.app === app)) ?? Object.keys(apps)[0];
  const mainRoute = routes.find((route) => route.app === mainApp) ?? routes[0];
  // A custom app listens where its own routes send: a route of this service whose upstream is another host says
  // nothing about this host's port (security review N3).
  const listenRoute = routes.find((route) => pointsAt(service, route));
  const mainListen = mainApp
    ? apps[mainApp].listen
    : { address: service.ip, port: listenRoute ? splitHostPort(listenRoute.upstream).port : 0 };
  return {
    listen: mainListen,
    publicUrl: mainRoute ? routeUrl(mainRoute) : null,
    database: databases.db ?? (dbs.length === 1 ? databases[dbs[0].key] : null),
    databases,
    oidc: serviceClient ? planOidcData(plan, service, serviceClient) : null,
    routes: Object.fromEntries(
      routes
        .map((route): [string, RouteData] => [route.name, { domain: route.domain, path: route.path, url: routeUrl(route), upstreamPort: splitHostPort(route.upstream).port, auth: route.auth }])
        .sort(([a], [b]) => byString(a, b)),
    ),
    apps,
  };
}

/** The outposts an authentik host runs, or undefined when it runs none. */
function planOutpostsData(plan: Plan, service: ServicePlan): OutpostsData | undefined {
  const mine = plan.outposts.filter((outpost) => outpost.provider === service.name);
  if (mine.length === 0) return undefined;
  const ldap = mine.find((outpost) => outpost.type === "ldap");
  const radius = mine.find((outpost) => outpost.type === "radius");
  return {
    ldap: ldap?.type === "ldap" ? { baseDn: ldap.baseDn, port: ldapOutpostPort } : null,
    radius: radius?.type === "radius"
      ? { clientNetworks: [...radius.clientNetworks], port: radiusOutpostPort, sharedSecretFile: secretPath(plan, service.name, service.name, radius.sharedSecret) }
      : null,
    tokenFiles: Object.fromEntries(mine.map((outpost) => [outpost.type, `${outpostTokenDir}/${outpost.type}-token`])),
  };
}

/** True when a PostgreSQL host also runs pgAdmin: it has a route (the original NixMox layout). */
export function runsPgadmin(plan: Plan, service: ServicePlan): boolean {
  return service.kind === "postgresql" && ownRoutes(plan, service).length > 0;
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
      data.caddy = planCaddyData(plan, service, options);
      break;
    case "postgresql":
      data.postgresql = planPostgresqlData(plan, service);
      if (runsPgadmin(plan, service)) data.pgadmin = planAppData(plan, service, "pgadmin");
      break;
    case "authentik": {
      data.authentik = planAppData(plan, service, kind);
      const outposts = planOutpostsData(plan, service);
      if (outposts) data.outposts = outposts;
      break;
    }
    case "vaultwarden":
    case "guacamole":
    case "forgejo":
    case "nextcloud":
    case "monitoring":
    case "media":
    case "openbao":
    case "mail":
    case "pgadmin":
    case "custom":
      data[kind] = planAppData(plan, service, kind);
      break;
    case "builder":
      data.builder = { maxJobs: service.resources.cores, forwarders: [...plan.network.dns.forwarders] };
      break;
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown service kind ${String(unreachable)}`);
    }
  }
  const nix = planNixData(plan, options);
  if (nix) data.nix = nix;
  return data;
}

/** The host's caches and keys, or undefined when they are Nix's defaults and no NixOS-built closure is copied. */
export function planNixData(plan: Plan, options: HostDataOptions = {}): NixData | undefined {
  const { substituters, trustedPublicKeys } = plan.nixCaches;
  const isDefault = (list: string[], defaults: readonly string[]) => list.length === defaults.length && list.every((entry, index) => entry === defaults[index]);
  if (options.buildSigningPublicKey === undefined && isDefault(substituters, defaultSubstituters) && isDefault(trustedPublicKeys, defaultTrustedPublicKeys)) return undefined;
  return {
    substituters: [...substituters],
    trustedPublicKeys: [...new Set([...(options.buildSigningPublicKey === undefined ? [] : [options.buildSigningPublicKey]), ...trustedPublicKeys])],
  };
}
