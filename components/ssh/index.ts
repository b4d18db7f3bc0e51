export * from "./host-key";
export * from "./connection";
export * from "./quote";
