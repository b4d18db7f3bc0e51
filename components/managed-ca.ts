/**
 * The homelab's managed CA: the root that signs every `tls = "internal"` route (review R3). Caddy's own internal
 * CA lives in the proxy's data directory and is trusted by no other host, so server-side calls between hosts
 * (Vaultwarden's OIDC discovery, Guacamole's JWKS download from https://auth.<domain>) fail certificate
 * verification. This root is instead Pulumi state (@pulumi/tls): its key is delivered to the proxy host as the
 * secret `ca_root_key` (and the certificate as `ca_root_cert`, render/host-data.ts managedCaSecrets) for
 * Caddy's pki block, and its certificate is rendered into every host (render option caRootCertificate →
 * security.pki.certificates, Tomcat's trust store).
 *
 * Users add the same root to their browsers: the program exports `rootCertificatePem` as the stack output
 * `caRootCertificate` (`pulumi stack output caRootCertificate > nixmox-root.crt`, README "Trusting the
 * homelab's certificates"). Rendering waits for the root (`renderWithCa`), so on a first deploy's preview the
 * rendered hosts are unknown until the root exists.
 *
 * Children: `<name>-root-key` (tls.PrivateKey, ECDSA P-256; its PEM is a Pulumi secret) and `<name>-root`
 * (tls.SelfSignedCert: CA, cert and CRL signing only, path length 1 for Caddy's intermediate). The key is
 * generated once and kept: replacing it would make every host and browser distrust the sites until they get
 * the new root, so both children are protected unless `protectRoot` is false.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import type { Plan } from "../manifest/plan-types";
import { managedCaSecretPlans, renderAll, type RenderedHost, type RenderOptions, type RenderSources } from "../render";

export interface ManagedCaArgs {
  /** The homelab domain (manifest network.domain), named in the root's subject. */
  domain: string;
  /** How long the root is valid. @default 87600 (ten years; Caddy renews its own intermediate and leaves) */
  validityHours?: number;
  /** Protect the key and root from deletion and replacement. @default true */
  protectRoot?: boolean;
}

export class ManagedCa extends pulumi.ComponentResource {
  /** The root certificate (PEM). Public: every host and browser trusts it. */
  declare public readonly rootCertificatePem: pulumi.Output<string>;
  /** The root's private key (PEM), a Pulumi secret; delivered only to the proxy host. */
  declare public readonly rootKeyPem: pulumi.Output<string>;

  constructor(name: string, args: ManagedCaArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nixmox:index:ManagedCa", name, {}, opts);
    const protect = args.protectRoot ?? true;
    const key = new tls.PrivateKey(`${name}-root-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this, protect });
    const root = new tls.SelfSignedCert(`${name}-root`, {
      privateKeyPem: key.privateKeyPem,
      isCaCertificate: true,
      maxPathLength: 1,
      allowedUses: ["cert_signing", "crl_signing"],
      validityPeriodHours: args.validityHours ?? 87_600,
      subject: { commonName: `NixMox ${args.domain} root`, organization: "NixMox" },
    }, { parent: this, protect });

    this.rootCertificatePem = root.certPem;
    this.rootKeyPem = pulumi.secret(key.privateKeyPem);
    this.registerOutputs({ rootCertificatePem: this.rootCertificatePem, rootKeyPem: this.rootKeyPem });
  }
}

/**
 * Every enabled host rendered with the managed root (each host trusts it; the proxy signs with it), one output per
 * service. Under the offline mocks the root is undefined and the hosts render as without a managed CA.
 */
export function renderWithCa(plan: Plan, sources: RenderSources, options: RenderOptions, rootCertificatePem: pulumi.Output<string>): Record<string, pulumi.Output<RenderedHost>> {
  const rendered = rootCertificatePem.apply((pem) => renderAll(plan, sources, { ...options, ...(pem ? { caRootCertificate: pem } : {}) }));
  return Object.fromEntries(plan.services.map((service) => [service.name, rendered.apply((hosts) => hosts.find((host) => host.service === service.name)!)]));
}

/** The values of `managedCaSecretPlans`, keyed `<service>/<name>` like every secret value (secret outputs). */
export { managedCaSecretPlans };

export function managedCaSecretValues(plan: Plan, ca: ManagedCa): Record<string, pulumi.Output<string>> {
  const [cert, key] = managedCaSecretPlans(plan);
  if (!cert) return {};
  // Under the offline mocks the tls provider computes nothing: deliver empty files there.
  return {
    [`${cert.configService}/${cert.name}`]: pulumi.secret(ca.rootCertificatePem.apply((pem) => pem ?? "")),
    [`${key.configService}/${key.name}`]: pulumi.secret(ca.rootKeyPem.apply((pem) => pem ?? "")),
  };
}
