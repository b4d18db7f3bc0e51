/**
 * The service manifest schema: the one source of truth for the manifest's shape, defaults and documentation.
 *
 * Field names follow the original NixMox manifest (`network`, `core_services`, `services`, `depends_on`,
 * `interface.proxy|auth|health|db`, snake_case); NixMox extensions are marked "NixMox extension" in their
 * description. Every object is strict, so a typo such as `depend_on` is reported instead of ignored.
 * Defaults that depend on other fields (a service's hostname, a database's owner, …) are applied in
 * `plan.ts` and documented here.
 */
import { z } from "zod";
import { postgresqlDefaultPort } from "./kinds";
import { builtinKinds } from "./plan-types";
import { defaultSubstituters, defaultTrustedPublicKeys } from "./nix-defaults";

/** A DNS label: letters, digits and inner hyphens (RFC 1123). */
const dnsLabelPattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** One or more DNS labels joined by dots (one pattern, no split: it runs for every name of every service). */
const dnsNamePattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** True when `value` is a valid lower-case DNS name (one or more labels, at most 253 characters). */
export function isDnsName(value: string): boolean {
  return value.length <= 253 && dnsNamePattern.test(value);
}

/** A number from 0 to 255 without a leading zero. */
const octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
const ipv4Pattern = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}$`);

/** True when `value` is a dotted-quad IPv4 address without leading zeros. */
export function isIpv4(value: string): boolean {
  return ipv4Pattern.test(value);
}

const hostPortPattern = /^([^:]+):([0-9]{1,5})$/;

/** True when `value` is `host:port` with an IPv4 address or DNS name and a port in 1–65535. */
export function isHostPort(value: string): boolean {
  const match = hostPortPattern.exec(value);
  if (!match) return false;
  const port = Number(match[2]);
  return (isIpv4(match[1]) || isDnsName(match[1])) && port >= 1 && port <= 65535;
}

const dnsName = () =>
  z.string().refine(isDnsName, { message: "must be a valid DNS name (lower-case letters, digits, '-' and '.')" });
const ipv4 = z.string().refine(isIpv4, { message: "must be an IPv4 address such as 192.168.99.10" });
const hostPort = z.string().refine(isHostPort, { message: 'must be "host:port"' });
const port = z.number().int().min(1).max(65535);
const cidr = z
  .string()
  .regex(/^[0-9.]+\/([0-9]|[12][0-9]|3[0-2])$/, { message: 'must be an IPv4 CIDR such as "192.168.99.0/24"' })
  .refine((value) => isIpv4(value.split("/")[0]), { message: 'must be an IPv4 CIDR such as "192.168.99.0/24"' });
/** The activation wrapper counts whole seconds in bash arithmetic; a day is far beyond any health timing. */
const maxSeconds = 86_400;
const positiveSeconds = z.number().positive().max(maxSeconds);
/** A URL that both the schema pattern and the WHATWG parser (`new URL`, what the probes use) accept. */
const httpUrl = (message: string) =>
  z.string().regex(/^https?:\/\/[^\s"'\\`$]+$/, { message }).refine((value) => URL.canParse(value), { message: "must be a URL that parses (check the host and port)" });
const shellCommand = z
  .string()
  .min(1)
  .refine((command) => !/[\0\r\n]/.test(command), { message: "must be a single line (no newline or NUL)" });

/** An OpenSSH public key line: type, base64 body, optional comment; never more than one line. */
const sshPublicKey = z
  .string()
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\0\r\n]*)?$/,
    { message: 'must be one OpenSSH public key line such as "ssh-ed25519 AAAA… user@host"' },
  );

