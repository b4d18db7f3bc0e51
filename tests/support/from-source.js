"use strict";
// Every `bin/nixmox.js` a test spawns runs the TypeScript sources through tsx (bin/nixmox.js), never a dist/
// build that could be older than the code under test. tests/cli-startup.test.ts runs the build on purpose.
process.env.NIXMOX_FROM_SOURCE = "1";
