/**
 * Shared helpers of the Authentik dynamic providers: the API clients, error translation and the look-ups
 * (flows by slug, scope mappings by scope name, signing key by name) that turn human names into primary keys.
 *
 * These functions run inside the dynamic-provider process: Pulumi serializes them by value together with the
 * provider objects (pulumi-notes.md §4.3), so this module imports only what serializes by value (the SSH connection,
 * for the tunnel). `@goauthentik/api` is
 * `require`d inside the functions and credentials always arrive as arguments.
 *
 * Every error thrown from here is a one-line message that names the NixMox service and the Authentik object,
 * with every secret value (API token, client secret) replaced by `[secret]`: Authentik echoes request fields in
 * some 400 responses, and the engine prints dynamic-provider errors verbatim.
 */
import type * as pulumi from "@pulumi/pulumi";
// Captured by value when a provider is serialized (a relative require would fail in the engine's provider process).
import { connectSsh, type SshSession } from "../ssh/connection";
import type {
  CoreApi,
  CryptoApi,
  FlowsApi,
  OutpostsApi,
  PropertymappingsApi,
  ProvidersApi,
} from "@goauthentik/api";

/** The one slice of the generated client each provider uses. */
export interface AuthentikApis {
  core: CoreApi;
  crypto: CryptoApi;
  flows: FlowsApi;
  outposts: OutpostsApi;
  propertyMappings: PropertymappingsApi;
  providers: ProvidersApi;
}

/** Who is calling and what must never be printed. */
export interface ApiContext {
  /** The NixMox service the object belongs to (named in every error). */
  service: string;
  /** Authentik base URL, e.g. `http://192.168.99.12:9000` (no `/api/v3`). */
  url: string;
  /** Values scrubbed from every error message: the API token, client secrets. */
  secrets: string[];
}

/**
 * The inputs every Authentik resource has, as its provider receives them: where the API is, how it is reached,
 * with what token, and for which NixMox service (named in every error).
 */
export interface AuthentikConnection {
  url: string;
  token: string;
  tunnel?: AuthentikTunnel | null;
  service: string;
}

/** The connection fields of a provider's inputs (never the raw object, which carries `__provider`). */
export function pickConnection(value: AuthentikConnection): AuthentikConnection {
  return { url: value.url, token: value.token, tunnel: value.tunnel ?? null, service: value.service };
}

/** The error context of a call: the service, the URL, and every secret to scrub (the tunnel's key, the token, `more`). */
export function connectionContext(inputs: AuthentikConnection, more: string[] = []): ApiContext {
  return { service: inputs.service, url: inputs.url, secrets: [...(inputs.tunnel ? [inputs.tunnel.privateKey] : []), inputs.token, ...more] };
}

/** The API clients for one provider call over this connection. */
export function connectionApis(inputs: AuthentikConnection): AuthentikApis {
  return authentikApis(inputs.url, inputs.token, inputs.tunnel);
}

/** Longest response-body excerpt quoted in an error. */
const maxBodyChars = 300;

/**
 * How the API calls reach Authentik without crossing the LAN in clear (security review H2): over SSH to the authentik
 * host (the deploy key, its pinned host key), where each HTTP request to `url` becomes a TCP connection the host opens
 * to its own listener. The API token and the OIDC client secrets then travel only inside the encrypted SSH
 * connection. Without it (tests against a local API, hand-written use), requests go to `url` directly.
 */
export interface AuthentikTunnel {
  host: string;
  port: number;
  privateKey: string;
  /** The authentik host's pinned key (`ssh-ed25519 AAAA…`). */
  hostKey: string;
}

/**
 * A `fetch` for the generated client that sends its requests through one SSH session to the tunnel's host: the first
 * request opens it, the next ones reuse it, and it closes once no request has used it for `idleMs`. One provider
 * call makes several requests in a row, and a session per request cost a handshake each (about 0.2 s). A dropped session
 * is replaced by the next request. No session outlives a provider call by more than `idleMs`.
 */
