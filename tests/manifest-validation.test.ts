// Pure tests, no mocks: every validation rule of validateManifest with its exact problem lines (formatProblem).
import assert from "node:assert/strict";
import { validateManifest } from "../manifest";
import { deepClone, manifestErrorOf, planOf, problemsOf, seedManifest, smallManifest, type RawManifest } from "./support/manifests";

const secretHint = (service: string, name: string) =>
  "looks like a secret: secret values never go in the manifest. Declare it under secrets and set the value from a file or stdin with " +
  `\`pulumi config set --secret --path 'nixmox:secrets.${service}.${name}' < FILE\``;
const dnsNameRule = "must be a valid DNS name (lower-case letters, digits, '-' and '.')";

interface RuleCase {
  name: string;
  mutate: (manifest: RawManifest) => void;
  problems: string[];
}

/** Each case mutates the valid `smallManifest()` and lists every problem line, in reporting order. */
const ruleCases: RuleCase[] = [
  // Apps without a login of their own behind a route (review N3): forward auth by default, refused without an authentik.
  {
    name: "fails when a route to an app without a login (Prometheus) would get forward auth but the manifest has no authentik, naming both fixes",
    mutate: (m) => {
      delete m.core_services.authentik;
      delete m.services.app.interface.auth;
      m.services.metrics = {
        kind: "monitoring",
        ip: "10.9.0.21",
        vmid: 121,
        interface: { proxy: { prometheus: { domain: "prometheus.lab.test", upstream: "10.9.0.21:9090" }, grafana: { domain: "grafana.lab.test", upstream: "10.9.0.21:3000" } } },
      };
    },
    problems: [
      'service "metrics": interface.proxy.prometheus.auth is not set, and the app behind this route has no login of its own, so NixMox protects it with forward auth, ' +
        'which needs exactly one enabled service of kind "authentik" (or interface.auth.provider); add one, or set auth = "none" to leave the app open to everyone who reaches the proxy',
    ],
  },
  // Unknown fields and secrets.
  {
    name: "fails when a field is misspelt (depend_on), suggesting the known field",
    mutate: (m) => {
      m.services.app.depend_on = m.services.app.depends_on;
      delete m.services.app.depends_on;
    },
    problems: ['service "app": depend_on is not a known field (did you mean "depends_on"?)'],
  },
  {
    name: "fails when a field of a named route is misspelt, suggesting the route field",
    mutate: (m) => {
      m.services.app.interface.proxy = { web: { domian: "web.lab.test", upstream: "10.9.0.20:8080" } };
    },
    problems: [
      'service "app": interface.proxy.web.domain is required',
      'service "app": interface.proxy.web.domian is not a known field (did you mean "domain"?)',
    ],
  },
  {
    name: "fails when the manifest root has an unknown field",
    mutate: (m) => {
      m.extra = 1;
    },
    problems: ["manifest: extra is not a known field"],
  },
  {
    name: "fails when a service holds a password, pointing at pulumi config set --secret",
    mutate: (m) => {
      m.services.app.password = "hunter2";
    },
    problems: [`service "app": password ${secretHint("app", "password")}`],
  },
  {
    name: "fails when a database block holds a password, naming the db_password secret NixMox generates instead",
    mutate: (m) => {
      m.services.app.interface.db.password = "hunter2";
    },
    problems: [
      'service "app": interface.db.password looks like a secret, and needs no field: NixMox generates the password of this database\'s owner itself, the secret "db_password", ' +
        "and delivers it to the host as a file. Delete this line; to choose the password, set that secret in the stack from a file or stdin: " +
        "`pulumi config set --secret --path 'nixmox:secrets.app.db_password' < FILE`",
    ],
  },
  {
    name: "fails when the network holds an API token, pointing at pulumi config set --secret",
    mutate: (m) => {
      m.network.api_token = "tok-123";
    },
    problems: [`network: api_token ${secretHint("<service>", "<name>")}`],
  },
  // Types and required fields.
  {
    name: "fails when vmid is a string",
    mutate: (m) => {
      m.services.app.vmid = "120";
    },
    problems: ['service "app": vmid must be a number, got "120"'],
  },
  {
    name: "fails when vmid is not a whole number",
    mutate: (m) => {
      m.services.app.vmid = 120.5;
    },
    problems: ['service "app": vmid must be a whole number, got 120.5'],
  },
  {
    name: "fails when enable is not a boolean",
    mutate: (m) => {
      m.services.app.enable = "yes";
    },
    problems: ['service "app": enable must be true or false, got "yes"'],
  },
  {
    name: "fails when ports is not a list",
    mutate: (m) => {
      m.services.app.ports = 8080;
    },
    problems: ['service "app": ports must be a list, got 8080'],
  },
  {
    name: "fails when services is a list instead of an attribute set",
    mutate: (m) => {
      m.services = [];
    },
    problems: ["manifest: services must be an attribute set, got []"],
  },
  {
    name: "fails when kind is not a known module",
    mutate: (m) => {
      m.services.app.kind = "nginx";
    },
    problems: [
      'service "app": kind must be one of "dns", "caddy", "postgresql", "authentik", "vaultwarden", "guacamole", "forgejo", "nextcloud", ' +
        '"monitoring", "media", "openbao", "mail", "pgadmin", "builder", "custom", got "nginx"',
    ],
  },
  {
    name: "fails when a health check has an unknown type",
    mutate: (m) => {
      m.services.app.interface.health = { checks: [{ type: "ping" }] };
    },
    problems: ['service "app": interface.health.checks[0].type must be one of "systemd", "tcp", "http", got "ping"'],
  },
  {
    name: "fails when a service has no ip",
    mutate: (m) => {
      delete m.services.app.ip;
    },
    problems: ['service "app": ip is required'],
  },
  {
    name: "fails when the network has no domain and no service has a full hostname to derive it from",
    mutate: (m) => {
      delete m.network.domain;
    },
    problems: ['network: domain is required: no service has a full hostname (such as "dns.home.lab") to derive it from; set network.domain to the domain your hosts share, e.g. network.domain = "home.lab"'],
  },
  {
    name: "fails when the network has no domain and the full hostnames share no suffix, naming them",
    mutate: (m) => {
      delete m.network.domain;
      m.core_services.caddy.hostname = "caddy.lab.test";
      m.services.app.hostname = "app.other.example";
    },
    problems: ['network: domain is required: the services\' hostnames share no domain suffix ("app.other.example", "caddy.lab.test") to derive it from; set network.domain to the domain your hosts share, e.g. network.domain = "home.lab"'],
  },
  {
    name: "fails when the manifest has no network",
    mutate: (m) => {
      delete m.network;
    },
    problems: ["network: is required"],
  },
  // Names.
  {
    name: "fails when a service name is not a DNS label",
    mutate: (m) => {
      m.services.Bad_Name = m.services.app;
      delete m.services.app;
    },
    problems: [`service "Bad_Name": has an invalid name: must be a service name (a-z, 0-9 and inner '-'), got "Bad_Name"`],
  },
  {
    name: "fails when a route name is not valid",
    mutate: (m) => {
      m.services.app.interface.proxy = { web: { domain: "web.lab.test", upstream: "nope" }, Api: { domain: "api.lab.test", upstream: "10.9.0.20:1" } };
    },
    problems: [
      'service "app": interface.proxy.web.upstream must be "host:port", got "nope"',
      'service "app": interface.proxy.Api has an invalid name: must be a route name (a-z, 0-9, _ and -), got "Api"',
    ],
  },
  // Uniqueness.
  {
    name: "fails when the same service name is in core_services and services",
    mutate: (m) => {
      m.core_services.app = { kind: "dns", ip: "10.9.0.30", vmid: 130, hostname: "app2" };
    },
    problems: ['service "app": is defined in both core_services and services; rename one of them'],
  },
  {
    name: "fails when two services share an ip",
    mutate: (m) => {
      m.services.app.ip = "10.9.0.10";
    },
    problems: ['service "app": ip "10.9.0.10" is already the ip of service "caddy"'],
  },
  {
    name: "fails when two services share a vmid",
    mutate: (m) => {
      m.services.app.vmid = 110;
    },
    problems: ['service "app": vmid 110 is already the vmid of service "caddy"'],
  },
  {
    name: "fails when a short hostname expands to another service's hostname",
    mutate: (m) => {
      m.services.app.hostname = "caddy";
    },
    problems: ['service "app": hostname "caddy.lab.test" is already the hostname of service "caddy"'],
  },
  {
    name: "fails when two services route the same domain and path",
    mutate: (m) => {
      m.core_services.authentik.interface.proxy = { domain: "web.lab.test", upstream: "10.9.0.12:9000" };
    },
    problems: ['service "app": interface.proxy.domain "web.lab.test" with path "/" is already routed by service "authentik"; change the domain or the path'],
  },
  {
    name: "fails when a disabled service shares an ip with an enabled one",
    mutate: (m) => {
      m.services.old = { enable: false, kind: "vaultwarden", ip: "10.9.0.20", vmid: 121 };
    },
    problems: ['service "old": ip "10.9.0.20" is already the ip of service "app"'],
  },
  // Addresses.
  {
    name: "fails when a service ip is outside network_cidr",
    mutate: (m) => {
      m.services.app.ip = "10.9.1.20";
    },
    problems: ['service "app": ip "10.9.1.20" is not a host address inside network_cidr "10.9.0.0/24"'],
  },
  {
    name: "fails when a service ip is the network address",
    mutate: (m) => {
      m.services.app.ip = "10.9.0.0";
    },
    problems: ['service "app": ip "10.9.0.0" is not a host address inside network_cidr "10.9.0.0/24"'],
  },
  {
    name: "fails when a service ip is the broadcast address",
    mutate: (m) => {
      m.services.app.ip = "10.9.0.255";
    },
    problems: ['service "app": ip "10.9.0.255" is not a host address inside network_cidr "10.9.0.0/24"'],
  },
  {
    name: "fails when a service ip is the gateway",
    mutate: (m) => {
      m.network.gateway = "10.9.0.254";
      m.services.app.ip = "10.9.0.254";
    },
    problems: ['service "app": ip "10.9.0.254" is the network\'s gateway; choose a free address'],
  },
  {
    name: "fails when the gateway is outside network_cidr",
    mutate: (m) => {
      m.network.gateway = "10.8.0.1";
    },
    problems: ['network: gateway "10.8.0.1" is not a host address inside network_cidr "10.9.0.0/24"'],
  },
  {
    name: "fails when the gateway is the network or broadcast address",
    mutate: (m) => {
      m.network.gateway = "10.9.0.255";
    },
    problems: ['network: gateway "10.9.0.255" is not a host address inside network_cidr "10.9.0.0/24"'],
  },
  {
    name: "fails when network_cidr has a prefix over 32",
    mutate: (m) => {
      m.network.network_cidr = "10.9.0.0/33";
    },
    problems: ['network: network_cidr must be an IPv4 CIDR such as "192.168.99.0/24", got "10.9.0.0/33"'],
  },
  {
    name: "fails on a DNS allowed network that is not a CIDR and an empty forwarder list",
    mutate: (m) => {
      m.network.dns = { allowed_networks: ["10.20.0.0"], forwarders: [] };
    },
    problems: [
      'network: dns.forwarders must have at least 1 items, got []',
      'network: dns.allowed_networks[0] must be an IPv4 CIDR such as "192.168.99.0/24", got "10.20.0.0"',
    ],
  },
  {
    name: "fails when an ip has an octet over 255 or a leading zero",
    mutate: (m) => {
      m.services.app.ip = "10.9.0.256";
      m.core_services.caddy.ip = "10.9.0.010";
    },
    problems: [
      'service "caddy": ip must be an IPv4 address such as 192.168.99.10, got "10.9.0.010"',
      'service "app": ip must be an IPv4 address such as 192.168.99.10, got "10.9.0.256"',
    ],
  },
  {
    name: "fails when an upstream has no port",
    mutate: (m) => {
      m.services.app.interface.proxy.upstream = "10.9.0.20";
    },
    problems: ['service "app": interface.proxy.upstream must be "host:port", got "10.9.0.20"'],
  },
  {
    name: "fails when an upstream port is over 65535",
    mutate: (m) => {
      m.services.app.interface.proxy.upstream = "10.9.0.20:70000";
    },
    problems: ['service "app": interface.proxy.upstream must be "host:port", got "10.9.0.20:70000"'],
  },
  {
    name: "fails when an upstream host is a shell substitution",
    mutate: (m) => {
      m.services.app.interface.proxy.upstream = "$(x):80";
    },
    problems: ['service "app": interface.proxy.upstream must be "host:port", got "$(x):80"'],
  },
  // Numbers.
  {
    name: "fails when ports are 0 or over 65535",
    mutate: (m) => {
      m.services.app.ports = [0, 65536];
    },
    problems: ['service "app": ports[0] must be at least 1, got 0', 'service "app": ports[1] must be at most 65535, got 65536'],
  },
  {
    name: "fails when a database port is 0",
    mutate: (m) => {
      m.services.app.interface.db.port = 0;
    },
    problems: ['service "app": interface.db.port must be at least 1, got 0'],
  },
  {
    name: "fails when a tcp health check port is 0",
    mutate: (m) => {
      m.services.app.interface.health = { checks: [{ type: "tcp", port: 0 }] };
    },
    problems: ['service "app": interface.health.checks[0].port must be at least 1, got 0'],
  },
  {
    name: "fails when resources are zero or negative",
    mutate: (m) => {
      m.services.app.resources = { cores: 0, memory: 0, disk_gb: 0, swap: -1 };
    },
    problems: [
      'service "app": resources.cores must be at least 1, got 0',
      'service "app": resources.memory must be at least 64, got 0',
      'service "app": resources.swap must be at least 0, got -1',
      'service "app": resources.disk_gb must be at least 1, got 0',
    ],
  },
  {
    name: "fails when health timings are zero or negative",
    mutate: (m) => {
      m.services.app.interface.health = { interval: 0, timeout: -1, retries: 0, start_period: -5 };
    },
    problems: [
      'service "app": interface.health.interval must be more than 0, got 0',
      'service "app": interface.health.timeout must be more than 0, got -1',
      'service "app": interface.health.retries must be at least 1, got 0',
      'service "app": interface.health.start_period must be at least 0, got -5',
    ],
  },
  // DNS names (they reach Caddyfiles, zone files and shell commands).
  {
    name: "fails when a hostname is a shell injection (a;rm -rf /)",
    mutate: (m) => {
      m.services.app.hostname = "a;rm -rf /";
    },
    problems: [`service "app": hostname ${dnsNameRule}, got "a;rm -rf /"`],
  },
  {
    name: "fails when a route domain is a command substitution ($(x))",
    mutate: (m) => {
      m.services.app.interface.proxy.domain = "$(x)";
    },
    problems: [`service "app": interface.proxy.domain ${dnsNameRule}, got "$(x)"`],
  },
  {
    name: "fails when the network domain carries backticks",
    mutate: (m) => {
      m.network.domain = "lab.test`id`";
    },
    problems: [`network: domain ${dnsNameRule}, got "lab.test\`id\`"`],
  },
  {
    name: "fails when a hostname has upper-case letters, a trailing dot or a label over 63 characters",
    mutate: (m) => {
      m.services.app.hostname = "App";
      m.core_services.caddy.hostname = "caddy.";
      m.core_services.postgresql.hostname = `${"a".repeat(64)}.lab.test`;
    },
    problems: [
      `service "caddy": hostname ${dnsNameRule}, got "caddy."`,
      `service "postgresql": hostname ${dnsNameRule}, got "${"a".repeat(56)}...`,
      `service "app": hostname ${dnsNameRule}, got "App"`,
    ],
  },
  // References.
  {
    name: "fails when depends_on names a missing service, suggesting the closest",
    mutate: (m) => {
      m.services.app.depends_on = ["caddy", "postgres"];
    },
    problems: ['service "app": depends_on[1] "postgres" is not a service of this manifest (did you mean "postgresql"?)'],
  },
  {
    name: "fails when depends_on names the service itself",
    mutate: (m) => {
      m.services.app.depends_on = ["app"];
    },
    problems: ['service "app": depends_on[0] names the service itself; remove it'],
  },
  {
    name: "fails when auth.provider names a missing service, suggesting the closest",
    mutate: (m) => {
      m.services.app.interface.auth.provider = "authentk";
    },
    problems: ['service "app": interface.auth.provider "authentk" is not a service of this manifest (did you mean "authentik"?)'],
  },
  {
    name: "fails when auth.provider is not an authentik service",
    mutate: (m) => {
      m.services.app.interface.auth.provider = "caddy";
    },
    problems: ['service "app": interface.auth.provider "caddy" is not an authentik service (its kind is "caddy")'],
  },
  {
    name: "fails when db.host names no service, suggesting the closest",
    mutate: (m) => {
      m.services.app.interface.db.host = "postgres";
    },
    problems: ['service "app": interface.db.host "postgres" is not the ip, hostname or name of a service of this manifest (did you mean "postgresql"?)'],
  },
  {
    name: "fails when db.host is the ip of a service that is not postgresql",
    mutate: (m) => {
      m.services.app.interface.db.host = "10.9.0.10";
    },
    problems: ['service "app": interface.db.host "10.9.0.10" is service "caddy", which is not a postgresql service (its kind is "caddy")'],
  },
  {
    name: "fails when db.host is a disabled service",
    mutate: (m) => {
      m.core_services.postgresql.enable = false;
    },
    problems: [
      'service "authentik": interface.db.host "postgresql" is service "postgresql", which is disabled',
      'service "app": interface.db.host "postgresql" is service "postgresql", which is disabled',
    ],
  },
  {
    name: "fails when an enabled service depends on a disabled one",
    mutate: (m) => {
      m.core_services.caddy.enable = false;
    },
    problems: [
      'service "app": interface.proxy needs a reverse proxy: add an enabled service of kind "caddy"',
      'service "app": depends_on[0] "caddy" is disabled; enable it or remove the dependency',
    ],
  },
  // Cycles.
  {
    name: "fails when two services depend on each other, printing the cycle a → b → a",
    mutate: (m) => {
      m.core_services.caddy.depends_on = ["app"];
    },
    problems: [
      'service "app": depends_on forms a dependency cycle: app → caddy (depends_on), caddy → app (depends_on); ' +
        `remove one of: app's depends_on "caddy", caddy's depends_on "app"`,
    ],
  },
  {
    name: "fails when a cycle runs through an inferred database edge, naming each edge's reason and only the declared edges to remove",
    mutate: (m) => {
      m.core_services.postgresql.depends_on = ["app"];
    },
    problems: [
      `service "app": interface.db.host forms a dependency cycle: app → postgresql (interface.db.host is postgresql's address), ` +
        `postgresql → app (depends_on); remove one of: postgresql's depends_on "app"`,
    ],
  },
  {
    name: "fails when the DNS server's host needs a service that resolves names through it",
    mutate: (m) => {
      m.network.dns_server = "10.9.0.20";
    },
    problems: [
      'service "app": depends_on forms a dependency cycle: app → caddy (depends_on), caddy → app (resolves names through app (network.dns_server)); ' +
        `remove one of: app's depends_on "caddy"`,
    ],
  },
  // Routing.
  {
    name: "fails when a route domain is another host's hostname",
    mutate: (m) => {
      m.services.app.interface.proxy.domain = "postgresql.lab.test";
    },
    problems: [
      'service "app": interface.proxy.domain "postgresql.lab.test" is also the hostname of service "postgresql"; DNS cannot point it at both that host ' +
        'and the reverse proxy. Use another route domain (e.g. "postgresql-app.lab.test") or hostname',
    ],
  },
  {
    name: "fails when a route domain is the service's own hostname",
    mutate: (m) => {
      m.services.app.interface.proxy.domain = "app.lab.test";
    },
    problems: [
      'service "app": interface.proxy.domain "app.lab.test" is also the hostname of service "app"; DNS cannot point it at both that host ' +
        'and the reverse proxy. Use another route domain (e.g. "app-app.lab.test") or hostname',
    ],
  },
  {
    name: "fails when two services are caddy",
    mutate: (m) => {
      m.services.proxy2 = { kind: "caddy", ip: "10.9.0.40", vmid: 140 };
    },
    problems: ['service "proxy2": kind "caddy" is already the kind of service "caddy"; NixMox runs one reverse proxy'],
  },
  {
    name: "fails when a service has routes but no caddy is enabled",
    mutate: (m) => {
      m.core_services.caddy.enable = false;
      m.services.app.depends_on = [];
    },
    problems: ['service "app": interface.proxy needs a reverse proxy: add an enabled service of kind "caddy"'],
  },
  {
    name: "fails when a route's upstream is the reverse proxy itself (by ip or hostname, port 80 or 443)",
    mutate: (m) => {
      m.services.app.interface.proxy.upstream = "10.9.0.10:80";
      m.core_services.caddy.interface = { proxy: { domain: "proxy.lab.test", upstream: "caddy.lab.test:443" } };
    },
    problems: [
      'service "caddy": interface.proxy.upstream "caddy.lab.test:443" is the reverse proxy itself, so requests would loop; point it at the service behind the proxy (or remove the route)',
      'service "app": interface.proxy.upstream "10.9.0.10:80" is the reverse proxy itself, so requests would loop; point it at the service behind the proxy (or remove the route)',
    ],
  },
  {
    name: "fails when two routes of one domain ask for different tls",
    mutate: (m) => {
      m.services.app.interface.proxy = {
        web: { domain: "web.lab.test", upstream: "10.9.0.20:8080" },
        api: { domain: "web.lab.test", path: "/api", upstream: "10.9.0.20:8081", tls: "acme" },
      };
    },
    problems: [
      'service "app": interface.proxy.web.tls is "internal" but another route of "web.lab.test" (service "app") is "acme"; one domain is one Caddy site, give its routes the same tls',
      // .test is special-use: no CA issues for it either (acmeNameIsPublic).
      'service "app": interface.proxy.api.tls is "acme", but no public CA issues certificates for "web.lab.test": ".test" is special-use (RFC 6761); ' +
        'use tls = "internal" (NixMox\'s own CA, which your devices can be set to trust), or a public domain that points at your proxy',
    ],
  },
  {
    name: "fails when forward-auth routes of one domain ask different outposts",
    mutate: (m) => {
      m.services.app.interface.proxy = {
        web: { domain: "web.lab.test", upstream: "10.9.0.20:8080", auth: { type: "forward_auth", forward_auth_upstream: "10.9.0.12:9000" } },
        api: { domain: "web.lab.test", path: "/api", upstream: "10.9.0.20:8081", auth: { type: "forward_auth", forward_auth_upstream: "10.9.0.12:9001" } },
      };
    },
    problems: ['service "app": interface.proxy.web.auth asks outpost "10.9.0.12:9000" but service "app" protects "web.lab.test" through "10.9.0.12:9001"; one domain is one Caddy site with one outpost'],
  },
  {
    name: "fails when a service lists its SSH port in ports",
    mutate: (m) => {
      m.services.app.ports = [8080, 22];
    },
    problems: ['service "app": ports lists the SSH port 22; remove it, SSH is always open'],
  },
  {
    name: "fails when two clients of one PostgreSQL ask for different ports",
    mutate: (m) => {
      m.services.app.interface.db.port = 5433;
    },
    problems: ['service "app": interface.db.port is 5433 but service "authentik" uses 5432 on "postgresql"; one PostgreSQL listens on one port, make them agree'],
  },
  {
    name: "fails when extra_config leaves a brace open",
    mutate: (m) => {
      m.services.app.interface.proxy.extra_config = "header { X-A b";
    },
    problems: ['service "app": interface.proxy.extra_config must have balanced { } (it is pasted inside the route\'s Caddy block), got "header { X-A b"'],
  },
  {
    name: "fails when extra_config closes the route's block before reopening one",
    mutate: (m) => {
      m.services.app.interface.proxy.extra_config = "} respond 200 {";
    },
    problems: ['service "app": interface.proxy.extra_config must have balanced { } (it is pasted inside the route\'s Caddy block), got "} respond 200 {"'],
  },
  // Modules, health commands, secrets.
  {
    name: "fails when a custom service lists no nixos_modules",
    mutate: (m) => {
      m.services.app.kind = "custom";
    },
    problems: [
      // Its OIDC client is a custom app's now, whose callback NixMox does not know (customAppOidcClientNamesItsRedirectUris).
      'service "app": interface.auth.oidc.redirect_uris is required: "app" is a custom app, so NixMox does not know where it sends users back after login. ' +
        'Without this list it would allow only "https://web.lab.test/", and the SSO provider refuses any other callback; list the app\'s, e.g. redirect_uris = [ "https://web.lab.test/<its callback path>" ]',
      'service "app": nixos_modules is required: "app" has no built-in module; list the NixOS module files that configure it',
    ],
  },
  {
    name: "fails when a misspelt built-in service becomes custom without modules, suggesting the kind",
    mutate: (m) => {
      m.services.vaultwardn = { ip: "10.9.0.41", vmid: 141 };
    },
    problems: [
      'service "vaultwardn": nixos_modules is required: "vaultwardn" has no built-in module (did you mean kind "vaultwarden"?); list the NixOS module files that configure it',
    ],
  },
  {
    name: "fails when health commands span several lines",
    mutate: (m) => {
      m.services.app.interface.health = { startup: "true\nrm -rf /", liveness: "true\r" };
    },
    problems: [
      'service "app": interface.health.startup must be a single line (no newline or NUL), got "true\\nrm -rf /"',
      'service "app": interface.health.liveness must be a single line (no newline or NUL), got "true\\r"',
    ],
  },
  {
    name: "fails when an ssh key smuggles a second line",
    mutate: (m) => {
      m.network.ssh_keys = { root: ["ssh-ed25519 AAAA\nevil"] };
    },
    problems: ['network: ssh_keys.root[0] must be one OpenSSH public key line such as "ssh-ed25519 AAAA… user@host", got "ssh-ed25519 AAAA\\nevil"'],
  },
  {
    name: "fails when a service tries to set the value side (generate, description) of a secret NixMox declares for it",
    mutate: (m) => {
      m.services.app.secrets = { db_password: { owner: "app", generate: false, description: "mine" } };
    },
    problems: [
      'service "app": secrets.db_password.description cannot be set: "db_password" is a secret NixMox declares for this service; only owner, group, mode and restart_units may be set on it',
      'service "app": secrets.db_password.generate cannot be set: "db_password" is a secret NixMox declares for this service; only owner, group, mode and restart_units may be set on it',
    ],
  },
  // The original NixMox format (issue 13): named routes with their own auth, dbs, outposts, phases.
  {
    name: "fails naming the named-routes branch when a named route's own auth has a bad type (not 'domain is required')",
    mutate: (m) => {
      m.services.app.interface.proxy = {
        web: { domain: "web.lab.test", upstream: "10.9.0.20:8080", auth: { type: "saml", provider: "authentik" } },
        api: { domain: "api.lab.test", upstream: "10.9.0.20:8081" },
      };
    },
    problems: ['service "app": interface.proxy.web.auth.type must be one of "oidc", "forward_auth", got "saml"'],
  },
  {
    name: "fails naming the single-route branch when a single route misspells a field",
    mutate: (m) => {
      m.services.app.interface.proxy = { domain: "web.lab.test", upstrem: "10.9.0.20:8080" };
    },
    problems: [
      'service "app": interface.proxy.upstream is required',
      'service "app": interface.proxy.upstrem is not a known field (did you mean "upstream"?)',
    ],
  },
  {
    name: "fails when a route's own auth names a provider that is not authentik",
    mutate: (m) => {
      m.services.app.interface.proxy = { web: { domain: "web.lab.test", upstream: "10.9.0.20:8080", auth: { type: "forward_auth", provider: "caddy" } } };
    },
    problems: ['service "app": interface.proxy.web.auth.provider "caddy" is not an authentik service (its kind is "caddy")'],
  },
  {
    name: "fails when two routes' own OIDC clients share a client id",
    mutate: (m) => {
      m.services.app.interface.proxy = {
        web: { domain: "web.lab.test", upstream: "10.9.0.20:8080", auth: { type: "oidc", oidc: { client_id: "app" } } },
      };
    },
    problems: ['service "app": interface.proxy.web.auth.oidc.client_id "app" is already the client id of service "app"'],
  },
  {
    name: "fails when a dbs entry points at a service that is not PostgreSQL",
    mutate: (m) => {
      m.services.app.interface.dbs = { logs: { host: "caddy", additionaldbs: ["logs-archive"] } };
    },
    problems: ['service "app": interface.dbs.logs.host "caddy" is service "caddy", which is not a postgresql service (its kind is "caddy")'],
  },
  {
    name: "fails when a database owner is a reserved PostgreSQL role",
    mutate: (m) => {
      m.services.app.interface.db.owner = "postgres";
      m.services.app.interface.dbs = { stats: { host: "postgresql", owner: "pg_monitor" } };
    },
    problems: [
      'service "app": interface.db.owner "postgres" is a reserved PostgreSQL role; name the owner after the app, e.g. "app"',
      'service "app": interface.dbs.stats.owner "pg_monitor" is a reserved PostgreSQL role; name the owner after the app, e.g. "stats"',
    ],
  },
  {
    name: "fails when a database, main or additional, is one of PostgreSQL's own (postgres, template0, template1)",
    mutate: (m) => {
      m.services.app.interface.db = { host: "postgresql", name: "postgres", owner: "app" };
      m.services.app.interface.dbs = { stats: { host: "postgresql", additionaldbs: ["template1", "stats-log"] } };
      m.core_services.authentik.interface.db.name = "template0";
    },
    problems: [
      'service "authentik": interface.db.name "template0" is one of PostgreSQL\'s own databases (postgres, template0, template1), which no application may own; name it after the app, e.g. "authentik"',
      'service "app": interface.db.name "postgres" is one of PostgreSQL\'s own databases (postgres, template0, template1), which no application may own; name it after the app, e.g. "app"',
      'service "app": interface.dbs.stats.additionaldbs[0] "template1" is one of PostgreSQL\'s own databases (postgres, template0, template1), which no application may own; name it after the app, e.g. "stats"',
    ],
  },
  {
    name: "fails when two services claim the same database or role, additional databases included",
    mutate: (m) => {
      m.services.app.interface.db = { host: "postgresql", name: "shared", owner: "app", additionaldbs: ["authentik"] };
      m.services.app.interface.dbs = { other: { host: "postgresql", name: "shared", owner: "authentik" } };
    },
    problems: [
      'service "app": interface.db.additionaldbs[0] database "authentik" on "postgresql" is already claimed by service "authentik" (interface.db.name); give it another name',
      'service "app": interface.dbs.other.name database "shared" on "postgresql" is already claimed by service "app" (interface.db.name); give it another name',
      'service "app": interface.dbs.other.owner role "authentik" on "postgresql" is already the owner for service "authentik" (interface.db); each entry needs its own role (it has its own password)',
    ],
  },
  {
    name: "fails when a database name is not a PostgreSQL name",
    mutate: (m) => {
      m.services.app.interface.db.additionaldbs = ["Bad Name"];
    },
    problems: [`service "app": interface.db.additionaldbs[0] must be a PostgreSQL name (a-z, 0-9, '_' and '-', at most 63 characters, not starting with a digit or '-'), got "Bad Name"`],
  },
  {
    name: "fails when the RADIUS outpost's shared secret is written in the manifest, without echoing it",
    mutate: (m) => {
      m.network.outposts = { radius: { shared_secret: "radius_secret_change_me", client_networks: ["0.0.0.0/0"] } };
    },
    problems: [
      "network: outposts.radius.shared_secret looks like a secret: secret values never go in the manifest. NixMox generates the RADIUS shared secret; " +
        "to choose it, run `pulumi config set --secret --path 'nixmox:secrets.<authentik service>.radius_shared_secret' < FILE`",
    ],
  },
  {
    name: "fails when outposts are declared but no authentik runs them",
    mutate: (m) => {
      m.network.outposts = { ldap: {} };
      m.core_services.authentik.enable = false;
      m.services.app.interface.auth = undefined;
    },
    problems: ['network: outposts.ldap.provider is needed: add an enabled service of kind "authentik"'],
  },
  {
    name: "fails when a deployment phase names a service that does not exist",
    mutate: (m) => {
      m.deployment_phases = { core: ["caddy", "postgres"], apps: ["app"] };
    },
    problems: ['manifest: deployment_phases.core[1] "postgres" is not a service of this manifest (did you mean "postgresql"?)'],
  },
  {
    name: "fails when a secret is given as a plain value, saying where the value goes without echoing it",
    mutate: (m) => {
      m.services.app.secrets = { admin_password: "Sup3rS3cretValue!" };
    },
    problems: [
      'service "app": secrets.admin_password must be a secret declaration (an attribute set such as { owner = "app"; restart_units = [ "app.service" ]; }), ' +
        "not the secret's value; the value goes in the stack config, read from a file or stdin: `pulumi config set --secret --path 'nixmox:secrets.app.admin_password' < FILE`",
    ],
  },
  // Names and addresses (every module assertion and builder precondition has a twin here).
  {
    name: "fails when a hostname looks like an IPv4 address",
    mutate: (m) => {
      m.services.app.hostname = "10.9.0.99";
    },
    problems: ['service "app": hostname "10.9.0.99" looks like an IPv4 address; use a name such as "app"'],
  },
  {
    name: "fails when a hostname is another service's name",
    mutate: (m) => {
      m.services.app.hostname = "postgresql.other.test";
    },
    problems: ['service "app": hostname "postgresql" is the name of service "postgresql", so references to it would be ambiguous; choose another hostname'],
  },
  {
    name: "fails when a service name starts with a digit",
    mutate: (m) => {
      m.services["1app"] = { kind: "custom", ip: "10.9.0.41", vmid: 141, nixos_modules: ["x.nix"] };
    },
    problems: [`service "1app": has a name starting with a digit, which NixOS host names and Nix attributes refuse; start it with a letter`],
  },
  {
    name: "fails when two routes of one domain would get the same proxy matcher, also across services",
    mutate: (m) => {
      m.services["a-b"] = { kind: "custom", ip: "10.9.0.43", vmid: 143, nixos_modules: ["x.nix"], interface: { health: { startup: "true" }, proxy: { c: { domain: "web.lab.test", path: "/c", upstream: "10.9.0.43:80" } } } };
      m.services.a = { kind: "custom", ip: "10.9.0.44", vmid: 144, nixos_modules: ["x.nix"], interface: { health: { startup: "true" }, proxy: { "b-c": { domain: "web.lab.test", path: "/d", upstream: "10.9.0.44:80" } } } };
    },
    problems: [`service "a-b": interface.proxy.c and route "b-c" of service "a" on "web.lab.test" differ only in '-' and '_', which the proxy's matcher names do not tell apart; rename one`],
  },
  {
    name: "fails when two services share a short host name in different domains",
    mutate: (m) => {
      m.core_services.caddy.hostname = "edge.lab.test";
      m.services.app.hostname = "edge.other.test";
    },
    problems: ['service "caddy": hostname "edge.lab.test" has the short name "edge" of service "app" (edge.other.test), so references to it would be ambiguous; choose another hostname'],
  },
  {
    name: "fails when a route sends requests to a port the upstream's kind holds itself",
    mutate: (m) => {
      m.services.app.interface.proxy.upstream = "10.9.0.11:22";
    },
    problems: ['service "app": interface.proxy.upstream port 22 of service "postgresql" is taken by its SSH server; route to the port the app listens on'],
  },
  {
    name: "fails when a service is named like a NixMox directory on the hosts",
    mutate: (m) => {
      m.services.secrets = { kind: "custom", ip: "10.9.0.42", vmid: 142, nixos_modules: ["x.nix"], interface: { health: { startup: "true" } } };
    },
    problems: ['service "secrets": is a name NixMox uses for its own directory on every host (/var/lib/nixmox/secrets); rename the service'],
  },
  {
    name: "fails when a PostgreSQL service asks for a database on itself",
    mutate: (m) => {
      m.core_services.postgresql.interface = { db: { host: "postgresql", name: "self" } };
    },
    problems: ['service "postgresql": interface.db.host "postgresql" is this service itself; a PostgreSQL host serves databases to other services, so remove this interface.db'],
  },
  {
    name: "fails when authentik has no database",
    mutate: (m) => {
      delete m.core_services.authentik.interface;
    },
    problems: ['service "authentik": interface.db is required: authentik keeps its data in PostgreSQL; set interface.db = { host = "<your postgresql service>"; }'],
  },
  {
    name: "fails when an app that sends a client secret gets a public OIDC client",
    mutate: (m) => {
      m.services.app.interface.auth = { type: "oidc", oidc: { client_type: "public" } };
    },
    problems: ['service "app": interface.auth.oidc.client_type must be "confidential": vaultwarden sends a client secret to the SSO provider'],
  },
  {
    name: "fails when Forgejo would take user names from a claim it cannot read",
    mutate: (m) => {
      m.services.app.kind = "forgejo";
      m.services.app.interface.auth = { type: "oidc", oidc: { username_claim: "nickname" } };
    },
    problems: ['service "app": interface.auth.oidc.username_claim must be preferred_username, sub or email: Forgejo takes user names only from those claims, got "nickname"'],
  },
  {
    name: "fails when Jellyfin's route sends to another port than Jellyfin's own",
    mutate: (m) => {
      m.services.app.kind = "media";
      delete m.services.app.interface.auth;
      delete m.services.app.interface.db;
      m.services.app.interface.proxy = { jellyfin: { domain: "tv.lab.test", upstream: "10.9.0.20:8097" } };
    },
    problems: ['service "app": interface.proxy.jellyfin.upstream must use port 8096: Jellyfin sets its port in its own network.xml, which NixOS does not manage'],
  },
  {
    name: "fails when Grafana's explicit redirect URIs miss its callback",
    mutate: (m) => {
      m.services.app.kind = "monitoring";
      m.services.app.interface.proxy = { grafana: { domain: "grafana.lab.test", upstream: "10.9.0.20:3000" } };
      m.services.app.interface.auth = { type: "oidc", oidc: { redirect_uris: ["https://grafana.lab.test/"] } };
    },
    problems: ['service "app": interface.auth.oidc.redirect_uris must list "https://grafana.lab.test/login/generic_oauth", where Grafana sends users back after login (or omit redirect_uris to derive it)'],
  },
  {
    name: "fails when health timings exceed what the activation wrapper counts",
    mutate: (m) => {
      m.services.app.interface.health = { retries: 10_000_000, interval: 1e9 };
    },
    problems: [
      'service "app": interface.health.interval must be at most 86400, got 1000000000',
      'service "app": interface.health.retries must be at most 10000, got 10000000',
    ],
  },
  {
    name: "fails when a check URL passes the pattern but not the URL parser",
    mutate: (m) => {
      m.services.app.interface.health = { checks: [{ type: "http", url: "http://host:99999/" }] };
    },
    problems: ['service "app": interface.health.checks[0].url must be a URL that parses (check the host and port), got "http://host:99999/"'],
  },
  {
    name: "fails when a secret file would be writable by group or others",
    mutate: (m) => {
      m.services.app.secrets = { api_key: { mode: "0777" } };
    },
    problems: [`service "app": secrets.api_key.mode must not let group or others write the file; use a mode such as "0440"`],
  },
];

