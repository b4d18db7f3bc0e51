// Real processes: the dynamic providers' create/read/diff/update/delete run against a real HTTP server on
// 127.0.0.1 that speaks Authentik's wire format (tests/support/authentik-api.ts). Not proven here: that a real
// Authentik accepts these bodies (the fake follows the 2026.8 OpenAPI client's models, not Authentik's code).
import assert from "node:assert/strict";
import { connect, createServer, type Socket } from "node:net";
import * as pulumi from "@pulumi/pulumi";
import {
  outpostBindingProvider,
  outpostProvider,
  oidcAppProvider,
  proxyAppProvider,
  type AuthentikOidcAppInputs,
  type AuthentikOidcAppOutputs,
  type AuthentikOutpostBindingInputs,
  type AuthentikOutpostBindingOutputs,
  type AuthentikOutpostInputs,
  type AuthentikOutpostOutputs,
  type AuthentikProxyAppInputs,
  type AuthentikProxyAppOutputs,
} from "../components/authentik";
import { FakeAuthentik, embeddedOutpostPk, flowPks, oidcAppInputs, proxyAppInputs, scopePks, signingKeyPkValue, startFakeAuthentik } from "./support/authentik-api";
import { startSshd, type TestSshd } from "./support/sshd";

const token = "ak-test-token-5f1c0e9a";
const clientSecret = "client-secret-9b2d7c41";

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