export function fetchThroughSsh(tunnel: AuthentikTunnel, idleMs = 500): typeof fetch {
  const shared: { session: Promise<SshSession> | null; active: number; timer: ReturnType<typeof setTimeout> | null } = { session: null, active: 0, timer: null };
  return async (input, init) => {
    const http: typeof import("node:http") = require("node:http");
    const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
    if (url.protocol !== "http:") throw new Error(`Authentik's API through SSH takes an http:// URL (the host's own listener), got ${url.protocol}`);
    if (shared.timer !== null) {
      clearTimeout(shared.timer);
      shared.timer = null;
    }
    shared.active += 1;
    try {
      let session = shared.session === null ? null : await shared.session.catch(() => null);
      if (session === null || !session.isOpen()) {
        const opening = connectSsh({ host: tunnel.host, port: tunnel.port, privateKey: tunnel.privateKey, hostKeys: [tunnel.hostKey] });
        shared.session = opening;
        try {
          session = await opening;
        } catch (error) {
          if (shared.session === opening) shared.session = null;
          throw error;
        }
      }
      const stream = await session.forward(url.hostname, Number(url.port || 80));
      const headers: Record<string, string> = {};
      new Headers(init?.headers).forEach((value, key) => (headers[key] = value));
      const body = init?.body === undefined || init.body === null ? undefined : typeof init.body === "string" ? init.body : String(init.body);
      return await new Promise<Response>((resolve, reject) => {
        const request = http.request(
          { method: init?.method ?? "GET", host: url.hostname, path: `${url.pathname}${url.search}`, headers, createConnection: () => stream as never },
          (response) => {
            const chunks: Buffer[] = [];
            response.on("data", (chunk: Buffer) => chunks.push(chunk));
            response.on("error", reject);
            response.on("end", () => {
              const responseHeaders = new Headers();
              for (const [key, value] of Object.entries(response.headers)) {
                if (value !== undefined) responseHeaders.set(key, Array.isArray(value) ? value.join(", ") : value);
              }
              const status = response.statusCode ?? 502;
              resolve(new Response(status === 204 || status === 304 ? null : Buffer.concat(chunks), { status, headers: responseHeaders }));
            });
          },
        );
        request.on("error", reject);
        if (body !== undefined) request.write(body);
        request.end();
      });
    } finally {
      shared.active -= 1;
      if (shared.active === 0) {
        shared.timer = setTimeout(() => {
          const idle = shared.session;
          shared.session = null;
          shared.timer = null;
          if (idle !== null) idle.then((open) => open.close(), () => undefined);
        }, idleMs);
        shared.timer.unref();
      }
    }
  };
}

/** Builds the API clients for one call of a provider method (through `tunnel` when given). */
export function authentikApis(url: string, token: string, tunnel?: AuthentikTunnel | null): AuthentikApis {
  // Required here, not at the top of the file: the provider is serialized and runs in another process (§4.3).
  const sdk: typeof import("@goauthentik/api") = require("@goauthentik/api");
  const configuration = new sdk.Configuration({
    basePath: `${url.replace(/\/+$/, "")}/api/v3`,
    // Sent as `Authorization: Bearer <token>` (the generated client's "authentik" security scheme).
    accessToken: token,
    ...(tunnel ? { fetchApi: fetchThroughSsh(tunnel) } : {}),
  });
  return {
    core: new sdk.CoreApi(configuration),
    crypto: new sdk.CryptoApi(configuration),
    flows: new sdk.FlowsApi(configuration),
    outposts: new sdk.OutpostsApi(configuration),
    propertyMappings: new sdk.PropertymappingsApi(configuration),
    providers: new sdk.ProvidersApi(configuration),
  };
}

/** Replaces every secret value in `text` with `[secret]`. */
export function redact(text: string, secrets: string[]): string {
  let result = text;
  for (const secret of secrets) {
    if (secret.length > 0) result = result.split(secret).join("[secret]");
  }
  return result;
}

/** True for the generated client's ResponseError with HTTP 404. */
export function isNotFound(error: unknown): boolean {
  return (error as { response?: { status?: unknown } } | null)?.response?.status === 404;
}

/**
 * Runs one API call; turns the generated client's errors (ResponseError, FetchError, RequiredError) into one
 * redacted line: `service "x": Authentik <what> failed: HTTP 400: <body>`.
 */
export async function callApi<T>(context: ApiContext, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw await apiError(context, what, error);
  }
}