describe("manifest validation: one rule at a time", () => {
  it("accepts the base manifests the rule cases start from", () => {
    assert.deepEqual(planOf(smallManifest()).services.map((service) => service.name), ["app", "authentik", "caddy", "postgresql"]);
    assert.equal(planOf(seedManifest()).services.length, 11);
  });

  for (const rule of ruleCases) {
    it(rule.name, () => {
      const manifest = smallManifest();
      rule.mutate(manifest);
      assert.deepEqual(problemsOf(manifest), rule.problems);
    });
  }

  it("fails when the seed layout has depend_on, suggesting depends_on", () => {
    const manifest = seedManifest();
    manifest.services.openbao.depend_on = manifest.services.openbao.depends_on;
    delete manifest.services.openbao.depends_on;
    assert.deepEqual(problemsOf(manifest), ['service "openbao": depend_on is not a known field (did you mean "depends_on"?)']);
  });

  it("fails when the manifest is not an attribute set at all", () => {
    for (const [raw, shown] of [[null, "null"], [7, "7"], ["x", '"x"'], [[], "[]"]] as const) {
      assert.deepEqual(problemsOf(raw), [`manifest: must be an attribute set, got ${shown}`]);
    }
    assert.deepEqual(problemsOf({}), ["network: is required"]);
  });

  it("fails when a JSON manifest names a service __proto__ (not silently dropped from the plan)", () => {
    const text = JSON.stringify(smallManifest()).replace('"services":{', '"services":{"__proto__":{"ip":"10.9.0.3","vmid":103,"nixos_modules":["a.nix"]},');
    const raw: unknown = JSON.parse(text);
    assert.deepEqual(problemsOf(raw), [`service "__proto__": has an invalid name: must be a service name (a-z, 0-9 and inner '-'), got "__proto__"`]);
  });
});

