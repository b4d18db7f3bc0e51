/**
 * Loading a manifest file: `.nix` through the real `nix-instantiate`, `.json` and `.yaml`/`.yml` parsed directly.
 * Every failure becomes a `ManifestError` (file, line and what to do), never a stack trace.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type * as Yaml from "yaml";
import { planManifest } from "./plan";
import { isSingleRoute, type ResolvedService } from "./resolve";
import type { Plan } from "./plan-types";
import { boundedData, tooDeep } from "./bounds";
import { checkExtraConfig } from "./caddy-check";
import { evaluationBoundary } from "./eval-boundary";
import { ManifestError, type Problem } from "./problems";
import type { Manifest } from "./schema";
import { checkManifest } from "./validate";

/** The example manifest shipped with NixMox, used when no path is given. */
export const defaultManifestPath = path.join(__dirname, "service-manifest.nix");

/** Evaluates the file; a manifest that is a function (e.g. `{ lib ? null }: { … }`) is called with its defaults. */
const nixExpression = "{ file }: let manifest = import file; in if builtins.isFunction manifest then manifest { } else manifest";

function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith("..") ? file : relative;
}

/** Turns nix's "error: …\n at /file.nix:3:7:" into one line "file.nix:3:7: …". */
export function formatNixError(stderr: string): string {
  const message = /error: ([^\n]*)/.exec(stderr)?.[1]?.trim() ?? stderr.trim().split("\n")[0];
  const at = /at (\/[^\n]*?):(\d+):(\d+):/.exec(stderr);
  return at ? `${displayPath(at[1])}:${at[2]}:${at[3]}: ${message}` : message;
}

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
 * - a clean environment: under `pulumi up` the parent's holds PULUMI_CONFIG (the decrypted stack config) and
 *   tokens; the evaluator gets only PATH and an empty HOME/NIX_PATH, and restricted mode makes
 *   `builtins.getEnv` return "" anyway (nix src/libexpr/primops.cc, prim_getEnv);
 * - `restrict-eval` with the evaluation boundary (eval-boundary.ts: the files git tracks in the manifest's
 *   repository, as a flake sees them, else the manifest's directory; NixMox's shipped `manifest/`; directories
 *   allowed on purpose) as the only search path entries: every file it reads or imports, after following
 *   symlinks, must be inside them, and fetchers are refused (empty allowed-uris);
 *   import-from-derivation is off (nix.conf(5): restrict-eval, allow-import-from-derivation);
 * - a timeout that works: Nix defers SIGTERM to its interrupt checks, which a tight loop never reaches, so the
 *   timer sends SIGKILL; `ulimit -t` also caps the CPU time, so the kernel stops an evaluator whose caller died;
 * - a memory cap (`ulimit -v`), so a runaway evaluation fails instead of exhausting the controller.
 */
