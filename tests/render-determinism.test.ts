// Determinism: the same manifest, whatever the order of its keys and of its order-free lists, renders
// byte-identical host directories; nothing of the rendering machine (paths, time) leaks into them.
// Real manifest evaluation and the real renderer; nothing is mocked.
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import * as path from "node:path";
import fc from "fast-check";
import type { RenderedHost } from "../render";
import { exampleManifestData, exampleManifestDir, renderData } from "./golden/render-fixtures";

/** Lists whose order carries no meaning in the manifest. */
const orderFreeLists = new Set(["ports", "depends_on", "root"]);

function shuffled<T>(items: T[], random: () => number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/** Rebuilds every object with its keys in a random order, and shuffles the order-free lists. */
function shuffleDeep(value: unknown, random: () => number, key = ""): unknown {
  if (Array.isArray(value)) {
    const items = value.map((item) => shuffleDeep(item, random));
    return orderFreeLists.has(key) ? shuffled(items, random) : items;
  }
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    return Object.fromEntries(shuffled(Object.keys(record), random).map((k) => [k, shuffleDeep(record[k], random, k)]));
  }
  return value;
}

function files(hosts: RenderedHost[]): Record<string, string> {
  return Object.fromEntries(hosts.flatMap((host) => Object.entries(host.files).map(([file, content]) => [`${host.service}/${file}`, content])));
}

describe("render: determinism", function () {
  this.timeout(60_000);
  let base: Record<string, any>;
  let baseline: RenderedHost[];

  before(async () => {
    base = await exampleManifestData();
    base.network.ssh_keys.root.push("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG90aGVyLWV4YW1wbGUta2V5LWZvci10ZXN0cy1vbmx5 second@nixmox");
    baseline = renderData(base);
  });

  it("renders identical bytes for the same manifest with shuffled keys and order-free lists", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), (seed) => {
        let state = seed;
        const random = () => {
          state = (state * 48271) % 2147483647;
          return state / 2147483647;
        };
        const hosts = renderData(shuffleDeep(base, random));
        assert.deepEqual(files(hosts), files(baseline));
        assert.deepEqual(hosts.map((h) => h.contentHash), baseline.map((h) => h.contentHash));
      }),
      { numRuns: 25, seed: 20261127 },
    );
  });

  it("writes no absolute path of the rendering machine and no timestamp into any file", () => {
    const forbidden = [exampleManifestDir, path.resolve(__dirname, ".."), tmpdir(), process.cwd()];
    for (const [file, content] of Object.entries(files(baseline))) {
      for (const text of forbidden) assert.equal(content.includes(text), false, `${file} contains ${text}`);
      assert.doesNotMatch(content, /20[0-9]{2}-[01][0-9]-[0-3][0-9]T/, file);
    }
  });

  it("references only files inside the host's own directory from flake.nix", () => {
    for (const host of baseline) {
      const references = [...host.files["flake.nix"].matchAll(/\.\/([A-Za-z0-9._/+-]+)/g)].map((match) => match[1]);
      assert.ok(references.length >= 3, host.service);
      for (const reference of references) assert.ok(reference in host.files, `${host.service}: ${reference}`);
    }
  });
});