describe("manifest validation: reporting", () => {
  it("fails with every problem of the manifest together in one error, schema and cross-service alike", () => {
    const manifest = smallManifest();
    manifest.services.app.depend_on = ["caddy"];
    manifest.services.app.interface.auth.provider = "authentk";
    manifest.core_services.caddy.ip = "10.9.0.11";
    manifest.services.extra = { ip: "10.9.0.50", vmid: 150, nixos_modules: ["modules/extra.nix"], depends_on: ["extra2"] };
    manifest.services.extra2 = { ip: "10.9.0.51", vmid: 151, nixos_modules: ["modules/extra2.nix"], depends_on: ["extra"] };
    manifest.services.broken = { ip: "10.9.0.52", vmid: 152, ports: [0], nixos_modules: ["modules/broken.nix"] };
    const error = manifestErrorOf(manifest, "lab.json");
    assert.equal(error.source, "lab.json");
    assert.equal(
      error.message,
      [
        "lab.json: 5 problems",
        '  - service "app": depend_on is not a known field (did you mean "depends_on"?)',
        '  - service "broken": ports[0] must be at least 1, got 0',
        '  - service "postgresql": ip "10.9.0.11" is already the ip of service "caddy"',
        '  - service "app": interface.auth.provider "authentk" is not a service of this manifest (did you mean "authentik"?)',
        `  - service "extra": depends_on forms a dependency cycle: extra → extra2 (depends_on), extra2 → extra (depends_on); remove one of: extra's depends_on "extra2", extra2's depends_on "extra"`,
      ].join("\n"),
    );
  });

  it("fails without a false 'not a service' problem when db.host names a service that has schema problems", () => {
    const manifest = smallManifest();
    manifest.core_services.postgresql.hostname = "Postgres";
    assert.deepEqual(problemsOf(manifest), [`service "postgresql": hostname ${dnsNameRule}, got "Postgres"`]);
  });

  it("fails without a false 'needs a reverse proxy' or 'needs authentik' problem when those services have schema problems", () => {
    const manifest = smallManifest();
    manifest.core_services.caddy.vmid = "110";
    manifest.core_services.authentik.vmid = 12;
    manifest.services.app.interface.auth = { type: "forward_auth" };
    manifest.services.app.interface.proxy.authz = true;
    assert.deepEqual(problemsOf(manifest), [
      'service "caddy": vmid must be a number, got "110"',
      'service "authentik": vmid must be at least 100, got 12',
    ]);
  });

  it("fails with a one-problem header when there is one problem", () => {
    const manifest = smallManifest();
    manifest.services.app.vmid = "120";
    assert.equal(manifestErrorOf(manifest, "one.nix").message, 'one.nix: 1 problem\n  - service "app": vmid must be a number, got "120"');
  });

  it("fails without echoing the value of a secret-looking field anywhere in the error", () => {
    const manifest = smallManifest();
    manifest.services.app.interface.db.password = "hunter2-very-secret";
    manifest.network.root_password = "hunter2-very-secret";
    const error = manifestErrorOf(manifest);
    assert.equal(error.problems.length, 2);
    assert.ok(!error.message.includes("hunter2"), error.message);
    assert.ok(!JSON.stringify(error.problems).includes("hunter2"));
  });

  it("does not change the caller's data while validating", () => {
    const manifest = smallManifest();
    manifest.services.app.depend_on = ["caddy"];
    const before = deepClone(manifest);
    manifestErrorOf(manifest);
    assert.deepEqual(manifest, before);
  });

  it("accepts two route names that differ only in '-' and '_' on different domains (different Caddy sites)", () => {
    const manifest = smallManifest();
    manifest.services.app.interface.proxy = {
      "my-web": { domain: "web.lab.test", upstream: "10.9.0.20:8080" },
      my_web: { domain: "web2.lab.test", upstream: "10.9.0.20:8080" },
    };
    assert.deepEqual(planOf(manifest).routes.map((route) => route.name), ["my-web", "my_web"]);
  });

  it("accepts a route domain on the same domain as another route when the paths differ", () => {
    const manifest = smallManifest();
    manifest.core_services.authentik.interface.proxy = { domain: "web.lab.test", path: "/auth", upstream: "10.9.0.12:9000" };
    const plan = planOf(manifest);
    assert.deepEqual(plan.routes.map((route) => `${route.service} ${route.domain}${route.path}`), ["app web.lab.test/", "authentik web.lab.test/auth"]);
  });

  it("returns the parsed manifest with schema defaults applied", () => {
    const parsed = validateManifest(smallManifest(), "small");
    assert.deepEqual(parsed.services.app.resources, { cores: 1, memory: 1024, swap: 512, disk_gb: 8 });
    assert.equal(parsed.network.vlan_tag, null);
    assert.deepEqual(parsed.services.app.interface.proxy, { domain: "web.lab.test", path: "/", upstream: "10.9.0.20:8080", tls: true, authz: false, extra_config: "" });
  });
});

