/**
 * The manifest properties, shared by tests/manifest-property.test.ts (fixed seeds: the suite gives the same verdict
 * every run) and bench/manifest-fuzz.ts (a new seed each run, printed, for open-ended exploration). Pure, no mocks:
 * random mutations of a valid manifest give a plan or a ManifestError, never another exception, and whatever
 * validation accepts renders and passes the shipped modules' own checks.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import * as path from "node:path";
import { renderGraph, renderPlanJson, renderPlanText } from "../../cli/views";
import { ManifestError, formatProblem, loadManifestData, type Plan } from "../../manifest";
import { renderAll } from "../../render";
import { checkDeployable, moduleAssertionFailures, renderSources } from "./deployable";
import { deepClone, planOf, seedManifest, smallManifest, type RawManifest } from "./manifests";

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

export type Mutation =
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

/** What one property run proved: how many cases ran, and for the deploy property how many validation accepted. */
export interface PropertyReport {
  runs: number;
  accepted?: number;
}

/**
 * A property of the manifest pipeline: `run` checks it with fast-check's parameters (`seed` and `numRuns` decide
 * which cases; `examples` replays counterexamples first) and throws fast-check's report (seed, path, counterexample)
 * when a case fails.
 */
export interface ManifestProperty {
  name: string;
  /** Cases per run in the suite. */
  numRuns: number;
  run(parameters: { seed?: number; numRuns?: number }): Promise<PropertyReport>;
}

const seedLayoutFile = path.join(__dirname, "..", "..", "manifest", "examples", "seed-homelab.nix");

function mutationsProperty(name: string, base: () => RawManifest): ManifestProperty {
  return {
    name: `gives a plan or a ManifestError for 1–4 random mutations of the ${name}, never another exception`,
    numRuns: 400,
    async run(parameters) {
      const numRuns = parameters.numRuns ?? this.numRuns;
      fc.assert(
        fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (changes) => {
          const manifest = base();
          for (const change of changes) applyMutation(manifest, change);
          checkOutcome(planOrProblems(manifest));
        }),
        { ...parameters, numRuns },
      );
      return { runs: numRuns };
    },
  };
}

/**
 * Counterexamples found by exploration (bench/manifest-fuzz.ts): a failure found there becomes a case here, the list
 * of mutations fast-check printed. The deploy property replays the fixed ones first on every run; one whose fix has
 * not landed yet names the issue that fixes it, and tests/manifest-property.test.ts asserts it still fails exactly so
 * (that assertion fails when the fix lands: then drop `pending`, and the property replays it).
 */
export const deployRegressions: Array<{ changes: Mutation[]; found: string; pending?: { issue: string; failure: string } }> = [
  {
    changes: [{ kind: "copy", from: 644759549, at: 1199714953 }],
    // Fixed by issue 19 (N3: a route whose upstream is another host no longer sets this host's listen port).
    found: "newcomer-2 #4 (seed -2113275949, path \"134:1\"): nextcloud's route upstream copied from pgAdmin's (10.40.0.11:5050, another host)",
  },
];

/** Applies mutations to the seed-format example and returns what the shipped modules refuse of the result ([] when validation refuses it). */
export async function seedLayoutModuleFailures(changes: Mutation[]): Promise<string[]> {
  const manifest = deepClone((await loadManifestData(seedLayoutFile)) as RawManifest);
  for (const change of changes) applyMutation(manifest, change);
  const outcome = planOrProblems(manifest);
  return outcome instanceof ManifestError ? [] : moduleAssertionFailures(renderAll(outcome, renderSources));
}

export const manifestProperties: ManifestProperty[] = [
  mutationsProperty("seed layout", seedManifest),
  mutationsProperty("small manifest", smallManifest),
  {
    name: "renders and builds every deploy command for whatever validation accepts, from 1–2 mutations of the seed-format example",
    numRuns: 400,
    async run(parameters) {
      const numRuns = parameters.numRuns ?? this.numRuns;
      const seed = (await loadManifestData(seedLayoutFile)) as RawManifest;
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
        { ...parameters, numRuns, examples: deployRegressions.filter((regression) => !regression.pending).map((regression) => [regression.changes]) },
      );
      assert.ok(accepted >= numRuns / 20, `only ${accepted} of ${numRuns} mutated manifests were accepted; the property would prove little`);
      return { runs: numRuns, accepted };
    },
  },
  {
    name: "gives a plan or a ManifestError for arbitrary JSON in place of the whole manifest or a whole service",
    numRuns: 300,
    async run(parameters) {
      const numRuns = parameters.numRuns ?? this.numRuns;
      fc.assert(
        fc.property(fc.jsonValue({ maxDepth: 4 }), fc.jsonValue({ maxDepth: 3 }), (whole, service) => {
          checkOutcome(planOrProblems(whole as RawManifest));
          const manifest = smallManifest();
          manifest.services.app = service;
          checkOutcome(planOrProblems(manifest));
        }),
        { ...parameters, numRuns },
      );
      return { runs: numRuns };
    },
  },
  {
    name: "turns random dependency graphs into a plan or a cycle problem",
    numRuns: 300,
    async run(parameters) {
      const numRuns = parameters.numRuns ?? this.numRuns;
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
        { ...parameters, numRuns },
      );
      return { runs: numRuns };
    },
  },
];
