// Pure property tests, no mocks: random mutations of a valid manifest give a plan or a ManifestError, never another exception.
import assert from "node:assert/strict";
import fc from "fast-check";
import * as path from "node:path";
import { renderGraph, renderPlanJson, renderPlanText } from "../cli/views";
import { ManifestError, formatProblem, loadManifestData, type Plan } from "../manifest";
import { renderAll } from "../render";
import { checkDeployable, moduleAssertionFailures, renderSources } from "./support/deployable";
import { deepClone, planOf, seedManifest, smallManifest, type RawManifest } from "./support/manifests";

type Path = Array<string | number>;

/** Every path to a value inside the manifest (object keys and list items), root excluded. */
function pathsOf(value: unknown, prefix: Path = [], out: Path[] = []): Path[] {
  if (Array.isArray(value)) {
    value.forEach((item, index) => {
      out.push([...prefix, index]);
      pathsOf(item, [...prefix, index], out);
    });
  } else if (value && typeof value === "object") {
    for (const key of Object.keys(value)) {
      out.push([...prefix, key]);
      pathsOf((value as Record<string, unknown>)[key], [...prefix, key], out);
    }
  }
  return out;
}

/** Paths to objects (where a key can be added), root included. */
function objectPathsOf(value: unknown): Path[] {
  return [[], ...pathsOf(value)].filter((path) => {
    const target = getAt(value, path);
    return target !== null && typeof target === "object" && !Array.isArray(target);
  });
}

function getAt(root: unknown, path: Path): unknown {
  let value = root;
  for (const key of path) value = (value as Record<string | number, unknown>)[key];
  return value;
}

function setAt(root: RawManifest, path: Path, value: unknown): void {
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>;
  Object.defineProperty(parent, path[path.length - 1], { value, enumerable: true, writable: true, configurable: true });
}

function deleteAt(root: RawManifest, path: Path): void {
  const parent = getAt(root, path.slice(0, -1));
  const key = path[path.length - 1];
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else delete (parent as Record<string | number, unknown>)[key];
}

/** Values that hit the edges of the rules: names of services, addresses, shell metacharacters, odd numbers. */
const interestingValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constantFrom(
    "", "caddy", "postgresql", "authentik", "dns", "vaultwarden", "media", "mail", "missing", "__proto__", "constructor",
    "192.168.99.10", "192.168.99.11", "192.168.99.0", "192.168.99.255", "10.0.0.1", "host:80", "192.168.99.14:0",
    "a;rm -rf /", "$(x)", "`id`", "line\nbreak", "{", "}", "nixmox.lan", "auth.nixmox.lan", "caddy.nixmox.lan",
    "modules/x.nix", "../escape.nix", "custom", "oidc", "forward_auth", "acme", "/", "/guacamole",
    0, -1, 1, 22, 65535, 65536, 100, 1e300, 0.5, Number.NaN, Number.POSITIVE_INFINITY, true, false, null,
    [], {}, ["caddy"], ["authentik", "postgresql"], { domain: "x.nixmox.lan", upstream: "192.168.99.30:80" },
  ),
);

const newKey = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("depend_on", "password", "api_token", "__proto__", "proxy", "enable", "kind", "hostnme"));

type Mutation =
  | { kind: "set"; at: number; value: unknown }
  | { kind: "delete"; at: number }
  | { kind: "add"; at: number; key: string; value: unknown }
  | { kind: "rename"; at: number; key: string }
  | { kind: "copy"; from: number; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: interestingValue }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("add" as const), at: fc.nat(), key: newKey, value: interestingValue }),
  fc.record({ kind: fc.constant("rename" as const), at: fc.nat(), key: newKey }),
  fc.record({ kind: fc.constant("copy" as const), from: fc.nat(), at: fc.nat() }),
);

function applyMutation(manifest: RawManifest, change: Mutation): void {
  const paths = pathsOf(manifest);
  if (paths.length === 0) return;
  const path = paths[change.at % paths.length];
  switch (change.kind) {
    case "set":
      setAt(manifest, path, deepClone(change.value));
      break;
    case "delete":
      deleteAt(manifest, path);
      break;
    case "add": {
      const objects = objectPathsOf(manifest);
      const target = getAt(manifest, objects[change.at % objects.length]) as Record<string, unknown>;
      Object.defineProperty(target, change.key, { value: deepClone(change.value), enumerable: true, writable: true, configurable: true });
      break;
    }
    case "rename": {
      const parent = getAt(manifest, path.slice(0, -1));
      if (Array.isArray(parent)) break;
      const value = getAt(manifest, path);
      deleteAt(manifest, path);
      setAt(manifest, [...path.slice(0, -1), change.key], value);
      break;
    }
    case "copy":
      setAt(manifest, path, deepClone(getAt(manifest, paths[change.from % paths.length])));
      break;
    default: {
      const unreachable: never = change;
      throw new Error(`unknown mutation ${JSON.stringify(unreachable)}`);
    }
  }
}

/** Plans the manifest; returns the plan, or the ManifestError. Any other exception fails the property. */
function planOrProblems(manifest: RawManifest): Plan | ManifestError {
  try {
    return planOf(manifest, "mutated.json");
  } catch (error) {
    if (error instanceof ManifestError) return error;
    throw new Error(`expected a plan or a ManifestError, got ${error instanceof Error ? error.stack : String(error)}\nmanifest: ${JSON.stringify(manifest)}`);
  }
}

