/**
 * Where the project lives, for the CLI run from the sources (cli/) or from the build (dist/cli/): the directory
 * holding Pulumi.yaml. Kept free of imports beyond Node's, so `nixmox --help` loads nothing else.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";

function findProjectRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "Pulumi.yaml"))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(start, "..");
  }
}

/** The project directory (Pulumi.yaml, the stack files, package.json). */
export const projectRoot = findProjectRoot(__dirname);

/** The example manifest, used when a command is given none (the source file, never a copy in dist/). */
export const exampleManifestPath = path.join(projectRoot, "manifest", "service-manifest.nix");

/** The default manifest as a user would type it: relative to the working directory when below it. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative === "" || relative.startsWith("..") ? file : relative;
}
