/**
 * Where things are, for the CLI run from the sources (cli/) or from the build (dist/cli/): NixMox's own folder
 * (the clone, or node_modules/nixmox in a homelab project) and the Pulumi project the commands act on. Kept free
 * of imports beyond Node's, so `nixmox --help` loads nothing else.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";
import { packageFile, packageRoot } from "../manifest/package-root";

export { packageRoot };

/** The nearest folder at or above `start` holding a Pulumi.yaml, as `pulumi` itself looks for its project. */
export function findProjectDir(start: string): string | undefined {
  for (let dir = path.resolve(start); ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "Pulumi.yaml")) || existsSync(path.join(dir, "Pulumi.yml"))) return dir;
    if (path.dirname(dir) === dir) return undefined;
  }
}

/**
 * The project the commands act on (Pulumi.yaml, the stack files, .nixmox/): the one the working directory is in,
 * as for `pulumi`; outside any project, NixMox's own (the clone's example homelab).
 */
export const projectDir = findProjectDir(process.cwd()) ?? packageRoot;

/** The example manifest shipped with NixMox (the source file, never a copy in dist/). */
export const exampleManifestPath = packageFile("manifest", "service-manifest.nix");

/** A path as a user would type it: relative to the working directory when below it. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative === "" || relative.startsWith("..") ? file : relative;
}
