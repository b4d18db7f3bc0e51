#!/usr/bin/env node
/**
 * Serializes dynamic providers the way a real `pulumi up` does, in a process of its own:
 *
 * 1. TypeScript is loaded the way the Node.js language host loads a program (@pulumi/pulumi cmd/run/run.js):
 *    the ts-node `tsutils.typeScriptRequireStrings()` picks (the project's, else the vendored ts-node@7.0.1) with
 *    the project's TypeScript, the project's tsconfig and run.js's default compiler options underneath.
 *    `PULUMI_NODEJS_TRANSPILE_ONLY` is honoured exactly as run.js does (unset: ts-node type-checks).
 * 2. Each provider is serialized with the call `pulumi.dynamic.Resource` makes (dynamic/index.js
 *    `serializeFunctionMaybeSecret`): `serializeFunction(() => provider, { allowSecrets: true })`.
 *
 * Usage: node serialize-like-engine.js <projectDir> <module path>#<export name> …
 * Prints one JSON object: { "<module path>#<export name>": { text, containsSecrets } }.
 */
"use strict";
const path = require("node:path");

async function main(projectDir, specs) {
  process.chdir(projectDir);
  const tsutils = require("@pulumi/pulumi/tsutils");
  const tsConfigPath = process.env.PULUMI_NODEJS_TSCONFIG_PATH ?? "tsconfig.json";
  const compilerOptions = tsutils.loadTypeScriptCompilerOptions(tsConfigPath);
  const transpileOnlyEnv = process.env.PULUMI_NODEJS_TRANSPILE_ONLY;
  const transpileOnly = transpileOnlyEnv ? transpileOnlyEnv === "true" : compilerOptions.noCheck;
  const { tsnodeRequire, typescriptRequire } = tsutils.typeScriptRequireStrings();
  require(tsnodeRequire).register({
    compiler: typescriptRequire,
    transpileOnly,
    project: tsConfigPath,
    skipProject: false,
    compilerOptions: { target: "ES2020", module: "nodenext", moduleResolution: "nodenext", sourceMap: "true", ...compilerOptions },
  });
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
