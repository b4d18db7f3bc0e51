/**
 * The deployment plan: pure data computed from a validated manifest (see `plan.ts`).
 * Everything downstream (rendering, Pulumi components, CLI views) reads these types, never the raw manifest.
 * All arrays are sorted deterministically (services by name, routes by domain then path, …).
 */

/** Built-in NixOS modules shipped under `nixos/`; "custom" runs the module files named in the manifest. */
export const builtinKinds = [
  "dns",
  "caddy",
  "postgresql",
  "authentik",
  "vaultwarden",
  "guacamole",
  "forgejo",
  "nextcloud",
  "monitoring",
  "media",
  "openbao",
  "mail",
  "pgadmin",
  "builder",
] as const;
export type BuiltinKind = (typeof builtinKinds)[number];
export type ServiceKind = BuiltinKind | "custom";

/** When a health check runs: after activation (gates the deploy), on refresh/status, or both. */
export type HealthPhase = "startup" | "liveness" | "both";

/** One health probe. Command, systemd and host-side HTTP probes run on the service's host over SSH. */
export type HealthCheckSpec =
  | { name: string; phase: HealthPhase; kind: "command"; command: string }
  | { name: string; phase: HealthPhase; kind: "systemd"; unit: string }
  | { name: string; phase: HealthPhase; kind: "tcp"; host: string; port: number }
  | { name: string; phase: HealthPhase; kind: "http"; url: string; expectStatus: number; from: "controller" | "host" };

/** Compose semantics: a probe is retried every `intervalSeconds`; `retries` consecutive failures after
 * `startPeriodSeconds` make the service unhealthy; each probe is killed after `timeoutSeconds`. */
export interface HealthPlan {
  checks: HealthCheckSpec[];
  intervalSeconds: number;
  timeoutSeconds: number;
  retries: number;
  startPeriodSeconds: number;
}

export interface ResourcesPlan {
  cores: number;
  memoryMiB: number;
  swapMiB: number;
  diskGiB: number;
}

export interface SecretPlan {
  /** Secret name, unique per service (e.g. `db_password`, `oidc_client_secret`, `env`). */
  name: string;
  /** The service whose stack config key holds the value: `nixmox:secrets.<owner service>.<name>`. */
  configService: string;
  /** Host that receives the file. */
  service: string;
  /** Absolute path on the host (under `secretsDir`). */
  path: string;
  owner: string;
  group: string;
  mode: string;
  /** systemd units restarted when the value changes. */
  restartUnits: string[];
  /** Generated with @pulumi/random when not set in the stack config. */
  generated: boolean;
  /** A missing value stops the deploy (false: the module runs without it). */
  required: boolean;
  description: string;
}

export interface RoutePlan {
  /** Service that owns the route. */
  service: string;
  /** Route name: "default" for a single route, else the attribute name of a named route. */
  name: string;
  domain: string;
  path: string;
  upstream: string;
  tls: "internal" | "acme" | "off";
  auth: "oidc" | "forward_auth" | null;
  /** Service that provides auth for this route (forward auth or OIDC), or null. */
  authProvider: string | null;
  /** host:port the reverse proxy asks before a forward_auth route (the provider's outpost), else null. */
  forwardAuthUpstream: string | null;
  /** Client id of the route's own OIDC client (`interface.proxy.<name>.auth` with type oidc), else null. */
  oidcClient: string | null;
  /** The built-in app this route serves (kinds.ts), or null. */
  app: string | null;
  extraConfig: string;
}

export interface DnsRecordPlan {
  name: string;
  type: "A";
  value: string;
  /** Why the record exists: "host" or "route". */
  source: "host" | "route";
  service: string;
}

export interface DatabasePlan {
  /** The application that uses the database. */
  service: string;
  /** "db" for interface.db, else the interface.dbs entry name. */
  key: string;
  /** More databases owned by the same role (interface.db.additionaldbs). */
  additional: string[];
  /** The PostgreSQL service that hosts it. */
  server: string;
  host: string;
  port: number;
  name: string;
  owner: string;
  /** The client's IP, for pg_hba. */
  clientIp: string;
  /** Secret name (on both hosts) holding the owner's password. */
  passwordSecret: string;
}

export type AuthClientPlan =
  | {
      type: "oidc";
      service: string;
      /** null: the service's client (interface.auth); else the route that has its own (interface.proxy.<route>.auth). */
      route: string | null;
      /** Authentik application slug: the service name, or "<service>-<route>". */
      slug: string;
      provider: string;
      clientId: string;
      clientType: "confidential" | "public";
      redirectUris: string[];
      scopes: string[];
      usernameClaim: string;
      groupsClaim: string;
      /** Secret name holding the client secret (null for public clients). */
      clientSecret: string | null;
      launchUrl: string | null;
    }
  | {
      type: "forward_auth";
      service: string;
      provider: string;
      /** Route domains protected by this client. */
      domains: string[];
      /** host:port of the provider's outpost that the reverse proxy asks. */
      upstream: string;
    };

export interface EdgePlan {
  from: string;
  to: string;
  /** Human reason, e.g. "depends_on", "interface.db.host is postgresql's address". */
  reasons: string[];
  /**
   * Hard: `from` boots after `to` is healthy (depends_on, database host, DNS server); waves and health gates
   * follow hard edges only. Soft: an SSO relation, which never orders hosts (the SSO objects wait for both ends).
   */
  hard: boolean;
}

