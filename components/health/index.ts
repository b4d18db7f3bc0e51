export * from "./probes";
export * from "./runner";
