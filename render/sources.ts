/**
 * The file-system side of rendering: reads shipped modules from this package's `nixos/` directory and
 * manifest modules from the manifest's directory. Kept apart so renderHost stays pure.
 */
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { resolveManifestFile } from "../manifest/load";
import { packageFile } from "../manifest/package-root";
import type { RenderSources } from "./host";

/** This package's nixos/ directory (the sources', also when running compiled from dist/). */
export const shippedModulesDir = packageFile("nixos");

export function fileSources(manifestDir: string, modulesDir: string = shippedModulesDir): RenderSources {
  return {
    shipped: (relative) => readFileSync(path.join(modulesDir, relative), "utf8"),
    // Followed to its real path and kept inside the manifest's directory (a symlink out is refused, M8).
    manifest: (relative) => readFileSync(resolveManifestFile(manifestDir, relative), "utf8"),
  };
}
