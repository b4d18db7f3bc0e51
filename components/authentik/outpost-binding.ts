/**
 * `AuthentikOutpostBinding`: puts NixMox's forward-auth proxy providers on an existing Authentik outpost (by
 * default the embedded one, `authentik Embedded Outpost`, which answers on Authentik's own port) without touching
 * the providers someone else bound there.
 *
 * One binding resource per outpost holds the whole list of NixMox providers. The outpost's `providers` field is
 * one list, so one writer per outpost is the only way parallel deploys of several proxy apps cannot overwrite
 * each other's read-modify-write.
 *
 * - create: finds the outpost by exact name (one match required) and PATCHes `providers` to the union of what is
 *   there and `providerPks`, and its `config.authentik_host` (and `authentik_host_browser`) to `authentikHost`:
 *   Authentik sets that only when an admin first opens its UI, and until then the outpost's forward-auth redirects
 *   can name the wrong host (authentik docs, "Embedded Outpost"). Other config keys are kept.
 * - read (refresh): reports which of our providers are still bound (a provider removed by hand shows as drift);
 *   a deleted outpost drops the resource from the state.
 * - diff: a different outpost name replaces; a different provider list updates.
 * - update: removes the providers we bound before and no longer want, adds the new ones, keeps all others.
 * - delete: removes our providers from the outpost and keeps the others; a missing outpost (404) is fine.
 */
import * as pulumi from "@pulumi/pulumi";
import {
  callApi,
  changedFields,
  connectionApis,
  connectionContext,
  pickConnection,
  readOrNull,
  withSecretOutputs,
  type ApiContext,
  type AuthentikApis,
  type AuthentikConnection,
} from "./api";
import { connectionProps, type AuthentikConnectionArgs } from "./connection-args";
import { embeddedOutpostName } from "./defaults";


export interface AuthentikOutpostBindingArgs extends AuthentikConnectionArgs {
  /** Outpost name, matched exactly. Changing it replaces the resource. @default "authentik Embedded Outpost" */
  outpostName?: pulumi.Input<string>;
  /** Proxy provider primary keys to bind (from `AuthentikProxyApp.providerPk`). */
  providerPks: pulumi.Input<pulumi.Input<number>[]>;
  /** URL users reach Authentik at (its route), set as the outpost's `authentik_host`. @default null (left as it is) */
  authentikHost?: pulumi.Input<string | null>;
}

export interface AuthentikOutpostBindingInputs extends AuthentikConnection {
  outpostName: string;
  providerPks: number[];
  authentikHost: string | null;
}

export interface AuthentikOutpostBindingOutputs extends AuthentikOutpostBindingInputs {
  /** Outpost primary key (uuid); also the resource id. */
  outpostPk: string;
}

// `tunnel`: the SSH path the calls take, recorded when it changes (pulumi-engine-2 review B1).
const managedFields = ["url", "token", "tunnel", "service", "providerPks", "authentikHost"] as const satisfies readonly (keyof AuthentikOutpostBindingInputs)[];

const byNumber = (a: number, b: number) => a - b;

function pickInputs(value: AuthentikOutpostBindingInputs): AuthentikOutpostBindingInputs {
  return {
    ...pickConnection(value),
    outpostName: value.outpostName,
    // During a preview the whole list can still be unknown (the engine's sentinel string): keep it as it is.
    providerPks: Array.isArray(value.providerPks) ? [...new Set(value.providerPks)].sort(byNumber) : value.providerPks,
    authentikHost: value.authentikHost ?? null,
  };
}

interface OutpostState {
  pk: string;
  providers: number[];
  config: Record<string, unknown>;
}

async function findOutpost(apis: AuthentikApis, context: ApiContext, name: string): Promise<OutpostState> {
  const list = await callApi(context, `lookup of outpost ${JSON.stringify(name)}`, () => apis.outposts.outpostsInstancesList({ nameIexact: name }));
  const matches = list.results.filter((outpost) => outpost.name === name);
  if (matches.length !== 1) {
    throw new Error(`service ${JSON.stringify(context.service)}: outpostName: Authentik has ${matches.length === 0 ? "no" : matches.length} outpost${matches.length === 1 ? "" : "s"} named ${JSON.stringify(name)}; name exactly one existing outpost (Authentik's own is ${JSON.stringify(embeddedOutpostName)})`);
  }
  return { pk: matches[0].pk, providers: matches[0].providers, config: matches[0].config ?? {} };
}

/**
 * PATCHes the outpost's provider list to `current - remove + add` and its `authentik_host(_browser)` to `host` (when
 * given), keeping every other provider and config key; skips a no-op.
 */
