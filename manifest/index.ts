export { defaultManifestPath, loadManifest, loadManifestData, loadPlan } from "./load";
export { formatNixError } from "./nix-process";
export { authentikOutpostPort, defaultBaseDn, ldapOutpostPort, outpostTokenDir, pgadminRole, planManifest, postgresPasswordsUnit, radiusOutpostPort, secretsDir } from "./plan";
export { appOfRoute, kindSpecs, outpostUnit, type KindSpec } from "./kinds";
export * from "./plan-types";
export { ManifestError, formatProblem, type Problem } from "./problems";
export { manifestJsonSchema, manifestSchema, type Manifest, type ManifestInput } from "./schema";
export { validateManifest } from "./validate";
