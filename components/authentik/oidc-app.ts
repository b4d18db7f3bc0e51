/**
 * `AuthentikOidcApp`: one OAuth2/OpenID Connect provider plus the Application that exposes it, managed through
 * Authentik's REST API (`@goauthentik/api`) by a Pulumi dynamic provider (no `@pulumi/authentik` exists,
 * pulumi-notes.md §3).
 *
 * - create: looks up the flows (by slug), scope mappings (by scope name, Authentik's managed mapping first) and the
 *   signing key (by certificate name); adopts the OAuth2 provider with the same name or creates it; adopts the
 *   application with the same slug or creates it; both end up exactly as the inputs say. Re-running create after a
 *   failed or lost deploy therefore converges instead of failing with "name already exists".
 * - read (refresh): re-reads both objects and reports what Authentik holds now (redirect URIs, client id/type/secret,
 *   scopes, flows, launch URL), so drift shows in the next diff; a deleted provider or application drops the
 *   resource from the state (the next `up` adopts or recreates it).
 * - diff: a slug change replaces (delete first: one provider belongs to one application); any other change updates.
 * - update: PATCHes the provider (by primary key; recreated when it vanished) and the application.
 * - delete: deletes the application, then the provider; an object that is already gone (404) is fine.
 *
 * The client secret and the API token are secret inputs; both are also listed in `additionalSecretOutputs`, so
 * the state never holds them in plain text (pulumi-notes.md §4.4).
 */
import * as pulumi from "@pulumi/pulumi";
import type { OAuth2Provider } from "@goauthentik/api";
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
  sameSet,
  scopeMappingPks,
  scopeNames,
  signingKeyPk,
  upsertApplication,
  withSecretOutputs,
  type ApiContext,
  type AuthentikApis,
  type AuthentikConnection,
} from "./api";
import { connectionProps, type AuthentikConnectionArgs } from "./connection-args";
import { defaultAuthorizationFlow, defaultInvalidationFlow, defaultScopes, defaultSigningKey } from "./defaults";


export interface AuthentikOidcAppArgs extends AuthentikConnectionArgs {
  /** Application slug (used in Authentik URLs: `/application/o/<slug>/`). Changing it replaces the resource. */
  slug: pulumi.Input<string>;
  /** Application display name. @default the slug */
  name?: pulumi.Input<string>;
  /** OAuth2 provider name (unique in Authentik; an existing provider with this name is adopted). @default `nixmox-<slug>` */
  providerName?: pulumi.Input<string>;
  clientId: pulumi.Input<string>;
  /** @default "confidential" */
  clientType?: pulumi.Input<"confidential" | "public">;
  /** Client secret; required for confidential clients, ignored (Authentik generates one) for public clients. */
  clientSecret?: pulumi.Input<string | null>;
  /** Allowed redirect URIs, matched strictly. */
  redirectUris: pulumi.Input<pulumi.Input<string>[]>;
  /** Scope names; each must have a scope mapping in Authentik. @default ["openid", "email", "profile"] */
  scopes?: pulumi.Input<pulumi.Input<string>[]>;
  /** Slug of the authorization flow. @default "default-provider-authorization-implicit-consent" */
  authorizationFlow?: pulumi.Input<string>;
  /** Slug of the invalidation (logout) flow. @default "default-provider-invalidation-flow" */
  invalidationFlow?: pulumi.Input<string>;
  /** Name of the certificate that signs tokens (RS256); null signs with the client secret (HS256). @default "authentik Self-signed Certificate" */
  signingKey?: pulumi.Input<string | null>;
  /** Launch URL shown on the user's Authentik dashboard. @default null (Authentik derives none for OIDC apps) */
  launchUrl?: pulumi.Input<string | null>;
}

/** The resolved inputs the provider receives (defaults applied by the resource constructor). */
export interface AuthentikOidcAppInputs extends AuthentikConnection {
  slug: string;
  name: string;
  providerName: string;
  clientId: string;
  clientType: "confidential" | "public";
  clientSecret: string | null;
  redirectUris: string[];
  scopes: string[];
  authorizationFlow: string;
  invalidationFlow: string;
  signingKey: string | null;
  launchUrl: string | null;
}

export interface AuthentikOidcAppOutputs extends AuthentikOidcAppInputs {
  providerPk: number;
  /** Application primary key (uuid). */
  applicationPk: string;
  authorizationFlowPk: string;
  invalidationFlowPk: string;
  propertyMappingPks: string[];
  signingKeyPk: string | null;
}

/** The fields a diff compares; everything the user controls. */
const managedFields = [
  "url",
  "token",
  // The SSH path the calls take: a re-created authentik host (new host key) or a rotated deploy key is recorded by an
  // update, or refresh, removal and destroy would keep using the stale one (pulumi-engine-2 review B1).
  "tunnel",
  "service",
  "name",
  "providerName",
  "clientId",
  "clientType",
  "clientSecret",
  "redirectUris",
  "scopes",
  "authorizationFlow",
  "invalidationFlow",
  "signingKey",
  "launchUrl",
] as const satisfies readonly (keyof AuthentikOidcAppInputs)[];

