export * from "./delivery";
export * from "./check";
export * from "./values";
