/**
 * The custom NixOS modules a manifest names (`nixos_modules` of every enabled service), checked where the manifest
 * is loaded, so `validate`, `plan`, `render`, `preview` and the deploy all refuse a module that would only fail on
 * the host during `nixos-rebuild`:
 *
 * - the module exists, and is a regular file inside the manifest's directory after following symlinks (security
 *   review M8: anything else would be copied to the host and its world-readable Nix store);
 * - the files it names by relative path literal (`imports = [ ./x.nix ]`, `import ./lib`, `builtins.readFile
 *   ./a.json`), followed recursively through the .nix files they name (module-files.ts `moduleClosure`, the same walk
 *   that puts them into the host's flake), exist inside the manifest's directory;
 * - every one of those .nix files parses with the real `nix-instantiate --parse`, which reports syntax errors and
 *   undefined variables with file, line and column. Parsing evaluates nothing and reads no other file.
 *
 * Not followed (module-files.ts): paths built at evaluation time (`./. + "/x.nix"`, `./${name}.nix`,
 * `builtins.readDir`), search paths (`<nixpkgs/…>`) and absolute paths. Nothing here evaluates a module: an option
 * that does not exist or a type error still shows only when the host evaluates its configuration.
 *
 * Without nix-instantiate (a .json or .yaml manifest on a machine without Nix), the parse is skipped and says so.
 */
import { readFileSync, realpathSync, statSync } from "node:fs";
import * as path from "node:path";
import { moduleClosure } from "./module-files";
import { formatNixError, installNixHint, runNixInstantiate } from "./nix-process";
import { displayPath, type Problem } from "./problems";
import { modulePathSchema } from "./schema";

/** One `nixos_modules` entry of an enabled service. */
export interface ModuleEntry {
  service: string;
  /** Its index in the service's `nixos_modules`, for the field name. */
  index: number;
  /** As written in the manifest. */
  module: string;
}

export interface ModuleCheck {
  problems: Problem[];
  /** Why the modules were not parsed (no nix-instantiate), or null when they were (or there were none). */
  skipped: string | null;
}

/** Limit of one `nix-instantiate --parse` run: parsing a module takes ~0.1 s. */
const parseTimeoutSeconds = 30;
const parseMemoryMiB = 1024;

/** Parses at once at most this many files: the controller is often a laptop. */
const parallelParses = 4;

/**
 * The `nixos_modules` entries of the enabled services in raw manifest data, in manifest order (core_services, then
 * services). Read from the raw data, so a manifest with schema problems still gets its modules checked and every
 * problem is reported at once; entries the schema refuses (not a relative .nix path) are its problems, not these.
 */
export function moduleEntries(raw: unknown): ModuleEntry[] {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) return [];
  const entries: ModuleEntry[] = [];
  for (const group of ["core_services", "services"]) {
    const services = (raw as Record<string, unknown>)[group];
    if (!services || typeof services !== "object" || Array.isArray(services)) continue;
    for (const [service, value] of Object.entries(services)) {
      if (!value || typeof value !== "object") continue;
      const { enable, nixos_modules: modules } = value as { enable?: unknown; nixos_modules?: unknown };
      if (enable === false || !Array.isArray(modules)) continue;
      modules.forEach((module, index) => {
        if (modulePathSchema.safeParse(module).success) entries.push({ service, index, module: module as string });
      });
    }
  }
  return entries;
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

/**
 * A file for `moduleClosure`: its text; null when there is none, or it is a directory (Nix then reads its
 * default.nix); a throw when it leaves the manifest's directory.
 */
function readInside(manifestDir: string, relative: string): string | null {
  try {
    if (statSync(path.join(manifestDir, relative)).isDirectory()) return null;
  } catch {
    return null;
  }
  return readFileSync(resolveManifestFile(manifestDir, relative), "utf8");
}

/** Why `nix-instantiate --parse` refuses the file (null when it parses), or "not-installed". */
async function parseProblem(file: string): Promise<string | null | "not-installed"> {
  const outcome = await runNixInstantiate(["--readonly-mode", "--parse", file], { timeoutSeconds: parseTimeoutSeconds, memoryMiB: parseMemoryMiB });
  switch (outcome.kind) {
    case "ok":
      return null;
    case "not-installed":
      return "not-installed";
    case "timed-out":
      return `could not be parsed: nix-instantiate --parse was stopped after ${outcome.seconds} s (the limit is ${parseTimeoutSeconds} s)`;
    case "out-of-memory":
      return `could not be parsed: nix-instantiate --parse ran out of memory (the limit is ${parseMemoryMiB} MiB)`;
    case "failed":
      return `is not valid Nix (nix-instantiate --parse): ${formatNixError(outcome.stderr)}`;
    default: {
      const unreachable: never = outcome;
      throw new Error(`unknown outcome ${JSON.stringify(unreachable)}`);
    }
  }
}

/** `parseProblem` of every file, a few at a time; "not-installed" as soon as one run finds no nix-instantiate. */
async function parseAll(files: string[]): Promise<Map<string, string | null> | "not-installed"> {
  const results = new Map<string, string | null>();
  let missing = false;
  let next = 0;
  const worker = async () => {
    while (next < files.length && !missing) {
      const file = files[next++];
      const problem = await parseProblem(file);
      if (problem === "not-installed") missing = true;
      else results.set(file, problem);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallelParses, files.length) }, worker));
  return missing ? "not-installed" : results;
}

/** Every problem of the modules `entries` name, in their order; see the file's comment for what is checked. */
export async function checkModules(entries: ModuleEntry[], manifestDir: string): Promise<ModuleCheck> {
  const walked = entries.map((entry) => {
    const problem = (message: string): Problem => ({ subject: `service "${entry.service}"`, field: `nixos_modules[${entry.index}]`, message });
    const listed = path.posix.normalize(entry.module);
    // How a file is named in a message: the module as written, or a file it needs with the module it was reached from.
    const named = (file: string) => (file === listed ? JSON.stringify(entry.module) : `${JSON.stringify(file)} (reached from ${JSON.stringify(entry.module)})`);
    let text: string | null;
    try {
      text = readInside(manifestDir, listed);
    } catch (error) {
      return { problem, named, problems: [problem(`${JSON.stringify(entry.module)}: ${(error as Error).message}`)], files: [] };
    }
    if (text === null) return { problem, named, problems: [problem(`${JSON.stringify(entry.module)} does not exist in ${displayPath(manifestDir) || "."}`)], files: [] };
    const closure = moduleClosure([listed], (relative) => readInside(manifestDir, relative));
    return {
      problem,
      named,
      problems: closure.problems.map((inner) => problem(`${named(inner.module)} ${inner.message}`)),
      // Only files the walk could read are here, so each resolves inside the manifest's directory.
      files: [...closure.files.keys()].filter((file) => file.endsWith(".nix")).map((file) => ({ file, real: resolveManifestFile(manifestDir, file) })),
    };
  });

  // A file several modules need is parsed once.
  const parsed = await parseAll([...new Set(walked.flatMap(({ files }) => files.map(({ real }) => real)))].sort());
  const problems: Problem[] = [];
  for (const { problem, named, problems: own, files } of walked) {
    problems.push(...own);
    if (parsed === "not-installed") continue;
    for (const { file, real } of files) {
      const reason = parsed.get(real);
      if (reason) problems.push(problem(`${named(file)} ${reason}`));
    }
  }
  const skipped = parsed === "not-installed"
    ? `the custom modules (nixos_modules) were not parsed: nix-instantiate is not installed, so a Nix syntax error in them would show only on the host. ${installNixHint}`
    : null;
  return { problems, skipped };
}
