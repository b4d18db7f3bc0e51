/**
 * The files a manifest's NixOS module needs besides itself: the relative path literals it contains (`imports =
 * [ ./common.nix ]`, `builtins.readFile ./dashboards/node.json`, `import ../lib/helpers.nix`), followed
 * recursively through the .nix files they name. Pure: file contents come from a reader.
 *
 * Only Nix path literals count: the scanner drops comments and strings first, so `"./configure"` in a shell
 * snippet is not a file. A literal naming a directory (`import ./lib`) means its `default.nix`, as in Nix. A path
 * that leaves the manifest's directory is refused, because the host's flake only holds that directory's files.
 * Not followed: paths built at evaluation time (`./. + "/x.nix"`, `./${name}.nix`, `builtins.readDir`), which the
 * flake cannot know; search paths (`<nixpkgs/…>`), which come from the host's nixpkgs; absolute paths.
 */
import * as path from "node:path";

/** Strips `#` and block comments, "…" strings and ''…'' strings, keeping everything else (and line breaks). */
export function stripNixCommentsAndStrings(text: string): string {
  let out = "";
  let index = 0;
  while (index < text.length) {
    const char = text[index];
    const next = text[index + 1];
    if (char === "#") {
      while (index < text.length && text[index] !== "\n") index += 1;
    } else if (char === "/" && next === "*") {
      const end = text.indexOf("*/", index + 2);
      index = end === -1 ? text.length : end + 2;
    } else if (char === '"') {
      index += 1;
      while (index < text.length && text[index] !== '"') index += text[index] === "\\" ? 2 : 1;
      index += 1;
      out += '""';
    } else if (char === "'" && next === "'") {
      index += 2;
      // ''…'' ends at '' not followed by ', $ or \ (those are escapes: ''' ''$ ''\).
      while (index < text.length && !(text[index] === "'" && text[index + 1] === "'" && !["'", "$", "\\"].includes(text[index + 2] ?? ""))) {
        index += text[index] === "'" && text[index + 1] === "'" ? 3 : 1;
      }
      index += 2;
      out += '""';
    } else {
      out += char;
      index += 1;
    }
  }
  return out;
}

/** Relative path literals (`./x`, `../y/z.nix`) in Nix source, in order of appearance, without duplicates. */
export function relativePathLiterals(text: string): string[] {
  const code = stripNixCommentsAndStrings(text);
  const found = [...code.matchAll(/(?<![A-Za-z0-9_'.\/+-])(\.\.?\/[A-Za-z0-9._+\/-]*[A-Za-z0-9._+-])/g)].map((match) => match[1]);
  return [...new Set(found)];
}

export interface ModuleFileProblem {
  /** The manifest-relative module file that names the path. */
  module: string;
  literal: string;
  message: string;
}

/**
 * Every manifest-relative file the modules need (the modules themselves first), and the problems found.
 * `read` returns a file's text, or null when there is no such file; it may throw an Error whose message says why a
 * file that exists cannot be used (a symlink out of the manifest's directory), which becomes the problem.
 */
export function moduleClosure(modules: string[], read: (relative: string) => string | null): { files: Map<string, string>; problems: ModuleFileProblem[] } {
  const files = new Map<string, string>();
  const problems: ModuleFileProblem[] = [];
  const queue = [...modules];
  while (queue.length > 0) {
    const current = queue.shift()!;
    if (files.has(current)) continue;
    const text = read(current);
    if (text === null) continue;
    files.set(current, text);
    if (!current.endsWith(".nix")) continue;
    for (const literal of relativePathLiterals(text)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(current), literal));
      if (target === ".." || target.startsWith("../")) {
        problems.push({ module: current, literal, message: `names ${literal}, which is outside the manifest's directory; the host's flake only holds files inside it` });
        continue;
      }
      // The module's own directory or one above it (`./.`, `../.`): a base for a path built at evaluation time
      // (`./. + "/x.nix"`), not a file to carry; the manifest's directory is "." itself.
      const directory = path.posix.dirname(current);
      if (target === "." || directory === target || directory.startsWith(`${target}/`)) continue;
      try {
        if (read(target) !== null) queue.push(target);
        else if (read(`${target}/default.nix`) !== null) queue.push(`${target}/default.nix`);
        else problems.push({ module: current, literal, message: `names ${literal}, which does not exist (relative to ${current})` });
      } catch (error) {
        problems.push({ module: current, literal, message: `names ${literal}: ${error instanceof Error ? error.message : String(error)}` });
      }
    }
  }
  return { files, problems };
}