async function apiError(context: ApiContext, what: string, error: unknown): Promise<Error> {
  const prefix = `service ${JSON.stringify(context.service)}: Authentik ${what} failed`;
  const failure = error as { name?: string; message?: string; response?: { status: number; text(): Promise<string> }; cause?: { message?: string; cause?: { code?: string } } };
  let detail: string;
  if (failure?.response && typeof failure.response.status === "number") {
    let body = "";
    try {
      body = (await failure.response.text()).replace(/\s+/g, " ").trim();
    } catch {
      body = "";
    }
    if (body.length > maxBodyChars) body = `${body.slice(0, maxBodyChars)}…`;
    const hint = failure.response.status === 401 || failure.response.status === 403
      ? " (check nixmox:secrets.<authentik service>.bootstrap_token: the token is missing, wrong or lacks rights)"
      : "";
    detail = `HTTP ${failure.response.status}${body ? `: ${body}` : ""}${hint}`;
  } else if (failure?.name === "FetchError") {
    const code = failure.cause?.cause?.code;
    detail = `cannot reach ${context.url}${code ? ` (${code})` : failure.cause?.message ? ` (${failure.cause.message})` : ""}; is the authentik service up and the URL right?`;
  } else {
    detail = failure?.message ?? String(error);
  }
  return new Error(redact(`${prefix}: ${detail}`, context.secrets));
}

/** The primary key (uuid) of the flow with this slug. */
export async function flowPk(apis: AuthentikApis, context: ApiContext, field: string, slug: string): Promise<string> {
  const flows = await callApi(context, `lookup of flow ${JSON.stringify(slug)}`, () => apis.flows.flowsInstancesList({ slug }));
  const flow = flows.results.find((candidate) => candidate.slug === slug);
  if (!flow) {
    throw new Error(`service ${JSON.stringify(context.service)}: ${field}: Authentik has no flow with slug ${JSON.stringify(slug)}; create it in Authentik or name an existing flow`);
  }
  return flow.pk;
}

/** The slug of the flow with this primary key, or `<pk>` when it no longer exists (for drift reports). */
export async function flowSlug(apis: AuthentikApis, context: ApiContext, pk: string): Promise<string> {
  const flows = await callApi(context, `lookup of flow ${pk}`, () => apis.flows.flowsInstancesList({ flowUuid: pk }));
  return flows.results.find((flow) => flow.pk === pk)?.slug ?? pk;
}

/** The managed identifier of Authentik's built-in scope mapping for `scope` (authentik blueprints/system/providers-oauth2.yaml). */
export function managedScopeMapping(scope: string): string {
  return `goauthentik.io/providers/oauth2/scope-${scope}`;
}

/**
 * The scope mappings for these scope names, in the same order. Authentik's own managed mapping wins when several
 * mappings share a scope name; a scope with no mapping, or with several unmanaged ones, is an error.
 */
export async function scopeMappingPks(apis: AuthentikApis, context: ApiContext, scopes: string[]): Promise<string[]> {
  const pks: string[] = [];
  for (const scope of scopes) {
    const list = await callApi(context, `lookup of scope mapping ${JSON.stringify(scope)}`, () =>
      apis.propertyMappings.propertymappingsProviderScopeList({ scopeName: scope }),
    );
    const candidates = list.results.filter((mapping) => mapping.scopeName === scope);
    const managed = candidates.find((mapping) => mapping.managed === managedScopeMapping(scope));
    if (managed) pks.push(managed.pk);
    else if (candidates.length === 1) pks.push(candidates[0].pk);
    else if (candidates.length === 0) {
      throw new Error(`service ${JSON.stringify(context.service)}: interface.auth.oidc.scopes: Authentik has no scope mapping for scope ${JSON.stringify(scope)}; create a scope mapping with that scope name in Authentik or remove the scope`);
    } else {
      throw new Error(`service ${JSON.stringify(context.service)}: interface.auth.oidc.scopes: Authentik has ${candidates.length} scope mappings for scope ${JSON.stringify(scope)} (${candidates.map((mapping) => JSON.stringify(mapping.name)).sort().join(", ")}); keep one`);
    }
  }
  return pks;
}

