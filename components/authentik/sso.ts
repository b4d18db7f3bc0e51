/**
 * `createSsoResources`: one Pulumi resource per object of `planAuthentikObjects(plan)`. The caller decides where
 * they hang (`opts.parent`: the authentik service's component or an `Sso` component) and what they wait for
 * (`opts.dependsOn`: the authentik service's health check, so the API answers before the first call).
 *
 * Resource names are `<prefix>-<role>` (role = the application slug, or `<authentik>-outpost` for the binding);
 * they are part of the users' state, so renaming them needs `aliases`.
 */
import * as pulumi from "@pulumi/pulumi";
import type { Plan } from "../../manifest/plan-types";
import { AuthentikOidcApp } from "./oidc-app";
import { AuthentikOutpostBinding } from "./outpost-binding";
import type { AuthentikTunnel } from "./api";
import { planAuthentikObjects, type AuthentikObjectPlan } from "./plan";
import { AuthentikProxyApp } from "./proxy-app";

/** A value for every authentik service, or one function of the authentik service's name. */
export type PerAuthentik<T> = T | ((authentik: string) => T);

export interface SsoArgs {
  /** Authentik base URL. @default `http://<authentik ip>:9000` from the plan */
  url?: PerAuthentik<pulumi.Input<string>>;
  /** API token (`nixmox:secrets.<authentik>.bootstrap_token`); stored as a secret. */
  token: PerAuthentik<pulumi.Input<string>>;
  /**
   * Client secret of each confidential OIDC client, keyed by its application slug: the service name for the service's
   * client (`nixmox:secrets.<service>.oidc_client_secret`), "<service>-<route>" for a route's own
   * (`nixmox:secrets.<service>.<route>_oidc_client_secret`).
   */
  clientSecrets: Record<string, pulumi.Input<string>>;
  /** SSH to the authentik host, through which the API is called (security review H2). @default none: direct */
  tunnel?: PerAuthentik<pulumi.Input<AuthentikTunnel>>;
  /** Resources each object waits for besides `opts.dependsOn` (e.g. the client's rebuild). @default none */
  dependsOnFor?: (object: AuthentikObjectPlan) => pulumi.Resource[];
  /** First part of every resource name. @default "sso" */
  namePrefix?: string;
}

export interface SsoResources {
  /** By application slug (the client's service name for its own client, "<service>-<route>" for a route's). */
  oidcApps: Record<string, AuthentikOidcApp>;
  /** By application slug. */
  proxyApps: Record<string, AuthentikProxyApp>;
  /** By authentik service. */
  outpostBindings: Record<string, AuthentikOutpostBinding>;
}

/** `opts.dependsOn` as a list (it is a single resource or a list when set from code). */
function asArray(dependsOn: pulumi.CustomResourceOptions["dependsOn"]): pulumi.Input<pulumi.Resource>[] {
  if (dependsOn === undefined) return [];
  return Array.isArray(dependsOn) ? dependsOn : [dependsOn as pulumi.Input<pulumi.Resource>];
}

function pick<T>(value: PerAuthentik<T>, authentik: string): T {
  return typeof value === "function" ? (value as (authentik: string) => T)(authentik) : value;
}

/** Creates the Authentik objects of `plan`; throws before creating anything when a client secret is missing. */
export function createSsoResources(plan: Plan, args: SsoArgs, opts?: pulumi.CustomResourceOptions): SsoResources {
  const objects = planAuthentikObjects(plan);
  const missing = objects
    .flatMap((object) => (object.kind === "oidc-app" && object.clientSecret !== null ? [object] : []))
    .filter((object) => args.clientSecrets[object.slug] === undefined);
  if (missing.length > 0) {
    throw new Error(missing.map((object) => `service ${JSON.stringify(object.service)}: the OIDC client secret is missing; pass clientSecrets[${JSON.stringify(object.slug)}] (the value of nixmox:secrets.${object.service}.${object.clientSecret}, or a generated secret)`).join("\n"));
  }
  const prefix = args.namePrefix ?? "sso";
  const resources: SsoResources = { oidcApps: {}, proxyApps: {}, outpostBindings: {} };
  for (const object of objects) {
    const url = args.url === undefined ? object.url : pick(args.url, object.authentik);
    const token = pick(args.token, object.authentik);
    const tunnel = args.tunnel === undefined ? null : pick(args.tunnel, object.authentik);
    const extra = args.dependsOnFor?.(object) ?? [];
    const objectOpts: pulumi.CustomResourceOptions = extra.length === 0 ? { ...opts } : { ...opts, dependsOn: [...asArray(opts?.dependsOn), ...extra] };
    switch (object.kind) {
      case "oidc-app":
        resources.oidcApps[object.slug] = new AuthentikOidcApp(`${prefix}-${object.role}`, {
          url,
          token,
          tunnel,
          service: object.service,
          slug: object.slug,
          name: object.name,
          providerName: object.providerName,
          clientId: object.clientId,
          clientType: object.clientType,
          clientSecret: object.clientSecret === null ? null : args.clientSecrets[object.slug],
          redirectUris: object.redirectUris,
          scopes: object.scopes,
          launchUrl: object.launchUrl,
        }, objectOpts);
        break;
      case "proxy-app":
        resources.proxyApps[object.slug] = new AuthentikProxyApp(`${prefix}-${object.role}`, {
          url,
          token,
          tunnel,
          service: object.service,
          slug: object.slug,
          name: object.name,
          providerName: object.providerName,
          externalHost: object.externalHost,
          mode: object.mode,
        }, objectOpts);
        break;
      case "outpost-binding":
        resources.outpostBindings[object.authentik] = new AuthentikOutpostBinding(`${prefix}-${object.role}`, {
          url,
          token,
          tunnel,
          service: object.authentik,
          outpostName: object.outpostName,
          authentikHost: object.authentikHost,
          providerPks: object.proxyApps.map((slug) => resources.proxyApps[slug].providerPk),
        }, objectOpts);
        break;
      default: {
        const unreachable: never = object;
        throw new Error(`unknown Authentik object ${JSON.stringify(unreachable)}`);
      }
    }
  }
  return resources;
}