function checkOutcome(outcome: Plan | ManifestError): void {
  if (outcome instanceof ManifestError) {
    assert.ok(outcome.problems.length > 0);
    assert.ok(!/\n\s+at /.test(outcome.message), `stack trace in the message:\n${outcome.message}`);
    for (const problem of outcome.problems) {
      assert.match(problem.subject, /^(manifest|network|service ".*")$/s);
      assert.ok(problem.message.length > 0, formatProblem(problem));
    }
    return;
  }
  // A valid plan renders, and every enabled service sits in exactly one wave after all it depends on.
  renderPlanJson(outcome);
  renderPlanText(outcome);
  renderGraph(outcome, "mermaid");
  const waveOf = new Map(outcome.waves.flatMap((wave, index) => wave.map((name) => [name, index] as const)));
  assert.equal(waveOf.size, outcome.services.length);
  for (const service of outcome.services) {
    for (const dependency of service.dependsOn) assert.ok(waveOf.get(dependency)! < service.wave, `${service.name} after ${dependency}`);
  }
}

describe("manifest property: random mutations", function () {
  this.timeout(60_000);

  for (const [name, base] of [["seed layout", seedManifest], ["small manifest", smallManifest]] as const) {
    it(`gives a plan or a ManifestError for 1–4 random mutations of the ${name}, never another exception`, () => {
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (changes) => {
          const manifest = base();
          for (const change of changes) applyMutation(manifest, change);
          checkOutcome(planOrProblems(manifest));
        }),
        { numRuns: 400 },
      );
    });
  }

  it("renders and builds every deploy command for whatever validation accepts, from 1–2 mutations of the seed-format example", async () => {
    const seed = (await loadManifestData(path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix"))) as RawManifest;
    let accepted = 0;
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 2 }), (changes) => {
        const manifest = deepClone(seed);
        for (const change of changes) applyMutation(manifest, change);
        const outcome = planOrProblems(manifest);
        checkOutcome(outcome);
        if (outcome instanceof ManifestError) return;
        accepted += 1;
        try {
          checkDeployable(outcome);
        } catch (error) {
          throw new Error(`validation accepted a manifest that fails later: ${error instanceof Error ? error.message : String(error)}\nmanifest: ${JSON.stringify(manifest)}`);
        }
      }),
      { numRuns: 400 },
    );
    assert.ok(accepted >= 20, `only ${accepted} of 400 mutated manifests were accepted; the property would prove little`);
  });

  it("reports what the shipped modules would refuse (the check above can fail): a closed 443, a bad database name, two addresses for a name", async () => {
    const seed = (await loadManifestData(path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix"))) as RawManifest;
    const hosts = renderAll(planOf(seed, "seed"), renderSources);
    assert.deepEqual(moduleAssertionFailures(hosts), []);
    const tamper = (service: string, edit: (data: any) => void) =>
      hosts.map((host) => (host.service === service ? { ...host, files: { ...host.files, "host.json": JSON.stringify((() => { const d = JSON.parse(host.files["host.json"]); edit(d); return d; })()) } } : host));
    assert.deepEqual(moduleAssertionFailures(tamper("caddy", (d) => (d.host.ports = [80]))), ["caddy: 443 not open"]);
    assert.deepEqual(moduleAssertionFailures(tamper("postgresql", (d) => (d.postgresql.databases[0].name = "x; DROP"))), ["postgresql: invalid database requests"]);
    assert.deepEqual(moduleAssertionFailures(tamper("dns", (d) => d.dns.records.push({ ...d.dns.records[0], value: "10.40.0.99" }))), ["dns: a name with two addresses"]);
  });

  it("gives a plan or a ManifestError for arbitrary JSON in place of the whole manifest or a whole service", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 3 }), (whole, service) => {
        checkOutcome(planOrProblems(whole as RawManifest));
        const manifest = smallManifest();
        manifest.services.app = service;
        checkOutcome(planOrProblems(manifest));
      }),
      { numRuns: 300 },
    );
  });

  it("turns random dependency graphs into a plan or a cycle problem", () => {
    const names = ["a", "b", "c", "d", "e", "f"];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...names), fc.constantFrom(...names)), { maxLength: 12 }), (edges) => {
        const manifest = smallManifest();
        names.forEach((name, index) => {
          manifest.services[name] = { ip: `10.9.0.${100 + index}`, vmid: 200 + index, nixos_modules: [`modules/${name}.nix`], depends_on: [] };
        });
        for (const [from, to] of edges) {
          const list: string[] = manifest.services[from].depends_on;
          if (from !== to && !list.includes(to)) list.push(to);
        }
        const outcome = planOrProblems(manifest);
        checkOutcome(outcome);
        if (outcome instanceof ManifestError) {
          assert.deepEqual(outcome.problems.map((problem) => problem.field), ["depends_on"]);
          assert.match(outcome.problems[0].message, /^forms a dependency cycle: ([a-f]) → ([a-f]) \(depends_on\)(, [a-f] → [a-f] \(depends_on\))*; remove one of: .+$/);
        }
      }),
      { numRuns: 300 },
    );
  });
});