export const networkSchema = z
  .strictObject({
    domain: dnsName()
      .optional()
      .describe(
        "Domain of the homelab; short hostnames get it appended. Omitted: the suffix the services' full hostnames share " +
          '(dns.home.lab and vault.home.lab give "home.lab"; `validate` says so); without one it must be set.',
      ),
    dns_server: ipv4.describe("Resolver every container uses. When it is a service's IP, that service deploys first."),
    fallback_dns_servers: z
      .array(ipv4)
      .max(2)
      .default([])
      .describe(
        "NixMox extension: resolvers every container asks, in order, when dns_server does not answer (resolv.conf holds three in all), so a restart " +
          "of the DNS container is no outage: a second service of kind dns (it answers the homelab's names too), or the gateway (outside names only). Default: none.",
      ),
    gateway: ipv4.describe("Default gateway; must lie inside network_cidr."),
    network_cidr: cidr.describe("The containers' subnet; every service ip and the gateway must lie inside it."),
    vlan_tag: z
      .number()
      .int()
      .min(1)
      .max(4094)
      .nullable()
      .default(null)
      .describe("VLAN tag of every container's NIC. Omitted or null: untagged."),
    ssh_keys: z
      .record(z.string().regex(/^[a-z_][a-z0-9_-]*$/, { message: "must be a Unix user name" }), z.array(sshPublicKey))
      .default({})
      .describe("Public keys allowed to log in, per user (`root` is the account NixMox deploys with)."),
    dns: z
      .strictObject({
        forwarders: z.array(ipv4).min(1).optional()
          .describe("Resolvers the DNS service forwards every name outside the homelab to. Omitted: the gateway."),
        allowed_networks: z.array(cidr).default([])
          .describe("Networks besides network_cidr allowed to query the DNS service (e.g. an admin LAN)."),
        dnssec: z.boolean().default(false)
          .describe("Validate DNSSEC on the DNS service. Only with forwarders that pass signatures through: many home routers strip them, and every outside name would then fail."),
      })
      .prefault({})
      .describe("NixMox extension: the DNS service's upstream, clients and DNSSEC."),
    firewall: z
      .enum(["nftables", "proxmox"])
      .default("nftables")
      .describe(
        'NixMox extension: where containers are firewalled. "nftables": the NixOS firewall inside each container, on nftables without the ' +
          'reverse-path filter (the Proxmox node must have the nf_tables and nf_conntrack modules loaded; an unprivileged container cannot load them). ' +
          '"proxmox": no firewall inside the containers; configure the Proxmox firewall for them.',
      ),
    outposts: z
      .strictObject({
        ldap: z
          .strictObject({
            base_dn: z
              .string()
              .regex(/^[A-Za-z]+=[^,=\0\r\n]+(,[A-Za-z]+=[^,=\0\r\n]+)*$/, { message: 'must be an LDAP DN such as "dc=nixmox,dc=lan"' })
              .optional()
              .describe('Base DN the LDAP outpost serves. Omitted: "dc=<label>" for each label of network.domain.'),
            provider: z.string().optional().describe("NixMox extension: the authentik service that runs it. Omitted: the manifest's only authentik service."),
          })
          .optional()
          .describe("An Authentik LDAP provider, application and outpost, running on the authentik host (port 3389)."),
        radius: z
          .strictObject({
            client_networks: z
              .array(cidr)
              .default(["0.0.0.0/0"])
              .describe('Networks allowed to talk RADIUS. Default ["0.0.0.0/0"].'),
            provider: z.string().optional().describe("NixMox extension: the authentik service that runs it. Omitted: the manifest's only authentik service."),
          })
          .optional()
          .describe(
            "An Authentik RADIUS provider, application and outpost, running on the authentik host (UDP 1812). Its shared secret is " +
              "the stack secret `nixmox:secrets.<authentik>.radius_shared_secret` (generated when not set), never a manifest value.",
          ),
      })
      .default({})
      .describe("Authentik outposts besides the embedded one (the original NixMox `network.outposts`)."),
    substituters: z
      .array(z.string().regex(/^(https?|s3|ssh|ssh-ng|file):\/\/[A-Za-z0-9._~:/?#@!$&*+,;=%-]+$/, { message: "must be a Nix binary cache URL such as https://cache.example.lan" }))
      .default([...defaultSubstituters])
      .describe(
        "NixMox extension: the binary caches every build uses, in order, on the builder (or the controller) and on every host (nix.settings.substituters): " +
          'a cache of your own (on the builder, or anywhere) and/or the public one. Default: ["https://cache.nixos.org"]. List the keys they sign with in trusted_public_keys.',
      ),
    trusted_public_keys: z
      .array(z.string().regex(/^[A-Za-z0-9._-]+:[A-Za-z0-9+/]+={0,2}$/, { message: 'must be a Nix public key "name:base64" (nix-store --generate-binary-cache-key prints one)' }))
      .default([...defaultTrustedPublicKeys])
      .describe(
        "NixMox extension: the keys whose signatures the builds and hosts accept for substituted paths (nix.settings.trusted-public-keys), besides the stack's own " +
          "signing key for systems built once and copied. Default: cache.nixos.org's key.",
      ),
  })
  .describe("Network facts shared by every container.");

/** Where hosts' systems are built (issue 18: build once, copy closures). */
export const buildSchema = z
  .strictObject({
    on: z
      .enum(["auto", "builder", "controller", "target"])
      .default("auto")
      .describe(
        '"builder": on the manifest\'s service of kind builder, which deploys first; "controller": on the machine that runs Pulumi (its Nix must build ' +
          'x86_64-linux with flakes); "target": every host builds itself, as nixos-rebuild on the host (each needs the memory of a NixOS evaluation). ' +
          '"auto" (default): the builder when the manifest has one, else "target". Hosts built elsewhere only receive their signed closure and switch to it.',
      ),
    builder: z.string().optional().describe("The service that builds. Omitted: the manifest's only service of kind builder."),
    on_target: z
      .array(z.string())
      .default([])
      .describe("Services that build on their own host whatever `on` says (the builder service itself always does)."),
  })
  .prefault({})
  .describe("NixMox extension: where hosts' NixOS systems are built (docs/building.md).");

const tlsSchema = z
  .union([z.boolean(), z.enum(["internal", "acme", "off"])])
  .default(true)
  .describe('TLS for the route: true or "internal" (Caddy\'s internal CA, the default), "acme" (a public CA: only for a name in the public DNS, not .lan, .home.arpa, .internal, .local), false or "off".');

/** Caddyfile directives must keep braces balanced so they cannot close the site block they are pasted into. */
function bracesBalanced(text: string): boolean {
  let depth = 0;
  for (const char of text) {
    if (char === "{") depth += 1;
    if (char === "}") depth -= 1;
    if (depth < 0) return false;
  }
  return depth === 0;
}

export const authSchema = z
  .strictObject({
    type: z.enum(["oidc", "forward_auth"]).describe("oidc: the app logs users in itself; forward_auth: the proxy asks the provider first."),
    provider: z
      .string()
      .optional()
      .describe("Service that provides SSO (an authentik service). Omitted: the manifest's only authentik service."),
    oidc: z
      .strictObject({
        client_id: z
          .string()
          .regex(/^[A-Za-z0-9._-]+$/, { message: "must contain only letters, digits, '.', '_' and '-'" })
          .optional()
          .describe('OIDC client id. Omitted: the service name (for a route\'s own auth: "<service>-<route>").'),
        client_type: z.enum(["confidential", "public"]).default("confidential"),
        redirect_uris: z
          .array(httpUrl("must be an http(s) URL without spaces or quotes"))
          .optional()
          .describe("Allowed redirect URIs. Omitted: the built-in module's callback on each of the client's route domains; required for a custom app, whose callback NixMox cannot know."),
        scopes: z.array(z.string().regex(/^[a-z_:.-]+$/)).default(["openid", "email", "profile"]),
        username_claim: z.string().regex(/^[a-z_]+$/).default("preferred_username"),
        groups_claim: z.string().regex(/^[a-z_]+$/).default("groups"),
      })
      .prefault({})
      .describe("OIDC client settings; every field has a default."),
    forward_auth_upstream: hostPort
      .optional()
      .describe('Outpost the proxy asks, "host:port". Omitted: the provider\'s embedded outpost, "<provider ip>:9000".'),
  })
  .describe("Single sign-on, generated in Authentik: for the whole service (interface.auth) or for one route (interface.proxy.<route>.auth).");

export const proxyRouteSchema = z
  .strictObject({
    domain: dnsName().describe("Domain served by the reverse proxy; it gets a DNS record pointing at the proxy."),
    path: z
      .string()
      .regex(/^\/[A-Za-z0-9._~\/-]*\*?$/, { message: 'must start with "/" and contain only URL path characters' })
      .default("/")
      .describe('Path prefix routed to the upstream. Default "/".'),
    upstream: hostPort.describe('Where the proxy sends requests, "host:port".'),
    tls: tlsSchema,
    authz: z
      .boolean()
      .default(false)
      .describe("Require a login for this route: forward auth unless the service's interface.auth says oidc."),
    auth: z
      .union([z.boolean(), z.enum(["oidc", "forward_auth", "none"]), authSchema])
      .optional()
      .describe(
        "The route's own auth: an auth object (type, provider, oidc, forward_auth_upstream) like interface.auth, for this route only; " +
          "false/\"none\" turns auth off, true or \"oidc\"/\"forward_auth\" use the service's interface.auth with that type. " +
          "Omitted: the service's interface.auth.type, or forward_auth when authz is true.",
      ),
    extra_config: z
      .string()
      .refine(bracesBalanced, { message: "must have balanced { } (it is pasted inside the route's Caddy block)" })
      .default("")
      .describe("Caddyfile directives added to the route, passed through as written."),
  })
  .describe("One reverse-proxy route.");



const phaseSchema = z
  .enum(["startup", "liveness", "both"])
  .default("both")
  .describe("startup: gates the deploy (and triggers rollback); liveness: status and refresh; both (default).");

export const healthCheckSchema = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("systemd"),
    unit: z.string().regex(/^[A-Za-z0-9@:._-]+$/, { message: "must be a systemd unit name" }),
    phase: phaseSchema,
  }),
  z.strictObject({
    type: z.literal("tcp"),
    port,
    host: z.string().refine((host) => isIpv4(host) || isDnsName(host), { message: "must be an IPv4 address or DNS name" }).optional()
      .describe("Host to connect to. Omitted: the service's ip."),
    phase: phaseSchema,
  }),
  z.strictObject({
    type: z.literal("http"),
    url: httpUrl("must be an http(s) URL without spaces, quotes or $"),
    expect_status: z.number().int().min(100).max(599).default(200),
    from: z.enum(["controller", "host"]).default("controller").describe("Probe from the machine running NixMox, or from inside the host."),
    phase: phaseSchema,
  }),
]);

