/**
 * Loads TypeScript the way the Pulumi Node.js language host loads a program (@pulumi/pulumi cmd/run/run.js):
 * the ts-node and TypeScript `tsutils.typeScriptRequireStrings()` picks (the project's, else the vendored
 * ts-node@7.0.1, with the project's typescript), the project's tsconfig, and run.js's default compiler options
 * underneath it. `PULUMI_NODEJS_TRANSPILE_ONLY` is honoured as run.js does (unset: ts-node type-checks).
 * Plain JavaScript on purpose: it must not itself depend on a TypeScript loader.
 */
"use strict";

function registerTypeScriptLikeLanguageHost(projectDir) {
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
  return { tsnodeRequire, typescriptRequire, transpileOnly: Boolean(transpileOnly) };
}

module.exports = { registerTypeScriptLikeLanguageHost };