/** Copies exactly the input fields (never the raw object: it carries `__provider`). */
function pickInputs(value: AuthentikOidcAppInputs): AuthentikOidcAppInputs {
  return {
    ...pickConnection(value),
    slug: value.slug,
    name: value.name,
    providerName: value.providerName,
    clientId: value.clientId,
    clientType: value.clientType,
    clientSecret: value.clientSecret ?? null,
    redirectUris: [...value.redirectUris],
    scopes: [...value.scopes],
    authorizationFlow: value.authorizationFlow,
    invalidationFlow: value.invalidationFlow,
    signingKey: value.signingKey ?? null,
    launchUrl: value.launchUrl ?? null,
  };
}

function contextOf(inputs: AuthentikOidcAppInputs): ApiContext {
  return connectionContext(inputs, [inputs.clientSecret ?? ""]);
}

/** Makes Authentik hold exactly `inputs`; `knownProviderPk` is the provider this resource created before. */
async function applyOidcApp(inputs: AuthentikOidcAppInputs, knownProviderPk: number | null): Promise<AuthentikOidcAppOutputs> {
  const context = contextOf(inputs);
  if (inputs.clientType === "confidential" && !inputs.clientSecret) {
    throw new Error(`service ${JSON.stringify(inputs.service)}: clientSecret is required for a confidential OIDC client; set nixmox:secrets.${inputs.service}.oidc_client_secret or leave it unset so NixMox generates one`);
  }
  const apis = connectionApis(inputs);
  const authorizationFlowPk = await flowPk(apis, context, "authorizationFlow", inputs.authorizationFlow);
  const invalidationFlowPk = await flowPk(apis, context, "invalidationFlow", inputs.invalidationFlow);
  const propertyMappingPks = await scopeMappingPks(apis, context, inputs.scopes);
  const signingKey = inputs.signingKey === null ? null : await signingKeyPk(apis, context, inputs.signingKey);
  const request = {
    name: inputs.providerName,
    authorizationFlow: authorizationFlowPk,
    invalidationFlow: invalidationFlowPk,
    propertyMappings: propertyMappingPks,
    clientType: inputs.clientType,
    clientId: inputs.clientId,
    // Public clients never send a secret; Authentik keeps the one it generated.
    ...(inputs.clientType === "confidential" ? { clientSecret: inputs.clientSecret! } : {}),
    redirectUris: inputs.redirectUris.map((url) => ({ matchingMode: "strict" as const, url })),
    signingKey,
  };
  const providerPk = await findOidcProvider(apis, context, inputs.providerName, knownProviderPk);
  const provider = providerPk === null
    ? await callApi(context, `creation of OAuth2 provider ${JSON.stringify(inputs.providerName)}`, () => apis.providers.providersOauth2Create({ oAuth2ProviderRequest: request }))
    : await callApi(context, `update of OAuth2 provider ${JSON.stringify(inputs.providerName)}`, () => apis.providers.providersOauth2PartialUpdate({ id: providerPk, patchedOAuth2ProviderRequest: request }));
  const application = await upsertApplication(apis, context, { slug: inputs.slug, name: inputs.name, provider: provider.pk, launchUrl: inputs.launchUrl });
  return { ...inputs, providerPk: provider.pk, applicationPk: application, authorizationFlowPk, invalidationFlowPk, propertyMappingPks, signingKeyPk: signingKey };
}

/** The provider to update: the one created before (if it still exists), else one with the same name, else null. */
async function findOidcProvider(apis: AuthentikApis, context: ApiContext, name: string, knownPk: number | null): Promise<number | null> {
  if (knownPk !== null) {
    try {
      return (await apis.providers.providersOauth2Retrieve({ id: knownPk })).pk;
    } catch (error) {
      if (!isNotFound(error)) return callApi(context, `read of OAuth2 provider ${knownPk}`, () => Promise.reject(error));
    }
  }
  const existing = await callApi(context, `lookup of OAuth2 provider ${JSON.stringify(name)}`, () => apis.providers.providersOauth2List({ name }));
  return existing.results.find((provider) => provider.name === name)?.pk ?? null;
}

/** Redirect URIs as NixMox writes them: the URL for strict matching, `regex:<pattern>` for anything else. */
function redirectUrisOf(provider: OAuth2Provider): string[] {
  return provider.redirectUris.map((uri) => (uri.matchingMode === "strict" ? uri.url : `regex:${uri.url}`));
}

