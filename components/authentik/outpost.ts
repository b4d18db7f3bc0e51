/**
 * `AuthentikOutpost`: one LDAP or RADIUS outpost of the manifest's `network.outposts`, with the provider and the
 * application it serves (a dynamic provider over `@goauthentik/api`). The outpost runs on the authentik host
 * (nixos/services/authentik-outposts.nix); it authenticates to Authentik with the outpost's API token, which this
 * resource reads back as a secret output so NixMox can deliver it to that host.
 *
 * - create: looks up the flows by slug; adopts the provider with the same name or creates it (LDAP: base DN;
 *   RADIUS: client networks and the shared secret); adopts the application with the same slug or creates it;
 *   adopts the outpost with the same name or creates it with that one provider; reads the outpost's token
 *   (`ak-outpost-<uuid>-api`, created by Authentik with the outpost).
 * - read (refresh): reports the provider's settings Authentik holds now; a deleted provider, application or
 *   outpost drops the resource from the state (the next `up` recreates it).
 * - diff: another type or outpost name replaces (delete first); any other change updates.
 * - update: PATCHes provider, application and outpost in place; the token stays the outpost's.
 * - delete: deletes the outpost, the application, then the provider; 404 is fine.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  callApi,
  changedFields,
  connectionApis,
  connectionContext,
  deleteIgnoringMissing,
  flowPk,
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

export type OutpostType = "ldap" | "radius";

export interface AuthentikOutpostArgs extends AuthentikConnectionArgs {
  type: pulumi.Input<OutpostType>;
  /** Application slug, provider and outpost name are derived from it. Changing it replaces the resource. */
  slug: pulumi.Input<string>;
  /** LDAP: the base DN served. */
  baseDn?: pulumi.Input<string | null>;
  /** RADIUS: networks allowed to talk to the outpost (comma-separated in Authentik). */
  clientNetworks?: pulumi.Input<string[]>;
  /** RADIUS: the shared secret (`nixmox:secrets.<authentik>.radius_shared_secret`). Always stored as a secret. */
  sharedSecret?: pulumi.Input<string | null>;
  /** @default "default-provider-authorization-implicit-consent" */
  authorizationFlow?: pulumi.Input<string>;
  /** @default "default-provider-invalidation-flow" */
  invalidationFlow?: pulumi.Input<string>;
}

export interface AuthentikOutpostInputs extends AuthentikConnection {
  type: OutpostType;
  slug: string;
  baseDn: string | null;
  clientNetworks: string[];
  sharedSecret: string | null;
  authorizationFlow: string;
  invalidationFlow: string;
}

export interface AuthentikOutpostOutputs extends AuthentikOutpostInputs {
  providerPk: number;
  applicationPk: string;
  outpostPk: string;
  /** The outpost's API token (secret): what the outpost process on the authentik host authenticates with. */
  outpostToken: string;
}

const managedFields = [
  "url",
  "token",
  // The SSH path the calls take: a re-created authentik host (new host key) or a rotated deploy key is recorded by an
  // update, or refresh, removal and destroy would keep using the stale one (pulumi-engine-2 review B1).
  "tunnel",
  "service",
  "baseDn",
  "clientNetworks",
  "sharedSecret",
  "authorizationFlow",
  "invalidationFlow",
] as const satisfies readonly (keyof AuthentikOutpostInputs)[];

function pickInputs(value: AuthentikOutpostInputs): AuthentikOutpostInputs {
  return {
    ...pickConnection(value),
    type: value.type,
    slug: value.slug,
    baseDn: value.baseDn ?? null,
    // During a preview the list can still be the engine's unknown sentinel: keep it as it is.
    clientNetworks: Array.isArray(value.clientNetworks) ? [...value.clientNetworks].sort() : value.clientNetworks ?? [],
    sharedSecret: value.sharedSecret ?? null,
    authorizationFlow: value.authorizationFlow,
    invalidationFlow: value.invalidationFlow,
  };
}

function contextOf(inputs: AuthentikOutpostInputs): ApiContext {
  return connectionContext(inputs, [...(inputs.sharedSecret ? [inputs.sharedSecret] : [])]);
}

/** Names of the three objects: `nixmox-<slug>` for provider and outpost, the slug for the application. */
export function outpostObjectNames(slug: string): { provider: string; outpost: string; application: string } {
  return { provider: `nixmox-${slug}`, outpost: `nixmox-${slug}`, application: slug };
}

