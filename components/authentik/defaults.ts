/**
 * Names of the objects every Authentik install ships with; NixMox looks them up instead of creating its own.
 * Source: authentik's default blueprints (blueprints/default/flow-default-provider-*.yaml,
 * blueprints/system/providers-oauth2.yaml) and the embedded outpost created at first start.
 */

/** Authorization flow that grants access without a consent screen. */
export const defaultAuthorizationFlow = "default-provider-authorization-implicit-consent";
/** Flow run when a user logs out of an application. */
export const defaultInvalidationFlow = "default-provider-invalidation-flow";
/** The certificate Authentik generates on first start; tokens are signed RS256 with it. */
export const defaultSigningKey = "authentik Self-signed Certificate";
/** Scopes an OIDC client gets when the manifest names none (Authentik's managed scope mappings). */
export const defaultScopes: readonly string[] = ["openid", "email", "profile"];
/** The outpost every Authentik install runs inside its server process (answers forward auth on port 9000). */
export const embeddedOutpostName = "authentik Embedded Outpost";
