"use strict";
// Every `bin/nixmox.js` a test spawns runs the compiled CLI from dist/, as users run it: the worked example of
// docs/custom-apps.md once failed only there, while the tests ran the sources (newcomer-2 #3). So before the first
// test, dist/ is rebuilt when a source is newer than the last build (`npm test` builds first anyway), and
// NIXMOX_FROM_SOURCE is cleared from a developer's environment.
const { spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");

delete process.env.NIXMOX_FROM_SOURCE;

const root = path.resolve(__dirname, "..", "..");
const stamp = path.join(root, "dist", ".built");
const sources = ["index.ts", "program.ts", "tsconfig.json", "tsconfig.build.json", "manifest", "components", "render", "cli"];

function newestMtime(file) {
  if (!fs.existsSync(file)) return 0;
  const stat = fs.statSync(file);
  if (!stat.isDirectory()) return file.endsWith(".ts") || file.endsWith(".json") ? stat.mtimeMs : 0;
  return Math.max(0, ...fs.readdirSync(file).map((entry) => newestMtime(path.join(file, entry))));
}

const built = fs.existsSync(stamp) ? fs.statSync(stamp).mtimeMs : 0;
if (Math.max(...sources.map((source) => newestMtime(path.join(root, source)))) > built) {
  const build = spawnSync(process.execPath, [path.join(root, "bin", "build.js")], { cwd: root, stdio: "inherit" });
  if (build.status !== 0) throw new Error("the tests run the compiled CLI, and `node bin/build.js` failed (messages above)");
}
