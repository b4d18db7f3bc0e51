/**
 * The manifest reference (docs/manifest-reference.md), generated from the JSON Schema that zod produces,
 * so the schema stays the one source of truth for shape, defaults and documentation.
 */
type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
};

interface Row {
  field: string;
  type: string;
  required: boolean;
  defaultValue: string;
  description: string;
}

function typeOf(schema: JsonSchema): string {
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(" \\| ");
  const variants = schema.anyOf ?? schema.oneOf;
  if (variants) return variants.map(typeOf).join(" \\| ");
  const type = Array.isArray(schema.type) ? schema.type.join(" \\| ") : schema.type ?? "any";
  const range: string[] = [];
  // zod's int() adds the safe-integer bounds; they say nothing to a reader.
  if (schema.minimum !== undefined && schema.minimum > Number.MIN_SAFE_INTEGER) range.push(`≥ ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) range.push(`> ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined && schema.maximum < Number.MAX_SAFE_INTEGER) range.push(`≤ ${schema.maximum}`);
  if (type === "array" && schema.items) return `list of ${typeOf(schema.items)}`;
  if (type === "object" && typeof schema.additionalProperties === "object" && !schema.properties) return "attribute set";
  return range.length > 0 ? `${type} (${range.join(", ")})` : type;
}

function walk(schema: JsonSchema, path: string, required: boolean, rows: Row[]): void {
  rows.push({
    field: path,
    type: typeOf(schema),
    required,
    defaultValue: schema.default === undefined ? "" : JSON.stringify(schema.default),
    description: (schema.description ?? "").replace(/\|/g, "\\|").replace(/</g, "&lt;"),
  });
  if (schema.properties) {
    for (const key of Object.keys(schema.properties).sort()) {
      walk(schema.properties[key], `${path}.${key}`, schema.required?.includes(key) ?? false, rows);
    }
  }
  if (typeof schema.additionalProperties === "object") {
    const value = schema.additionalProperties;
    if (value.properties || value.anyOf) walk(value, `${path}.<name>`, false, rows);
  }
  if (schema.items && (schema.items.properties || schema.items.anyOf || schema.items.oneOf)) {
    const variants = schema.items.anyOf ?? schema.items.oneOf;
    if (variants) variants.forEach((variant) => walk(variant, `${path}[]`, false, rows));
    else walk(schema.items, `${path}[]`, false, rows);
  }
  const unions = schema.anyOf ?? schema.oneOf;
  if (unions && !schema.properties) {
    for (const variant of unions) {
      if (variant.properties) for (const key of Object.keys(variant.properties).sort()) {
        walk(variant.properties[key], `${path}.${key}`, variant.required?.includes(key) ?? false, rows);
      } else if (typeof variant.additionalProperties === "object") {
        walk(variant.additionalProperties, `${path}.<route>`, false, rows);
      }
    }
  }
}

/** Markdown tables of every manifest field: type, required, default and description. */
export function renderManifestReference(schema: JsonSchema): string {
  const sections: string[] = [
    "# Manifest reference",
    "",
    "Generated from the zod schema (`manifest/schema.ts`) by `npx nixmox schema --markdown docs/manifest-reference.md`; do not edit by hand.",
    "Editors can validate manifests with `manifest/manifest.schema.json` (`npx nixmox schema --out manifest/manifest.schema.json`).",
    "`core_services.<name>` takes exactly the same fields as `services.<name>`.",
  ];
  for (const top of ["network", "services"]) {
    const rows: Row[] = [];
    const topSchema = schema.properties![top];
    walk(topSchema, top, schema.required?.includes(top) ?? false, rows);
    sections.push("", `## ${top}`, "", "| field | type | required | default | description |", "|---|---|---|---|---|");
    for (const row of rows) {
      sections.push(`| \`${row.field}\` | ${row.type} | ${row.required ? "yes" : ""} | ${row.defaultValue ? `\`${row.defaultValue}\`` : ""} | ${row.description} |`);
    }
  }
  return `${sections.join("\n")}\n`;
}
