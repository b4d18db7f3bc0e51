/**
 * Proxmox VE property strings (`name=eth0,bridge=vmbr0,ip=…`), as pve-common's PVE/JSONSchema.pm parses and prints
 * them (`parse_property_string`, `print_property_string`): comma-separated `key=value` pairs, an optional default
 * key written bare in first place (`local-lvm:vm-100-disk-0,size=8G`), required keys next, then the rest sorted.
 */

export interface PropertyFormat {
  /** The key a bare first value belongs to (`volume` of a mount point). */
  defaultKey?: string;
  /** Keys printed right after the default key, sorted (PVE prints required keys first). */
  required?: string[];
  /** Every key the format knows; another key is an error, as in PVE. */
  keys: string[];
}

/** `a=1,b=2` → `{a: "1", b: "2"}`; throws naming the key that the format does not know. */
export function parsePropertyString(text: string, format: PropertyFormat): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [index, part] of text.split(",").entries()) {
    if (part === "") continue;
    const equals = part.indexOf("=");
    if (equals < 0) {
      if (index === 0 && format.defaultKey) {
        result[format.defaultKey] = part;
        continue;
      }
      throw new Error(`value without key, but schema does not define a default key: '${part}'`);
    }
    const key = part.slice(0, equals);
    if (!format.keys.includes(key)) throw new Error(`invalid format - unknown key '${key}'`);
    if (key in result) throw new Error(`invalid format - duplicate key '${key}'`);
    result[key] = part.slice(equals + 1);
  }
  for (const key of format.required ?? []) {
    if (!(key in result)) throw new Error(`invalid format - missing key '${key}'`);
  }
  return result;
}

/** The inverse of `parsePropertyString`, in PVE's key order. */
export function printPropertyString(data: Record<string, string | number | undefined>, format: PropertyFormat): string {
  const parts: string[] = [];
  const done = new Set<string>();
  const add = (key: string, bare: boolean) => {
    const value = data[key];
    if (done.has(key) || value === undefined) return;
    done.add(key);
    const text = String(value);
    if (text.includes(",")) throw new Error(`illegal value with commas for ${key}`);
    parts.push(bare ? text : `${key}=${text}`);
  };
  if (format.defaultKey) add(format.defaultKey, true);
  for (const key of [...(format.required ?? [])].sort()) add(key, false);
  for (const key of Object.keys(data).sort()) add(key, false);
  return parts.join(",");
}