export const healthSchema = z
  .strictObject({
    startup: shellCommand.optional().describe("Shell command run on the host after activation; failure rolls the deploy back."),
    liveness: shellCommand.optional().describe("Shell command run on the host by status and refresh."),
    checks: z.array(healthCheckSchema).default([]).describe("NixMox extension: systemd, tcp and http checks."),
    interval: positiveSeconds.optional().describe("Seconds between probes. Omitted: the manifest's retry_delay, else 10."),
    timeout: positiveSeconds.optional().describe("Seconds before one probe counts as failed. Omitted: 5."),
    retries: z.number().int().min(1).max(10_000).optional()
      .describe("Consecutive failures (after start_period) that make the service unhealthy. Omitted: the manifest's retry_attempts, else 3."),
    start_period: z.number().min(0).max(maxSeconds).optional()
      .describe("NixMox extension (Compose): seconds during which failures do not count. Omitted: the manifest's health_check_timeout, else 0."),
  })
  .describe("Health checks with Docker Compose semantics. Omitted: the built-in module's main unit must be active.");

/** A PostgreSQL database or role name; NixMox always quotes it, so reserved words ("user") and '-' work. */
const pgName = z.string().regex(/^[a-z_][a-z0-9_-]{0,62}$/, { message: "must be a PostgreSQL name (a-z, 0-9, '_' and '-', at most 63 characters, not starting with a digit or '-')" });

