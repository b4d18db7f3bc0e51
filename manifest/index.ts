export { defaultManifestPath, formatNixError, loadManifest, loadManifestData, loadPlan } from "./load";
export { authentikOutpostPort, planManifest, postgresPasswordsUnit, secretsDir } from "./plan";
export * from "./plan-types";
export { ManifestError, formatProblem, type Problem } from "./problems";
export { manifestJsonSchema, manifestSchema, type Manifest, type ManifestInput } from "./schema";
export { validateManifest } from "./validate";
