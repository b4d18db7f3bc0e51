/**
 * What a dynamic provider receives for an input that is not known yet. During a preview (and the preview
 * `pulumi up` runs first), outputs of resources not created yet are unknown; the engine hands them to a dynamic
 * provider's `check`/`diff` as this sentinel string (@pulumi/pulumi runtime/rpc.js `unknownValue`; the plugin
 * passes `req.getNews().toJavaScript()` as is, cmd/dynamic-provider/index.js `check`).
 *
 * A literal, not `pulumi.runtime.unknownValue`: providers are serialized with everything they capture, and this
 * keeps the SDK out of their closures (tests/engine-dynamic-providers.test.ts checks both).
 */
export const unknownValue = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** True when `value` is, or contains anywhere inside, the engine's unknown sentinel. */
export function containsUnknown(value: unknown): boolean {
  if (value === unknownValue) return true;
  if (Array.isArray(value)) return value.some(containsUnknown);
  if (value !== null && typeof value === "object") return Object.values(value).some(containsUnknown);
  return false;
}
