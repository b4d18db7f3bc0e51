/**
 * `AuthentikProxyApp`: one Authentik proxy provider in forward-auth mode plus its Application, for one domain that
 * Caddy protects with `forward_auth` (a dynamic provider over `@goauthentik/api`, pulumi-notes.md §3).
 *
 * Mode: `forward_single` (one provider per domain) is the default, because it is what the rendered Caddy config
 * already does: every protected domain proxies `/outpost.goauthentik.io/*` to the outpost on that same domain
 * (nixos/lib/caddy.nix, after https://docs.goauthentik.io/add-secure-apps/providers/proxy/server_caddy), so the
 * session cookie belongs to that domain and each application keeps its own access policy. `forward_domain` needs
 * Authentik itself published under a parent domain shared by all apps plus one cookie domain for all of them,
 * which the manifest does not describe; it stays available through `mode`/`cookieDomain` for hand-written use.
 *
 * - create: looks up the flows by slug; adopts the proxy provider with the same name or creates it; adopts the
 *   application with the same slug or creates it. Binding to an outpost is `AuthentikOutpostBinding`'s job (one
 *   writer per outpost avoids lost updates when several apps deploy in parallel).
 * - read (refresh): reports the external host, mode, cookie domain, flows, name and launch URL Authentik holds now;
 *   a deleted provider or application drops the resource from the state.
 * - diff: a slug change replaces (delete first); any other change updates.
 * - update: PATCHes the provider (by primary key; recreated when it vanished) and the application.
 * - delete: deletes the application, then the provider; 404 is fine. Authentik drops a deleted provider from
 *   every outpost by itself.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  callApi,
  changedFields,
  connectionApis,
  connectionContext,
  deleteIgnoringMissing,
  flowPk,
  flowSlug,
  isNotFound,
  pickConnection,
  readOrNull,
  upsertApplication,
  withSecretOutputs,
  type ApiContext,
  type AuthentikApis,
  type AuthentikConnection,
} from "./api";
import { connectionProps, type AuthentikConnectionArgs } from "./connection-args";
import { defaultAuthorizationFlow, defaultInvalidationFlow } from "./defaults";

export type ForwardAuthMode = "forward_single" | "forward_domain";

export interface AuthentikProxyAppArgs extends AuthentikConnectionArgs {
  /** Application slug. Changing it replaces the resource. */
  slug: pulumi.Input<string>;
  /** Application display name. @default the slug */
  name?: pulumi.Input<string>;
  /** Proxy provider name (unique in Authentik; an existing provider with this name is adopted). @default `nixmox-<slug>` */
  providerName?: pulumi.Input<string>;
  /** The URL users open, e.g. `https://jellyfin.nixmox.lan` (forward_single) or Authentik's own URL (forward_domain). */
  externalHost: pulumi.Input<string>;
  /** @default "forward_single" */
  mode?: pulumi.Input<ForwardAuthMode>;
  /** Cookie domain for `forward_domain` (e.g. `nixmox.lan`). @default null (required for forward_domain) */
  cookieDomain?: pulumi.Input<string | null>;
  /** @default "default-provider-authorization-implicit-consent" */
  authorizationFlow?: pulumi.Input<string>;
  /** @default "default-provider-invalidation-flow" */
  invalidationFlow?: pulumi.Input<string>;
  /** Launch URL on the Authentik dashboard. @default the external host */
  launchUrl?: pulumi.Input<string | null>;
}

export interface AuthentikProxyAppInputs extends AuthentikConnection {
  slug: string;
  name: string;
  providerName: string;
  externalHost: string;
  mode: ForwardAuthMode;
  cookieDomain: string | null;
  authorizationFlow: string;
  invalidationFlow: string;
  launchUrl: string | null;
}

export interface AuthentikProxyAppOutputs extends AuthentikProxyAppInputs {
  providerPk: number;
  applicationPk: string;
  authorizationFlowPk: string;
  invalidationFlowPk: string;
}

const managedFields = [
  "url",
  "token",
  // The SSH path the calls take: a re-created authentik host (new host key) or a rotated deploy key is recorded by an
  // update, or refresh, removal and destroy would keep using the stale one (pulumi-engine-2 review B1).
  "tunnel",
  "service",
  "name",
  "providerName",
  "externalHost",
  "mode",
  "cookieDomain",
  "authorizationFlow",
  "invalidationFlow",
  "launchUrl",
] as const satisfies readonly (keyof AuthentikProxyAppInputs)[];

function pickInputs(value: AuthentikProxyAppInputs): AuthentikProxyAppInputs {
  return {
    ...pickConnection(value),
    slug: value.slug,
    name: value.name,
    providerName: value.providerName,
    externalHost: value.externalHost,
    mode: value.mode,
    cookieDomain: value.cookieDomain ?? null,
    authorizationFlow: value.authorizationFlow,
    invalidationFlow: value.invalidationFlow,
    launchUrl: value.launchUrl ?? null,
  };
}

