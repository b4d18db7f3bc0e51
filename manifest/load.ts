/**
 * Loading a manifest file: `.nix` through the real `nix-instantiate`, `.json` and `.yaml`/`.yml` parsed directly.
 * Every failure becomes a `ManifestError` (file, line and what to do), never a stack trace.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type * as Yaml from "yaml";
import { planManifest } from "./plan";
import type { Plan } from "./plan-types";
import { ManifestError, type Problem } from "./problems";
import type { Manifest } from "./schema";
import { validateManifest } from "./validate";

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

function evaluateNix(file: string): Promise<string> {
  const args = ["--readonly-mode", "--eval", "--strict", "--json", "--argstr", "file", file, "--expr", nixExpression];
  return new Promise((resolve, reject) => {
    execFile("nix-instantiate", args, { timeout: 120_000, maxBuffer: 256 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      const problem = (message: string): Problem => ({ subject: "manifest", field: "", message });
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        return reject(new ManifestError(displayPath(file), [problem(
          "cannot evaluate a .nix manifest: nix-instantiate is not installed. Install Nix (Debian/Ubuntu: `sudo apt-get install nix-bin`, " +
            "elsewhere https://nixos.org/download), or give a .json or .yaml manifest",
        )]));
      }
      if (error.killed) return reject(new ManifestError(displayPath(file), [problem("nix-instantiate took longer than 120 s; does the manifest loop?")]));
      reject(new ManifestError(displayPath(file), [problem(`Nix evaluation failed: ${formatNixError(stderr)}`)]));
    });
  });
}

function parseYaml(file: string, text: string): unknown {
  // Loaded here, not at the top: only .yaml manifests need the parser, and every CLI start would pay for it.
  const { LineCounter, parseDocument } = require("yaml") as typeof Yaml;
  // Without prettyErrors, yaml leaves `linePos` unset; a LineCounter turns the error offset into line:col.
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  if (document.errors.length > 0) {
    throw new ManifestError(displayPath(file), document.errors.map((error) => {
      const position = error.linePos?.[0] ?? lineCounter.linePos(error.pos[0]);
      const where = position ? `${displayPath(file)}:${position.line}:${position.col}: ` : "";
      return { subject: "manifest", field: "", message: `YAML syntax error: ${where}${error.message.split("\n")[0]}` };
    }));
  }
  return document.toJS();
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
export async function loadManifestData(file: string): Promise<unknown> {
  const absolute = path.resolve(file);
  if (!existsSync(absolute)) {
    throw new ManifestError(displayPath(absolute), [{ subject: "manifest", field: "", message: "file not found; give the path of a .nix, .json or .yaml manifest" }]);
  }
  const extension = path.extname(absolute).toLowerCase();
  switch (extension) {
    case ".nix":
      return JSON.parse(await evaluateNix(absolute));
    case ".json":
      return parseJson(absolute, readFileSync(absolute, "utf8"));
    case ".yaml":
    case ".yml":
      return parseYaml(absolute, readFileSync(absolute, "utf8"));
    default:
      throw new ManifestError(displayPath(absolute), [{ subject: "manifest", field: "", message: `unknown manifest format "${extension}"; use .nix, .json, .yaml or .yml` }]);
  }
}

/** Problems the pure validator cannot see: NixOS module files of enabled services missing next to the manifest. */
function missingModuleProblems(manifest: Manifest, manifestDir: string): Problem[] {
  const problems: Problem[] = [];
  for (const group of ["core_services", "services"] as const) {
    for (const [name, service] of Object.entries(manifest[group])) {
      if (!service.enable) continue;
      service.nixos_modules.forEach((module, index) => {
        if (!existsSync(path.join(manifestDir, module))) {
          problems.push({ subject: `service "${name}"`, field: `nixos_modules[${index}]`, message: `${JSON.stringify(module)} does not exist in ${displayPath(manifestDir) || "."}` });
        }
      });
    }
  }
  return problems;
}

/** Loads and validates a manifest file. */
export async function loadManifest(file: string = defaultManifestPath): Promise<{ manifest: Manifest; manifestDir: string }> {
  const absolute = path.resolve(file);
  const manifest = validateManifest(await loadManifestData(absolute), displayPath(absolute));
  const manifestDir = path.dirname(absolute);
  const problems = missingModuleProblems(manifest, manifestDir);
  if (problems.length > 0) throw new ManifestError(displayPath(absolute), problems);
  return { manifest, manifestDir };
}

/** Loads, validates and plans a manifest file. */
export async function loadPlan(file: string = defaultManifestPath): Promise<Plan> {
  const { manifest, manifestDir } = await loadManifest(file);
  return planManifest(manifest, { manifestDir });
}