/** A port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("authentik dynamic providers against a local Authentik API", function () {
  this.timeout(10_000);
  let api: FakeAuthentik;
  beforeEach(async () => {
    api = await startFakeAuthentik(token);
  });
  afterEach(async () => {
    await api.stop();
  });

  const oidcInputs = (overrides: Partial<AuthentikOidcAppInputs> = {}) => oidcAppInputs(api.url, token, { clientSecret, ...overrides });

  const proxyInputs = (overrides: Partial<AuthentikProxyAppInputs> = {}) => proxyAppInputs(api.url, token, overrides);

  const expectedOidcProviderBody = {
    name: "nixmox-vaultwarden",
    authorization_flow: flowPks.authorization,
    invalidation_flow: flowPks.invalidation,
    property_mappings: [scopePks.openid, scopePks.email, scopePks.profile],
    client_type: "confidential",
    client_id: "vaultwarden",
    client_secret: clientSecret,
    signing_key: signingKeyPkValue,
    redirect_uris: [{ matching_mode: "strict", url: "https://vault.nixmox.lan/identity/connect/oidc-signin" }],
  };

  it("serializes each provider without Pulumi or secrets in its closure, requiring @goauthentik/api at run time", async () => {
    for (const provider of [oidcAppProvider, proxyAppProvider, outpostBindingProvider, outpostProvider]) {
      const serialized = await pulumi.runtime.serializeFunction(() => provider, { allowSecrets: true });
      const requires = [...new Set(serialized.text.match(/require\("[^"]+"\)/g))].sort();
      // The Authentik client, and what the SSH tunnel needs (ssh2, Node built-ins); never the Pulumi SDK.
      assert.deepEqual(requires, ['require("@goauthentik/api")', 'require("crypto")', 'require("fs")', 'require("node:http")', 'require("ssh2")']);
      assert.equal(serialized.containsSecrets, false);
    }
  });

  describe("AuthentikOidcApp", () => {
    it("creates the OAuth2 provider and the application with exact snake_case bodies and the Bearer token", async () => {
      const result = await oidcAppProvider.create(oidcInputs());
      assert.deepEqual(api.writes(), ["POST /api/v3/providers/oauth2/", "POST /api/v3/core/applications/"]);
      const [providerPost, appPost] = api.requests.filter((request) => request.method === "POST");
      assert.deepEqual(providerPost.body, expectedOidcProviderBody);
      assert.deepEqual(appPost.body, { name: "vaultwarden", slug: "vaultwarden", provider: 1, meta_launch_url: "https://vault.nixmox.lan/" });
      assert.deepEqual(api.requests.map((request) => request.authorization), api.requests.map(() => `Bearer ${token}`));
      assert.deepEqual(
        api.requests.filter((request) => request.method === "GET").map((request) => `${request.path}${Object.keys(request.query).length ? `?${new URLSearchParams(request.query)}` : ""}`),
        [
          "/api/v3/flows/instances/?slug=default-provider-authorization-implicit-consent",
          "/api/v3/flows/instances/?slug=default-provider-invalidation-flow",
          "/api/v3/propertymappings/provider/scope/?scope_name=openid",
          "/api/v3/propertymappings/provider/scope/?scope_name=email",
          "/api/v3/propertymappings/provider/scope/?scope_name=profile",
          "/api/v3/crypto/certificatekeypairs/?has_key=true&name=authentik+Self-signed+Certificate",
          "/api/v3/providers/oauth2/?name=nixmox-vaultwarden",
          "/api/v3/core/applications/vaultwarden/",
        ],
      );
      assert.equal(result.id, "vaultwarden");
      assert.deepEqual(result.outs, {
        ...oidcInputs(),
        providerPk: 1,
        applicationPk: api.applications.get("vaultwarden")!.pk,
        authorizationFlowPk: flowPks.authorization,
        invalidationFlowPk: flowPks.invalidation,
        propertyMappingPks: [scopePks.openid, scopePks.email, scopePks.profile],
        signingKeyPk: signingKeyPkValue,
      });
    });

    it("omits the client secret for a public client and signs with HS256 when signingKey is null", async () => {
      await oidcAppProvider.create(oidcInputs({ clientType: "public", clientSecret: null, signingKey: null, launchUrl: null }));
      const [providerPost, appPost] = api.requests.filter((request) => request.method === "POST");
      const { client_secret: _omitted, ...rest } = expectedOidcProviderBody;
      assert.deepEqual(providerPost.body, { ...rest, client_type: "public", signing_key: null });
      assert.deepEqual(appPost.body, { name: "vaultwarden", slug: "vaultwarden", provider: 1, meta_launch_url: "" });
    });

    it("adopts an existing provider (same name) and application (same slug) instead of creating duplicates", async () => {
      const seeded = api.seedOauth2Provider({ name: "nixmox-vaultwarden", client_id: "old-id", redirect_uris: [{ matching_mode: "regex", url: ".*" }] });
      await oidcAppProvider.create(oidcInputs());
      const first = api.applications.get("vaultwarden")!;
      const again = await oidcAppProvider.create(oidcInputs());
      assert.deepEqual(api.writes(), [
        `PATCH /api/v3/providers/oauth2/${seeded.pk}/`,
        "POST /api/v3/core/applications/",
        `PATCH /api/v3/providers/oauth2/${seeded.pk}/`,
        "PATCH /api/v3/core/applications/vaultwarden/",
      ]);
      assert.deepEqual(api.requests.find((request) => request.method === "PATCH")!.body, expectedOidcProviderBody);
      assert.equal(api.oauth2Providers.size, 1);
      assert.equal(api.applications.size, 1);
      assert.equal(again.outs!.providerPk, seeded.pk);
      assert.equal(again.outs!.applicationPk, first.pk);
      assert.deepEqual(api.oauth2Providers.get(seeded.pk)!.redirect_uris, [{ matching_mode: "strict", url: "https://vault.nixmox.lan/identity/connect/oidc-signin" }]);
    });

    it("updates redirect URIs with a PATCH of the same provider", async () => {
      const created = await oidcAppProvider.create(oidcInputs());
      api.requests.length = 0;
      const news = oidcInputs({ redirectUris: ["https://vault.nixmox.lan/identity/connect/oidc-signin", "https://vault.example.org/identity/connect/oidc-signin"] });
      const diff = await oidcAppProvider.diff!("vaultwarden", created.outs!, news);
      assert.deepEqual(diff, { changes: true, replaces: [], deleteBeforeReplace: false });
      const updated = await oidcAppProvider.update!("vaultwarden", created.outs!, news);
      assert.deepEqual(api.writes(), ["PATCH /api/v3/providers/oauth2/1/", "PATCH /api/v3/core/applications/vaultwarden/"]);
      assert.deepEqual((api.requests.find((request) => request.method === "PATCH")!.body as { redirect_uris: unknown }).redirect_uris, [
        { matching_mode: "strict", url: "https://vault.nixmox.lan/identity/connect/oidc-signin" },
        { matching_mode: "strict", url: "https://vault.example.org/identity/connect/oidc-signin" },
      ]);
      assert.deepEqual(updated.outs!.redirectUris, news.redirectUris);
      assert.equal(updated.outs!.providerPk, 1);
    });

    it("diff replaces (delete first) on a slug change and ignores the order of redirect URIs and scopes", async () => {
      const created = await oidcAppProvider.create(oidcInputs({ redirectUris: ["https://a.lan/cb", "https://b.lan/cb"] }));
      assert.deepEqual(await oidcAppProvider.diff!("vaultwarden", created.outs!, oidcInputs({ redirectUris: ["https://b.lan/cb", "https://a.lan/cb"], scopes: ["profile", "openid", "email"] })), { changes: false, replaces: [], deleteBeforeReplace: false });
      assert.deepEqual(await oidcAppProvider.diff!("vaultwarden", created.outs!, oidcInputs({ slug: "vault", redirectUris: ["https://a.lan/cb", "https://b.lan/cb"] })), { changes: true, replaces: ["slug"], deleteBeforeReplace: true });
      assert.deepEqual(await oidcAppProvider.diff!("vaultwarden", created.outs!, oidcInputs({ clientSecret: "rotated", redirectUris: ["https://a.lan/cb", "https://b.lan/cb"] })), { changes: true, replaces: [], deleteBeforeReplace: false });
    });

    it("read reports drift made in Authentik, and the next diff wants to undo it", async () => {
      const created = await oidcAppProvider.create(oidcInputs());
      const provider = api.oauth2Providers.get(1)!;
      provider.redirect_uris = [{ matching_mode: "regex", url: "https://.*" }];
      provider.authorization_flow = flowPks.explicitConsent;
      provider.property_mappings = [scopePks.profile, scopePks.openid];
      provider.client_secret = "changed-by-hand";
      api.applications.get("vaultwarden")!.meta_launch_url = "";
      const read = await oidcAppProvider.read!("vaultwarden", created.outs!);
      const props = read.props as AuthentikOidcAppOutputs;
      assert.equal(read.id, "vaultwarden");
      assert.deepEqual(
        { redirectUris: props.redirectUris, authorizationFlow: props.authorizationFlow, scopes: props.scopes, clientSecret: props.clientSecret, launchUrl: props.launchUrl, propertyMappingPks: props.propertyMappingPks },
        { redirectUris: ["regex:https://.*"], authorizationFlow: "default-provider-authorization-explicit-consent", scopes: ["openid", "profile"], clientSecret: "changed-by-hand", launchUrl: null, propertyMappingPks: [scopePks.profile, scopePks.openid] },
      );
      assert.deepEqual(await oidcAppProvider.diff!("vaultwarden", props, oidcInputs()), { changes: true, replaces: [], deleteBeforeReplace: false });
      const clean = await oidcAppProvider.read!("vaultwarden", (await oidcAppProvider.update!("vaultwarden", props, oidcInputs())).outs);
      assert.deepEqual(await oidcAppProvider.diff!("vaultwarden", clean.props as AuthentikOidcAppOutputs, oidcInputs()), { changes: false, replaces: [], deleteBeforeReplace: false });
    });

    it("read drops the resource when its provider or application was deleted in Authentik", async () => {
      const created = await oidcAppProvider.create(oidcInputs());
      api.applications.delete("vaultwarden");
      assert.deepEqual(await oidcAppProvider.read!("vaultwarden", created.outs!), {});
    });

    it("update recreates a provider that was deleted in Authentik", async () => {
      const created = await oidcAppProvider.create(oidcInputs());
      api.oauth2Providers.delete(1);
      const updated = await oidcAppProvider.update!("vaultwarden", created.outs!, oidcInputs());
      assert.equal(updated.outs!.providerPk, 2);
      assert.equal(api.applications.get("vaultwarden")!.provider, 2);
    });

    it("delete removes the application and the provider, and tolerates both being gone already (404)", async () => {
      const created = await oidcAppProvider.create(oidcInputs());
      api.requests.length = 0;
      await oidcAppProvider.delete!("vaultwarden", created.outs!);
      await oidcAppProvider.delete!("vaultwarden", created.outs!);
      assert.deepEqual(api.writes(), [
        "DELETE /api/v3/core/applications/vaultwarden/",
        "DELETE /api/v3/providers/oauth2/1/",
        "DELETE /api/v3/core/applications/vaultwarden/",
        "DELETE /api/v3/providers/oauth2/1/",
      ]);
      assert.equal(api.oauth2Providers.size + api.applications.size, 0);
    });

    it("fails a confidential client without a client secret before calling Authentik", async () => {
      const error = await rejection(oidcAppProvider.create(oidcInputs({ clientSecret: null })));
      assert.equal(error.message, 'service "vaultwarden": clientSecret is required for a confidential OIDC client; set nixmox:secrets.vaultwarden.oidc_client_secret or leave it unset so NixMox generates one');
      assert.deepEqual(api.requests, []);
    });

    it("fails an unknown scope naming the manifest field and the fix", async () => {
      const error = await rejection(oidcAppProvider.create(oidcInputs({ scopes: ["openid", "nextcloud"] })));
      assert.equal(error.message, 'service "vaultwarden": interface.auth.oidc.scopes: Authentik has no scope mapping for scope "nextcloud"; create a scope mapping with that scope name in Authentik or remove the scope');
      assert.deepEqual(api.writes(), []);
    });

    it("fails an unknown flow slug", async () => {
      const error = await rejection(oidcAppProvider.create(oidcInputs({ authorizationFlow: "no-such-flow" })));
      assert.equal(error.message, 'service "vaultwarden": authorizationFlow: Authentik has no flow with slug "no-such-flow"; create it in Authentik or name an existing flow');
    });

    it("fails a wrong token with HTTP 403 and a hint, without printing either token", async () => {
      const error = await rejection(oidcAppProvider.create(oidcInputs({ token: "wrong-token-123" })));
      assert.equal(error.message, 'service "vaultwarden": Authentik lookup of flow "default-provider-authorization-implicit-consent" failed: HTTP 403: {"detail":"Authentication credentials were not provided."} (check nixmox:secrets.<authentik service>.bootstrap_token: the token is missing, wrong or lacks rights)');
    });

    it("fails with a redacted message when Authentik echoes the token and the client secret in an error body", async () => {
      api.failures.set("POST /api/v3/providers/oauth2/", [400, JSON.stringify({ client_secret: [`bad value ${clientSecret}`], detail: `token ${token}` })]);
      const error = await rejection(oidcAppProvider.create(oidcInputs()));
      assert.equal(error.message, 'service "vaultwarden": Authentik creation of OAuth2 provider "nixmox-vaultwarden" failed: HTTP 400: {"client_secret":["bad value [secret]"],"detail":"token [secret]"}');
      assert.equal(`${error.message}\n${error.stack}`.includes(token) || `${error.message}\n${error.stack}`.includes(clientSecret), false);
    });

    it("fails an unreachable Authentik with the URL and the refused connection", async () => {
      const port = await closedPort();
      const error = await rejection(oidcAppProvider.create(oidcInputs({ url: `http://127.0.0.1:${port}` })));
      assert.equal(error.message, `service "vaultwarden": Authentik lookup of flow "default-provider-authorization-implicit-consent" failed: cannot reach http://127.0.0.1:${port} (ECONNREFUSED); is the authentik service up and the URL right?`);
    });
  });

  describe("AuthentikProxyApp", () => {
    it("creates a forward_single proxy provider and its application with exact bodies", async () => {
      const result = await proxyAppProvider.create(proxyInputs());
      assert.deepEqual(api.writes(), ["POST /api/v3/providers/proxy/", "POST /api/v3/core/applications/"]);
      const [providerPost, appPost] = api.requests.filter((request) => request.method === "POST");
      assert.deepEqual(providerPost.body, {
        name: "nixmox-media-jellyfin-nixmox-lan",
        authorization_flow: flowPks.authorization,
        invalidation_flow: flowPks.invalidation,
        external_host: "https://jellyfin.nixmox.lan",
        mode: "forward_single",
      });
      assert.deepEqual(appPost.body, { name: "media (jellyfin.nixmox.lan)", slug: "media-jellyfin-nixmox-lan", provider: 1, meta_launch_url: "https://jellyfin.nixmox.lan" });
      assert.equal(result.id, "media-jellyfin-nixmox-lan");
      assert.deepEqual(result.outs, { ...proxyInputs(), providerPk: 1, applicationPk: api.applications.get("media-jellyfin-nixmox-lan")!.pk, authorizationFlowPk: flowPks.authorization, invalidationFlowPk: flowPks.invalidation });
    });

    it("adopts an existing proxy provider with the same name", async () => {
      const seeded = api.seedProxyProvider({ name: "nixmox-media-jellyfin-nixmox-lan", external_host: "http://old", mode: "proxy", internal_host: "http://10.0.0.1" });
      const result = await proxyAppProvider.create(proxyInputs());
      assert.deepEqual(api.writes(), [`PATCH /api/v3/providers/proxy/${seeded.pk}/`, "POST /api/v3/core/applications/"]);
      assert.equal(result.outs!.providerPk, seeded.pk);
      assert.equal(api.proxyProviders.get(seeded.pk)!.mode, "forward_single");
    });

    it("read reports a changed external host and mode, and update puts them back", async () => {
      const created = await proxyAppProvider.create(proxyInputs());
      Object.assign(api.proxyProviders.get(1)!, { external_host: "https://other.lan", mode: "proxy" });
      const props = (await proxyAppProvider.read!(created.id, created.outs!)).props as AuthentikProxyAppOutputs;
      assert.deepEqual({ externalHost: props.externalHost, mode: props.mode }, { externalHost: "https://other.lan", mode: "proxy" });
      assert.deepEqual(await proxyAppProvider.diff!(created.id, props, proxyInputs()), { changes: true, replaces: [], deleteBeforeReplace: false });
      await proxyAppProvider.update!(created.id, props, proxyInputs());
      assert.deepEqual({ external_host: api.proxyProviders.get(1)!.external_host, mode: api.proxyProviders.get(1)!.mode }, { external_host: "https://jellyfin.nixmox.lan", mode: "forward_single" });
    });

    it("fails forward_domain without a cookie domain", async () => {
      const error = await rejection(proxyAppProvider.create(proxyInputs({ mode: "forward_domain" })));
      assert.equal(error.message, 'service "media": cookieDomain is required with mode "forward_domain"; set the parent domain shared by the protected apps (e.g. "nixmox.lan") or use mode "forward_single"');
    });

    it("delete tolerates a provider and application that are already gone", async () => {
      const created = await proxyAppProvider.create(proxyInputs());
      api.applications.clear();
      api.proxyProviders.clear();
      await proxyAppProvider.delete!(created.id, created.outs!);
      assert.deepEqual(api.writes().slice(-2), ["DELETE /api/v3/core/applications/media-jellyfin-nixmox-lan/", "DELETE /api/v3/providers/proxy/1/"]);
    });
  });

  describe("AuthentikOutpostBinding", () => {
    const bindingInputs = (providerPks: number[], overrides: Partial<AuthentikOutpostBindingInputs> = {}): AuthentikOutpostBindingInputs => ({
      url: api.url,
      token,
      tunnel: null,
      service: "authentik",
      outpostName: "authentik Embedded Outpost",
      providerPks,
      authentikHost: null,
      ...overrides,
    });
    const outpostProviders = () => api.outposts.get(embeddedOutpostPk)!.providers as number[];

    it("adds our providers to the embedded outpost and keeps the ones bound by someone else", async () => {
      const other = api.seedProxyProvider({ name: "hand-made", external_host: "https://wiki.lan", mode: "forward_single" });
      const ours = [api.seedProxyProvider({ name: "a", external_host: "https://a.lan" }).pk, api.seedProxyProvider({ name: "b", external_host: "https://b.lan" }).pk];
      api.outposts.get(embeddedOutpostPk)!.providers = [other.pk];
      const result = await outpostBindingProvider.create(bindingInputs([ours[1], ours[0]]));
      assert.equal(result.id, embeddedOutpostPk);
      assert.deepEqual(result.outs, { ...bindingInputs([ours[0], ours[1]]), outpostPk: embeddedOutpostPk });
      assert.deepEqual(api.writes(), [`PATCH /api/v3/outposts/instances/${embeddedOutpostPk}/`]);
      assert.deepEqual(api.requests.find((request) => request.method === "PATCH")!.body, { providers: [other.pk, ...ours] });
      assert.deepEqual(api.requests[0].query, { name__iexact: "authentik Embedded Outpost" });
    });

    it("update drops providers we no longer manage, adds new ones and keeps foreign ones; delete removes only ours", async () => {
      const [other, a, b, c] = ["hand-made", "a", "b", "c"].map((name) => api.seedProxyProvider({ name, external_host: `https://${name}.lan` }).pk);
      api.outposts.get(embeddedOutpostPk)!.providers = [other];
      const created = await outpostBindingProvider.create(bindingInputs([a, b]));
      assert.deepEqual(await outpostBindingProvider.diff!(created.id, created.outs!, bindingInputs([b, a])), { changes: false, replaces: [] });
      assert.deepEqual(await outpostBindingProvider.diff!(created.id, created.outs!, bindingInputs([b, c])), { changes: true, replaces: [] });
      const updated = await outpostBindingProvider.update!(created.id, created.outs!, bindingInputs([b, c]));
      assert.deepEqual(outpostProviders(), [other, b, c]);
      await outpostBindingProvider.delete!(created.id, updated.outs as AuthentikOutpostBindingOutputs);
      assert.deepEqual(outpostProviders(), [other]);
    });

    it("sets the outpost's authentik_host to Authentik's URL, keeping its other config, and reports a host changed by hand as drift", async () => {
      const a = api.seedProxyProvider({ name: "a", external_host: "https://a.lan" }).pk;
      const created = await outpostBindingProvider.create(bindingInputs([a], { authentikHost: "https://auth.nixmox.lan" }));
      const patch = api.requests.find((request) => request.method === "PATCH")!.body as { config: Record<string, unknown> };
      assert.deepEqual(patch.config, { authentik_host: "https://auth.nixmox.lan", authentik_host_browser: "https://auth.nixmox.lan" });
      api.outposts.get(embeddedOutpostPk)!.config = { authentik_host: "http://localhost:9000/", log_level: "debug" };
      const read = await outpostBindingProvider.read!(created.id, created.outs!);
      assert.equal((read.props as AuthentikOutpostBindingOutputs).authentikHost, "http://localhost:9000/");
      const next = bindingInputs([a], { authentikHost: "https://auth.nixmox.lan" });
      assert.deepEqual(await outpostBindingProvider.diff!(created.id, read.props as AuthentikOutpostBindingOutputs, next), { changes: true, replaces: [] });
      await outpostBindingProvider.update!(created.id, read.props as AuthentikOutpostBindingOutputs, next);
      assert.deepEqual(api.outposts.get(embeddedOutpostPk)!.config, { authentik_host: "https://auth.nixmox.lan", authentik_host_browser: "https://auth.nixmox.lan", log_level: "debug" });
    });

    it("create does not PATCH when everything is already bound", async () => {
      const a = api.seedProxyProvider({ name: "a", external_host: "https://a.lan" }).pk;
      api.outposts.get(embeddedOutpostPk)!.providers = [a];
      await outpostBindingProvider.create(bindingInputs([a]));
      assert.deepEqual(api.writes(), []);
    });

    it("read reports a provider unbound by hand, and a deleted outpost drops the resource", async () => {
      const [a, b] = ["a", "b"].map((name) => api.seedProxyProvider({ name, external_host: `https://${name}.lan` }).pk);
      const created = await outpostBindingProvider.create(bindingInputs([a, b]));
      api.outposts.get(embeddedOutpostPk)!.providers = [b];
      const read = await outpostBindingProvider.read!(created.id, created.outs!);
      assert.deepEqual((read.props as AuthentikOutpostBindingOutputs).providerPks, [b]);
      assert.deepEqual(await outpostBindingProvider.diff!(created.id, read.props as AuthentikOutpostBindingOutputs, bindingInputs([a, b])), { changes: true, replaces: [] });
      api.outposts.clear();
      assert.deepEqual(await outpostBindingProvider.read!(created.id, created.outs!), {});
      await outpostBindingProvider.delete!(created.id, created.outs!);
    });

    it("diff reports a change while a preview still has the provider list unknown", async () => {
      const created = await outpostBindingProvider.create(bindingInputs([]));
      const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9" as unknown as number[];
      assert.deepEqual(await outpostBindingProvider.diff!(created.id, created.outs!, bindingInputs(unknown)), { changes: true, replaces: [] });
    });

    it("diff replaces when the outpost name changes", async () => {
      const created = await outpostBindingProvider.create(bindingInputs([]));
      assert.deepEqual(await outpostBindingProvider.diff!(created.id, created.outs!, bindingInputs([], { outpostName: "forward-auth" })), { changes: true, replaces: ["outpostName"] });
    });

    it("fails when no outpost has the name", async () => {
      const error = await rejection(outpostBindingProvider.create(bindingInputs([1], { outpostName: "missing" })));
      assert.equal(error.message, 'service "authentik": outpostName: Authentik has no outposts named "missing"; name exactly one existing outpost (Authentik\'s own is "authentik Embedded Outpost")');
    });
  });
  describe("AuthentikOutpost (network.outposts)", () => {
    const radiusSecret = "radius-shared-7d1e";
    const outpostInputs = (overrides: Partial<AuthentikOutpostInputs> = {}): AuthentikOutpostInputs => ({
      url: api.url,
      token,
      tunnel: null,
      service: "authentik",
      type: "radius",
      slug: "authentik-radius",
      baseDn: null,
      clientNetworks: ["10.40.0.0/24"],
      sharedSecret: radiusSecret,
      authorizationFlow: "default-provider-authorization-implicit-consent",
      invalidationFlow: "default-provider-invalidation-flow",
      ...overrides,
    });

    it("creates the RADIUS provider, its application and an outpost bound to it, and returns the outpost's token", async () => {
      const result = await outpostProvider.create(outpostInputs());
      const outs = result.outs as AuthentikOutpostOutputs;
      assert.equal(result.id, outs.outpostPk);
      assert.deepEqual(api.writes(), ["POST /api/v3/providers/radius/", "POST /api/v3/core/applications/", "POST /api/v3/outposts/instances/"]);
      const body = (path: string) => api.requests.find((request) => request.method === "POST" && request.path === path)!.body;
      assert.deepEqual(body("/api/v3/providers/radius/"), {
        name: "nixmox-authentik-radius",
        authorization_flow: flowPks.authorization,
        invalidation_flow: flowPks.invalidation,
        client_networks: "10.40.0.0/24",
        shared_secret: radiusSecret,
      });
      assert.deepEqual(body("/api/v3/outposts/instances/"), { name: "nixmox-authentik-radius", type: "radius", providers: [outs.providerPk], config: {} });
      assert.equal(outs.outpostToken, `outpost-token-${outs.outpostPk}`);
      assert.equal(api.applications.get("authentik-radius")!.provider, outs.providerPk);
    });

    it("creates an LDAP provider with the base DN, adopts existing objects on a re-run, and deletes all three", async () => {
      const inputs = outpostInputs({ type: "ldap", slug: "authentik-ldap", baseDn: "dc=home,dc=lab", clientNetworks: [], sharedSecret: null });
      const first = await outpostProvider.create(inputs);
      assert.equal((api.requests.find((request) => request.path === "/api/v3/providers/ldap/" && request.method === "POST")!.body as { base_dn: string }).base_dn, "dc=home,dc=lab");
      const again = await outpostProvider.create(inputs);
      assert.equal(again.id, first.id, "adopts the outpost with the same name");
      assert.equal(api.ldapProviders.size, 1);
      await outpostProvider.delete!(first.id, first.outs as AuthentikOutpostOutputs);
      assert.deepEqual([api.ldapProviders.size, api.applications.has("authentik-ldap"), api.outposts.has(first.id)], [0, false, false]);
      await outpostProvider.delete!(first.id, first.outs as AuthentikOutpostOutputs);
    });

    it("read reports changed client networks, diff wants them back, and a deleted outpost drops the resource", async () => {
      const created = await outpostProvider.create(outpostInputs());
      const outs = created.outs as AuthentikOutpostOutputs;
      api.radiusProviders.get(outs.providerPk)!.client_networks = "0.0.0.0/0";
      const read = await outpostProvider.read!(created.id, outs);
      assert.deepEqual((read.props as AuthentikOutpostOutputs).clientNetworks, ["0.0.0.0/0"]);
      assert.deepEqual(await outpostProvider.diff!(created.id, read.props as AuthentikOutpostOutputs, outpostInputs()), { changes: true, replaces: [], deleteBeforeReplace: false });
      api.outposts.delete(outs.outpostPk);
      assert.deepEqual(await outpostProvider.read!(created.id, outs), {});
    });

    it("diff replaces (delete first) when the type changes", async () => {
      const created = await outpostProvider.create(outpostInputs());
      assert.deepEqual(await outpostProvider.diff!(created.id, created.outs as AuthentikOutpostOutputs, outpostInputs({ type: "ldap" })), { changes: true, replaces: ["type"], deleteBeforeReplace: true });
    });

    it("fails with a redacted message, never printing the API token or the shared secret", async () => {
      api.failures.set("POST /api/v3/providers/radius/", [400, JSON.stringify({ shared_secret: [`${radiusSecret} is too weak`], token: token })]);
      const error = await rejection(outpostProvider.create(outpostInputs()));
      assert.match(error.message, /^service "authentik": /);
      assert.ok(!error.message.includes(radiusSecret) && !error.message.includes(token), error.message);
    });
  });
  describe("through SSH to the authentik host (security review H2: the token never crosses the LAN in clear)", function () {
    this.timeout(30_000);
    let sshd: TestSshd;
    let closed: TestSshd;
    before(async () => {
      [sshd, closed] = await Promise.all([startSshd({ host: "127.0.0.11" }), startSshd({ host: "127.0.0.12", extraConfig: ["AllowTcpForwarding no"] })]);
    });
    after(async () => {
      await Promise.all([sshd?.stop(), closed?.stop()]);
    });
    const tunnelOf = (server: TestSshd, hostKey = server.hostKey) => ({ host: server.host, port: server.port, privateKey: server.clientPrivateKey, hostKey });

    it("creates, reads and deletes an OIDC app with every request carried by an SSH forward from the authentik host", async () => {
      const inputs = oidcInputs({ tunnel: tunnelOf(sshd) });
      const created = await oidcAppProvider.create(inputs);
      assert.equal(created.id, "vaultwarden");
      assert.ok(api.requests.length > 3);
      assert.ok(api.requests.every((request) => request.authorization === `Bearer ${token}`));
      const read = await oidcAppProvider.read!(created.id, created.outs as AuthentikOidcAppOutputs);
      assert.deepEqual((read.props as AuthentikOidcAppOutputs).redirectUris, inputs.redirectUris);
      await oidcAppProvider.delete!(created.id, created.outs as AuthentikOidcAppOutputs);
      assert.equal(api.applications.size, 0);
    });

    it("carries all requests of one provider call over one SSH connection, closed soon after the call", async () => {
      // A TCP relay in front of sshd counts the SSH connections and sees when they close.
      const open = new Set<Socket>();
      let connections = 0;
      const relay = createServer((client) => {
        connections += 1;
        open.add(client);
        const upstream = connect({ host: sshd.host, port: sshd.port });
        client.pipe(upstream).pipe(client);
        const drop = () => { open.delete(client); client.destroy(); upstream.destroy(); };
        client.on("close", drop).on("error", drop);
        upstream.on("close", drop).on("error", drop);
      });
      await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", () => resolve()));
      try {
        const tunnel = { ...tunnelOf(sshd), host: "127.0.0.1", port: (relay.address() as { port: number }).port };
        const created = await oidcAppProvider.create(oidcInputs({ tunnel }));
        assert.ok(api.requests.length > 3, "create makes several requests");
        assert.equal(connections, 1, `${api.requests.length} requests over ${connections} SSH connections`);
        await oidcAppProvider.delete!(created.id, { ...(created.outs as AuthentikOidcAppOutputs), tunnel });
        assert.equal(connections, 2, "the next call opens its own");
        const deadline = Date.now() + 5000;
        while (open.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(open.size, 0, "the sessions close once idle");
      } finally {
        relay.close();
      }
    });

    it("records a new tunnel (a re-created authentik host, a rotated deploy key) with an update, and later calls take it (review B1)", async () => {
      const reborn = await startSshd({ host: "127.0.0.13" });
      try {
        const created = await oidcAppProvider.create(oidcInputs({ tunnel: tunnelOf(sshd) }));
        const olds = created.outs as AuthentikOidcAppOutputs;
        assert.equal((await oidcAppProvider.diff!(created.id, olds, oidcInputs({ tunnel: tunnelOf(sshd) }))).changes, false);
        // Same address, another host key (the container was re-created); then the same host with a rotated key.
        assert.equal((await oidcAppProvider.diff!(created.id, olds, oidcInputs({ tunnel: tunnelOf(sshd, reborn.hostKey) }))).changes, true);
        assert.equal((await oidcAppProvider.diff!(created.id, olds, oidcInputs({ tunnel: { ...tunnelOf(sshd), privateKey: reborn.clientPrivateKey } }))).changes, true);
        const moved = await oidcAppProvider.update!(created.id, olds, oidcInputs({ tunnel: tunnelOf(reborn) }));
        assert.deepEqual((moved.outs as AuthentikOidcAppOutputs).tunnel, tunnelOf(reborn));
        // The old host is gone: refresh and delete must use the recorded new tunnel.
        await sshd.kill();
        const read = await oidcAppProvider.read!(created.id, moved.outs as AuthentikOidcAppOutputs);
        assert.equal((read.props as AuthentikOidcAppOutputs).slug, "vaultwarden");
        await oidcAppProvider.delete!(created.id, moved.outs as AuthentikOidcAppOutputs);
        assert.equal(api.applications.size, 0);
      } finally {
        await reborn.stop();
        sshd = await startSshd({ host: "127.0.0.11" });
      }
    });

    it("compares the tunnel in every Authentik provider's diff (proxy app, outpost binding, outpost)", async () => {
      const [a, b] = [tunnelOf(sshd), { ...tunnelOf(sshd), hostKey: closed.hostKey }];
      const proxy = proxyInputs({ tunnel: a });
      assert.equal((await proxyAppProvider.diff!("x", { ...proxy, providerPk: 1 } as never, { ...proxy, tunnel: b })).changes, true);
      const binding = { url: api.url, token, tunnel: a, service: "authentik", outpostName: "authentik Embedded Outpost", providerPks: [1], authentikHost: null } as unknown as AuthentikOutpostBindingInputs;
      assert.equal((await outpostBindingProvider.diff!("x", binding as never, { ...binding, tunnel: b })).changes, true);
      const outpost = { url: api.url, token, tunnel: a, service: "authentik", type: "radius", slug: "authentik-radius", baseDn: null, clientNetworks: ["10.0.0.0/24"], sharedSecret: "s", authorizationFlow: "f", invalidationFlow: "g" } as unknown as AuthentikOutpostInputs;
      assert.equal((await outpostProvider.diff!("x", outpost as never, { ...outpost, tunnel: b })).changes, true);
    });

    it("fails, sending nothing, when the SSH server refuses forwarding or presents another host key; the key never shows", async () => {
      const refused = await rejection(oidcAppProvider.create(oidcInputs({ tunnel: tunnelOf(closed) })));
      assert.match(refused.message, /^service "vaultwarden": Authentik lookup of flow .*could not open a connection to 127\.0\.0\.1:\d+ through SSH/);
      const wrongKey = await rejection(oidcAppProvider.create(oidcInputs({ tunnel: tunnelOf(sshd, closed.hostKey) })));
      assert.match(wrongKey.message, /host key/i);
      assert.equal(api.requests.length, 0, "no request reached the API by another path");
      for (const message of [refused.message, wrongKey.message]) assert.ok(!message.includes(sshd.clientPrivateKey.split("\n")[1]), message);
    });
  });
});