function evaluateNix(file: string, options: NixEvaluationOptions = {}): Promise<string> {
  const timeoutSeconds = options.timeoutSeconds ?? 120;
  const real = realpathSync(file);
  // NixMox's own shipped manifests (public, no secrets) may be imported and extended, as docs/examples does.
  const boundary = evaluationBoundary(real, realpathSync(path.dirname(defaultManifestPath)), options.allowPaths);
  const args = [
    "--readonly-mode", "--eval", "--strict", "--json",
    "--option", "restrict-eval", "true",
    "--option", "allow-import-from-derivation", "false",
    ...boundary.paths.flatMap((entry) => ["-I", entry]),
    "--argstr", "file", real, "--expr", nixExpression,
  ];
  // The CPU cap sits a little above the wall-clock timeout, so the timer (with its clear message) acts first.
  const cpuSeconds = String(Math.ceil(timeoutSeconds) + 5);
  const memoryMiB = options.memoryMiB ?? 4096;
  const home = mkdtempSync(path.join(tmpdir(), "nixmox-nix-eval-"));
  const problem = (message: string): Problem => ({ subject: "manifest", field: "", message });
  return new Promise<string>((resolve, reject) => {
    const started = Date.now();
    const limits = 'ulimit -t "$0" 2>/dev/null; ulimit -v "$1" 2>/dev/null; shift; exec nix-instantiate "$@"';
    const child = spawn("/bin/sh", ["-c", limits, cpuSeconds, String(memoryMiB * 1024), ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: home, NIX_PATH: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stdout: Buffer[] = [];
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutSeconds * 1000);
    child.once("error", (error) => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      reject(new ManifestError(displayPath(file), [problem(`cannot run nix-instantiate: ${error.message}`)]));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (code === 0) return resolve(Buffer.concat(stdout).toString("utf8"));
      if (code === 127 && /nix-instantiate: (command )?not found|No such file/.test(stderr)) {
        return reject(new ManifestError(displayPath(file), [problem(
          "cannot evaluate a .nix manifest: nix-instantiate is not installed. Install Nix (Debian/Ubuntu: `sudo apt-get install nix-bin`, " +
            "elsewhere https://nixos.org/download), or give a .json or .yaml manifest",
        )]));
      }
      if (timedOut || signal === "SIGXCPU" || signal === "SIGKILL") {
        return reject(new ManifestError(displayPath(file), [problem(
          `Nix evaluation of ${displayPath(file)} was stopped after ${seconds} s (the limit is ${timeoutSeconds} s); does the manifest loop?`,
        )]));
      }
      if (/error: out of memory/.test(stderr)) {
        return reject(new ManifestError(displayPath(file), [problem(`Nix evaluation of ${displayPath(file)} ran out of memory (the limit is ${memoryMiB} MiB)`)]));
      }
      const message = formatNixError(stderr);
      const hint = /forbidden in restricted mode/.test(message) ? ` (a .nix manifest may read only ${boundary.description})` : "";
      reject(new ManifestError(displayPath(file), [problem(`Nix evaluation failed: ${message}${hint}`)]));
    });
  });
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

/**
 * The real path of a module file named relative to the manifest's directory, refusing one that leaves it
 * (security review M8): `modules/x.nix -> ~/.ssh/id_ed25519` would otherwise be copied to the host, its
 * world-readable Nix store and the Pulumi state. Symlinks are followed (realpath) and the target must be a
 * regular file inside realpath(manifestDir). Throws an Error whose message is the reason (ENOENT when missing).
 */
export function resolveManifestFile(manifestDir: string, relative: string): string {
  const root = realpathSync(manifestDir);
  const target = realpathSync(path.join(manifestDir, relative));
  if (!target.startsWith(`${root}${path.sep}`)) {
    throw new Error(`it resolves to ${target}, outside the manifest's directory ${root}; a module (or a symlink to it) must stay inside that directory`);
  }
  if (!statSync(target).isFile()) throw new Error(`${target} is not a regular file`);
  return target;
}

/** Problems the pure validator cannot see: module files of enabled services missing, or outside the manifest's directory. */
function missingModuleProblems(manifest: Manifest, manifestDir: string): Problem[] {
  const problems: Problem[] = [];
  for (const group of ["core_services", "services"] as const) {
    for (const [name, service] of Object.entries(manifest[group])) {
      if (!service.enable) continue;
      service.nixos_modules.forEach((module, index) => {
        const field = `nixos_modules[${index}]`;
        if (!existsSync(path.join(manifestDir, module))) {
          problems.push({ subject: `service "${name}"`, field, message: `${JSON.stringify(module)} does not exist in ${displayPath(manifestDir) || "."}` });
          return;
        }
        try {
          resolveManifestFile(manifestDir, module);
        } catch (error) {
          problems.push({ subject: `service "${name}"`, field, message: `${JSON.stringify(module)}: ${(error as Error).message}` });
        }
      });
    }
  }
  return problems;
}

/** Loads and validates a manifest file. */
export async function loadManifest(file: string = defaultManifestPath, options: NixEvaluationOptions = {}): Promise<{ manifest: Manifest; manifestDir: string }> {
  const { manifest, manifestDir } = await loadChecked(file, options);
  return { manifest, manifestDir };
}

/** `loadManifest`, with the services validation resolved (for `planManifest`'s `resolved`). */
async function loadChecked(file: string, options: NixEvaluationOptions): Promise<{ manifest: Manifest; manifestDir: string; resolved: ResolvedService[] }> {
  const absolute = path.resolve(file);
  const { manifest, resolved } = checkManifest(await loadManifestData(absolute, options), displayPath(absolute));
  const manifestDir = path.dirname(absolute);
  const problems = missingModuleProblems(manifest, manifestDir);
  if (problems.length > 0) throw new ManifestError(displayPath(absolute), problems);
  return { manifest, manifestDir, resolved };
}

/**
 * Loads, validates and plans a manifest file; every route's extra_config then goes through the real Caddy where it
 * is installed (caddy-check.ts): a refusal is a manifest problem, a check that could not run a note of the plan.
 */
export async function loadPlan(file: string = defaultManifestPath, options: NixEvaluationOptions = {}): Promise<Plan> {
  const absolute = path.resolve(file);
  const { manifest, manifestDir, resolved } = await loadChecked(absolute, options);
  const plan = planManifest(manifest, { manifestDir, resolved });
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