/** The scope names of these scope mappings (sorted), `<pk>` for a mapping that no longer exists. */
export async function scopeNames(apis: AuthentikApis, context: ApiContext, pks: string[]): Promise<string[]> {
  const names: string[] = [];
  for (const pk of pks) {
    try {
      const mapping = await apis.propertyMappings.propertymappingsProviderScopeRetrieve({ pmUuid: pk });
      names.push(mapping.scopeName);
    } catch (error) {
      if (!isNotFound(error)) throw await apiError(context, `lookup of scope mapping ${pk}`, error);
      names.push(pk);
    }
  }
  return names.sort();
}

/** The primary key of the certificate-key pair with this name (it must hold a private key to sign tokens). */
export async function signingKeyPk(apis: AuthentikApis, context: ApiContext, name: string): Promise<string> {
  const pairs = await callApi(context, `lookup of certificate ${JSON.stringify(name)}`, () =>
    apis.crypto.cryptoCertificatekeypairsList({ name, hasKey: true }),
  );
  const pair = pairs.results.find((candidate) => candidate.name === name);
  if (!pair) {
    throw new Error(`service ${JSON.stringify(context.service)}: signingKey: Authentik has no certificate named ${JSON.stringify(name)} with a private key; create one under System > Certificates or name an existing one`);
  }
  return pair.pk;
}

/** Sorted copy, so that order-only differences never show as drift. */
export function sorted(values: readonly string[]): string[] {
  return [...values].sort();
}

/** Same members, ignoring order. */
export function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = sorted(a);
  const right = sorted(b);
  return left.length === right.length && left.every((value, index) => value === right[index]);
}

/**
 * The names of the fields whose values differ between the stored outputs and the new inputs. Fields listed in
 * `setFields` are string arrays compared as sets (Authentik does not keep their order).
 */
export function changedFields<T extends object>(olds: T, news: T, fields: readonly (keyof T & string)[], setFields: readonly (keyof T & string)[] = []): string[] {
  return fields.filter((field) => {
    const before = olds[field] as unknown;
    const after = news[field] as unknown;
    if (setFields.includes(field)) return !(Array.isArray(before) && Array.isArray(after) && sameSet(before as string[], after as string[]));
    return JSON.stringify(before ?? null) !== JSON.stringify(after ?? null);
  });
}

/** Creates the application or adopts the one with this slug; returns its primary key. Shared by the OIDC and proxy apps. */
export async function upsertApplication(
  apis: AuthentikApis,
  context: ApiContext,
  app: { slug: string; name: string; provider: number; launchUrl: string | null },
): Promise<string> {
  const fields = { name: app.name, slug: app.slug, provider: app.provider, metaLaunchUrl: app.launchUrl ?? "" };
  let exists = true;
  try {
    await apis.core.coreApplicationsRetrieve({ slug: app.slug });
  } catch (error) {
    if (!isNotFound(error)) return callApi(context, `read of application ${JSON.stringify(app.slug)}`, () => Promise.reject(error));
    exists = false;
  }
  const result = exists
    ? await callApi(context, `update of application ${JSON.stringify(app.slug)}`, () => apis.core.coreApplicationsPartialUpdate({ slug: app.slug, patchedApplicationRequest: fields }))
    : await callApi(context, `creation of application ${JSON.stringify(app.slug)}`, () => apis.core.coreApplicationsCreate({ applicationRequest: fields }));
  return result.pk;
}

/** Deletes one object; a 404 means it is already gone. */
export async function deleteIgnoringMissing(context: ApiContext, what: string, call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch (error) {
    if (!isNotFound(error)) await callApi(context, what, () => Promise.reject(error));
  }
}

/** Reads one object; null when it is gone (404). */
export async function readOrNull<T>(context: ApiContext, what: string, call: () => Promise<T>): Promise<T | null> {
  try {
    return await call();
  } catch (error) {
    if (isNotFound(error)) return null;
    return callApi(context, what, () => Promise.reject(error));
  }
}

/** Adds `additionalSecretOutputs` to the caller's options without dropping theirs. */
export function withSecretOutputs(opts: pulumi.CustomResourceOptions | undefined, names: string[]): pulumi.CustomResourceOptions {
  return { ...opts, additionalSecretOutputs: [...new Set([...(opts?.additionalSecretOutputs ?? []), ...names])].sort() };
}
