// The dynamic resource in this folder (health-check.ts) is imported by path: re-exporting it here would load the Pulumi SDK into every user of these helpers (e.g. `nixmox status`).
export * from "./probes";
export * from "./runner";
