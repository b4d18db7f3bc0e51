export { ConfigEvaluationError, configBuilders, renderConfigs, renderHostConfigs, type HostConfigs } from "./configs";
export { renderFlakeLock, renderFlakeNix } from "./flake";
export {
  appKinds,
  managedCaSecretPlans,
  managedCaSecrets,
  containerInterface,
  hostDataSchemaVersion,
  planHostData,
  type AppData,
  type AppInstanceData,
  type DatabaseData,
  type OidcData,
  type OutpostsData,
  type RouteData,
  type CaddyData,
  type DnsData,
  type HostData,
  type HostDataOptions,
  type HostFacts,
  type PostgresqlData,
} from "./host-data";
export { contentHash, hostModules, hostShippedFiles, renderAll, renderHost, shippedFiles, type RenderedHost, type RenderOptions, type RenderSources } from "./host";
export { defaultNixpkgsPin, defaultStateVersion, resolveNixpkgsPin, type NixpkgsPin } from "./nixpkgs-pin";
export { fileSources, shippedModulesDir } from "./sources";
export { StandInCaError, standInCaCertificate, standInCaSubject } from "./stand-in-ca";
export { stableJson } from "./stable-json";
export { renderIndexFile, writeRenderedHosts } from "./write";