async function upsertProvider(apis: AuthentikApis, context: ApiContext, inputs: AuthentikOutpostInputs, flows: { authorization: string; invalidation: string }): Promise<number> {
  const name = outpostObjectNames(inputs.slug).provider;
  const base = { name, authorizationFlow: flows.authorization, invalidationFlow: flows.invalidation };
  if (inputs.type === "ldap") {
    const request = { ...base, ...(inputs.baseDn ? { baseDn: inputs.baseDn } : {}) };
    const existing = await callApi(context, `lookup of LDAP provider ${JSON.stringify(name)}`, () => apis.providers.providersLdapList({ nameIexact: name }));
    const found = existing.results.find((provider) => provider.name === name);
    const saved = found
      ? await callApi(context, `update of LDAP provider ${JSON.stringify(name)}`, () => apis.providers.providersLdapPartialUpdate({ id: found.pk, patchedLDAPProviderRequest: request }))
      : await callApi(context, `creation of LDAP provider ${JSON.stringify(name)}`, () => apis.providers.providersLdapCreate({ lDAPProviderRequest: request }));
    return saved.pk;
  }
  const request = { ...base, clientNetworks: inputs.clientNetworks.join(","), ...(inputs.sharedSecret ? { sharedSecret: inputs.sharedSecret } : {}) };
  const existing = await callApi(context, `lookup of RADIUS provider ${JSON.stringify(name)}`, () => apis.providers.providersRadiusList({ nameIexact: name }));
  const found = existing.results.find((provider) => provider.name === name);
  const saved = found
    ? await callApi(context, `update of RADIUS provider ${JSON.stringify(name)}`, () => apis.providers.providersRadiusPartialUpdate({ id: found.pk, patchedRadiusProviderRequest: request }))
    : await callApi(context, `creation of RADIUS provider ${JSON.stringify(name)}`, () => apis.providers.providersRadiusCreate({ radiusProviderRequest: request }));
  return saved.pk;
}

async function upsertOutpost(apis: AuthentikApis, context: ApiContext, inputs: AuthentikOutpostInputs, providerPk: number): Promise<string> {
  const name = outpostObjectNames(inputs.slug).outpost;
  const existing = await callApi(context, `lookup of outpost ${JSON.stringify(name)}`, () => apis.outposts.outpostsInstancesList({ nameIexact: name }));
  const found = existing.results.find((outpost) => outpost.name === name);
  if (found) {
    await callApi(context, `update of outpost ${JSON.stringify(name)}`, () =>
      apis.outposts.outpostsInstancesPartialUpdate({ uuid: found.pk, patchedOutpostRequest: { type: inputs.type, providers: [providerPk] } }),
    );
    return found.pk;
  }
  // No service connection: the outpost runs on the authentik host under NixOS, not deployed by Authentik.
  const created = await callApi(context, `creation of outpost ${JSON.stringify(name)}`, () =>
    apis.outposts.outpostsInstancesCreate({ outpostRequest: { name, type: inputs.type, providers: [providerPk], config: {} } }),
  );
  return created.pk;
}

async function applyOutpost(inputs: AuthentikOutpostInputs): Promise<AuthentikOutpostOutputs> {
  const context = contextOf(inputs);
  const apis = connectionApis(inputs);
  const flows = {
    authorization: await flowPk(apis, context, "authorizationFlow", inputs.authorizationFlow),
    invalidation: await flowPk(apis, context, "invalidationFlow", inputs.invalidationFlow),
  };
  const providerPk = await upsertProvider(apis, context, inputs, flows);
  const names = outpostObjectNames(inputs.slug);
  const applicationPk = await upsertApplication(apis, context, { slug: names.application, name: `${inputs.type.toUpperCase()} (NixMox)`, provider: providerPk, launchUrl: null });
  const outpostPk = await upsertOutpost(apis, context, inputs, providerPk);
  const identifier = `ak-outpost-${outpostPk}-api`;
  const view = await callApi(context, `read of the token of outpost ${JSON.stringify(names.outpost)}`, () => apis.core.coreTokensViewKeyRetrieve({ identifier }));
  return { ...inputs, providerPk, applicationPk, outpostPk, outpostToken: view.key };
}