export const oidcAppProvider: pulumi.dynamic.ResourceProvider<AuthentikOidcAppInputs, AuthentikOidcAppOutputs> = {
  async create(inputs) {
    const outs = await applyOidcApp(pickInputs(inputs), null);
    return { id: outs.slug, outs };
  },

  async read(id, props) {
    const olds = props as AuthentikOidcAppOutputs;
    const context = contextOf(olds);
    const apis = connectionApis(olds);
    const provider = await readOrNull(context, `read of OAuth2 provider ${olds.providerPk}`, () => apis.providers.providersOauth2Retrieve({ id: olds.providerPk }));
    const application = await readOrNull(context, `read of application ${JSON.stringify(id)}`, () => apis.core.coreApplicationsRetrieve({ slug: id }));
    if (!provider || !application) return {};
    const mappings = provider.propertyMappings ?? [];
    const outs: AuthentikOidcAppOutputs = {
      ...pickInputs(olds),
      providerPk: olds.providerPk,
      applicationPk: application.pk,
      name: application.name,
      launchUrl: application.metaLaunchUrl ? application.metaLaunchUrl : null,
      providerName: provider.name,
      clientId: provider.clientId ?? "",
      clientType: provider.clientType === "public" ? "public" : "confidential",
      // A public client's secret is Authentik's business; only a confidential one is ours to compare.
      clientSecret: provider.clientType === "public" ? olds.clientSecret : (provider.clientSecret ?? null),
      redirectUris: redirectUrisOf(provider),
      authorizationFlowPk: provider.authorizationFlow,
      invalidationFlowPk: provider.invalidationFlow,
      authorizationFlow: provider.authorizationFlow === olds.authorizationFlowPk ? olds.authorizationFlow : await flowSlug(apis, context, provider.authorizationFlow),
      invalidationFlow: provider.invalidationFlow === olds.invalidationFlowPk ? olds.invalidationFlow : await flowSlug(apis, context, provider.invalidationFlow),
      propertyMappingPks: mappings,
      scopes: sameSet(mappings, olds.propertyMappingPks) ? olds.scopes : await scopeNames(apis, context, mappings),
      signingKeyPk: provider.signingKey ?? null,
      signingKey: (provider.signingKey ?? null) === olds.signingKeyPk ? olds.signingKey : (provider.signingKey ?? null),
    };
    return { id, props: outs };
  },

  async diff(_id, olds, news) {
    const replaces = olds.slug === news.slug ? [] : ["slug"];
    const changes = changedFields<AuthentikOidcAppInputs>(olds, news, managedFields, ["redirectUris", "scopes"]);
    return { changes: replaces.length > 0 || changes.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
  },

  async update(_id, olds, news) {
    const outs = await applyOidcApp(pickInputs(news), olds.providerPk);
    return { outs };
  },

  async delete(id, props) {
    const context = contextOf(props);
    const apis = connectionApis(props);
    await deleteIgnoringMissing(context, `deletion of application ${JSON.stringify(id)}`, () => apis.core.coreApplicationsDestroy({ slug: id }));
    await deleteIgnoringMissing(context, `deletion of OAuth2 provider ${props.providerPk}`, () => apis.providers.providersOauth2Destroy({ id: props.providerPk }));
  },
};

/** An Authentik OAuth2/OIDC provider and its application (type `pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp`). */
export class AuthentikOidcApp extends pulumi.dynamic.Resource {
  declare public readonly slug: pulumi.Output<string>;
  declare public readonly clientId: pulumi.Output<string>;
  declare public readonly providerPk: pulumi.Output<number>;
  declare public readonly applicationPk: pulumi.Output<string>;

  constructor(name: string, args: AuthentikOidcAppArgs, opts?: pulumi.CustomResourceOptions) {
    const props = {
      ...connectionProps(args),
      slug: args.slug,
      name: args.name ?? args.slug,
      providerName: args.providerName ?? pulumi.interpolate`nixmox-${args.slug}`,
      clientId: args.clientId,
      clientType: args.clientType ?? "confidential",
      clientSecret: args.clientSecret === undefined || args.clientSecret === null ? null : pulumi.secret(args.clientSecret),
      redirectUris: args.redirectUris,
      scopes: args.scopes ?? [...defaultScopes],
      authorizationFlow: args.authorizationFlow ?? defaultAuthorizationFlow,
      invalidationFlow: args.invalidationFlow ?? defaultInvalidationFlow,
      signingKey: args.signingKey === undefined ? defaultSigningKey : args.signingKey,
      launchUrl: args.launchUrl ?? null,
      providerPk: undefined,
      applicationPk: undefined,
      authorizationFlowPk: undefined,
      invalidationFlowPk: undefined,
      propertyMappingPks: undefined,
      signingKeyPk: undefined,
    };
    super(oidcAppProvider, name, props, withSecretOutputs(opts, ["token", "tunnel", "clientSecret"]), "nixmox", "AuthentikOidcApp");
  }
}
