// Real compile path: index.ts loaded by the ts-node the Pulumi language host uses (vendored ts-node@7.0.1 with the
// project's TypeScript and tsconfig, type-checking as `pulumi up` does by default), then run under the offline mocks.
// Not proven here: the language host's gRPC side (no Pulumi CLI is installed).
import { strict as assert } from "node:assert";
import { execFile } from "node:child_process";
import * as path from "node:path";
import { promisify } from "node:util";

const projectDir = path.join(__dirname, "..");

describe("index.ts as the Pulumi language host compiles it", function () {
  this.timeout(300_000);

  it("type-checks and runs under the vendored ts-node with the project's TypeScript, registering the whole example", async () => {
    const env = { ...process.env };
    delete env.PULUMI_NODEJS_TRANSPILE_ONLY;
    const { stdout } = await promisify(execFile)(process.execPath, [path.join(__dirname, "support", "run-like-language-host.js"), projectDir], { cwd: projectDir, env, maxBuffer: 16 * 1024 * 1024 });
    assert.deepEqual(JSON.parse(stdout), { loader: "node_modules/@pulumi/pulumi/vendor/ts-node@7.0.1", transpileOnly: false, resources: 71, providerTextsPerType: 1 });
  });
});
