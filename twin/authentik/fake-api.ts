/**
 * A fake of Authentik's REST API (v3): a real HTTP server implementing the slice the NixMox dynamic providers call,
 * with Authentik's wire format: snake_case JSON, paginated lists, full objects with the fields `@goauthentik/api`'s
 * strict parsers require (pulumi-notes.md §3.2), 404 `{"detail":"Not found."}`, 403 without the right
 * `Authorization: Bearer` token, 400 on a duplicate provider name or application slug. Deleting a provider unbinds it
 * from outposts and applications, as Authentik's foreign keys do. `/-/health/ready/` and `/-/health/live/` answer 200
 * without a token (authentik/root/monitoring.py `ReadyView`, `LiveView`).
 *
 * The twin runs one per authentik host, on a Unix socket its host relays to (twin/system/lib/listen.js), so NixMox
 * reaches it through its SSH tunnel as in production; the provider tests run one on 127.0.0.1. It records every API
 * request (method, path, query, authorization header, JSON body) so tests assert exact bodies.
 *
 * What it does not prove: Authentik's own behaviour beyond these objects (flows, policies, logins).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
  body: unknown;
}

type Json = Record<string, any>;

export const flowPks = {
  authorization: "11111111-1111-4111-8111-111111111111",
  invalidation: "22222222-2222-4222-8222-222222222222",
  explicitConsent: "33333333-3333-4333-8333-333333333333",
};
export const scopePks: Record<string, string> = {
  openid: "aaaaaaaa-0000-4000-8000-000000000001",
  email: "aaaaaaaa-0000-4000-8000-000000000002",
  profile: "aaaaaaaa-0000-4000-8000-000000000003",
  offline_access: "aaaaaaaa-0000-4000-8000-000000000004",
};
export const signingKeyPkValue = "cccccccc-0000-4000-8000-000000000001";
export const embeddedOutpostPk = "eeeeeeee-0000-4000-8000-000000000001";

function flow(pk: string, slug: string, designation: string): Json {
  return {
    pk,
    policybindingmodel_ptr_id: pk,
    name: slug,
    slug,
    title: slug,
    designation,
    background: "",
    background_url: "/static/dist/assets/images/flow_background.jpg",
    background_themed_urls: null,
    stages: [],
    policies: [],
    cache_count: 0,
    policy_engine_mode: "any",
    compatibility_mode: false,
    export_url: `/api/v3/flows/instances/${slug}/export/`,
    layout: "stacked",
    denied_action: "message_continue",
    authentication: "none",
  };
}

function scopeMapping(scope: string, pk: string, managed: string | null, name: string): Json {
  return {
    pk,
    managed,
    name,
    expression: "return {}",
    component: "ak-property-mapping-provider-scope-form",
    verbose_name: "Scope Mapping",
    verbose_name_plural: "Scope Mappings",
    meta_model_name: "authentik_providers_oauth2.scopemapping",
    scope_name: scope,
    description: "",
  };
}

export class FakeAuthentik {
  readonly requests: RecordedRequest[] = [];
  readonly flows: Json[] = [
    flow(flowPks.authorization, "default-provider-authorization-implicit-consent", "authorization"),
    flow(flowPks.invalidation, "default-provider-invalidation-flow", "invalidation"),
    flow(flowPks.explicitConsent, "default-provider-authorization-explicit-consent", "authorization"),
  ];
  readonly scopeMappings: Json[] = Object.entries(scopePks).map(([scope, pk]) =>
    scopeMapping(scope, pk, `goauthentik.io/providers/oauth2/scope-${scope}`, `authentik default OAuth Mapping: OpenID '${scope}'`),
  );
  readonly certificates: Json[] = [{
    pk: signingKeyPkValue,
    name: "authentik Self-signed Certificate",
    fingerprint_sha256: "00:11",
    fingerprint_sha1: "00:11",
    cert_expiry: "2027-01-01T00:00:00Z",
    cert_subject: "CN=authentik Self-signed Certificate",
    private_key_available: true,
    key_type: "rsa",
    certificate_download_url: "/api/v3/crypto/certificatekeypairs/x/view_certificate/?download",
    private_key_download_url: "/api/v3/crypto/certificatekeypairs/x/view_private_key/?download",
    managed: null,
  }];
  readonly oauth2Providers = new Map<number, Json>();
  readonly proxyProviders = new Map<number, Json>();
  readonly ldapProviders = new Map<number, Json>();
  readonly radiusProviders = new Map<number, Json>();
  /** API token keys by identifier (Authentik creates `ak-outpost-<uuid>-api` with every outpost). */
  readonly tokens = new Map<string, string>();
  readonly applications = new Map<string, Json>();
  readonly outposts = new Map<string, Json>();
  /** Responses to return once, before routing: `${method} ${path}` → [status, body]. */
  readonly failures = new Map<string, [number, string]>();
  private nextProviderPk = 1;
  private nextUuid = 1;
  private server: Server | undefined;
  url = "";

  /** `token`: the API token it accepts (null: none yet; `handle` can be given the token of its caller instead). */
  constructor(private readonly token: string | null) {
    this.outposts.set(embeddedOutpostPk, {
      pk: embeddedOutpostPk,
      name: "authentik Embedded Outpost",
      type: "proxy",
      providers: [] as number[],
      service_connection: null,
      refresh_interval_s: 300,
      token_identifier: "ak-outpost-embedded-api",
      config: { authentik_host: "http://localhost:9000/" },
      managed: "goauthentik.io/outposts/embedded",
    });
  }

  /** Listens on 127.0.0.1 (an ephemeral port, `url`), or on the Unix socket `socketPath`. */
  async start(socketPath?: string): Promise<void> {
    this.server = createServer((request, response) => void this.handle(request, response));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      if (socketPath) this.server!.listen(socketPath, resolve);
      else this.server!.listen(0, "127.0.0.1", resolve);
    });
    this.url = socketPath ? `unix:${socketPath}` : `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Requests other than the look-ups (flows, scope mappings, certificates), as `METHOD path`. */
  writes(): string[] {
    return this.requests.filter((request) => request.method !== "GET").map((request) => `${request.method} ${request.path}`);
  }

  uuid(): string {
    return `dddddddd-0000-4000-8000-${String(this.nextUuid++).padStart(12, "0")}`;
  }

  /** Adds an OAuth2 provider as if someone created it in the UI. */
  seedOauth2Provider(fields: Json): Json {
    const pk = this.nextProviderPk++;
    const provider = this.oauth2Json(pk, { client_type: "confidential", client_id: `generated-${pk}`, client_secret: `generated-secret-${pk}`, property_mappings: [], redirect_uris: [], signing_key: null, ...fields });
    this.oauth2Providers.set(pk, provider);
    return provider;
  }

  /** Adds a proxy provider as if someone created it in the UI. */
  seedProxyProvider(fields: Json): Json {
    const pk = this.nextProviderPk++;
    const provider = this.proxyJson(pk, { mode: "forward_single", cookie_domain: "", ...fields });
    this.proxyProviders.set(pk, provider);
    return provider;
  }

  private oauth2Json(pk: number, fields: Json): Json {
    return {
      pk,
      name: fields.name,
      authentication_flow: null,
      authorization_flow: fields.authorization_flow ?? flowPks.authorization,
      invalidation_flow: fields.invalidation_flow ?? flowPks.invalidation,
      property_mappings: fields.property_mappings ?? [],
      component: "ak-provider-oauth2-form",
      assigned_application_slug: null,
      assigned_application_name: null,
      assigned_backchannel_application_slug: null,
      assigned_backchannel_application_name: null,
      verbose_name: "OAuth2/OpenID Provider",
      verbose_name_plural: "OAuth2/OpenID Providers",
      meta_model_name: "authentik_providers_oauth2.oauth2provider",
      client_type: fields.client_type ?? "confidential",
      grant_types: ["authorization_code", "refresh_token"],
      client_id: fields.client_id ?? `generated-${pk}`,
      client_secret: fields.client_secret ?? `generated-secret-${pk}`,
      access_code_validity: "minutes=1",
      access_token_validity: "minutes=5",
      refresh_token_validity: "days=30",
      refresh_token_threshold: "seconds=0",
      include_claims_in_id_token: true,
      signing_key: fields.signing_key ?? null,
      encryption_key: null,
      redirect_uris: fields.redirect_uris ?? [],
      logout_uri: "",
      logout_method: "backchannel",
      sub_mode: "hashed_user_id",
      issuer_mode: "per_provider",
      jwt_federation_sources: [],
      jwt_federation_providers: [],
    };
  }

  private proxyJson(pk: number, fields: Json): Json {
    return {
      pk,
      name: fields.name,
      authentication_flow: null,
      authorization_flow: fields.authorization_flow ?? flowPks.authorization,
      invalidation_flow: fields.invalidation_flow ?? flowPks.invalidation,
      property_mappings: [scopePks.openid, scopePks.email, scopePks.profile],
      component: "ak-provider-proxy-form",
      assigned_application_slug: null,
      assigned_application_name: null,
      assigned_backchannel_application_slug: null,
      assigned_backchannel_application_name: null,
      verbose_name: "Proxy Provider",
      verbose_name_plural: "Proxy Providers",
      meta_model_name: "authentik_providers_proxy.proxyprovider",
      client_id: `proxy-client-${pk}`,
      internal_host: fields.internal_host ?? "",
      external_host: fields.external_host,
      internal_host_ssl_validation: true,
      certificate: null,
      skip_path_regex: "",
      basic_auth_enabled: false,
      basic_auth_password_attribute: "",
      basic_auth_user_attribute: "",
      mode: fields.mode ?? "proxy",
      intercept_header_auth: true,
      redirect_uris: [{ matching_mode: "strict", url: `${fields.external_host}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true` }],
      cookie_domain: fields.cookie_domain ?? "",
      jwt_federation_sources: [],
      jwt_federation_providers: [],
      access_token_validity: "minutes=5",
      refresh_token_validity: "days=30",
      outpost_set: [],
    };
  }

  private outpostProviderJson(kind: "ldap" | "radius", pk: number, fields: Json): Json {
    return {
      pk,
      name: fields.name,
      authentication_flow: null,
      authorization_flow: fields.authorization_flow ?? flowPks.authorization,
      invalidation_flow: fields.invalidation_flow ?? flowPks.invalidation,
      property_mappings: [],
      component: kind === "ldap" ? "ak-provider-ldap-form" : "ak-provider-radius-form",
      assigned_application_slug: null,
      assigned_application_name: null,
      assigned_backchannel_application_slug: null,
      assigned_backchannel_application_name: null,
      verbose_name: kind === "ldap" ? "LDAP Provider" : "Radius Provider",
      verbose_name_plural: kind === "ldap" ? "LDAP Providers" : "Radius Providers",
      meta_model_name: `authentik_providers_${kind}.${kind}provider`,
      outpost_set: [],
      ...(kind === "ldap"
        ? { base_dn: fields.base_dn ?? "DC=ldap,DC=goauthentik,DC=io", certificate: null, tls_server_name: "", uid_start_number: 2000, gid_start_number: 4000, search_mode: "direct", bind_mode: "direct", mfa_support: true }
        : { client_networks: fields.client_networks ?? "0.0.0.0/0, ::/0", shared_secret: fields.shared_secret ?? "generated-radius-secret", mfa_support: true, certificate: null }),
    };
  }

  private providerObj(pk: number | null): Json | null {
    if (pk === null) return null;
    const provider = this.oauth2Providers.get(pk) ?? this.proxyProviders.get(pk) ?? this.ldapProviders.get(pk) ?? this.radiusProviders.get(pk);
    if (!provider) return null;
    return {
      pk: provider.pk,
      name: provider.name,
      authentication_flow: null,
      authorization_flow: provider.authorization_flow,
      invalidation_flow: provider.invalidation_flow,
      property_mappings: provider.property_mappings,
      component: provider.component,
      assigned_application_slug: provider.assigned_application_slug,
      assigned_application_name: provider.assigned_application_name,
      assigned_backchannel_application_slug: null,
      assigned_backchannel_application_name: null,
      verbose_name: provider.verbose_name,
      verbose_name_plural: provider.verbose_name_plural,
      meta_model_name: provider.meta_model_name,
    };
  }

  private applicationJson(app: Json): Json {
    return {
      ...app,
      provider_obj: this.providerObj(app.provider),
      backchannel_providers: [],
      backchannel_providers_obj: [],
      launch_url: app.meta_launch_url || null,
      meta_icon_url: null,
      meta_icon_themed_urls: null,
    };
  }

  private outpostJson(outpost: Json): Json {
    return {
      ...outpost,
      providers: [...outpost.providers],
      providers_obj: outpost.providers.map((pk: number) => this.providerObj(pk)).filter((value: Json | null) => value !== null),
      service_connection_obj: null,
    };
  }

  private syncAssignments(): void {
    for (const provider of [...this.oauth2Providers.values(), ...this.proxyProviders.values(), ...this.ldapProviders.values(), ...this.radiusProviders.values()]) {
      const app = [...this.applications.values()].find((candidate) => candidate.provider === provider.pk);
      provider.assigned_application_slug = app?.slug ?? null;
      provider.assigned_application_name = app?.name ?? null;
    }
  }

  /**
   * Answers one request. `token`: the token accepted for this request, when the caller knows it better than the
   * constructor (the twin: the bootstrap token the authentik host read at its start).
   */
  async handle(request: IncomingMessage, response: ServerResponse, token: string | null = this.token): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    const parsed = new URL(request.url ?? "/", "http://fake");
    if (parsed.pathname === "/-/health/ready/" || parsed.pathname === "/-/health/live/") {
      response.writeHead(200);
      response.end();
      return;
    }
    const record: RecordedRequest = {
      method: request.method ?? "GET",
      path: parsed.pathname,
      query: Object.fromEntries(parsed.searchParams.entries()),
      authorization: request.headers.authorization,
      body: text ? JSON.parse(text) : undefined,
    };
    this.requests.push(record);
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { "Content-Type": "application/json" });
      response.end(body === undefined ? "" : JSON.stringify(body));
    };
    const failure = this.failures.get(`${record.method} ${record.path}`);
    if (failure) {
      this.failures.delete(`${record.method} ${record.path}`);
      response.writeHead(failure[0], { "Content-Type": "application/json" });
      response.end(failure[1]);
      return;
    }
    if (token === null || record.authorization !== `Bearer ${token}`) return send(403, { detail: "Authentication credentials were not provided." });
    try {
      const [status, body] = this.route(record);
      send(status, body);
    } catch (error) {
      send(500, { detail: String(error) });
    }
  }

  private page(results: Json[]): Json {
    return {
      pagination: { next: 0, previous: 0, count: results.length, current: 1, total_pages: 1, start_index: results.length ? 1 : 0, end_index: results.length },
      results,
      autocomplete: {},
    };
  }

  private route(request: RecordedRequest): [number, unknown] {
    const notFound: [number, unknown] = [404, { detail: "Not found." }];
    const { method, path, query } = request;
    const body = (request.body ?? {}) as Json;
    const relative = path.replace(/^\/api\/v3\//, "").replace(/\/$/, "");
    const collections = [
      "flows/instances", "propertymappings/provider/scope", "crypto/certificatekeypairs", "providers/oauth2", "providers/proxy",
      "providers/ldap", "providers/radius", "core/applications", "core/tokens", "outposts/instances",
    ];
    const key = collections.find((prefix) => relative === prefix || relative.startsWith(`${prefix}/`));
    const id = key === undefined || relative === key ? undefined : decodeURIComponent(relative.slice(key.length + 1));

    if (key === "flows/instances" && method === "GET" && id === undefined) {
      return [200, this.page(this.flows.filter((f) => (!query.slug || f.slug === query.slug) && (!query.flow_uuid || f.pk === query.flow_uuid)))];
    }
    if (key === "propertymappings/provider/scope" && method === "GET") {
      if (id !== undefined) {
        const mapping = this.scopeMappings.find((m) => m.pk === id);
        return mapping ? [200, mapping] : notFound;
      }
      return [200, this.page(this.scopeMappings.filter((m) => !query.scope_name || m.scope_name === query.scope_name))];
    }
    if (key === "crypto/certificatekeypairs" && method === "GET" && id === undefined) {
      return [200, this.page(this.certificates.filter((c) => (!query.name || c.name === query.name) && (query.has_key !== "true" || c.private_key_available)))];
    }
    if (key === "core/tokens" && method === "GET" && id !== undefined && id.endsWith("/view_key")) {
      const tokenKey = this.tokens.get(id.slice(0, -"/view_key".length));
      return tokenKey === undefined ? notFound : [200, { key: tokenKey }];
    }
    if (key === "providers/oauth2" || key === "providers/proxy" || key === "providers/ldap" || key === "providers/radius") {
      const stores = { "providers/oauth2": this.oauth2Providers, "providers/proxy": this.proxyProviders, "providers/ldap": this.ldapProviders, "providers/radius": this.radiusProviders };
      const store = stores[key];
      const make = (pk: number, fields: Json) =>
        key === "providers/oauth2" ? this.oauth2Json(pk, fields)
          : key === "providers/proxy" ? this.proxyJson(pk, fields)
            : this.outpostProviderJson(key === "providers/ldap" ? "ldap" : "radius", pk, fields);
      const allNames = () => Object.values(stores).flatMap((entries) => [...entries.values()]).map((p) => p.name);
      if (id === undefined && method === "GET") {
        const name = query.name ?? query.name__iexact;
        return [200, this.page([...store.values()].filter((p) => !name || (query.name ? p.name === name : p.name.toLowerCase() === name.toLowerCase())))];
      }
      if (id === undefined && method === "POST") {
        if (allNames().includes(body.name)) return [400, { name: ["provider with this name already exists."] }];
        const pk = this.nextProviderPk++;
        store.set(pk, make(pk, body));
        this.syncAssignments();
        return [201, store.get(pk)];
      }
      const provider = store.get(Number(id));
      if (!provider) return notFound;
      if (method === "GET") return [200, provider];
      if (method === "PATCH") {
        if (body.name !== undefined && body.name !== provider.name && allNames().includes(body.name)) return [400, { name: ["provider with this name already exists."] }];
        const updated = make(provider.pk, { ...provider, ...body });
        store.set(provider.pk, updated);
        this.syncAssignments();
        return [200, updated];
      }
      if (method === "DELETE") {
        store.delete(provider.pk);
        for (const app of this.applications.values()) if (app.provider === provider.pk) app.provider = null;
        for (const outpost of this.outposts.values()) outpost.providers = outpost.providers.filter((pk: number) => pk !== provider.pk);
        return [204, undefined];
      }
    }
    if (key === "core/applications") {
      if (id === undefined && method === "POST") {
        if (this.applications.has(body.slug)) return [400, { slug: ["Application with this slug already exists."] }];
        const app = { pk: this.uuid(), pbm_uuid: this.uuid(), name: body.name, slug: body.slug, provider: body.provider ?? null, open_in_new_tab: false, meta_launch_url: body.meta_launch_url ?? "", meta_icon: null, meta_description: "", meta_publisher: "", policy_engine_mode: "any", group: "", meta_hide: false };
        this.applications.set(app.slug, app);
        this.syncAssignments();
        return [201, this.applicationJson(app)];
      }
      const app = id === undefined ? undefined : this.applications.get(id);
      if (!app) return notFound;
      if (method === "GET") return [200, this.applicationJson(app)];
      if (method === "PATCH") {
        Object.assign(app, body);
        this.syncAssignments();
        return [200, this.applicationJson(app)];
      }
      if (method === "DELETE") {
        this.applications.delete(app.slug);
        this.syncAssignments();
        return [204, undefined];
      }
    }
    if (key === "outposts/instances") {
      if (id === undefined && method === "GET") {
        return [200, this.page([...this.outposts.values()].filter((o) => !query.name__iexact || o.name.toLowerCase() === query.name__iexact.toLowerCase()).map((o) => this.outpostJson(o)))];
      }
      if (id === undefined && method === "POST") {
        if ([...this.outposts.values()].some((o) => o.name === body.name)) return [400, { name: ["outpost with this name already exists."] }];
        const pk = this.uuid();
        const outpost = { pk, name: body.name, type: body.type, providers: [...(body.providers ?? [])], service_connection: body.service_connection ?? null, refresh_interval_s: 300, token_identifier: `ak-outpost-${pk}-api`, config: body.config ?? {}, managed: null };
        this.outposts.set(pk, outpost);
        this.tokens.set(outpost.token_identifier, `outpost-token-${pk}`);
        return [201, this.outpostJson(outpost)];
      }
      const outpost = id === undefined ? undefined : this.outposts.get(id);
      if (!outpost) return notFound;
      if (method === "GET") return [200, this.outpostJson(outpost)];
      if (method === "PATCH") {
        Object.assign(outpost, body);
        return [200, this.outpostJson(outpost)];
      }
      if (method === "DELETE") {
        this.outposts.delete(outpost.pk);
        this.tokens.delete(outpost.token_identifier);
        return [204, undefined];
      }
    }
    return [405, { detail: `Method "${method}" not allowed on ${path}.` }];
  }
}