export const dbSchema = z
  .strictObject({
    host: z.string().min(1).describe("The PostgreSQL service: its ip, hostname or name."),
    name: pgName.optional().describe("Database name. Omitted: the service name (for interface.dbs: the entry's name)."),
    owner: pgName.optional().describe("Owner role. Omitted: the database name."),
    port: port.default(postgresqlDefaultPort),
    additionaldbs: z.array(pgName).default([]).describe('More databases owned by the same role, such as "sonarr-log".'),
  })
  .describe("A database this service needs; NixMox creates it and its owner on the PostgreSQL host.");

export const interfaceSchema = z
  .strictObject({
    proxy: z
      .union([proxyRouteSchema, z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { message: "must be a route name (a-z, 0-9, _ and -)" }), proxyRouteSchema)])
      .optional()
      .describe("One route, or an attribute set of named routes."),
    auth: authSchema.optional(),
    health: healthSchema.optional(),
    db: dbSchema.optional(),
    dbs: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { message: "must be a database entry name (a-z, 0-9, _ and -)" }), dbSchema)
      .optional()
      .describe("Several databases, by name (one role and password each); may be combined with db."),
    terraform: z
      .looseObject({
        modules: z.array(z.string()).optional(),
        variables: z.record(z.string(), z.unknown()).optional(),
      })
      .optional()
      .describe(
        "Accepted from the original NixMox and ignored: its containers were created by per-service Terraform modules, NixMox's Pulumi " +
          "program creates them now. `validate` notes it once, and warns where variables.domain or variables.network_cidr disagree with network.",
      ),
  })
  .describe("What the service offers and needs.");

