/**
 * Pure builders for the per-host secrets push: the remote command (script + non-secret metadata) and the stdin
 * payload (values). Nothing here touches Pulumi or the network; `components/` wires the two into one
 * `remote.Command` per host with the payload as its `stdin` input.
 *
 * Why re-runs happen exactly when they should: the command string changes when the host's secret *set* changes
 * (paths, owners, modes, units); the payload (a secret Output passed as `stdin`) changes when a *value* changes.
 * `stdin` is an input of `remote.Command`, so a value change alone updates that host's command and no other:
 * no value, hash or HMAC of a value is ever put in a non-secret place. `secretSetFingerprint` is the
 * metadata-only hash (for display and for tests).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecretPlan } from "../../manifest/plan-types";
import { packageFile } from "../../manifest/package-root";
import { shellCommand } from "../ssh/quote";

/** The directory the NixOS modules read secrets from (`nixmox.host.secretsDir`); mirrors manifest `secretsDir`. */
export const defaultSecretsDir = "/var/lib/nixmox/secrets";

/** The delivery script text (no secrets in it). Read once; sent inline with every delivery. */
export const deliveryScript: string = readFileSync(packageFile("components", "secrets", "deliver-secrets.sh"), "utf8");

/** Key of a value in the map handed to `deliveryPayload`: `<configService>/<name>`. */
export function secretKey(secret: Pick<SecretPlan, "configService" | "name">): string {
  return `${secret.configService}/${secret.name}`;
}

const namePattern = /^[a-z0-9][a-z0-9_.-]*$/;
const accountPattern = /^[a-z_][a-z0-9_-]*$/;
const unitPattern = /^[A-Za-z0-9@:._-]+$/;
const modePattern = /^0[0-7]{3}$/;
const rootPattern = /^\/[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/;

/** Thrown for a secret declaration the delivery cannot honour; the message names service, field and fix. */
export class SecretDeliveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SecretDeliveryError";
  }
}

function checkRoot(secretsDir: string): void {
  if (!rootPattern.test(secretsDir) || secretsDir.split("/").some((part) => part === "." || part === "..")) {
    throw new SecretDeliveryError(`secrets directory must be an absolute path of [A-Za-z0-9._-] components, got ${JSON.stringify(secretsDir)}`);
  }
}

/** Validates one host's secret list (same host, unique keys, safe fields) and returns it in a stable order. */
function checkHostSecrets(hostSecrets: SecretPlan[], secretsDir: string): SecretPlan[] {
  checkRoot(secretsDir);
  const hosts = [...new Set(hostSecrets.map((secret) => secret.service))];
  if (hosts.length > 1) throw new SecretDeliveryError(`one delivery serves one host, got secrets for ${hosts.map((h) => `"${h}"`).join(", ")}`);
  const seen = new Set<string>();
  for (const secret of hostSecrets) {
    const where = `service "${secret.service}": secret "${secret.configService}/${secret.name}"`;
    if (!namePattern.test(secret.configService) || !namePattern.test(secret.name)) {
      throw new SecretDeliveryError(`${where}: names must match [a-z0-9][a-z0-9_.-]*; rename it in the manifest's secrets`);
    }
    const expectedPath = `${secretsDir}/${secretKey(secret)}`;
    if (secret.path !== expectedPath) {
      throw new SecretDeliveryError(`${where}: path must be ${expectedPath} (the directory the NixOS modules read), got ${JSON.stringify(secret.path)}`);
    }
    if (!accountPattern.test(secret.owner)) throw new SecretDeliveryError(`${where}: owner must be a user name like "grafana", got ${JSON.stringify(secret.owner)}`);
    if (!accountPattern.test(secret.group)) throw new SecretDeliveryError(`${where}: group must be a group name like "grafana", got ${JSON.stringify(secret.group)}`);
    if (!modePattern.test(secret.mode)) throw new SecretDeliveryError(`${where}: mode must be 4 octal digits like "0400", got ${JSON.stringify(secret.mode)}`);
    for (const unit of secret.restartUnits) {
      if (!unitPattern.test(unit)) throw new SecretDeliveryError(`${where}: restart unit ${JSON.stringify(unit)} is not a systemd unit name`);
    }
    if (seen.has(secretKey(secret))) throw new SecretDeliveryError(`${where}: declared twice for the same host`);
    seen.add(secretKey(secret));
  }
  return [...hostSecrets].sort((a, b) => (secretKey(a) < secretKey(b) ? -1 : secretKey(a) > secretKey(b) ? 1 : 0));
}

