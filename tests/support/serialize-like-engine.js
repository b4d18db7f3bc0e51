#!/usr/bin/env node
/**
 * Serializes dynamic providers the way a real `pulumi up` does, in a process of its own:
 *
 * 1. TypeScript is loaded the way the Node.js language host loads a program (language-host-typescript.js).
 * 2. Each provider is serialized with the call `pulumi.dynamic.Resource` makes (dynamic/index.js
 *    `serializeFunctionMaybeSecret`): `serializeFunction(() => provider, { allowSecrets: true })`.
 *
 * Usage: node serialize-like-engine.js <projectDir> <module path>#<export name> …
 * Prints one JSON object: { "<module path>#<export name>": { text, containsSecrets } }.
 */
"use strict";
const path = require("node:path");
const { registerTypeScriptLikeLanguageHost } = require("./language-host-typescript");

async function main(projectDir, specs) {
  registerTypeScriptLikeLanguageHost(projectDir);
  const { serializeFunction } = require("@pulumi/pulumi/runtime/closure/serializeClosure");
  const result = {};
  for (const spec of specs) {
    const [modulePath, exportName] = spec.split("#");
    const provider = require(path.resolve(projectDir, modulePath))[exportName];
    if (!provider) throw new Error(`${modulePath} exports no ${exportName}`);
    const serialized = await serializeFunction(() => provider, { allowSecrets: true });
    result[spec] = { text: serialized.text, containsSecrets: serialized.containsSecrets };
  }
  process.stdout.write(JSON.stringify(result));
}

main(process.argv[2], process.argv.slice(3)).catch((error) => {
  process.stderr.write(`${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
