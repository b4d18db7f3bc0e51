// Pure tests, no mocks: the mistakes a newcomer's first hour found accepted silently (shared/reviews/newcomer-2.md
// #17, #20, #22, #30, #49, #51), each now an error (rules.ts) or a warning (advice.ts), with its exact text.
import assert from "node:assert/strict";
import { customAppHomelab, deepClone, planOf, problemsOf, withoutBuildWarning, type RawManifest } from "./support/manifests";

interface MistakeCase {
  name: string;
  mutate: (manifest: RawManifest) => void;
  /** Every problem line (errors), or every warning of the plan when `warnings` is set. */
  problems?: string[];
  warnings?: string[];
}

const homelab = (mutate: (manifest: RawManifest) => void): RawManifest => {
  const manifest = deepClone(customAppHomelab());
  mutate(manifest);
  return manifest;
};

/** A Forgejo host, as a built-in kind with its units (kinds.ts) and a route. */
const forgejo = (checks: unknown[], extra: Record<string, unknown> = {}) => ({
  kind: "forgejo",
  ip: "10.42.0.22",
  vmid: 222,
  interface: { db: { host: "postgresql" }, proxy: { domain: "git.home.arpa", upstream: "10.42.0.22:3000" }, health: { checks } },
  ...extra,
});

const acme = (domain: string, why: string) =>
  `service "mealie": interface.proxy.tls is "acme", but no public CA issues certificates for "${domain}": ${why}; ` +
  'use tls = "internal" (NixMox\'s own CA, which your devices can be set to trust), or a public domain that points at your proxy';

const errorCases: MistakeCase[] = [
  // tls = "acme" for a name no public CA can issue (#49).
  {
    name: "fails when a route under .home.arpa asks for ACME",
    mutate: (m) => {
      m.services.mealie.interface.proxy.tls = "acme";
    },
    problems: [acme("recipes.home.arpa", '".home.arpa" is reserved for home networks (RFC 8375)')],
  },
  {
    name: "fails when a route under .lan asks for ACME",
    mutate: (m) => {
      m.services.mealie.interface.proxy = { domain: "recipes.nixmox.lan", upstream: "10.42.0.20:9925", tls: "acme" };
      m.services.mealie.interface.auth.oidc.redirect_uris = ["https://recipes.nixmox.lan/login"];
    },
    problems: [acme("recipes.nixmox.lan", '".lan" is not a top-level domain of the public DNS')],
  },
  {
    name: "fails when a route under .internal asks for ACME",
    mutate: (m) => {
      m.services.mealie.interface.proxy = { domain: "recipes.internal", upstream: "10.42.0.20:9925", tls: "acme" };
    },
    problems: [acme("recipes.internal", '".internal" is reserved for private networks by ICANN (2024) and never delegated')],
  },
  {
    name: "fails when a route under .local asks for ACME",
    mutate: (m) => {
      m.services.mealie.interface.proxy = { domain: "recipes.local", upstream: "10.42.0.20:9925", tls: "acme" };
    },
    problems: [acme("recipes.local", '".local" is reserved for multicast DNS (RFC 6762)')],
  },
  // A custom OIDC app without redirect_uris (#20).
  {
    name: "fails when a custom app's OIDC client has no redirect_uris, naming the root URL it would get",
    mutate: (m) => {
      delete m.services.mealie.interface.auth.oidc;
    },
    problems: [
      'service "mealie": interface.auth.oidc.redirect_uris is required: "mealie" is a custom app, so NixMox does not know where it sends users back after login. ' +
        'Without this list it would allow only "https://recipes.home.arpa/", and the SSO provider refuses any other callback; list the app\'s, e.g. redirect_uris = [ "https://recipes.home.arpa/<its callback path>" ]',
    ],
  },
  {
    name: "fails when a route's own OIDC client on a custom app has no redirect_uris",
    mutate: (m) => {
      delete m.services.mealie.interface.auth;
      m.services.mealie.interface.proxy = { web: { domain: "recipes.home.arpa", upstream: "10.42.0.20:9925", auth: { type: "oidc" } } };
    },
    problems: [
      'service "mealie": interface.proxy.web.auth.oidc.redirect_uris is required: "mealie" is a custom app, so NixMox does not know where it sends users back after login. ' +
        'Without this list it would allow only "https://recipes.home.arpa/", and the SSO provider refuses any other callback; list the app\'s, e.g. redirect_uris = [ "https://recipes.home.arpa/<its callback path>" ]',
    ],
  },
  {
    name: "fails when an OIDC route of a built-in monitoring host serves no app of that kind and has no redirect_uris",
    mutate: (m) => {
      m.services.metrics = {
        kind: "monitoring",
        ip: "10.42.0.23",
        vmid: 223,
        interface: {
          db: { host: "postgresql" },
          auth: { type: "oidc" },
          proxy: { grafana: { domain: "grafana.home.arpa", upstream: "10.42.0.23:3000" }, uptime: { domain: "uptime.home.arpa", upstream: "10.42.0.23:3001", auth: "oidc" } },
        },
      };
    },
    problems: [
      'service "metrics": interface.auth.oidc.redirect_uris is required: route "uptime" serves no built-in monitoring app, so NixMox does not know where it sends users back after login. ' +
        'Without this list it would allow only "https://uptime.home.arpa/", and the SSO provider refuses any other callback; list the app\'s, e.g. redirect_uris = [ "https://uptime.home.arpa/<its callback path>" ]',
    ],
  },
  // The interface.db.password hint (#17): the database's password is NixMox's own db_password secret.
  {
    name: "fails when interface.db holds a password, naming the db_password secret NixMox generates, never echoing the value",
    mutate: (m) => {
      m.services.mealie.interface.db.password = "Sup3rSecret!";
    },
    problems: [
      'service "mealie": interface.db.password looks like a secret, and needs no field: NixMox generates the password of this database\'s owner itself, the secret "db_password", ' +
        "and delivers it to the host as a file. Delete this line; to choose the password, set that secret in the stack from a file or stdin: " +
        "`pulumi config set --secret --path 'nixmox:secrets.mealie.db_password' < FILE`",
    ],
  },
  {
    name: "fails when an interface.dbs entry holds a password, naming that entry's <entry>_db_password secret",
    mutate: (m) => {
      m.services.mealie.interface.dbs = { search: { host: "postgresql", passwd: "Sup3rSecret!" } };
    },
    problems: [
      'service "mealie": interface.dbs.search.passwd looks like a secret, and needs no field: NixMox generates the password of this database\'s owner itself, the secret "search_db_password", ' +
        "and delivers it to the host as a file. Delete this line; to choose the password, set that secret in the stack from a file or stdin: " +
        "`pulumi config set --secret --path 'nixmox:secrets.mealie.search_db_password' < FILE`",
    ],
  },
];

