/**
 * Plan → the Authentik objects NixMox manages: pure, synchronous, deterministic (no Pulumi, no I/O).
 *
 * - every `oidc` client becomes one OAuth2 provider + application (slug = the service name);
 * - every domain of a `forward_auth` client becomes one proxy provider (mode `forward_single`, see proxy-app.ts
 *   for why) + application (slug = `<service>-<domain with dots as dashes>`, so a service can have an OIDC client
 *   and forward-auth routes at the same time);
 * - every authentik service with forward-auth clients gets one binding of those providers to its embedded outpost.
 *
 * Slugs longer than Authentik's 50 characters (Django `SlugField`) are cut and suffixed with a short hash of the
 * full slug, so they stay unique and stable.
 */
import { createHash } from "node:crypto";
import { authentikOutpostPort } from "../../manifest/plan";
import type { Plan } from "../../manifest/plan-types";
import { embeddedOutpostName } from "./defaults";

export const maxSlugLength = 50;

export interface OidcAppPlan {
  kind: "oidc-app";
  /** Unique role used in the Pulumi resource name (`<prefix>-<role>`). */
  role: string;
  /** The service that uses the client. */
  service: string;
  /** The authentik service that holds the client. */
  authentik: string;
  /** Authentik base URL derived from the plan: `http://<authentik ip>:9000`. */
  url: string;
  slug: string;
  name: string;
  providerName: string;
  clientId: string;
  clientType: "confidential" | "public";
  /** Secret name (in `nixmox:secrets.<service>`) of the client secret; null for public clients. */
  clientSecret: string | null;
  redirectUris: string[];
  scopes: string[];
  launchUrl: string | null;
}

export interface ProxyAppPlan {
  kind: "proxy-app";
  role: string;
  service: string;
  authentik: string;
  url: string;
  slug: string;
  name: string;
  providerName: string;
  domain: string;
  externalHost: string;
  mode: "forward_single";
}

export interface OutpostBindingPlan {
  kind: "outpost-binding";
  role: string;
  /** The authentik service whose outpost receives the providers. */
  authentik: string;
  url: string;
  outpostName: string;
  /** URL users reach this authentik at (its first route), set as the outpost's authentik_host; null without a route. */
  authentikHost: string | null;
  /** Roles of the proxy apps bound there, sorted. */
  proxyApps: string[];
}

export type AuthentikObjectPlan = OidcAppPlan | ProxyAppPlan | OutpostBindingPlan;

/** A slug Authentik accepts: at most 50 characters; longer ones keep a stable hash suffix. */
export function authentikSlug(value: string): string {
  if (value.length <= maxSlugLength) return value;
  const hash = createHash("sha256").update(value).digest("hex").slice(0, 8);
  return `${value.slice(0, maxSlugLength - hash.length - 1).replace(/-+$/, "")}-${hash}`;
}

/** The Authentik objects for `plan.authClients`, in plan order, followed by one outpost binding per authentik service. */
export function planAuthentikObjects(plan: Plan): AuthentikObjectPlan[] {
  const byName = new Map(plan.services.map((service) => [service.name, service]));
  const urlOf = (authentik: string): string => {
    const service = byName.get(authentik);
    if (!service) throw new Error(`service ${JSON.stringify(authentik)}: is named as an SSO provider but is not an enabled service of the plan`);
    return `http://${service.ip}:${authentikOutpostPort}`;
  };
  // The URL users reach an authentik at: its first route (https unless that route is plain HTTP).
  const publicUrlOf = (authentik: string): string | null => {
    const route = plan.routes.find((candidate) => candidate.service === authentik);
    return route ? `${route.tls === "off" ? "http" : "https"}://${route.domain}` : null;
  };
  const objects: AuthentikObjectPlan[] = [];
  const proxyAppsByAuthentik = new Map<string, string[]>();
  for (const client of plan.authClients) {
    switch (client.type) {
      case "oidc": {
        // The service's own client keeps the service name as slug (and resource name); a route's client is "<service>-<route>".
        const slug = authentikSlug(client.slug);
        objects.push({
          kind: "oidc-app",
          role: slug,
          service: client.service,
          authentik: client.provider,
          url: urlOf(client.provider),
          slug,
          name: client.route === null ? client.service : `${client.service} (${client.route})`,
          providerName: `nixmox-${slug}`,
          clientId: client.clientId,
          clientType: client.clientType,
          clientSecret: client.clientSecret,
          redirectUris: [...client.redirectUris],
          scopes: [...client.scopes],
          launchUrl: client.launchUrl,
        });
        break;
      }
      case "forward_auth": {
        for (const domain of client.domains) {
          const slug = authentikSlug(`${client.service}-${domain.replace(/\./g, "-")}`);
          const route = plan.routes.find((candidate) => candidate.service === client.service && candidate.domain === domain && candidate.auth === "forward_auth");
          const scheme = route?.tls === "off" ? "http" : "https";
          objects.push({
            kind: "proxy-app",
            role: slug,
            service: client.service,
            authentik: client.provider,
            url: urlOf(client.provider),
            slug,
            name: `${client.service} (${domain})`,
            providerName: `nixmox-${slug}`,
            domain,
            externalHost: `${scheme}://${domain}`,
            mode: "forward_single",
          });
          const list = proxyAppsByAuthentik.get(client.provider) ?? [];
          list.push(slug);
          proxyAppsByAuthentik.set(client.provider, list);
        }
        break;
      }
      default: {
        const unreachable: never = client;
        throw new Error(`unknown auth client ${JSON.stringify(unreachable)}`);
      }
    }
  }
  for (const authentik of [...proxyAppsByAuthentik.keys()].sort()) {
    objects.push({
      kind: "outpost-binding",
      role: authentikSlug(`${authentik}-outpost`),
      authentik,
      url: urlOf(authentik),
      outpostName: embeddedOutpostName,
      authentikHost: publicUrlOf(authentik),
      proxyApps: [...proxyAppsByAuthentik.get(authentik)!].sort(),
    });
  }
  const seen = new Map<string, AuthentikObjectPlan>();
  for (const object of objects) {
    if (object.kind === "outpost-binding") continue;
    const key = `${object.authentik}/${object.slug}`;
    const first = seen.get(key);
    if (first && first.kind !== "outpost-binding") {
      throw new Error(`service ${JSON.stringify(object.service)}: its Authentik application slug ${JSON.stringify(object.slug)} is already used by service ${JSON.stringify(first.service)}; rename one of the services or routes`);
    }
    seen.set(key, object);
  }
  return objects;
}
