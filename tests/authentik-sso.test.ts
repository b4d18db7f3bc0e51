// Pure plan tests (no mocks) plus createSsoResources under Pulumi mocks; the mocks do not prove that the engine
// keeps `token`/`clientSecret` out of plain-text state or that the resources deploy (authentik-providers.test.ts
// runs the providers themselves against a loopback Authentik API).
import assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { authentikSlug, createSsoResources, planAuthentikObjects, type AuthentikObjectPlan } from "../components/authentik";
import type { Plan } from "../manifest";
import { mockOutputs } from "../components/offline-preview";
import { recordProgram, type ResourceRecord } from "./support/pulumi-mocks";
import { deepClone, planOf, seedManifest, shuffleKeys } from "./support/manifests";

const url = "http://192.168.99.12:9000";
const common = { authentik: "authentik", url };

const seedObjects: AuthentikObjectPlan[] = [
  {
    kind: "oidc-app", role: "guacamole", service: "guacamole", ...common, slug: "guacamole", name: "guacamole", providerName: "nixmox-guacamole",
    clientId: "guacamole-oidc", clientType: "public", clientSecret: null, redirectUris: ["https://guac.nixmox.lan/guacamole/"],
    scopes: ["openid", "email", "profile"], launchUrl: "https://guac.nixmox.lan/guacamole",
  },
  {
    kind: "proxy-app", role: "media-jellyfin-nixmox-lan", service: "media", ...common, slug: "media-jellyfin-nixmox-lan", name: "media (jellyfin.nixmox.lan)",
    providerName: "nixmox-media-jellyfin-nixmox-lan", domain: "jellyfin.nixmox.lan", externalHost: "https://jellyfin.nixmox.lan", mode: "forward_single",
  },
  {
    kind: "proxy-app", role: "media-requests-nixmox-lan", service: "media", ...common, slug: "media-requests-nixmox-lan", name: "media (requests.nixmox.lan)",
    providerName: "nixmox-media-requests-nixmox-lan", domain: "requests.nixmox.lan", externalHost: "https://requests.nixmox.lan", mode: "forward_single",
  },
  {
    kind: "proxy-app", role: "monitoring-prometheus-nixmox-lan", service: "monitoring", ...common, slug: "monitoring-prometheus-nixmox-lan", name: "monitoring (prometheus.nixmox.lan)",
    providerName: "nixmox-monitoring-prometheus-nixmox-lan", domain: "prometheus.nixmox.lan", externalHost: "https://prometheus.nixmox.lan", mode: "forward_single",
  },
  {
    kind: "oidc-app", role: "monitoring", service: "monitoring", ...common, slug: "monitoring", name: "monitoring", providerName: "nixmox-monitoring",
    clientId: "monitoring-oidc", clientType: "confidential", clientSecret: "oidc_client_secret", redirectUris: ["https://grafana.nixmox.lan/login/generic_oauth"],
    scopes: ["openid", "email", "profile"], launchUrl: "https://grafana.nixmox.lan/",
  },
  {
    kind: "oidc-app", role: "nextcloud", service: "nextcloud", ...common, slug: "nextcloud", name: "nextcloud", providerName: "nixmox-nextcloud",
    clientId: "nextcloud", clientType: "confidential", clientSecret: "oidc_client_secret", redirectUris: ["https://cloud.nixmox.lan/apps/user_oidc/code"],
    scopes: ["email", "profile", "nextcloud", "openid"], launchUrl: "https://cloud.nixmox.lan/",
  },
  {
    kind: "oidc-app", role: "vaultwarden", service: "vaultwarden", ...common, slug: "vaultwarden", name: "vaultwarden", providerName: "nixmox-vaultwarden",
    clientId: "vaultwarden", clientType: "confidential", clientSecret: "oidc_client_secret", redirectUris: ["https://vault.nixmox.lan/identity/connect/oidc-signin"],
    scopes: ["openid", "email", "profile"], launchUrl: "https://vault.nixmox.lan/",
  },
  {
    kind: "outpost-binding", role: "authentik-outpost", ...common, outpostName: "authentik Embedded Outpost", authentikHost: "https://auth.nixmox.lan",
    proxyApps: ["media-jellyfin-nixmox-lan", "media-requests-nixmox-lan", "monitoring-prometheus-nixmox-lan"],
  },
];

