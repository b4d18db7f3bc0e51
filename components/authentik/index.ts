export * from "./defaults";
export { fetchThroughSsh, type AuthentikTunnel } from "./api";
export { AuthentikOidcApp, oidcAppProvider, type AuthentikOidcAppArgs, type AuthentikOidcAppInputs, type AuthentikOidcAppOutputs } from "./oidc-app";
export { AuthentikProxyApp, proxyAppProvider, type AuthentikProxyAppArgs, type AuthentikProxyAppInputs, type AuthentikProxyAppOutputs, type ForwardAuthMode } from "./proxy-app";
export {
  AuthentikOutpostBinding,
  outpostBindingProvider,
  type AuthentikOutpostBindingArgs,
  type AuthentikOutpostBindingInputs,
  type AuthentikOutpostBindingOutputs,
} from "./outpost-binding";
export { AuthentikOutpost, outpostObjectNames, outpostProvider, type AuthentikOutpostArgs, type AuthentikOutpostInputs, type AuthentikOutpostOutputs, type OutpostType } from "./outpost";
export { authentikSlug, maxSlugLength, planAuthentikObjects, type AuthentikObjectPlan, type OidcAppPlan, type OutpostBindingPlan, type ProxyAppPlan } from "./plan";
export { createSsoResources, type PerAuthentik, type SsoArgs, type SsoResources } from "./sso";
