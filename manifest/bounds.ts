/**
 * Bounds on manifest data before anything walks it recursively (security review L9): every format's loader and
 * `validateManifest` check them, so a hostile file gets a clear error instead of a stack overflow or a hang.
 */
import { ManifestError, type Problem } from "./problems";

/** How deep a manifest may nest lists and attribute sets; a real one needs about 10 (a route's auth's oidc's list). */
export const maxManifestDepth = 64;

/** How many values a manifest may hold, counting a YAML alias's target each time it is used: 10,000 services need
 * about 600,000. */
export const maxManifestValues = 20_000_000;

export const tooDeep = `is nested more than ${maxManifestDepth} levels deep, far beyond any manifest (about 10 levels); is this the right file?`;

/**
 * The shape of plain data, walked without recursion and given up past the limits: a hostile file may nest 200,000
 * levels (every recursive walk after the parser, the schema's or structuredClone's, would exhaust the call stack),
 * or a YAML alias bomb may expand a few lines into billions of values, which parsing shares but every later walk
 * visits (security review L9).
 */
export function dataShape(value: unknown, limits = { depth: maxManifestDepth, values: maxManifestValues }): { depth: number; values: number } {
  let depth = 0;
  let values = 0;
  // Two parallel stacks (objects and their depth), so the walk allocates nothing per value; only objects are pushed.
  const items: object[] = [];
  const depths: number[] = [];
  if (value !== null && typeof value === "object") {
    items.push(value);
    depths.push(1);
  }
  values += 1;
  while (items.length > 0 && depth <= limits.depth && values <= limits.values) {
    const item = items.pop() as Record<string, unknown>;
    const level = depths.pop()!;
    if (level > depth) depth = level;
    for (const key in item) {
      values += 1;
      const child = item[key];
      if (child !== null && typeof child === "object") {
        items.push(child);
        depths.push(level + 1);
      }
    }
  }
  return { depth, values };
}

/** Data the loader has just bounded, so that validating it does not walk it a second time. */
const bounded = new WeakSet<object>();

/** The data, or a ManifestError when it nests too deeply or holds too much to validate. */
export function boundedData(source: string, data: unknown): unknown {
  if (data !== null && typeof data === "object" && bounded.has(data)) return data;
  const shape = dataShape(data);
  const problem = (message: string): Problem => ({ subject: "manifest", field: "", message });
  if (shape.depth > maxManifestDepth) throw new ManifestError(source, [problem(tooDeep)]);
  if (shape.values > maxManifestValues) {
    throw new ManifestError(source, [problem(`holds more than ${maxManifestValues.toLocaleString("en")} values (counting each use of a YAML alias), far beyond any manifest; is this the right file?`)]);
  }
  if (data !== null && typeof data === "object") bounded.add(data);
  return data;
}