describe("validate: routes to apps without a login (review N3)", () => {
  it("protects them with forward auth through the manifest's authentik, turns an inherited oidc into forward auth, and keeps an explicit auth = \"none\"", () => {
    const manifest = smallManifest();
    manifest.services.metrics = {
      kind: "monitoring",
      ip: "10.9.0.21",
      vmid: 121,
      interface: {
        auth: { type: "oidc" },
        proxy: {
          prometheus: { domain: "prometheus.lab.test", upstream: "10.9.0.21:9090" },
          grafana: { domain: "grafana.lab.test", upstream: "10.9.0.21:3000" },
          loki: { domain: "loki.lab.test", upstream: "10.9.0.21:3100", auth: "none" },
        },
      },
    };
    const routes = planOf(manifest).routes.filter((route) => route.service === "metrics").map((route) => [route.name, route.auth, route.forwardAuthUpstream]);
    assert.deepEqual(routes, [
      ["grafana", "oidc", null],
      ["loki", null, null],
      ["prometheus", "forward_auth", "10.9.0.12:9000"],
    ]);
    delete (manifest.services.metrics.interface as Record<string, unknown>).auth;
    const withoutServiceAuth = planOf(manifest).routes.filter((route) => route.service === "metrics").map((route) => [route.name, route.auth]);
    assert.deepEqual(withoutServiceAuth, [["grafana", null], ["loki", null], ["prometheus", "forward_auth"]]);
  });
});
