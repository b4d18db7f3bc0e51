/**
 * NixMox's own folder: this clone, or `node_modules/nixmox` in a homelab project that depends on NixMox. Its data
 * files (the example manifest, the shipped NixOS modules, the activation and delivery scripts) are read from here,
 * whether the code runs from the TypeScript sources or compiled into dist/: `npm pack` leaves symbolic links out of
 * a package, so dist/ holds JavaScript only and no links to those files. Node's modules only, nothing else.
 */
import { existsSync } from "node:fs";
import * as path from "node:path";

function findPackageRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`NixMox's package.json was not found above ${start}`);
  }
}

/** The folder holding NixMox's package.json (dist/ has none, so the compiled code finds the same folder). */
export const packageRoot = findPackageRoot(__dirname);

/** A file shipped with NixMox, by its path in the repository (e.g. `nixos/core.nix`). */
export function packageFile(...segments: string[]): string {
  return path.join(packageRoot, ...segments);
}
