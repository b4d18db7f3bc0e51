export * from "./delivery";
export * from "./check";
export * from "./values";
export * from "./stack-file";
export * from "./sops";
export * from "./import";
