import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { renderManifestReference } from "../cli/schema-docs";
import { manifestJsonSchema } from "../manifest";

describe("manifest reference (docs/manifest-reference.md)", () => {
  it("fails when the committed reference is out of date with the zod schema (regenerate: npx nixmox schema --markdown docs/manifest-reference.md)", () => {
    const committed = readFileSync(path.join(__dirname, "..", "docs", "manifest-reference.md"), "utf8");
    assert.equal(committed, renderManifestReference(manifestJsonSchema()));
  });

  it("documents every seed field with its default", () => {
    const text = renderManifestReference(manifestJsonSchema());
    for (const row of [
      "| `services.<name>.depends_on` | list of string |  | `[]` |",
      "| `services.<name>.interface.health.retries` | integer (≥ 1, ≤ 10000) |  |  | Consecutive failures (after start_period) that make the service unhealthy. Omitted: the manifest's retry_attempts, else 3. |",
      "| `services.<name>.interface.db.port` | integer (≥ 1, ≤ 65535) |  | `5432` |",
      "| `network.vlan_tag` | integer (≥ 1, ≤ 4094) \\| null |  | `null` |",
    ]) {
      assert.ok(text.includes(row), `missing row: ${row}`);
    }
  });
});