const dnsWarning = (server: string) =>
  `network: dns_server "${server}" is not the homelab's DNS service "dns" (10.42.0.2): every host asks ${server}, which knows the names under "home.arpa" ` +
  '(hosts, route domains) only if it forwards them to "dns", and "dns" no longer deploys first; set network.dns_server = "10.42.0.2" (network.fallback_dns_servers takes a second resolver)';

const warningCases: MistakeCase[] = [
  // network.dns_server outside the homelab while a dns service exists (#22).
  {
    name: "warns when network.dns_server is a public resolver while the homelab has a dns service",
    mutate: (m) => {
      m.network.dns_server = "1.1.1.1";
    },
    warnings: [dnsWarning("1.1.1.1")],
  },
  {
    name: "warns when network.dns_server is the router while the homelab has a dns service",
    mutate: (m) => {
      m.network.dns_server = "10.42.0.1";
    },
    warnings: [dnsWarning("10.42.0.1")],
  },
  {
    name: "does not warn when the homelab has no dns service and uses the router",
    mutate: (m) => {
      delete m.core_services.dns;
      m.network.dns_server = "10.42.0.1";
    },
    warnings: [],
  },
  // An http or tcp health check on a port the service does not listen on (#30).
  {
    name: "warns when an http health check probes a port the app does not listen on",
    mutate: (m) => {
      m.services.mealie.interface.health.checks = [{ type: "http", url: "http://10.42.0.20:9000/api/app/about" }];
    },
    warnings: [
      'service "mealie": interface.health.checks[0] probes port 9000 (http://10.42.0.20:9000/api/app/about), but this service listens on no such port as far as NixMox knows ' +
        "(its ports: 9925); point the check at the port the app listens on, or, if it does listen on 9000, add 9000 to ports",
    ],
  },
  {
    name: "warns when a tcp health check probes a port the service does not listen on, or another service's port that it does not open",
    mutate: (m) => {
      m.services.mealie.interface.health.checks = [{ type: "tcp", port: 9926 }, { type: "tcp", host: "postgresql.home.arpa", port: 5433 }, { type: "tcp", host: "127.0.0.1", port: 9925 }];
    },
    warnings: [
      'service "mealie": interface.health.checks[0] probes port 9926 (10.42.0.20:9926), but this service listens on no such port as far as NixMox knows ' +
        "(its ports: 9925); point the check at the port the app listens on, or, if it does listen on 9926, add 9926 to ports",
      'service "mealie": interface.health.checks[1] probes port 5433 (postgresql.home.arpa:5433), but service "postgresql" listens on no such port as far as NixMox knows ' +
        '(its ports: 5432); point the check at the port the app listens on, or, if it does listen on 5433, add 5433 to the ports of "postgresql"',
    ],
  },
  {
    name: "does not warn for checks on the route domain, on a port the service opens, or on a host outside the manifest",
    mutate: (m) => {
      // Its metrics port, opened to the LAN for a Prometheus elsewhere.
      m.services.mealie.public_ports = [9100];
      m.services.mealie.interface.health.checks = [
        { type: "http", url: "https://recipes.home.arpa/api/app/about" },
        { type: "http", url: "http://localhost:9100/metrics", from: "host" },
        { type: "tcp", host: "10.42.0.99", port: 1234 },
        { type: "http", url: "http://127.0.0.1:9999/", from: "controller" },
      ];
    },
    warnings: [],
  },
  // A systemd health unit that the built-in kind does not have (#51).
  {
    name: "warns when a systemd health check names a unit the built-in kind does not run, suggesting the kind's",
    mutate: (m) => {
      m.services.forgejo = forgejo([{ type: "systemd", unit: "forgejoo.service" }]);
    },
    warnings: [
      'service "forgejo": interface.health.checks[0].unit "forgejoo.service" is not a unit the forgejo kind runs (forgejo.service): did you mean "forgejo.service"? ' +
        "A unit that does not exist is never active, so this check would fail every time",
    ],
  },
  {
    name: "warns for a unit far from the kind's when the host has no modules of its own",
    mutate: (m) => {
      m.services.forgejo = forgejo([{ type: "systemd", unit: "gitea.service", phase: "liveness" }]);
    },
    warnings: [
      'service "forgejo": interface.health.checks[0].unit "gitea.service" is not a unit the forgejo kind runs (forgejo.service). ' +
        "A unit that does not exist is never active, so this check would fail every time; check the name with systemctl list-units on the host",
    ],
  },
  {
    name: "warns for a near miss of the kind's units even when the host has modules of its own",
    mutate: (m) => {
      m.services.forgejo = forgejo([{ type: "systemd", unit: "forgejoo" }], { nixos_modules: ["modules/runner.nix"] });
    },
    warnings: [
      'service "forgejo": interface.health.checks[0].unit "forgejoo" is not a unit the forgejo kind runs (forgejo.service): did you mean "forgejo.service"? ' +
        "A unit that does not exist is never active, so this check would fail every time",
    ],
  },
  {
    name: "does not warn for the kind's unit without its suffix, sshd, a unit a secret restarts, or another unit of the host's own modules",
    mutate: (m) => {
      m.services.forgejo = forgejo(
        [{ type: "systemd", unit: "forgejo" }, { type: "systemd", unit: "sshd.service" }, { type: "systemd", unit: "mirror-sync.service" }, { type: "systemd", unit: "gitea-runner.service" }],
        { nixos_modules: ["modules/runner.nix"], secrets: { mirror_token: { restart_units: ["mirror-sync.service"] } } },
      );
    },
    warnings: [],
  },
];

