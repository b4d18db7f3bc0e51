// Pure tests, no mocks: the seed layout (12 services, one disabled) plans to exact waves, routes, records and clients.
import assert from "node:assert/strict";
import { renderPlanJson } from "../cli/views";
import { validateManifest, planManifest } from "../manifest";
import { deepClone, planOf, seedManifest, shuffleKeys, testManifestDir } from "./support/manifests";

const proxyIp = "192.168.99.10";
const fromRoute = (name: string, service: string) => ({ name, type: "A", value: proxyIp, source: "route", service });
const fromHost = (name: string, value: string, service: string) => ({ name, type: "A", value, source: "host", service });
const route = (service: string, name: string, domain: string, path: string, upstream: string, auth: "oidc" | "forward_auth" | null, extra: Partial<{ tls: string; extraConfig: string; app: string }> = {}) => ({
  service,
  name,
  domain,
  path,
  upstream,
  tls: "internal",
  auth,
  authProvider: auth === null ? null : "authentik",
  forwardAuthUpstream: auth === "forward_auth" ? "192.168.99.12:9000" : null,
  oidcClient: null,
  app: null,
  extraConfig: "",
  ...extra,
});

describe("plan: the seed NixMox layout", () => {
  const plan = planOf(seedManifest());

  it("plans the 11 enabled services in dependency waves, DNS first", () => {
    assert.deepEqual(plan.waves, [
      ["dns"],
      ["caddy", "postgresql"],
      // media has forward-auth routes but no depends_on authentik: an SSO edge never orders hosts.
      ["authentik", "homeassistant", "media"],
      ["guacamole", "monitoring", "nextcloud", "openbao", "vaultwarden"],
    ]);
    assert.deepEqual(plan.disabled, ["mail"]);
    assert.deepEqual(
      plan.services.map((service) => [service.name, service.kind, service.group, service.wave, service.startupOrder, service.dependsOn]),
      [
        ["authentik", "authentik", "core_services", 2, 3, ["dns", "postgresql"]],
        ["caddy", "caddy", "core_services", 1, 2, ["dns"]],
        ["dns", "dns", "core_services", 0, 1, []],
        ["guacamole", "guacamole", "services", 3, 4, ["authentik", "caddy", "dns", "postgresql"]],
        ["homeassistant", "custom", "services", 2, 3, ["caddy", "dns"]],
        ["media", "custom", "services", 2, 3, ["caddy", "dns"]],
        ["monitoring", "custom", "services", 3, 4, ["authentik", "caddy", "dns"]],
        ["nextcloud", "custom", "services", 3, 4, ["authentik", "caddy", "dns", "postgresql"]],
        ["openbao", "custom", "services", 3, 4, ["authentik", "caddy", "dns"]],
        ["postgresql", "postgresql", "core_services", 1, 2, ["dns"]],
        ["vaultwarden", "vaultwarden", "services", 3, 4, ["authentik", "caddy", "dns", "postgresql"]],
      ],
    );
  });

  it("labels every inferred edge with its reasons", () => {
    const reasonsOf = (from: string, to: string) => plan.edges.find((edge) => edge.from === from && edge.to === to)?.reasons;
    assert.equal(plan.edges.length, 27);
    assert.deepEqual(reasonsOf("authentik", "postgresql"), ["interface.db.host is postgresql's address"]);
    assert.deepEqual(reasonsOf("vaultwarden", "authentik"), ["depends_on", "interface.auth.provider"]);
    assert.deepEqual(reasonsOf("media", "authentik"), ["forward_auth route needs the SSO provider"]);
    assert.deepEqual(reasonsOf("caddy", "dns"), ["resolves names through dns (network.dns_server)"]);
    assert.equal(reasonsOf("dns", "dns"), undefined);
    const hardOf = (from: string, to: string) => plan.edges.find((edge) => edge.from === from && edge.to === to)?.hard;
    assert.equal(hardOf("media", "authentik"), false);
    assert.equal(hardOf("vaultwarden", "authentik"), true, "declared depends_on stays hard next to the SSO reason");
    assert.equal(hardOf("authentik", "postgresql"), true);
    assert.deepEqual(plan.services.find((service) => service.name === "media")!.ssoProviders, ["authentik"]);
  });

  it("derives hosts, resources, modules and health checks per service", () => {
    const byName = new Map(plan.services.map((service) => [service.name, service]));
    const homeassistant = byName.get("homeassistant")!;
    assert.equal(homeassistant.fqdn, "homeassistant.nixmox.lan");
    assert.equal(homeassistant.hostName, "homeassistant");
    assert.deepEqual(homeassistant.nixosModules, ["modules/homeassistant.nix"]);
    assert.deepEqual(homeassistant.health, {
      checks: [{ name: "http:http://192.168.99.21:8123/", phase: "both", kind: "http", url: "http://192.168.99.21:8123/", expectStatus: 200, from: "host" }],
      intervalSeconds: 10,
      timeoutSeconds: 5,
      retries: 3,
      startPeriodSeconds: 60,
    });
    assert.deepEqual(byName.get("media")!.health.checks, [
      { name: "systemd:jellyfin.service", phase: "both", kind: "systemd", unit: "jellyfin.service" },
      { name: "tcp:192.168.99.17:5055", phase: "both", kind: "tcp", host: "192.168.99.17", port: 5055 },
    ]);
    const postgresql = byName.get("postgresql")!;
    assert.deepEqual(postgresql.resources, { cores: 4, memoryMiB: 4096, swapMiB: 512, diskGiB: 64 });
    assert.equal(postgresql.stateful, true);
    assert.deepEqual(postgresql.tags, ["nixmox", "postgresql"]);
    assert.equal(postgresql.prefixLength, 24);
    assert.deepEqual(byName.get("guacamole")!.ports, [4822, 8280]);
    assert.deepEqual(byName.get("dns")!.health.checks.map((check) => check.name), ["systemd:unbound.service", "startup", "liveness"]);
  });

  it("routes every enabled proxy entry, named routes included, sorted by domain", () => {
    assert.deepEqual(plan.routes, [
      route("authentik", "default", "auth.nixmox.lan", "/", "192.168.99.12:9000", null, { app: "authentik" }),
      route("openbao", "default", "bao.nixmox.lan", "/", "192.168.99.20:8200", null),
      route("nextcloud", "default", "cloud.nixmox.lan", "/", "192.168.99.15:80", "oidc"),
      route("monitoring", "grafana", "grafana.nixmox.lan", "/", "192.168.99.18:3000", "oidc"),
      route("guacamole", "default", "guac.nixmox.lan", "/guacamole", "192.168.99.16:8280", "oidc", { app: "guacamole" }),
      route("homeassistant", "default", "ha.nixmox.net", "/", "192.168.99.21:8123", null, { tls: "acme", extraConfig: "header { -Server }" }),
      route("media", "jellyfin", "jellyfin.nixmox.lan", "/", "192.168.99.17:8096", "forward_auth"),
      route("monitoring", "prometheus", "prometheus.nixmox.lan", "/", "192.168.99.18:9090", "forward_auth"),
      route("media", "jellyseerr", "requests.nixmox.lan", "/", "192.168.99.17:5055", "forward_auth"),
      route("vaultwarden", "default", "vault.nixmox.lan", "/", "192.168.99.14:8080", "oidc", { app: "vaultwarden" }),
    ]);
  });

  it("gives every host an A record and every route domain an A record on the proxy; the disabled mail gets none", () => {
    assert.deepEqual(plan.dnsRecords, [
      fromRoute("auth.nixmox.lan", "authentik"),
      fromHost("authentik.nixmox.lan", "192.168.99.12", "authentik"),
      fromRoute("bao.nixmox.lan", "openbao"),
      fromHost("caddy.nixmox.lan", proxyIp, "caddy"),
      fromRoute("cloud.nixmox.lan", "nextcloud"),
      fromHost("dns.nixmox.lan", "192.168.99.13", "dns"),
      fromRoute("grafana.nixmox.lan", "monitoring"),
      fromRoute("guac.nixmox.lan", "guacamole"),
      fromHost("guacamole.nixmox.lan", "192.168.99.16", "guacamole"),
      fromRoute("ha.nixmox.net", "homeassistant"),
      fromHost("homeassistant.nixmox.lan", "192.168.99.21", "homeassistant"),
      fromRoute("jellyfin.nixmox.lan", "media"),
      fromHost("media.nixmox.lan", "192.168.99.17", "media"),
      fromHost("monitoring.nixmox.lan", "192.168.99.18", "monitoring"),
      fromHost("nextcloud.nixmox.lan", "192.168.99.15", "nextcloud"),
      fromHost("openbao.nixmox.lan", "192.168.99.20", "openbao"),
      fromHost("postgresql.nixmox.lan", "192.168.99.11", "postgresql"),
      fromRoute("prometheus.nixmox.lan", "monitoring"),
      fromRoute("requests.nixmox.lan", "media"),
      fromRoute("vault.nixmox.lan", "vaultwarden"),
      fromHost("vaultwarden.nixmox.lan", "192.168.99.14", "vaultwarden"),
    ]);
  });

  it("creates one database per db block, whether db.host is an ip, a name or a hostname", () => {
    const database = (service: string, clientIp: string) => ({
      service,
      server: "postgresql",
      host: "192.168.99.11",
      port: 5432,
      name: service,
      owner: service,
      key: "db",
      additional: [],
      clientIp,
      passwordSecret: "db_password",
    });
    assert.deepEqual(plan.databases, [
      database("authentik", "192.168.99.12"),
      database("guacamole", "192.168.99.16"),
      database("nextcloud", "192.168.99.15"),
      database("vaultwarden", "192.168.99.14"),
    ]);
  });

  it("creates OIDC and forward-auth clients in Authentik", () => {
    const oidcDefaults = { usernameClaim: "preferred_username", groupsClaim: "groups" };
    assert.deepEqual(plan.authClients, [
      {
        type: "oidc",
        service: "guacamole",
        route: null,
        slug: "guacamole",
        provider: "authentik",
        clientId: "guacamole-oidc",
        clientType: "public",
        redirectUris: ["https://guac.nixmox.lan/guacamole/"],
        scopes: ["openid", "email", "profile"],
        ...oidcDefaults,
        clientSecret: null,
        launchUrl: "https://guac.nixmox.lan/guacamole",
      },
      { type: "forward_auth", service: "media", provider: "authentik", domains: ["jellyfin.nixmox.lan", "requests.nixmox.lan"], upstream: "192.168.99.12:9000" },
      { type: "forward_auth", service: "monitoring", provider: "authentik", domains: ["prometheus.nixmox.lan"], upstream: "192.168.99.12:9000" },
      {
        type: "oidc",
        service: "monitoring",
        route: null,
        slug: "monitoring",
        provider: "authentik",
        clientId: "monitoring-oidc",
        clientType: "confidential",
        redirectUris: ["https://grafana.nixmox.lan/login/generic_oauth"],
        scopes: ["openid", "email", "profile"],
        ...oidcDefaults,
        clientSecret: "oidc_client_secret",
        launchUrl: "https://grafana.nixmox.lan/",
      },
      {
        type: "oidc",
        service: "nextcloud",
        route: null,
        slug: "nextcloud",
        provider: "authentik",
        clientId: "nextcloud",
        clientType: "confidential",
        redirectUris: ["https://cloud.nixmox.lan/apps/user_oidc/code"],
        scopes: ["email", "profile", "nextcloud", "openid"],
        ...oidcDefaults,
        clientSecret: "oidc_client_secret",
        launchUrl: "https://cloud.nixmox.lan/",
      },
      {
        type: "oidc",
        service: "vaultwarden",
        route: null,
        slug: "vaultwarden",
        provider: "authentik",
        clientId: "vaultwarden",
        clientType: "confidential",
        redirectUris: ["https://vault.nixmox.lan/identity/connect/oidc-signin"],
        scopes: ["openid", "email", "profile"],
        ...oidcDefaults,
        clientSecret: "oidc_client_secret",
        launchUrl: "https://vault.nixmox.lan/",
      },
    ]);
  });

  it("delivers each secret to the hosts that read it, database passwords to both ends", () => {
    assert.deepEqual(
      plan.secrets.map((secret) => `${secret.service} ${secret.path} ${secret.restartUnits.join(",")}`),
      [
        "authentik /var/lib/nixmox/secrets/authentik/bootstrap_password authentik.service,authentik-worker.service",
        "authentik /var/lib/nixmox/secrets/authentik/bootstrap_token authentik.service,authentik-worker.service",
        "authentik /var/lib/nixmox/secrets/authentik/db_password authentik.service,authentik-worker.service",
        "authentik /var/lib/nixmox/secrets/authentik/secret_key authentik.service,authentik-worker.service",
        "guacamole /var/lib/nixmox/secrets/guacamole/db_password guacamole-server.service,tomcat.service",
        "monitoring /var/lib/nixmox/secrets/monitoring/oidc_client_secret ",
        "nextcloud /var/lib/nixmox/secrets/nextcloud/db_password ",
        "nextcloud /var/lib/nixmox/secrets/nextcloud/oidc_client_secret ",
        "openbao /var/lib/nixmox/secrets/openbao/unseal_key openbao.service",
        "postgresql /var/lib/nixmox/secrets/authentik/db_password nixmox-postgresql-passwords.service",
        "postgresql /var/lib/nixmox/secrets/guacamole/db_password nixmox-postgresql-passwords.service",
        "postgresql /var/lib/nixmox/secrets/nextcloud/db_password nixmox-postgresql-passwords.service",
        "postgresql /var/lib/nixmox/secrets/vaultwarden/db_password nixmox-postgresql-passwords.service",
        "vaultwarden /var/lib/nixmox/secrets/vaultwarden/db_password vaultwarden.service",
        "vaultwarden /var/lib/nixmox/secrets/vaultwarden/oidc_client_secret vaultwarden.service",
      ],
    );
    const unseal = plan.secrets.find((secret) => secret.name === "unseal_key")!;
    assert.deepEqual(unseal, {
      name: "unseal_key",
      configService: "openbao",
      service: "openbao",
      path: "/var/lib/nixmox/secrets/openbao/unseal_key",
      owner: "root",
      group: "root",
      mode: "0400",
      restartUnits: ["openbao.service"],
      generated: false,
      required: true,
      description: "OpenBao unseal key",
    });
  });

  it("keeps the network facts and the manifest directory", () => {
    assert.deepEqual(plan.network, {
      domain: "nixmox.lan",
      dnsServer: "192.168.99.13",
      fallbackDnsServers: [],
      gateway: "192.168.99.1",
      networkCidr: "192.168.99.0/24",
      prefixLength: 24,
      vlanTag: 99,
      sshKeys: { root: [seedManifest().network.ssh_keys.root[0]] },
      dns: { forwarders: ["192.168.99.1"], allowedNetworks: [], dnssec: false },
      firewall: "nftables",
    });
    assert.equal(plan.manifestDir, testManifestDir);
    assert.equal(plan.secretsDir, "/var/lib/nixmox/secrets");
  });

  it("plans a disabled service nowhere: enabling mail adds its host, route, client and edges", () => {
    const manifest = seedManifest();
    manifest.services.mail.enable = true;
    manifest.services.mail.interface.proxy.domain = "webmail.nixmox.lan";
    const withMail = planOf(manifest);
    assert.deepEqual(withMail.disabled, []);
    assert.deepEqual(withMail.waves[3], ["guacamole", "mail", "monitoring", "nextcloud", "openbao", "vaultwarden"]);
    assert.deepEqual(withMail.dnsRecords.filter((record) => record.service === "mail").map((record) => record.name), ["mail.nixmox.lan", "webmail.nixmox.lan"]);
    assert.deepEqual(withMail.authClients.filter((client) => client.service === "mail").map((client) => client.type), ["oidc"]);
  });
});

