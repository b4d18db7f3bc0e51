/**
 * The homelab's managed CA: the root that signs every `tls = "internal"` route (review R3). Caddy's own internal
 * CA lives in the proxy's data directory and is trusted by no other host, so server-side calls between hosts
 * (Vaultwarden's OIDC discovery, Guacamole's JWKS download from https://auth.<domain>) fail certificate
 * verification. This root is instead Pulumi state (@pulumi/tls): its key is delivered to the proxy host as the
 * secret `ca_root_key` (and the certificate as `ca_root_cert`, render/host-data.ts managedCaSecrets) for
 * Caddy's pki block, and its certificate is rendered into every host (render option caRootCertificate →
 * security.pki.certificates, Tomcat's trust store).
 *
 * Users add the same root to their browsers: the program is to export `rootCertificatePem` as the stack output
 * `caRootCertificate` (`pulumi stack output caRootCertificate > nixmox-root.crt`, README "Trusting the
 * homelab's certificates"). Not wired into index.ts yet: rendering needs the root as a plain string.
 *
 * Children: `<name>-root-key` (tls.PrivateKey, ECDSA P-256; its PEM is a Pulumi secret) and `<name>-root`
 * (tls.SelfSignedCert: CA, cert and CRL signing only, path length 1 for Caddy's intermediate). The key is
 * generated once and kept: replacing it would make every host and browser distrust the sites until they get
 * the new root, so both children are protected unless `protectRoot` is false.
 */
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";

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