describe("authentik: planAuthentikObjects (pure)", () => {
  it("plans one OIDC app per oidc client, one forward_single proxy app per protected domain and one outpost binding", () => {
    assert.deepEqual(planAuthentikObjects(planOf(seedManifest())), seedObjects);
  });

  it("gives the same objects for a manifest with shuffled keys", () => {
    for (const seed of [1, 2, 3]) assert.deepEqual(planAuthentikObjects(planOf(shuffleKeys(seedManifest(), seed))), seedObjects);
  });

  it("uses http:// for the external host of a route with tls off", () => {
    const plan = planOf(seedManifest());
    const routes = plan.routes.map((route) => (route.domain === "jellyfin.nixmox.lan" ? { ...route, tls: "off" as const } : route));
    const jellyfin = planAuthentikObjects({ ...plan, routes }).find((object) => object.role === "media-jellyfin-nixmox-lan");
    assert.equal(jellyfin?.kind === "proxy-app" && jellyfin.externalHost, "http://jellyfin.nixmox.lan");
  });

  it("keeps slugs within Authentik's 50 characters with a stable hash suffix", () => {
    assert.equal(authentikSlug("media-jellyfin-nixmox-lan"), "media-jellyfin-nixmox-lan");
    // The suffix is the first 8 hex digits of `printf %s <full slug> | sha256sum`.
    const long = authentikSlug("analytics-dashboard-reports-internal-example-homelab-lan");
    assert.equal(long, "analytics-dashboard-reports-internal-exam-afcb3064");
    assert.equal(long.length, 50);
    assert.equal(authentikSlug("analytics-dashboard-reports-internal-example-homelab-lan"), long);
  });

  it("fails two clients that would share an application slug, naming both services", () => {
    const plan: Plan = deepClone(planOf(seedManifest()));
    plan.authClients.push({ type: "forward_auth", service: "vault", provider: "authentik", domains: ["warden"], upstream: "192.168.99.12:9000" });
    plan.authClients.push({ ...(plan.authClients.find((client) => client.service === "vaultwarden")!), service: "vault-warden", slug: "vault-warden" } as Plan["authClients"][number]);
    assert.throws(() => planAuthentikObjects(plan), {
      message: 'service "vault-warden": its Authentik application slug "vault-warden" is already used by service "vault"; rename one of the services or routes',
    });
  });
});