export const secretDeclarationSchema = z
  .strictObject({
    owner: z.string().regex(/^[a-z_][a-z0-9_-]*$/).default("root").describe("File owner on the host."),
    group: z.string().regex(/^[a-z_][a-z0-9_-]*$/).default("root"),
    mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, { message: 'must be an octal mode such as "0400"' })
      .refine((mode) => (parseInt(mode, 8) & 0o022) === 0, { message: 'must not let group or others write the file; use a mode such as "0440"' })
      .default("0400"),
    restart_units: z.array(z.string().regex(/^[A-Za-z0-9@:._-]+$/, { message: "must be a systemd unit name" })).default([])
      .describe("Units restarted when the value changes."),
    generate: z.boolean().default(false).describe("Generate a random value when the stack config does not set one."),
    description: z.string().default(""),
  })
  .describe("A secret the service consumes; the value lives in the Pulumi stack config, never in the manifest.");

export const modulePathSchema = z
  .string()
  .regex(/^(\.\/)?([A-Za-z0-9_-][A-Za-z0-9._-]*\/)*[A-Za-z0-9_-][A-Za-z0-9._-]*\.nix$/, {
    message: 'must be a relative path to a .nix file inside the manifest\'s directory, such as "modules/grafana.nix"',
  });

export const serviceSchema = z
  .strictObject({
    enable: z.boolean().default(true).describe("Disabled services are planned and rendered nowhere."),
    kind: z
      .enum([...builtinKinds, "custom"])
      .optional()
      .describe("NixMox extension: which built-in NixOS module runs it. Omitted: the service name when it is built in, else custom."),
    ip: ipv4.describe("Static IPv4 address inside network_cidr."),
    hostname: dnsName().optional().describe("Host name; a short name gets network.domain appended. Omitted: <name>.<domain>."),
    vmid: z.number().int().min(100).max(999999999).optional()
      .describe("Proxmox container id, unique in the manifest. Omitted: Proxmox assigns the next free id when it creates the container, and the stack keeps it (`plan` shows \"assigned at first deploy\")."),
    version: z.string().regex(/^[A-Za-z0-9._+-]*$/).optional().describe("Informational version, shown in tags and status."),
    node: z.string().regex(dnsLabelPattern, { message: "must be a Proxmox node name" }).optional()
      .describe("NixMox extension: Proxmox node. Omitted: the stack's nixmox:proxmoxNode."),
    resources: z
      .strictObject({
        cores: z.number().int().min(1).default(1),
        memory: z.number().int().min(64).default(1024).describe("MiB."),
        swap: z.number().int().min(0).default(512).describe("NixMox extension: MiB."),
        disk_gb: z.number().int().min(1).default(8).describe("GiB."),
      })
      .prefault({}),
    onboot: z.boolean().default(true).describe("Start the container when the Proxmox node boots."),
    start: z.boolean().default(true).describe("Start the container after creation."),
    depends_on: z.array(z.string()).default([]).describe("Services deployed (and healthy) before this one."),
    ports: z
      .array(port)
      .default([])
      .describe(
        "TCP ports the service listens on. The container's firewall opens each only to who uses it: a route's port to the proxy, a database's port " +
          "to its clients, the others to the services that list this one in depends_on (SSH is always open). public_ports opens a port to the LAN.",
      ),
    public_ports: z
      .array(port)
      .default([])
      .describe(
        "NixMox extension: TCP ports open to every address (the LAN), such as an app's own port for clients that cannot go through the proxy. " +
          "Default: none besides the kind's own (the proxy's 80/443, DNS, SMTP, the LDAP outpost).",
      ),
    stateful: z.boolean().optional().describe("NixMox extension: protect the container from deletion. Omitted: true for postgresql."),
    tags: z.array(z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, { message: "must be a lower-case Proxmox tag" })).default([]),
    nixos_modules: z.array(modulePathSchema).default([])
      .describe("NixMox extension: NixOS module files this host imports. `validate` parses each, and the files it names by relative path, with nix-instantiate --parse."),
    state_version: z
      .string()
      .regex(/^[0-9]{2}\.[0-9]{2}$/, { message: 'must be a NixOS release such as "25.11"' })
      .optional()
      .describe(
        "NixMox extension: the host's system.stateVersion, the NixOS release it was first installed with; never change it for a running host " +
          "(PostgreSQL and others pick their data layout from it). Omitted: the release NixMox recorded when it created the host, else the pinned release.",
      ),
    ssh: z.strictObject({ port: port.default(22) }).prefault({}).describe("NixMox extension: SSH port NixMox connects to."),
    secrets: z
      .record(z.string().regex(/^[a-z0-9][a-z0-9_.-]*$/, { message: "must be a secret name (a-z, 0-9, '_', '.', '-')" }), secretDeclarationSchema)
      .default({})
      .describe("NixMox extension: secrets the service consumes (values in the stack config)."),
    interface: interfaceSchema.prefault({}),
  })
  .describe("One service: one NixOS LXC container.");

