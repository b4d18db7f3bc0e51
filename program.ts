/**
 * The NixMox Pulumi program, as the package exports it (`import { nixmox } from "nixmox"`): a homelab project's
 * index.ts, and this repository's own, export it as their program; `pulumi preview` / `pulumi up` run it, and
 * `nixmox preview --offline` runs it under mocks. Stack config → manifest → plan → rendered hosts → one
 * NixosService per enabled service → stack outputs. Each stage is a named function; nothing here creates
 * resources at import time.
 */
import * as pulumi from "@pulumi/pulumi";
import { checkDeployKey, deployPublicKey } from "./components/deploy-key";
import { requireReplaceWithSupport } from "./components/engine-requirements";
import { createServices, createSso, createSsoGates, exportServices, planDeliveries } from "./components/homelab";
import { createProxmoxProvider, createTemplates } from "./components/proxmox";
import { caPermittedDomains, ManagedCa, managedCaSecretPlans, managedCaSecretValues, renderWithCa } from "./components/managed-ca";
import { resolveSecretValues } from "./components/secrets";
import { checkSettingsAgainstPlan, readStackSettings } from "./components/stack-config";
import { createBuildSigningKey, controllerSlots, renderOptionsWithKey } from "./components/build";
import { loadPlan } from "./manifest";
import { fileSources } from "./render";

/** The program: returns the stack outputs (`services`, `knownHosts`, `caRootCertificate`). */
export async function nixmox() {
  try {
    return await deploy();
  } catch (error) {
    throw userFacing(error);
  }
}

/**
 * A failure before any resource (stack config, manifest, secrets, the deploy key, engine version) is the user's to
 * fix: as a `pulumi.RunError` the SDK prints its message alone, without the stack trace it prints for an unhandled
 * error (@pulumi/pulumi errors.js RunError). The error keeps its name, which the offline preview and the tests read.
 */
function userFacing(error: unknown): unknown {
  if (!(error instanceof Error) || pulumi.RunError.isInstance(error as unknown)) return error;
  const failure = new pulumi.RunError((error as Error).message);
  failure.name = (error as Error).name;
  return failure;
}

async function deploy() {
  // Before anything else: an engine without replaceWith would fail at every service's children.
  await requireReplaceWithSupport();
  // A relative nixmox:manifest is relative to the project folder (Pulumi.yaml), also when NixMox is a dependency.
  const { settings, secrets, deployKey } = readStackSettings(new pulumi.Config("nixmox"), pulumi.runtime.getRootDirectory() || process.cwd());
  const plan = await loadPlan(settings.manifestPath, { allowPaths: settings.manifestAllowPaths });
  checkSettingsAgainstPlan(settings, plan.services.map((service) => service.name));
  // `up` stops here, before any resource, on a deploy key the hosts' NixOS configuration would not list.
  checkDeployKey(deployKey, plan.network.sshKeys.root ?? [], { enforce: settings.deployKeyCheck, deploying: !pulumi.runtime.isDryRun() });
  // First, before any resource exists: a missing required secret stops the deploy with the full list.
  const secretValues = resolveSecretValues(plan);
  // The homelab's root CA, constrained to its names: every host trusts it, and the proxy signs its internal-TLS sites
  // with its intermediate (reviews R3, security-2 N2).
  const ca = new ManagedCa("nixmox-ca", { permittedDomains: caPermittedDomains(plan), allowRootReplacement: settings.rotateRootCa });
  // Where each host's system is built (manifest build): said once; a host built elsewhere trusts the stack's key.
  const signingKey = createBuildSigningKey(plan, new pulumi.Config("nixmox"));
  const hosts = renderWithCa(plan, fileSources(plan.manifestDir), renderOptionsWithKey({ nixpkgs: settings.nixpkgs }, signingKey), ca.rootCertificatePem);
  const provider = createProxmoxProvider(settings, secrets);
  const templates = createTemplates(plan, settings, secrets);
  const publicKey = deployPublicKey(secrets.sshPrivateKey);
  const deliveries = planDeliveries({ ...plan, secrets: [...plan.secrets, ...managedCaSecretPlans(plan)] }, { ...secretValues, ...managedCaSecretValues(plan, ca) });
  // SSO clients' health gates wait for their own Authentik objects, which are created after every service.
  const ssoGates = createSsoGates(plan);
  const services = createServices({
    plan, hosts, settings, secrets, templates, provider, deployPublicKey: publicKey, deliveries, ssoGates: ssoGates.gates,
    ...(signingKey ? { signingKey, controllerSlots: controllerSlots() } : {}),
  });
  try {
    ssoGates.open(createSso(plan, secretValues, services));
  } catch (error) {
    ssoGates.open(null);
    throw error;
  }
  return { ...exportServices(plan, services), caRootCertificate: ca.rootCertificatePem };
}
