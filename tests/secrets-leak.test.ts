// The real program (index.ts) under the shared recording mocks, the real render and the real CLI code paths.
// What the mocks do not prove: what the Pulumi engine writes to its state file or prints in a diff; the
// engine keeps secret-wrapped inputs encrypted, so this test proves that every canary reaches the engine only
// inside secret-wrapped inputs, and nowhere else we produce (commands, other inputs, outputs, files, logs, errors).
import assert from "node:assert/strict";
import { recordProgram, type RecordedRun } from "../components/offline-preview";
import { offlineStackConfig } from "../components/offline-preview";
import { checkSecrets, deliveryCommand, formatSecretCheck, hostSecrets, secretKey } from "../components/secrets";
import { loadPlan, type Plan } from "../manifest";
import { fileSources, renderAll } from "../render";
import { exampleManifestData, writeManifest } from "./support/pulumi-mocks";

/** A distinct value per secret, with characters that shells, JSON, YAML and Nix treat specially. */
function canaryFor(key: string): string {
  return `CANARY<${key}>'"$(x)\`;|&\n\\{}#`;
}

/** Every form a value could leak in: raw, base64 (the delivery payload), JSON-escaped. */
function formsOf(value: string): string[] {
  return [value.slice(0, 24), Buffer.from(value, "utf8").toString("base64").slice(0, 24), JSON.stringify(value).slice(1, 25)];
}

function leaves(value: unknown, path: string, out: Array<{ path: string; text: string }>): void {
  if (typeof value === "string") out.push({ path, text: value });
  else if (Array.isArray(value)) value.forEach((item, index) => leaves(item, `${path}[${index}]`, out));
  else if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) leaves(item, path === "" ? key : `${path}.${key}`, out);
  }
}

