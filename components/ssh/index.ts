// The dynamic resource in this folder (ssh-host-key.ts) is imported by path: re-exporting it here would load the Pulumi SDK into every user of these helpers (e.g. `nixmox status`).
export * from "./host-key";
export * from "./connection";
export * from "./quote";
