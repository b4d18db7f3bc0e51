#!/usr/bin/env node
/**
 * Compiles and runs index.ts the way `pulumi up` does (language-host-typescript.js: ts-node with the project's
 * TypeScript, type-checking unless PULUMI_NODEJS_TRANSPILE_ONLY=true), under the offline mocks instead of an engine.
 * Usage: node run-like-language-host.js <projectDir>. Prints { loader, transpileOnly, resources: <count>,
 * providerTextsPerType: <the most distinct serialized providers one dynamic resource type carried> } as JSON.
 */
"use strict";
const path = require("node:path");
const { registerTypeScriptLikeLanguageHost } = require("./language-host-typescript");

async function main(projectDir) {
  const loader = registerTypeScriptLikeLanguageHost(projectDir);
  const offline = require(path.join(projectDir, "components", "offline-preview.ts"));
  const { defaultManifestPath } = require(path.join(projectDir, "manifest"));
  const program = require(path.join(projectDir, "index.ts"));
  const { config, secretKeys } = offline.offlineStackConfig(defaultManifestPath);
  const run = await offline.recordProgram(program, { config, secretKeys });
  process.stdout.write(JSON.stringify({ loader: path.relative(projectDir, loader.tsnodeRequire), transpileOnly: loader.transpileOnly, resources: run.resources.length, providerTextsPerType: Math.max(...Object.values(run.providerTexts).map((texts) => texts.length)) }));
}

main(process.argv[2]).catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