describe("manifest: mistakes a newcomer found accepted silently", () => {
  it("accepts the homelab the cases start from, with no warning", () => {
    assert.deepEqual(withoutBuildWarning(planOf(customAppHomelab()).warnings), []);
  });

  describe("errors (rules.ts)", () => {
    for (const { name, mutate, problems } of errorCases) {
      it(name, () => {
        assert.deepEqual(problemsOf(homelab(mutate)), problems);
      });
    }

    it("accepts tls = \"acme\" for a public name, and a built-in app's OIDC client without redirect_uris (its callback is known)", () => {
      const plan = planOf(homelab((m) => {
        m.services.mealie.interface.proxy = { domain: "recipes.nixmox.net", upstream: "10.42.0.20:9925", tls: "acme" };
        m.services.forgejo = forgejo([], { interface: { db: { host: "postgresql" }, auth: { type: "oidc" }, proxy: { domain: "git.home.arpa", upstream: "10.42.0.22:3000" } } });
      }));
      assert.deepEqual(plan.routes.filter((route) => route.service === "mealie").map((route) => route.tls), ["acme"]);
      assert.deepEqual(plan.authClients.filter((client) => client.service === "forgejo").flatMap((client) => client.type === "oidc" ? client.redirectUris : []), [
        "https://git.home.arpa/user/oauth2/authentik/callback",
      ]);
    });
  });

  describe("warnings (advice.ts)", () => {
    for (const { name, mutate, warnings } of warningCases) {
      it(name, () => {
        assert.deepEqual(withoutBuildWarning(planOf(homelab(mutate)).warnings), warnings);
      });
    }
  });
});
