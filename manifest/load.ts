/**
 * Loading a manifest file: `.nix` through the real `nix-instantiate`, `.json` and `.yaml`/`.yml` parsed directly.
 * Every failure becomes a `ManifestError` (file, line and what to do), never a stack trace.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs";
import * as path from "node:path";
import type * as Yaml from "yaml";
import { packageFile } from "./package-root";
import { planManifest } from "./plan";
import { isSingleRoute, type CheckedServices } from "./resolve";
import type { Plan } from "./plan-types";
import { boundedData, tooDeep } from "./bounds";
import { checkExtraConfig } from "./caddy-check";
import { checkModules, moduleEntries } from "./module-check";
import { evaluationBoundary } from "./eval-boundary";
import { formatNixError, installNixHint, runNixInstantiate, type NixOutcome } from "./nix-process";
import { ManifestError, displayPath, type Problem } from "./problems";
import type { Manifest } from "./schema";
import { checkManifest } from "./validate";

/** The example manifest shipped with NixMox, used when no path is given. */
export const defaultManifestPath = packageFile("manifest", "service-manifest.nix");

/** Evaluates the file; a manifest that is a function (e.g. `{ lib ? null }: { … }`) is called with its defaults. */
const nixExpression = "{ file }: let manifest = import file; in if builtins.isFunction manifest then manifest { } else manifest";

export interface NixEvaluationOptions {
  /** Stop (SIGKILL) the evaluator after this long and report the file. @default 120 */
  timeoutSeconds?: number;
  /** Address-space limit of the evaluator (`ulimit -v`); Nix then fails with "out of memory". @default 4096 */
  memoryMiB?: number;
  /**
   * Directories a `.nix` manifest may read besides its boundary (eval-boundary.ts), on purpose: the CLI's
   * `--allow-path DIR`, the stack's `nixmox:manifestAllowPaths`. @default []
   */
  allowPaths?: string[];
}

/**
 * Evaluates a `.nix` manifest with the real nix-instantiate, confined (security review M5):
 * - run by nix-process.ts: a clean environment (only PATH and an empty HOME/NIX_PATH; restricted mode makes
 *   `builtins.getEnv` return "" anyway, nix src/libexpr/primops.cc, prim_getEnv), a timeout that works and a
 *   memory cap;
 * - `restrict-eval` with the evaluation boundary (eval-boundary.ts: the files git tracks in the manifest's
 *   repository, as a flake sees them, else the manifest's directory; NixMox's shipped `manifest/`; directories
 *   allowed on purpose) as the only search path entries: every file it reads or imports, after following
 *   symlinks, must be inside them, and fetchers are refused (empty allowed-uris);
 *   import-from-derivation is off (nix.conf(5): restrict-eval, allow-import-from-derivation).
 */
