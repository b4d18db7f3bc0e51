/**
 * What a `.nix` manifest may read while nix-instantiate evaluates it in restricted mode (`-I` search-path entries;
 * nix allows a path that is an entry or lies inside one, after following symlinks):
 *
 * - in a git repository: the files git tracks, the boundary a flake has (`hosts/prod.nix` may import
 *   `../lib/common.nix`). Untracked and ignored files stay out, whatever directory they are in: a repository often
 *   holds a decrypted secrets file or an `.env` that git ignores, and `.git` itself is never readable;
 * - outside one: the manifest's own directory, as before;
 * - always the manifest file itself, and NixMox's shipped `manifest/` directory (its public examples);
 * - plus the directories the user names on purpose (`--allow-path DIR`, `nixmox:manifestAllowPaths`).
 *
 * A tracked directory with nothing untracked, ignored or `.git` anywhere below it is one entry; elsewhere each
 * tracked file is its own entry, so the list stays short for a tidy repository and exact for a messy one.
 */
import { spawnSync } from "node:child_process";
import { existsSync, realpathSync } from "node:fs";
import * as path from "node:path";

export interface EvaluationBoundary {
  /** `-I` entries, absolute real paths, sorted. */
  paths: string[];
  /** The git repository's root when the manifest is in one (and git could list it), else null. */
  repository: string | null;
  /** How to say the boundary in an error message. */
  description: string;
}

/** The nearest directory at or above `start` that holds `.git` (a directory, or a worktree's file), or null. */
export function repositoryRoot(start: string): string | null {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, ".git"))) return dir;
    if (path.dirname(dir) === dir) return null;
  }
}

function gitList(root: string, args: string[]): string[] | null {
  const result = spawnSync("git", ["-C", root, "ls-files", "-z", ...args], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024, timeout: 60_000 });
  if (result.status !== 0 || result.error) return null;
  return result.stdout.split("\0").filter((entry) => entry !== "");
}

/** The fewest `-I` entries that cover exactly the tracked files of the repository at `root`, or null without git. */
export function trackedPaths(root: string): string[] | null {
  const tracked = gitList(root, ["--cached"]);
  // Untracked and ignored alike (no --exclude-standard); a wholly untracked directory is listed once, as "dir/".
  const others = gitList(root, ["--others", "--directory"]);
  if (tracked === null || others === null) return null;
  // Directories that hold something git does not track (or .git): never one entry.
  const mixed = new Set<string>(["."]);
  for (const entry of [...others, ".git"]) {
    for (let dir = path.posix.dirname(entry.replace(/\/$/, "")); dir !== "." ; dir = path.posix.dirname(dir)) mixed.add(dir);
  }
  const entries = new Set<string>();
  for (const file of tracked) {
    // The highest directory above the file that is all tracked, else the file itself.
    let covering = file;
    for (let dir = path.posix.dirname(file); dir !== "."; dir = path.posix.dirname(dir)) {
      if (!mixed.has(dir)) covering = dir;
    }
    entries.add(covering);
  }
  return [...entries].map((entry) => path.join(root, entry)).filter((entry) => existsSync(entry)).sort();
}

/** The boundary for evaluating the manifest `file` (a real path), with the user's extra directories. */
export function evaluationBoundary(file: string, shippedDir: string, allowPaths: string[] = []): EvaluationBoundary {
  const directory = path.dirname(file);
  const root = repositoryRoot(directory);
  const tracked = root === null ? null : trackedPaths(root);
  const extra = allowPaths.map((entry) => realpathSync(entry));
  const paths = [...new Set([...(tracked ?? [directory]), file, shippedDir, ...extra])].sort();
  const allowed = extra.length > 0 ? `, or the directories given with --allow-path / nixmox:manifestAllowPaths (${extra.join(", ")})` : "";
  const description = tracked !== null
    ? `the files git tracks in its repository ${root}, as a flake does (git add a file to let it be read)${allowed}`
    : `files inside its own directory, ${directory}${allowed}`;
  return { paths, repository: tracked !== null ? root : null, description };
}
