#!/usr/bin/env node
"use strict";
/**
 * `npm run build` (and `npm ci`, through the `prepare` script): compiles the program and the CLI to plain
 * JavaScript in dist/ with tsc (tsconfig.build.json), plus the type declarations a homelab project's index.ts
 * imports (`import { nixmox } from "nixmox"`), so `nixmox` starts without a run-time TypeScript compiler.
 *
 * dist/ holds only what tsc writes. The compiled modules read their data files (the activation and secret delivery
 * scripts, the example manifest and its modules, the shipped NixOS modules in nixos/) from the package's own folder
 * (manifest/package-root.ts), never from dist/: `npm pack` leaves symbolic links out, and a copy could go stale.
 */
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const dist = path.join(root, "dist");

/** Links an earlier build made to the data files: they would shadow nothing now, but they would mislead. */
function removeLinks(dir) {
  if (!fs.existsSync(dir)) return;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) fs.rmSync(full);
    else if (entry.isDirectory()) removeLinks(full);
  }
}
removeLinks(dist);

const tsc = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) {
  process.stderr.write("nixmox build: tsc failed (messages above); dist/ is incomplete\n");
  process.exit(tsc.status ?? 1);
}
// What tests/support/compiled-cli.js compares the sources with: the end of the last successful build.
fs.writeFileSync(path.join(dist, ".built"), "");
