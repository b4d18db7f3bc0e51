/**
 * The fake Authentik API of the twin (twin/authentik/fake-api.ts) on 127.0.0.1 for the provider tests, and the inputs
 * of the objects they create.
 */
import type { AuthentikOidcAppInputs, AuthentikProxyAppInputs } from "../../components/authentik";
import { FakeAuthentik } from "../../twin/authentik/fake-api";

export { FakeAuthentik, embeddedOutpostPk, flowPks, scopePks, signingKeyPkValue, type RecordedRequest } from "../../twin/authentik/fake-api";

export async function startFakeAuthentik(token: string): Promise<FakeAuthentik> {
  const server = new FakeAuthentik(token);
  await server.start();
  return server;
}

/** Inputs of the vaultwarden OIDC client the provider tests create against this API. */
export const oidcAppInputs = (url: string, token: string, overrides: Partial<AuthentikOidcAppInputs> = {}): AuthentikOidcAppInputs => ({
  url,
  token,
  tunnel: null,
  service: "vaultwarden",
  slug: "vaultwarden",
  name: "vaultwarden",
  providerName: "nixmox-vaultwarden",
  clientId: "vaultwarden",
  clientType: "confidential",
  clientSecret: "client-secret-9b2d7c41",
  redirectUris: ["https://vault.nixmox.lan/identity/connect/oidc-signin"],
  scopes: ["openid", "email", "profile"],
  authorizationFlow: "default-provider-authorization-implicit-consent",
  invalidationFlow: "default-provider-invalidation-flow",
  signingKey: "authentik Self-signed Certificate",
  launchUrl: "https://vault.nixmox.lan/",
  ...overrides,
});

/** Inputs of the media forward-auth client the provider tests create against this API. */
export const proxyAppInputs = (url: string, token: string, overrides: Partial<AuthentikProxyAppInputs> = {}): AuthentikProxyAppInputs => ({
  url,
  token,
  tunnel: null,
  service: "media",
  slug: "media-jellyfin-nixmox-lan",
  name: "media (jellyfin.nixmox.lan)",
  providerName: "nixmox-media-jellyfin-nixmox-lan",
  externalHost: "https://jellyfin.nixmox.lan",
  mode: "forward_single",
  cookieDomain: null,
  authorizationFlow: "default-provider-authorization-implicit-consent",
  invalidationFlow: "default-provider-invalidation-flow",
  launchUrl: "https://jellyfin.nixmox.lan",
  ...overrides,
});