function declarationArgs(secret: SecretPlan): string[] {
  const units = [...new Set(secret.restartUnits)].sort();
  return [secret.path, secret.owner, secret.group, secret.mode, units.length > 0 ? units.join(",") : "-", secret.required ? "1" : "0"];
}

/**
 * The remote command that delivers one host's secrets: `bash -c <script> nixmox-secrets deliver <root> <decl>…`.
 * Values are not part of it: they come on stdin (`deliveryPayload`). Every argument is validated and quoted.
 * With no secrets it still runs, so files of secrets no longer declared are removed.
 * @param secretsDir the host's secrets directory. @default "/var/lib/nixmox/secrets"
 */
export function deliveryCommand(hostSecrets: SecretPlan[], secretsDir: string = defaultSecretsDir): string {
  const sorted = checkHostSecrets(hostSecrets, secretsDir);
  return shellCommand(["bash", "-c", deliveryScript, "nixmox-secrets", "deliver", secretsDir, ...sorted.flatMap(declarationArgs)]);
}

/**
 * The command to run on a host after its rebuild: chowns the files whose owner did not exist at delivery time
 * (recorded in `<secretsDir>/.nixmox-pending-ownership`), restarts their units, exits 1 when an owner is still
 * missing. A no-op when nothing is pending.
 * @param secretsDir @default "/var/lib/nixmox/secrets"
 */
export function pendingOwnershipCommand(secretsDir: string = defaultSecretsDir): string {
  checkRoot(secretsDir);
  return shellCommand(["bash", "-c", deliveryScript, "nixmox-secrets", "apply-pending", secretsDir]);
}

/**
 * The stdin of `deliveryCommand`: a header, one `<service>/<name> <base64>` line per secret that has a value,
 * and an `end` line (the script refuses a stream without it, so a dropped connection writes nothing).
 * A required secret without a value is an error naming it (never a value); an optional one is skipped, and the
 * script removes its old file.
 */
export function deliveryPayload(hostSecrets: SecretPlan[], values: Record<string, string>, secretsDir: string = defaultSecretsDir): string {
  const sorted = checkHostSecrets(hostSecrets, secretsDir);
  const lines = ["nixmox-secrets-payload v1"];
  for (const secret of sorted) {
    const value = Object.prototype.hasOwnProperty.call(values, secretKey(secret)) ? values[secretKey(secret)] : undefined;
    if (value === undefined) {
      if (secret.required) {
        throw new SecretDeliveryError(
          `service "${secret.service}": secret "${secretKey(secret)}" has no value; set it with ` +
            `pulumi config set --secret --path '${configPath(secret.configService, secret.name)}' < FILE`,
        );
      }
      continue;
    }
    lines.push(`${secretKey(secret)} ${Buffer.from(value, "utf8").toString("base64")}`);
  }
  lines.push("end");
  return `${lines.join("\n")}\n`;
}

/**
 * A hash of the host's secret set without values (path, owner, group, mode, units, required), stable across
 * input order. It changes when a secret is added, removed or its metadata changes; values are covered by the
 * command's `stdin` input instead (see the module comment).
 */
export function secretSetFingerprint(hostSecrets: SecretPlan[], secretsDir: string = defaultSecretsDir): string {
  const sorted = checkHostSecrets(hostSecrets, secretsDir);
  return createHash("sha256").update(JSON.stringify([secretsDir, sorted.map(declarationArgs)])).digest("hex");
}

/**
 * The `--path` key of a secret in the stack config: `nixmox:secrets.<service>.<name>`. Names with characters
 * other than letters, digits and `_` use the bracket form (`nixmox:secrets.svc["a.b"]`), because Pulumi's
 * property paths split on `.` (https://www.pulumi.com/docs/iac/concepts/config/#structured-configuration).
 */
export function configPath(configService: string, name: string): string {
  const part = (segment: string) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(segment) ? `.${segment}` : `["${segment}"]`);
  return `nixmox:secrets${part(configService)}${part(name)}`;
}