async function evaluateNix(file: string, options: NixEvaluationOptions = {}): Promise<string> {
  const timeoutSeconds = options.timeoutSeconds ?? 120;
  const real = realpathSync(file);
  // NixMox's own shipped manifests (public, no secrets) may be imported and extended, as docs/examples does.
  // NixMox's shipped manifest/ of the sources (packageFile), also when the CLI runs compiled from dist/ (newcomer-2 #3).
  const boundary = evaluationBoundary(real, realpathSync(path.dirname(defaultManifestPath)), options.allowPaths);
  const args = [
    "--readonly-mode", "--eval", "--strict", "--json",
    "--option", "restrict-eval", "true",
    "--option", "allow-import-from-derivation", "false",
    ...boundary.paths.flatMap((entry) => ["-I", entry]),
    "--argstr", "file", real, "--expr", nixExpression,
  ];
  const memoryMiB = options.memoryMiB ?? 4096;
  const problem = (message: string): Problem => ({ subject: "manifest", field: "", message });
  const fail = (message: string) => new ManifestError(displayPath(file), [problem(message)]);
  let outcome: NixOutcome;
  try {
    outcome = await runNixInstantiate(args, { timeoutSeconds, memoryMiB });
  } catch (error) {
    throw fail(`cannot run nix-instantiate: ${(error as Error).message}`);
  }
  switch (outcome.kind) {
    case "ok":
      return outcome.stdout;
    case "not-installed":
      throw fail(`cannot evaluate a .nix manifest: nix-instantiate is not installed. ${installNixHint}, or give a .json or .yaml manifest`);
    case "timed-out":
      throw fail(`Nix evaluation of ${displayPath(file)} was stopped after ${outcome.seconds} s (the limit is ${timeoutSeconds} s); does the manifest loop?`);
    case "out-of-memory":
      throw fail(`Nix evaluation of ${displayPath(file)} ran out of memory (the limit is ${memoryMiB} MiB)`);
    case "failed": {
      const message = formatNixError(outcome.stderr);
      const hint = /forbidden in restricted mode/.test(message) ? ` (a .nix manifest may read only ${boundary.description})` : "";
      throw fail(`Nix evaluation failed: ${message}${hint}`);
    }
    default: {
      const unreachable: never = outcome;
      throw new Error(`unknown outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

function boundedDepth(file: string, data: unknown): unknown {
  return boundedData(displayPath(file), data);
}

function parseYaml(file: string, text: string): unknown {
  // Loaded here, not at the top: only .yaml manifests need the parser, and every CLI start would pay for it.
  const { LineCounter, parseDocument } = require("yaml") as typeof Yaml;
  // Without prettyErrors, yaml leaves `linePos` unset; a LineCounter turns the error offset into line:col.
  const lineCounter = new LineCounter();
  const problem = (message: string): Problem => ({ subject: "manifest", field: "", message });
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  if (document.errors.length > 0) {
    // Nesting too deep for the parser ends in one error per level it unwinds: one line says it.
    const overflow = document.errors.find((error) => /Maximum call stack/.test(error.message));
    throw new ManifestError(displayPath(file), (overflow ? [overflow] : document.errors).map((error) => {
      const position = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
      const where = position ? `${displayPath(file)}:${position.line}:${position.col}: ` : "";
      const message = /Maximum call stack/.test(error.message) ? tooDeep : error.message.split("\n")[0];
      return problem(`YAML syntax error: ${where}${message}`);
    }));
  }
  // Aliases are resolved here, after parsing: yaml throws for an alias without its anchor, and for an alias bomb
  // (a few lines that expand to billions of nodes) once the aliases exceed its limit (security review L9).
  try {
    return document.toJS({ maxAliasCount: 100_000 });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (/Unresolved alias/.test(message)) {
      throw new ManifestError(displayPath(file), [problem(`YAML: ${message.replace(/\.$/, "")}; define the anchor (&name) before any alias (*name) that uses it`)]);
    }
    if (/Excessive alias count/.test(message)) {
      throw new ManifestError(displayPath(file), [problem("YAML: its aliases (*name) expand to too many copies (an alias bomb?); it was not expanded. A manifest reuses an anchor a few thousand times at most")]);
    }
    throw new ManifestError(displayPath(file), [problem(`YAML: ${message}`)]);
  }
}

function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ManifestError(displayPath(file), [{ subject: "manifest", field: "", message: `JSON syntax error: ${message}` }]);
  }
}

/** Reads and parses a manifest file into plain data (not yet validated). */
export async function loadManifestData(file: string, options: NixEvaluationOptions = {}): Promise<unknown> {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) {
    throw new ManifestError(displayPath(absolute), [{ subject: "manifest", field: "", message: "file not found; give the path of a .nix, .json or .yaml manifest" }]);
  }
  const extension = path.extname(absolute).toLowerCase();
  switch (extension) {
    case ".nix":
      return boundedDepth(absolute, JSON.parse(await evaluateNix(absolute, options)));
    case ".json":
      return boundedDepth(absolute, parseJson(absolute, readFileSync(absolute, "utf8")));
    case ".yaml":
    case ".yml":
      return boundedDepth(absolute, parseYaml(absolute, readFileSync(absolute, "utf8")));
    default:
      throw new ManifestError(displayPath(absolute), [{ subject: "manifest", field: "", message: `unknown manifest format "${extension}"; use .nix, .json, .yaml or .yml` }]);
  }
}

// Where module files are read (render/sources.ts): one rule for validation and rendering.
export { resolveManifestFile } from "./module-check";

/** Loads and validates a manifest file. */
export async function loadManifest(file: string = defaultManifestPath, options: NixEvaluationOptions = {}): Promise<{ manifest: Manifest; manifestDir: string }> {
  const { manifest, manifestDir } = await loadChecked(file, options);
  return { manifest, manifestDir };
}

/**
 * `loadManifest`, with the services validation resolved (for `planManifest`'s `resolved`) and the notes of the
 * loader's own checks. The custom modules are checked (module-check.ts) whether or not the rest passes the schema,
 * so a syntax error in a module and a typo in the manifest are reported together.
 */
async function loadChecked(file: string, options: NixEvaluationOptions): Promise<{ manifest: Manifest; manifestDir: string; resolved: CheckedServices; notes: string[] }> {
  const absolute = path.resolve(file);
  const raw = await loadManifestData(absolute, options);
  const manifestDir = path.dirname(absolute);
  const modules = await checkModules(moduleEntries(raw), manifestDir);
  let checked: ReturnType<typeof checkManifest>;
  try {
    checked = checkManifest(raw, displayPath(absolute));
  } catch (error) {
    if (error instanceof ManifestError && modules.problems.length > 0) throw new ManifestError(error.source, [...error.problems, ...modules.problems]);
    throw error;
  }
  if (modules.problems.length > 0) throw new ManifestError(displayPath(absolute), modules.problems);
  return { ...checked, manifestDir, notes: modules.skipped === null ? [] : [`manifest: ${modules.skipped}`] };
}

/**
 * Loads, validates and plans a manifest file; every route's extra_config then goes through the real Caddy where it
 * is installed (caddy-check.ts): a refusal is a manifest problem, a check that could not run a note of the plan.
 */
export async function loadPlan(file: string = defaultManifestPath, options: NixEvaluationOptions = {}): Promise<Plan> {
  const absolute = path.resolve(file);
  const { manifest, manifestDir, resolved, notes } = await loadChecked(absolute, options);
  const plan = planManifest(manifest, { manifestDir, resolved });
  plan.notes.push(...notes);
  const routeField = (service: string, route: string) => {
    const group = Object.hasOwn(manifest.core_services, service) ? manifest.core_services : manifest.services;
    const proxy = group[service]?.interface.proxy;
    return proxy && isSingleRoute(proxy) ? "interface.proxy" : `interface.proxy.${route}`;
  };
  const check = await checkExtraConfig(plan.routes.map((route) => ({ service: route.service, field: routeField(route.service, route.name), extraConfig: route.extraConfig })));
  if (check.problems.length > 0) throw new ManifestError(displayPath(absolute), check.problems);
  if (check.skipped !== null) plan.notes.push(`manifest: ${check.skipped}`);
  return plan;
}