export const outpostProvider: pulumi.dynamic.ResourceProvider<AuthentikOutpostInputs, AuthentikOutpostOutputs> = {
  async create(inputs) {
    const outs = await applyOutpost(pickInputs(inputs));
    return { id: outs.outpostPk, outs };
  },

  async read(id, props) {
    const olds = props as AuthentikOutpostOutputs;
    const context = contextOf(olds);
    const apis = connectionApis(olds);
    const outpost = await readOrNull(context, `read of outpost ${id}`, () => apis.outposts.outpostsInstancesRetrieve({ uuid: id }));
    const application = await readOrNull(context, `read of application ${JSON.stringify(olds.slug)}`, () => apis.core.coreApplicationsRetrieve({ slug: olds.slug }));
    if (!outpost || !application) return {};
    if (olds.type === "ldap") {
      const provider = await readOrNull(context, `read of LDAP provider ${olds.providerPk}`, () => apis.providers.providersLdapRetrieve({ id: olds.providerPk }));
      if (!provider) return {};
      return { id, props: { ...olds, baseDn: provider.baseDn ?? null } };
    }
    const provider = await readOrNull(context, `read of RADIUS provider ${olds.providerPk}`, () => apis.providers.providersRadiusRetrieve({ id: olds.providerPk }));
    if (!provider) return {};
    const networks = (provider.clientNetworks ?? "").split(",").map((network) => network.trim()).filter((network) => network !== "").sort();
    return { id, props: { ...olds, clientNetworks: networks, sharedSecret: provider.sharedSecret ?? olds.sharedSecret } };
  },

  async diff(_id, olds, news) {
    const next = pickInputs(news);
    const replaces = [...(olds.type === next.type ? [] : ["type"]), ...(olds.slug === next.slug ? [] : ["slug"])];
    const changes = changedFields<AuthentikOutpostInputs>(pickInputs(olds), next, managedFields, ["clientNetworks"]);
    return { changes: replaces.length > 0 || changes.length > 0, replaces, deleteBeforeReplace: replaces.length > 0 };
  },

  async update(_id, _olds, news) {
    return { outs: await applyOutpost(pickInputs(news)) };
  },

  async delete(id, props) {
    const context = contextOf(props);
    const apis = connectionApis(props);
    await deleteIgnoringMissing(context, `deletion of outpost ${id}`, () => apis.outposts.outpostsInstancesDestroy({ uuid: id }));
    await deleteIgnoringMissing(context, `deletion of application ${JSON.stringify(props.slug)}`, () => apis.core.coreApplicationsDestroy({ slug: props.slug }));
    const what = `deletion of ${props.type.toUpperCase()} provider ${props.providerPk}`;
    if (props.type === "ldap") await deleteIgnoringMissing(context, what, () => apis.providers.providersLdapDestroy({ id: props.providerPk }));
    else await deleteIgnoringMissing(context, what, () => apis.providers.providersRadiusDestroy({ id: props.providerPk }));
  },
};

/** An LDAP or RADIUS outpost with its provider and application (type `pulumi-nodejs:dynamic/nixmox:AuthentikOutpost`). */
export class AuthentikOutpost extends pulumi.dynamic.Resource {
  declare public readonly outpostPk: pulumi.Output<string>;
  declare public readonly outpostToken: pulumi.Output<string>;

  constructor(name: string, args: AuthentikOutpostArgs, opts?: pulumi.CustomResourceOptions) {
    const props = {
      ...connectionProps(args),
      type: args.type,
      slug: args.slug,
      baseDn: args.baseDn ?? null,
      clientNetworks: args.clientNetworks ?? [],
      sharedSecret: args.sharedSecret === undefined || args.sharedSecret === null ? null : pulumi.secret(args.sharedSecret),
      authorizationFlow: args.authorizationFlow ?? defaultAuthorizationFlow,
      invalidationFlow: args.invalidationFlow ?? defaultInvalidationFlow,
      providerPk: undefined,
      applicationPk: undefined,
      outpostPk: undefined,
      outpostToken: undefined,
    };
    super(outpostProvider, name, props, withSecretOutputs(opts, ["token", "tunnel", "sharedSecret", "outpostToken"]), "nixmox", "AuthentikOutpost");
  }
}