describe("authentik: createSsoResources under mocks", function () {
  this.timeout(30_000);
  const token = "bootstrap-token-for-mocks";
  const plan = planOf(seedManifest());
  const secrets = { monitoring: "monitoring-secret", nextcloud: "nextcloud-secret", vaultwarden: "vaultwarden-secret" };
  let resources: ResourceRecord[];
  const secretOutputs = new Map<string, string[]>();

  before(async () => {
    const run = await recordProgram(async () => {
      const parent = new pulumi.ComponentResource("nixmox:index:Sso", "sso", {}, {});
      createSsoResources(plan, { token, clientSecrets: secrets }, {
        parent,
        transformations: [(args) => {
          secretOutputs.set(args.name, [...((args.opts as pulumi.CustomResourceOptions).additionalSecretOutputs ?? [])]);
          return undefined;
        }],
      });
      return {};
    }, { config: {}, secretKeys: [] });
    resources = run.resources;
  });

  const named = (name: string) => resources.find((resource) => resource.name === name)!;

  it("creates one dynamic resource per planned object, named <prefix>-<role>, under the given parent", () => {
    assert.deepEqual(
      resources.filter((resource) => resource.custom).map((resource) => [resource.type, resource.name]),
      [
        ["pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp", "sso-guacamole"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp", "sso-monitoring"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp", "sso-nextcloud"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp", "sso-vaultwarden"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikOutpostBinding", "sso-authentik-outpost"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp", "sso-media-jellyfin-nixmox-lan"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp", "sso-media-requests-nixmox-lan"],
        ["pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp", "sso-monitoring-prometheus-nixmox-lan"],
      ].sort((a, b) => (a[0] + a[1] < b[0] + b[1] ? -1 : 1)),
    );
    const parent = named("sso").urn;
    assert.deepEqual(resources.filter((resource) => resource.custom && resource.parent !== parent), []);
  });

  it("passes the resolved inputs, with the token and the client secret wrapped as secrets", () => {
    const vaultwarden = named("sso-vaultwarden");
    assert.deepEqual(vaultwarden.inputs, {
      url,
      token: "[secret]",
      tunnel: null,
      service: "vaultwarden",
      slug: "vaultwarden",
      name: "vaultwarden",
      providerName: "nixmox-vaultwarden",
      clientId: "vaultwarden",
      clientType: "confidential",
      clientSecret: "[secret]",
      redirectUris: ["https://vault.nixmox.lan/identity/connect/oidc-signin"],
      scopes: ["openid", "email", "profile"],
      authorizationFlow: "default-provider-authorization-implicit-consent",
      invalidationFlow: "default-provider-invalidation-flow",
      signingKey: "authentik Self-signed Certificate",
      launchUrl: "https://vault.nixmox.lan/",
    });
    assert.deepEqual(vaultwarden.secretPaths, ["clientSecret", "token"]);
    assert.equal(vaultwarden.plainInputs.clientSecret, "vaultwarden-secret");
    assert.deepEqual(named("sso-guacamole").secretPaths, ["token"]);
    assert.equal(named("sso-guacamole").inputs.clientSecret, null);
    assert.deepEqual(named("sso-media-jellyfin-nixmox-lan").inputs, {
      url,
      token: "[secret]",
      tunnel: null,
      service: "media",
      slug: "media-jellyfin-nixmox-lan",
      name: "media (jellyfin.nixmox.lan)",
      providerName: "nixmox-media-jellyfin-nixmox-lan",
      externalHost: "https://jellyfin.nixmox.lan",
      mode: "forward_single",
      cookieDomain: null,
      authorizationFlow: "default-provider-authorization-implicit-consent",
      invalidationFlow: "default-provider-invalidation-flow",
      launchUrl: "https://jellyfin.nixmox.lan",
    });
  });

  it("marks token, clientSecret and the SSH tunnel as additional secret outputs on every resource", () => {
    assert.deepEqual(Object.fromEntries([...secretOutputs.entries()].filter(([name]) => name !== "sso").sort()), {
      "sso-authentik-outpost": ["token", "tunnel"],
      "sso-guacamole": ["clientSecret", "token", "tunnel"],
      "sso-media-jellyfin-nixmox-lan": ["token", "tunnel"],
      "sso-media-requests-nixmox-lan": ["token", "tunnel"],
      "sso-monitoring": ["clientSecret", "token", "tunnel"],
      "sso-monitoring-prometheus-nixmox-lan": ["token", "tunnel"],
      "sso-nextcloud": ["clientSecret", "token", "tunnel"],
      "sso-vaultwarden": ["clientSecret", "token", "tunnel"],
    });
  });

  it("makes the outpost binding depend on every proxy app (it binds their provider ids)", () => {
    assert.deepEqual(named("sso-authentik-outpost").dependsOn, [
      named("sso-media-jellyfin-nixmox-lan").urn,
      named("sso-media-requests-nixmox-lan").urn,
      named("sso-monitoring-prometheus-nixmox-lan").urn,
    ].sort());
    assert.equal(named("sso-authentik-outpost").inputs.outpostName, "authentik Embedded Outpost");
  });

  it("binds exactly the provider ids the proxy apps report (mock ids: what the mock engine returns, not Authentik)", () => {
    const proxyApps = ["sso-media-jellyfin-nixmox-lan", "sso-media-requests-nixmox-lan", "sso-monitoring-prometheus-nixmox-lan"];
    const expected = proxyApps
      .map((name) => mockOutputs({ type: named(name).type, name, inputs: named(name).inputs }).state.providerPk as number)
      .sort((a, b) => a - b);
    assert.equal(new Set(expected).size, 3);
    assert.deepEqual([...(named("sso-authentik-outpost").inputs.providerPks as number[])].sort((a, b) => a - b), expected);
  });

  it("never puts the token or a client secret in a non-secret input", () => {
    const visible = JSON.stringify(resources.map((resource) => resource.inputs));
    for (const secret of [token, ...Object.values(secrets)]) assert.equal(visible.includes(secret), false, secret);
  });

  it("fails a confidential client without a secret before creating any resource", () => {
    assert.throws(() => createSsoResources(plan, { token, clientSecrets: { monitoring: "x" } }), {
      message: [
        'service "nextcloud": the OIDC client secret is missing; pass clientSecrets["nextcloud"] (the value of nixmox:secrets.nextcloud.oidc_client_secret, or a generated secret)',
        'service "vaultwarden": the OIDC client secret is missing; pass clientSecrets["vaultwarden"] (the value of nixmox:secrets.vaultwarden.oidc_client_secret, or a generated secret)',
      ].join("\n"),
    });
  });
});
