#!/usr/bin/env node
"use strict";
// The CLI runs as plain JavaScript from dist/, which `npm ci` builds (the `prepare` script runs bin/build.js).
// NIXMOX_FROM_SOURCE=1 runs the TypeScript sources through tsx instead, for development (the tests run the build,
// rebuilt when stale: tests/support/compiled-cli.js).
const path = require("node:path");

if (process.env.NIXMOX_FROM_SOURCE === "1") {
  require("tsx/cjs");
  require("../cli/main.ts");
} else {
  const main = path.join(__dirname, "..", "dist", "cli", "main.js");
  // V8's code cache for the CLI's modules (Node >= 22.1): later starts skip compiling them.
  require("node:module").enableCompileCache?.();
  try {
    require.resolve(main);
  } catch {
    process.stderr.write(`nixmox: not built yet: run \`npm run build\` in ${path.dirname(__dirname)} (npm ci does it)\n`);
    process.exit(2);
  }
  require(main);
}