/** An Authentik outpost besides the embedded one (manifest network.outposts), run on its authentik host. */
export type OutpostPlan =
  | { type: "ldap"; provider: string; baseDn: string }
  | { type: "radius"; provider: string; clientNetworks: string[]; sharedSecret: string };

/** A named group of services from the manifest's deployment_phases (display only: order comes from the edges). */
export interface PhasePlan {
  name: string;
  services: string[];
}

export interface ServicePlan {
  name: string;
  kind: ServiceKind;
  /** Whether it came from `core_services` or `services`. */
  group: "core_services" | "services";
  /** Proxmox container id from the manifest; null: Proxmox assigns one at the first deploy and the stack keeps it. */
  vmid: number | null;
  ip: string;
  /** Prefix length of `network.network_cidr`. */
  prefixLength: number;
  /** Short host name (first label). */
  hostName: string;
  /** Fully qualified name. */
  fqdn: string;
  version: string | null;
  node: string | null;
  resources: ResourcesPlan;
  onboot: boolean;
  start: boolean;
  stateful: boolean;
  tags: string[];
  /** TCP ports the firewall opens: the manifest's, the kind's, its routes' upstream ports and its database port. */
  ports: number[];
  /** UDP ports the firewall opens (the kind's: DNS, HTTP/3). */
  udpPorts: number[];
  /** The manifest's public_ports: open to every address. */
  publicPorts: number[];
  /** Who may open each TCP and UDP port (firewall.ts): the proxy, a port's consumers, everyone, or nobody but the host. */
  firewall: FirewallRulePlan[];
  sshPort: number;
  /** Services this one boots after (hard edges: declared and inferred), sorted. */
  dependsOn: string[];
  /** SSO providers this one uses (soft edges: they do not order hosts), sorted. */
  ssoProviders: string[];
  wave: number;
  /** Proxmox startup order (lower starts first). */
  startupOrder: number;
  /** Manifest-relative NixOS module files (for `custom` and extra modules). */
  nixosModules: string[];
  /** Manifest `state_version` (system.stateVersion fixed by the user), null when omitted. */
  stateVersion: string | null;
  health: HealthPlan;
  secrets: SecretPlan[];
}

/** One port of a host and the sources its firewall accepts (manifest/firewall.ts). */
export interface FirewallRulePlan {
  protocol: "tcp" | "udp";
  port: number;
  /** null: every address; else the IPv4 addresses or CIDRs allowed, sorted (empty: only the host itself). */
  from: string[] | null;
  /** Why the port is open to them, e.g. "route vault.nixmox.lan", "database vaultwarden", "public_ports". */
  reasons: string[];
}

export interface NetworkPlan {
  domain: string;
  dnsServer: string;
  /** Resolvers asked when dnsServer does not answer (manifest network.fallback_dns_servers), in order. */
  fallbackDnsServers: string[];
  gateway: string;
  networkCidr: string;
  prefixLength: number;
  vlanTag: number | null;
  sshKeys: Record<string, string[]>;
  /** The DNS service's upstream resolvers (default: the gateway), extra client networks and DNSSEC switch. */
  dns: { forwarders: string[]; allowedNetworks: string[]; dnssec: boolean };
  /** Where containers are firewalled: inside (NixOS nftables) or by the Proxmox firewall. */
  firewall: "nftables" | "proxmox";
}

/** Where a host's system is built: on the builder service, on the controller, or on the host itself. */
export type BuildPlace = "builder" | "controller" | "target";

/** Where builds happen (manifest `build`, build-plan.ts). */
export interface BuildPlan {
  /** What the manifest asked (`build.on`). */
  requested: "auto" | BuildPlace;
  /** Where hosts build unless they build on their own: "auto" resolved from the manifest. */
  mode: BuildPlace;
  /** The builder service, when mode is "builder". */
  builder: string | null;
  /** Per enabled service, where its system is built. */
  hosts: Record<string, BuildPlace>;
  /** One line saying which was chosen and why (printed by plan, preview and up). */
  message: string;
}

export interface Plan {
  network: NetworkPlan;
  /** Where each host's system is built. */
  build: BuildPlan;
  /** The binary caches and keys of every build and host (manifest network.substituters, trusted_public_keys). */
  nixCaches: { substituters: string[]; trustedPublicKeys: string[] };
  /** Directory on every host holding secret files (root-only, outside the Nix store). */
  secretsDir: string;
  /** Enabled services, sorted by name. */
  services: ServicePlan[];
  /** Names of disabled services, sorted. */
  disabled: string[];
  edges: EdgePlan[];
  /** Topological levels; wave 0 has no dependencies. */
  waves: string[][];
  routes: RoutePlan[];
  dnsRecords: DnsRecordPlan[];
  databases: DatabasePlan[];
  authClients: AuthClientPlan[];
  outposts: OutpostPlan[];
  secrets: SecretPlan[];
  /** The manifest's deployment_phases, by name. */
  phases: PhasePlan[];
  /** manifest enable_rollback: roll a failed activation back to the previous generation. */
  rollback: boolean;
  /** What NixMox decided for the author: a derived domain, a default log database, an ignored block (manifest/advice.ts). */
  notes: string[];
  /** Things that are valid but probably not what the author meant (shown by validate and plan; manifest/advice.ts). */
  warnings: string[];
  /** Directory of the manifest file, to resolve relative module paths (not part of rendered output). */
  manifestDir: string;
}