async function rebind(apis: AuthentikApis, context: ApiContext, outpost: OutpostState, remove: number[], add: number[], host: string | null): Promise<void> {
  const wanted = [...new Set([...outpost.providers.filter((pk) => !remove.includes(pk)), ...add])].sort(byNumber);
  const current = [...outpost.providers].sort(byNumber);
  const sameProviders = wanted.length === current.length && wanted.every((pk, index) => pk === current[index]);
  const sameHost = host === null || (outpost.config.authentik_host === host && outpost.config.authentik_host_browser === host);
  if (sameProviders && sameHost) return;
  const config = host === null ? undefined : { ...outpost.config, authentik_host: host, authentik_host_browser: host };
  await callApi(context, `update of outpost ${outpost.pk}`, () =>
    apis.outposts.outpostsInstancesPartialUpdate({ uuid: outpost.pk, patchedOutpostRequest: { providers: wanted, ...(config ? { config } : {}) } }),
  );
}

export const outpostBindingProvider: pulumi.dynamic.ResourceProvider<AuthentikOutpostBindingInputs, AuthentikOutpostBindingOutputs> = {
  async create(raw) {
    const inputs = pickInputs(raw);
    const context = connectionContext(inputs);
    const apis = connectionApis(inputs);
    const outpost = await findOutpost(apis, context, inputs.outpostName);
    await rebind(apis, context, outpost, [], inputs.providerPks, inputs.authentikHost);
    return { id: outpost.pk, outs: { ...inputs, outpostPk: outpost.pk } };
  },

  async read(id, props) {
    const olds = props as AuthentikOutpostBindingOutputs;
    const context = connectionContext(olds);
    const apis = connectionApis(olds);
    const outpost = await readOrNull(context, `read of outpost ${id}`, () => apis.outposts.outpostsInstancesRetrieve({ uuid: id }));
    if (!outpost) return {};
    const outs: AuthentikOutpostBindingOutputs = {
      ...pickInputs(olds),
      outpostName: outpost.name,
      providerPks: olds.providerPks.filter((pk) => outpost.providers.includes(pk)).sort(byNumber),
      // Another host set by hand shows as drift; with none managed, whatever is there is not ours to report.
      authentikHost: olds.authentikHost === null || olds.authentikHost === undefined ? null : typeof outpost.config?.authentik_host === "string" ? outpost.config.authentik_host : null,
      outpostPk: outpost.pk,
    };
    return { id, props: outs };
  },

  async diff(_id, olds, news) {
    const next = pickInputs(news);
    const replaces = olds.outpostName === next.outpostName ? [] : ["outpostName"];
    const changes = changedFields<AuthentikOutpostBindingInputs>(pickInputs(olds), next, managedFields);
    return { changes: replaces.length > 0 || changes.length > 0, replaces };
  },

  async update(id, olds, raw) {
    const inputs = pickInputs(raw);
    const context = connectionContext(inputs);
    const apis = connectionApis(inputs);
    const outpost = await callApi(context, `read of outpost ${id}`, () => apis.outposts.outpostsInstancesRetrieve({ uuid: id }));
    const dropped = olds.providerPks.filter((pk) => !inputs.providerPks.includes(pk));
    await rebind(apis, context, { pk: outpost.pk, providers: outpost.providers, config: outpost.config ?? {} }, dropped, inputs.providerPks, inputs.authentikHost);
    return { outs: { ...inputs, outpostPk: outpost.pk } };
  },

  async delete(id, props) {
    const context = connectionContext(props);
    const apis = connectionApis(props);
    const outpost = await readOrNull(context, `read of outpost ${id}`, () => apis.outposts.outpostsInstancesRetrieve({ uuid: id }));
    if (!outpost) return;
    await rebind(apis, context, { pk: outpost.pk, providers: outpost.providers, config: outpost.config ?? {} }, props.providerPks, [], null);
  },
};

/** NixMox's proxy providers on one outpost (type `pulumi-nodejs:dynamic/nixmox:AuthentikOutpostBinding`). */
export class AuthentikOutpostBinding extends pulumi.dynamic.Resource {
  declare public readonly outpostPk: pulumi.Output<string>;
  declare public readonly providerPks: pulumi.Output<number[]>;

  constructor(name: string, args: AuthentikOutpostBindingArgs, opts?: pulumi.CustomResourceOptions) {
    const props = {
      ...connectionProps(args),
      outpostName: args.outpostName ?? embeddedOutpostName,
      providerPks: args.providerPks,
      authentikHost: args.authentikHost ?? null,
      outpostPk: undefined,
    };
    super(outpostBindingProvider, name, props, withSecretOutputs(opts, ["token", "tunnel"]), "nixmox", "AuthentikOutpostBinding");
  }
}
