/**
 * Secret values on the Pulumi side: read `nixmox:secrets` (`{ <configService>: { <name>: "<value>" } }`, set with
 * `pulumi config set --secret --path 'nixmox:secrets.<service>.<name>' …`), generate the generatable ones that are
 * not set (`GeneratedSecret`, components/secrets/generated-secret.ts), and hand every value on as a secret `Output`. One value per `<configService>/<name>`
 * reaches every host that needs it (a database password: the app's host and the PostgreSQL host; an OIDC client
 * secret: the app's host and the Authentik provider), so both sides always agree.
 */
import * as pulumi from "@pulumi/pulumi";
import type { Plan, SecretPlan } from "../../manifest/plan-types";
import { assertSecretsComplete, type CheckOptions, type ConfigEntryState } from "./check";
import { defaultSecretsDir, deliveryPayload, secretKey } from "./delivery";
import { GeneratedSecret } from "./generated-secret";

/** The config key holding every secret value. */
export const secretsConfigKey = "nixmox:secrets";

/** What the stack config holds under `nixmox:secrets`: plain values (kept in memory only) and how each is stored. */
export interface ConfiguredSecrets {
  values: Record<string, string>;
  states: Record<string, ConfigEntryState>;
}

/** Thrown when `nixmox:secrets` does not have the expected shape; the message never quotes a value. */
export class SecretConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretConfigError";
  }
}

/**
 * Parses the JSON text of `nixmox:secrets`. Every leaf must be a string under `<service>.<name>`. `isSecret`
 * says whether Pulumi marked the key secret: the engine marks the whole object secret when any leaf is
 * `secure:`, so a mix of plain and secure leaves cannot be told apart here (`nixmox secrets check` reads the
 * stack file and can); an all-plain object is reported leaf by leaf as plaintext.
 */
export function parseConfiguredSecrets(json: string | undefined, isSecret: boolean): ConfiguredSecrets {
  const configured: ConfiguredSecrets = { values: {}, states: {} };
  if (json === undefined || json === "") return configured;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    // JSON.parse's message quotes the text it choked on, which is secret: say only where to look.
    throw new SecretConfigError(`${secretsConfigKey} is not a structured value; set each secret with pulumi config set --secret --path '${secretsConfigKey}.<service>.<name>' < FILE`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new SecretConfigError(`${secretsConfigKey} must map services to secrets ({ <service>: { <name>: <value> } }); set each with pulumi config set --secret --path '${secretsConfigKey}.<service>.<name>' < FILE`);
  }
  for (const [service, secrets] of Object.entries(parsed as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (typeof secrets !== "object" || secrets === null || Array.isArray(secrets)) {
      throw new SecretConfigError(`${secretsConfigKey}.${service} must map secret names to values; set each with pulumi config set --secret --path '${secretsConfigKey}.${service}.<name>' < FILE`);
    }
    for (const [name, value] of Object.entries(secrets as Record<string, unknown>)) {
      if (typeof value !== "string") {
        throw new SecretConfigError(`${secretsConfigKey}.${service}.${name} must be a string value (got a ${Array.isArray(value) ? "list" : value === null ? "null" : typeof value}); set it with pulumi config set --secret --path '${secretsConfigKey}.${service}.${name}' < FILE`);
      }
      configured.values[`${service}/${name}`] = value;
      configured.states[`${service}/${name}`] = isSecret ? "secret" : "plaintext";
    }
  }
  return configured;
}

/** Reads `nixmox:secrets` from the running program's config (call inside a Pulumi program or under mocks). */
export function readConfiguredSecrets(): ConfiguredSecrets {
  // `isConfigSecret` is exported by the runtime but missing from its typings (@pulumi/pulumi 3.276 runtime/config.js).
  const runtime = pulumi.runtime as unknown as { getConfig(key: string): string | undefined; isConfigSecret?: (key: string) => boolean };
  const isSecret = runtime.isConfigSecret ? runtime.isConfigSecret(secretsConfigKey) : true;
  return parseConfiguredSecrets(runtime.getConfig(secretsConfigKey), isSecret);
}

export interface ResolveSecretsOptions extends CheckOptions {
  /** Parent of the `GeneratedSecret` resources. @default none (stack children) */
  parent?: pulumi.Resource;
  /** Length of generated values (letters and digits only, so they survive URLs and env files unescaped). @default 48 */
  generatedLength?: number;
}

/** Name of the `GeneratedSecret` behind a generated secret; part of users' state, so it never changes. */
export function generatedSecretResourceName(configService: string, name: string): string {
  return `secret-${configService}-${name}`;
}

/**
 * One secret `Output` per `<configService>/<name>` the plan needs: the configured value, else a generated one,
 * else (optional secrets only) absent. Throws `SecretsMissingError` before creating anything when a required
 * value is missing and cannot be generated, or is stored in plain text.
 */
export function resolveSecretValues(
  plan: Pick<Plan, "secrets">,
  configured: ConfiguredSecrets = readConfiguredSecrets(),
  options: ResolveSecretsOptions = {},
): Record<string, pulumi.Output<string>> {
  const rows = assertSecretsComplete(plan, configured.states, options);
  const values: Record<string, pulumi.Output<string>> = {};
  for (const row of rows) {
    const key = `${row.configService}/${row.name}`;
    if (row.status === "set") {
      values[key] = pulumi.secret(configured.values[key]);
    } else if (row.status === "generated") {
      const generated = new GeneratedSecret(
        generatedSecretResourceName(row.configService, row.name),
        { length: options.generatedLength ?? 48 },
        options.parent ? { parent: options.parent } : {},
      );
      values[key] = pulumi.secret(generated.value);
    }
  }
  return values;
}

/** The secrets one host receives, from the plan (same order as the plan). */
export function hostSecrets(plan: Pick<Plan, "secrets">, service: string): SecretPlan[] {
  return plan.secrets.filter((secret) => secret.service === service);
}

/**
 * The stdin of one host's delivery command as a secret Output (see `deliveryPayload`). Use it as the `stdin`
 * input of that host's `RemoteCommand`: a value change then re-runs only that host's delivery.
 */
export function hostSecretPayload(
  secrets: SecretPlan[],
  values: Record<string, pulumi.Output<string>>,
  secretsDir: string = defaultSecretsDir,
): pulumi.Output<string> {
  const keys = [...new Set(secrets.map(secretKey))].filter((key) => values[key] !== undefined).sort();
  return pulumi.secret(
    pulumi.all(keys.map((key) => values[key])).apply((resolved) =>
      deliveryPayload(secrets, Object.fromEntries(keys.map((key, index) => [key, resolved[index]])), secretsDir),
    ),
  );
}
