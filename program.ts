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
import { SecretConfigError, SecretsMissingError, resolveSecretValues } from "./components/secrets";
import { checkSettingsAgainstPlan, readStackSettings } from "./components/stack-config";
import { ManifestError, loadPlan } from "./manifest";
import { fileSources } from "./render";

/**
 * The program: returns the stack outputs (`services`, `knownHosts`, `caRootCertificate`). A problem the user fixes
 * (the manifest, the stack config, a missing secret, the deploy key) reaches them as its message alone: a
 * `pulumi.RunError`, which the SDK prints without a stack trace, keeping the error's name.
 */
export async function nixmox() {
  try {
    return await deploy();
  } catch (error) {
    if (error instanceof ManifestError || error instanceof SecretsMissingError || error instanceof SecretConfigError) throw Object.assign(new pulumi.RunError(error.message), { name: error.name });
    throw error;
  }
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
  const hosts = renderWithCa(plan, fileSources(plan.manifestDir), { nixpkgs: settings.nixpkgs }, ca.rootCertificatePem);
  const provider = createProxmoxProvider(settings, secrets);
  const templates = createTemplates(plan, settings, secrets);
  const publicKey = deployPublicKey(secrets.sshPrivateKey);
  const deliveries = planDeliveries({ ...plan, secrets: [...plan.secrets, ...managedCaSecretPlans(plan)] }, { ...secretValues, ...managedCaSecretValues(plan, ca) });
  // SSO clients' health gates wait for their own Authentik objects, which are created after every service.
  const ssoGates = createSsoGates(plan);
  const services = createServices({ plan, hosts, settings, secrets, templates, provider, deployPublicKey: publicKey, deliveries, ssoGates: ssoGates.gates });
  try {
    ssoGates.open(createSso(plan, secretValues, services));
  } catch (error) {
    ssoGates.open(null);
    throw error;
  }
  return { ...exportServices(plan, services), caRootCertificate: ca.rootCertificatePem };
}