describe("plan: determinism", () => {
  it("gives the same plan and byte-identical plan JSON for 20 shuffled key orders", () => {
    const reference = planOf(seedManifest());
    const referenceJson = renderPlanJson(reference);
    for (let seed = 1; seed <= 20; seed += 1) {
      const shuffled = planOf(shuffleKeys(seedManifest(), seed));
      assert.equal(JSON.stringify(shuffled), JSON.stringify(reference), `seed ${seed}`);
      assert.equal(renderPlanJson(shuffled), referenceJson, `seed ${seed}`);
    }
  });

  it("shuffles keys for real (the test above would prove nothing otherwise)", () => {
    const keys = (seed: number) => Object.keys(shuffleKeys(seedManifest(), seed).services).join(",");
    assert.notEqual(keys(1), Object.keys(seedManifest().services).join(","));
    assert.equal(keys(7), keys(7));
  });

  it("does not depend on the order of depends_on lists", () => {
    const manifest = seedManifest();
    for (const group of [manifest.core_services, manifest.services]) {
      for (const service of Object.values(group) as Array<{ depends_on?: string[] }>) service.depends_on?.reverse();
    }
    assert.equal(renderPlanJson(planOf(manifest)), renderPlanJson(planOf(seedManifest())));
  });

  it("plans the same manifest twice without sharing or changing state", () => {
    const manifest = validateManifest(seedManifest(), "seed");
    const before = deepClone(manifest);
    const first = planManifest(manifest, { manifestDir: testManifestDir });
    first.waves[0].push("tampered");
    first.services[0].dependsOn.push("tampered");
    const second = planManifest(manifest, { manifestDir: testManifestDir });
    assert.deepEqual(second.waves[0], ["dns"]);
    assert.deepEqual(second.services[0].dependsOn, ["dns", "postgresql"]);
    assert.deepEqual(manifest, before);
  });
});