async function applyProxyApp(inputs: AuthentikProxyAppInputs, knownProviderPk: number | null): Promise<AuthentikProxyAppOutputs> {
  const context = connectionContext(inputs);
  if (inputs.mode === "forward_domain" && !inputs.cookieDomain) {
    throw new Error(`service ${JSON.stringify(inputs.service)}: cookieDomain is required with mode "forward_domain"; set the parent domain shared by the protected apps (e.g. "nixmox.lan") or use mode "forward_single"`);
  }
  const apis = connectionApis(inputs);
  const authorizationFlowPk = await flowPk(apis, context, "authorizationFlow", inputs.authorizationFlow);
  const invalidationFlowPk = await flowPk(apis, context, "invalidationFlow", inputs.invalidationFlow);
  const request = {
    name: inputs.providerName,
    authorizationFlow: authorizationFlowPk,
    invalidationFlow: invalidationFlowPk,
    externalHost: inputs.externalHost,
    mode: inputs.mode,
    ...(inputs.cookieDomain ? { cookieDomain: inputs.cookieDomain } : {}),
  };
  const providerPk = await findProxyProvider(apis, context, inputs.providerName, knownProviderPk);
  const provider = providerPk === null
    ? await callApi(context, `creation of proxy provider ${JSON.stringify(inputs.providerName)}`, () => apis.providers.providersProxyCreate({ proxyProviderRequest: request }))
    : await callApi(context, `update of proxy provider ${JSON.stringify(inputs.providerName)}`, () => apis.providers.providersProxyPartialUpdate({ id: providerPk, patchedProxyProviderRequest: request }));
  const applicationPk = await upsertApplication(apis, context, { slug: inputs.slug, name: inputs.name, provider: provider.pk, launchUrl: inputs.launchUrl });
  return { ...inputs, providerPk: provider.pk, applicationPk, authorizationFlowPk, invalidationFlowPk };
}

async function findProxyProvider(apis: AuthentikApis, context: ApiContext, name: string, knownPk: number | null): Promise<number | null> {
  if (knownPk !== null) {
    try {
      return (await apis.providers.providersProxyRetrieve({ id: knownPk })).pk;
    } catch (error) {
      if (!isNotFound(error)) return callApi(context, `read of proxy provider ${knownPk}`, () => Promise.reject(error));
    }
  }
  const existing = await callApi(context, `lookup of proxy provider ${JSON.stringify(name)}`, () => apis.providers.providersProxyList({ nameIexact: name }));
  return existing.results.find((provider) => provider.name === name)?.pk ?? null;
}

export const proxyAppProvider: pulumi.dynamic.ResourceProvider<AuthentikProxyAppInputs, AuthentikProxyAppOutputs> = {
  async create(inputs) {
    const outs = await applyProxyApp(pickInputs(inputs), null);
    return { id: outs.slug, outs };
  },

  async read(id, props) {
    const olds = props as AuthentikProxyAppOutputs;
    const context = connectionContext(olds);
    const apis = connectionApis(olds);
    const provider = await readOrNull(context, `read of proxy provider ${olds.providerPk}`, () => apis.providers.providersProxyRetrieve({ id: olds.providerPk }));
    const application = await readOrNull(context, `read of application ${JSON.stringify(id)}`, () => apis.core.coreApplicationsRetrieve({ slug: id }));
    if (!provider || !application) return {};
    const outs: AuthentikProxyAppOutputs = {
      ...pickInputs(olds),
      providerPk: olds.providerPk,
      applicationPk: application.pk,
      name: application.name,
      launchUrl: application.metaLaunchUrl ? application.metaLaunchUrl : null,
      providerName: provider.name,
      externalHost: provider.externalHost,
      // Any other mode ("proxy") is drift too and shows as such in the next diff.
      mode: (provider.mode ?? "proxy") as ForwardAuthMode,
      cookieDomain: provider.cookieDomain ? provider.cookieDomain : null,
      authorizationFlowPk: provider.authorizationFlow,
      invalidationFlowPk: provider.invalidationFlow,
      authorizationFlow: provider.authorizationFlow === olds.authorizationFlowPk ? olds.authorizationFlow : await flowSlug(apis, context, provider.authorizationFlow),
      invalidationFlow: provider.invalidationFlow === olds.invalidationFlowPk ? olds.invalidationFlow : await flowSlug(apis, context, provider.invalidationFlow),
    };
    return { id, props: outs };
  },

  async diff(_id, olds, news) {
    const replaces = olds.slug === news.slug ? [] : ["slug"];
    const changes = changedFields<AuthentikProxyAppInputs>(olds, news, managedFields);
    return { changes: replaces.length > 0 || changes.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
  },

  async update(_id, olds, news) {
    return { outs: await applyProxyApp(pickInputs(news), olds.providerPk) };
  },

  async delete(id, props) {
    const context = connectionContext(props);
    const apis = connectionApis(props);
    await deleteIgnoringMissing(context, `deletion of application ${JSON.stringify(id)}`, () => apis.core.coreApplicationsDestroy({ slug: id }));
    await deleteIgnoringMissing(context, `deletion of proxy provider ${props.providerPk}`, () => apis.providers.providersProxyDestroy({ id: props.providerPk }));
  },
};

/** A forward-auth proxy provider and its application (type `pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp`). */
export class AuthentikProxyApp extends pulumi.dynamic.Resource {
  declare public readonly slug: pulumi.Output<string>;
  declare public readonly providerPk: pulumi.Output<number>;
  declare public readonly applicationPk: pulumi.Output<string>;

  constructor(name: string, args: AuthentikProxyAppArgs, opts?: pulumi.CustomResourceOptions) {
    const props = {
      ...connectionProps(args),
      slug: args.slug,
      name: args.name ?? args.slug,
      providerName: args.providerName ?? pulumi.interpolate`nixmox-${args.slug}`,
      externalHost: args.externalHost,
      mode: args.mode ?? "forward_single",
      cookieDomain: args.cookieDomain ?? null,
      authorizationFlow: args.authorizationFlow ?? defaultAuthorizationFlow,
      invalidationFlow: args.invalidationFlow ?? defaultInvalidationFlow,
      launchUrl: args.launchUrl === undefined ? args.externalHost : args.launchUrl,
      providerPk: undefined,
      applicationPk: undefined,
      authorizationFlowPk: undefined,
      invalidationFlowPk: undefined,
    };
    super(proxyAppProvider, name, props, withSecretOutputs(opts, ["token", "tunnel"]), "nixmox", "AuthentikProxyApp");
  }
}
