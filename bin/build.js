#!/usr/bin/env node
"use strict";
/**
 * `npm run build` (and `npm ci`, through the `prepare` script): compiles the program and the CLI to plain
 * JavaScript in dist/ with tsc (tsconfig.build.json), so `nixmox` starts without a run-time TypeScript compiler.
 *
 * The compiled modules find their data files next to themselves (`__dirname`): the activation and secret
 * delivery scripts, the example manifest and its modules, the shipped NixOS modules in nixos/. dist/ gets a
 * symbolic link to each source file instead of a copy, so an edited manifest or module is never shadowed by a
 * stale copy, and the paths printed to the user stay those of the sources.
 */
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

const root = path.resolve(__dirname, "..");
const dist = path.join(root, "dist");
/** Directories compiled into dist/ whose non-TypeScript files are read at run time. */
const sourceDirs = ["manifest", "components", "render", "cli", "twin"];
/** Directories read as a whole, relative to a compiled module (render/sources.ts reads ../nixos). */
const linkedDirs = ["nixos"];

const tsc = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], { stdio: "inherit" });
if (tsc.status !== 0) {
  process.stderr.write("nixmox build: tsc failed (messages above); dist/ is incomplete\n");
  process.exit(tsc.status ?? 1);
}

function link(relative) {
  const target = path.join(dist, relative);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.rmSync(target, { force: true, recursive: false });
  fs.symlinkSync(path.relative(path.dirname(target), path.join(root, relative)), target);
}

function dataFiles(relativeDir) {
  return fs.readdirSync(path.join(root, relativeDir), { withFileTypes: true }).flatMap((entry) => {
    const relative = path.join(relativeDir, entry.name);
    if (entry.isDirectory()) return dataFiles(relative);
    return entry.name.endsWith(".ts") ? [] : [relative];
  });
}

for (const dir of linkedDirs) {
  fs.rmSync(path.join(dist, dir), { force: true, recursive: true });
  link(dir);
}
for (const file of sourceDirs.flatMap(dataFiles)) link(file);