describe("secrets leak test: canaries only inside secret-wrapped inputs", function () {
  this.timeout(120_000);
  let plan: Plan;
  let run: RecordedRun;
  let canaries: Record<string, string>;
  let logged = "";
  let removeManifest: () => void = () => undefined;
  let manifestPath: string;

  before(async () => {
    const data = (await exampleManifestData()) as { services: Record<string, Record<string, unknown>> };
    const first = Object.keys(data.services).sort()[0];
    data.services[first].secrets = { smtp_password: { owner: "root", mode: "0440", restart_units: [`${first}.service`] } };
    const written = writeManifest(data);
    removeManifest = written.remove;
    manifestPath = written.path;
    plan = await loadPlan(manifestPath);
    canaries = Object.fromEntries([...new Set(plan.secrets.map(secretKey))].map((key) => [key, canaryFor(key)]));
    const nested: Record<string, Record<string, string>> = {};
    for (const [key, value] of Object.entries(canaries)) {
      const [service, name] = key.split("/");
      (nested[service] ??= {})[name] = value;
    }
    const { config, secretKeys } = offlineStackConfig(manifestPath, { "nixmox:secrets": JSON.stringify(nested) });
    // Everything the program prints while it runs (pulumi.log under mocks and console) goes through these.
    const writeOut = process.stdout.write.bind(process.stdout);
    const writeErr = process.stderr.write.bind(process.stderr);
    const capture = (chunk: unknown) => {
      logged += String(chunk);
      return true;
    };
    process.stdout.write = capture as typeof process.stdout.write;
    process.stderr.write = capture as typeof process.stderr.write;
    try {
      run = await recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys: [...secretKeys, "nixmox:secrets"] });
    } finally {
      process.stdout.write = writeOut;
      process.stderr.write = writeErr;
    }
  });
  after(() => removeManifest());

  const containsCanary = (text: string): string | null => {
    for (const [key, value] of Object.entries(canaries)) if (formsOf(value).some((form) => text.includes(form))) return key;
    return null;
  };

  it("sets a canary for every secret the plan needs, and generates none", () => {
    assert.ok(Object.keys(canaries).length >= 8, `only ${Object.keys(canaries).length} secrets`);
    assert.deepEqual(run.resources.filter((resource) => resource.type === "pulumi-nodejs:dynamic/nixmox:GeneratedSecret"), []);
  });

  it("never puts a canary in a non-secret input (command strings included)", () => {
    for (const resource of run.resources) {
      assert.equal(containsCanary(JSON.stringify(resource.inputs)), null, `${resource.name} has a canary in a non-secret input`);
    }
  });

  it("puts canaries only at secret-wrapped input paths", () => {
    let seen = 0;
    for (const resource of run.resources) {
      const found: Array<{ path: string; text: string }> = [];
      leaves(resource.plainInputs, "", found);
      for (const leaf of found) {
        if (containsCanary(leaf.text) === null) continue;
        seen++;
        const wrapped = resource.secretPaths.some((secret) => leaf.path === secret || leaf.path.startsWith(`${secret}.`) || leaf.path.startsWith(`${secret}[`));
        assert.ok(wrapped, `${resource.name}: ${leaf.path} holds a canary but is not secret-wrapped (secret paths: ${resource.secretPaths.join(", ")})`);
      }
    }
    assert.ok(seen > 0, "no canary reached any input");
  });

  it("delivers every host's canaries byte-exact on the secrets command's secret stdin", () => {
    for (const service of plan.services) {
      const secrets = hostSecrets(plan, service.name);
      if (secrets.length === 0) continue;
      const push = run.resources.find((resource) => resource.name === `${service.name}-secrets`);
      assert.ok(push, `no ${service.name}-secrets command`);
      assert.ok(push.secretPaths.includes("stdin"), `${service.name}-secrets stdin is not secret`);
      assert.equal(push.inputs.command, deliveryCommand(secrets, plan.secretsDir));
      const lines = String(push.plainInputs.stdin).split("\n");
      assert.equal(lines[0], "nixmox-secrets-payload v1");
      const delivered = Object.fromEntries(
        lines.slice(1, -2).map((line) => [line.slice(0, line.indexOf(" ")), Buffer.from(line.slice(line.indexOf(" ") + 1), "base64").toString("utf8")]),
      );
      assert.deepEqual(delivered, Object.fromEntries(secrets.map((secret) => [secretKey(secret), canaries[secretKey(secret)]])));
    }
  });

  it("keeps canaries out of stack outputs and of what the program printed", () => {
    assert.equal(containsCanary(JSON.stringify(run.outputs)), null);
    assert.equal(containsCanary(logged), null);
  });

  it("keeps canaries out of every rendered host file", () => {
    for (const host of renderAll(plan, fileSources(plan.manifestDir))) {
      for (const [file, content] of Object.entries(host.files)) assert.equal(containsCanary(content), null, `${host.service}/${file}`);
    }
  });

  it("keeps canaries out of the check output", () => {
    const states = Object.fromEntries(Object.keys(canaries).map((key) => [key, "secret" as const]));
    assert.equal(containsCanary(formatSecretCheck(checkSecrets(plan, states))), null);
  });

  it("fails without a canary in the error when a required secret is stored in plain text", async () => {
    const nested: Record<string, Record<string, string>> = {};
    for (const [key, value] of Object.entries(canaries)) {
      const [service, name] = key.split("/");
      (nested[service] ??= {})[name] = value;
    }
    const { config, secretKeys } = offlineStackConfig(manifestPath, { "nixmox:secrets": JSON.stringify(nested) });
    await assert.rejects(recordProgram(require("../index") as () => Promise<unknown>, { config, secretKeys }), (error: unknown) => {
      const message = (error as Error).message;
      assert.match(message, /^secrets: \d+ required secrets are not usable; nothing was changed:\n/);
      assert.equal(containsCanary(message), null);
      assert.equal(containsCanary(String((error as Error).stack)), null);
      return true;
    });
  });
});