const serviceName = z.string().regex(dnsLabelPattern, { message: "must be a service name (a-z, 0-9 and inner '-')" });

export const manifestSchema = z
  .strictObject({
    network: networkSchema,
    core_services: z.record(serviceName, serviceSchema).default({}).describe("Infrastructure services."),
    services: z.record(serviceName, serviceSchema).default({}).describe("Application services."),
    deployment_phases: z
      .record(z.string().regex(/^[A-Za-z0-9_-]+$/, { message: "must be a phase name (letters, digits, _ and -)" }), z.array(z.string()))
      .default({})
      .describe(
        "Named groups of services (the original NixMox phases), shown by `nixmox plan`. Every name must be a service of the manifest. " +
          "Nix attribute sets keep no order, so phases order nothing: the order comes from the dependency graph.",
      ),
    health_check_timeout: z.number().min(0).max(maxSeconds).optional()
      .describe("Default start_period of every service's health checks, in seconds: how long a service may take to become healthy. Omitted: 0."),
    retry_attempts: z.number().int().min(1).max(10_000).optional().describe("Default retries of every service's health checks. Omitted: 3."),
    retry_delay: positiveSeconds.optional().describe("Default interval of every service's health checks, in seconds. Omitted: 10."),
    build: buildSchema,
    enable_rollback: z
      .boolean()
      .default(true)
      .describe("Roll a host back to its previous generation when its switch or startup checks fail. false: keep the failed generation and fail the deploy."),
    enable_health_monitoring: z
      .boolean()
      .default(true)
      .describe(
        "Accepted from the original NixMox, no effect: deploys are always health-gated and `pulumi refresh` always re-runs liveness checks " +
          '(give a check phase = "startup" to keep it out of refresh).',
      ),
    enable_dependency_graphing: z
      .boolean()
      .default(true)
      .describe("Accepted from the original NixMox, no effect: the dependency graph is always computed (`nixmox graph` draws it)."),
    enable_deployment_logging: z
      .boolean()
      .default(true)
      .describe("Accepted from the original NixMox, no effect: every deploy step is logged by the Pulumi engine."),
  })
  .describe("The NixMox service manifest.");

export type Manifest = z.infer<typeof manifestSchema>;
export type ManifestInput = z.input<typeof manifestSchema>;
export type ServiceManifest = z.infer<typeof serviceSchema>;
export type ProxyRoute = z.infer<typeof proxyRouteSchema>;

/** The JSON Schema of the manifest (input side: defaults shown, optional fields optional), for editors. */
export function manifestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(manifestSchema, { io: "input", target: "draft-2020-12" }) as Record<string, unknown>;
}
