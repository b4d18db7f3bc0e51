/**
 * The homelab's managed CA: the root that signs every `tls = "internal"` route (review R3). Caddy's own internal
 * CA lives in the proxy's data directory and is trusted by no other host, so server-side calls between hosts
 * (Vaultwarden's OIDC discovery, Guacamole's JWKS download from https://auth.<domain>) fail certificate
 * verification. This root is instead Pulumi state: its key is delivered to the proxy host as the secret
 * `ca_root_key` (and the certificate as `ca_root_cert`, render/host-data.ts managedCaSecrets) for Caddy's pki block,
 * and its certificate is rendered into every host (render option caRootCertificate → security.pki.certificates,
 * Tomcat's trust store).
 *
 * Users add the same root to their browsers: the program exports `rootCertificatePem` as the stack output
 * `caRootCertificate` (`pulumi stack output caRootCertificate > nixmox-root.crt`, README "Trusting the
 * homelab's certificates"). Rendering waits for the root (`renderWithCa`), so on a first deploy's preview the
 * rendered hosts are unknown until the root exists.
 *
 * Child: `<name>-root` (`RootCa`, dynamic resource `pulumi-nodejs:dynamic/nixmox:RootCa`): an ECDSA P-256 key and
 * its self-signed certificate (CA, cert and CRL signing only, path length 1 for Caddy's intermediate), built with
 * @peculiar/x509 (the tls plugin behind @pulumi/tls cannot be built from the Go module proxy, tools/engine/README.md,
 * and @pulumi/tls has no name constraints, which issue 20 adds). The subject names no domain, so a
 * `network.domain` edit leaves the root alone (pulumi-engine-2 review B2). The key is generated once and kept:
 * replacing it would make every host and browser distrust the sites until they get the new root, so the child is
 * protected unless `protectRoot` is false.
 */
import * as pulumi from "@pulumi/pulumi";
import type { Plan } from "../manifest/plan-types";
import { managedCaSecretPlans, renderAll, type RenderedHost, type RenderOptions, type RenderSources } from "../render";

export interface ManagedCaArgs {
  /** How long the root is valid. @default 87600 (ten years; Caddy renews its own intermediate and leaves) */
  validityHours?: number;
  /** Protect the key and root from deletion and replacement. @default true */
  protectRoot?: boolean;
}

export interface RootCaInputs {
  commonName: string;
  validityHours: number;
}

export interface RootCaOutputs extends RootCaInputs {
  certificatePem: string;
  /** PKCS#8 PEM (secret). */
  privateKeyPem: string;
}

/**
 * A self-signed root: a fresh ECDSA P-256 key, a random 16-byte serial, valid from an hour ago (clock skew between
 * hosts) for `validityHours`, basic constraints CA with path length 1 and key usage cert and CRL signing (both
 * critical), subject `CN=<commonName>, O=NixMox`, and its subject key identifier.
 */
export async function createRootCa(inputs: RootCaInputs, now: Date = new Date()): Promise<RootCaOutputs> {
  // reflect-metadata first: @peculiar/x509's dependency injection (tsyringe) needs the Reflect polyfill.
  require("reflect-metadata");
  const x509 = require("@peculiar/x509") as typeof import("@peculiar/x509");
  const { webcrypto, randomBytes, KeyObject } = require("node:crypto") as typeof import("node:crypto");
  x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as import("node:crypto").webcrypto.CryptoKeyPair;
  // A positive serial: the top bit cleared, never zero.
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString("hex"),
    name: [{ CN: [inputs.commonName] }, { O: ["NixMox"] }],
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + inputs.validityHours * 3_600_000),
    keys,
    signingAlgorithm: algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const privateKeyPem = KeyObject.from(keys.privateKey as unknown as import("node:crypto").webcrypto.CryptoKey).export({ type: "pkcs8", format: "pem" }) as string;
  return { ...inputs, certificatePem: `${certificate.toString("pem")}\n`, privateKeyPem };
}

/**
 * The root CA as a dynamic resource: create draws the key and signs the certificate; a new common name or validity
 * replaces it (a new key, a new root: protected by default); read returns the state; delete has nothing to delete.
 */
export const rootCaProvider = {
  async create(raw: RootCaInputs): Promise<{ id: string; outs: RootCaOutputs }> {
    const outs = await createRootCa({ commonName: raw.commonName, validityHours: raw.validityHours });
    const { createHash } = require("node:crypto") as typeof import("node:crypto");
    return { id: createHash("sha256").update(outs.certificatePem).digest("hex").slice(0, 32), outs };
  },

  async diff(_id: string, olds: RootCaOutputs, news: RootCaInputs): Promise<pulumi.dynamic.DiffResult> {
    const replaces = (["commonName", "validityHours"] as const).filter((key) => olds[key] !== news[key]);
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
  },

  async read(id: string, props: RootCaOutputs): Promise<pulumi.dynamic.ReadResult<RootCaOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class RootCa extends pulumi.dynamic.Resource {
  declare public readonly certificatePem: pulumi.Output<string>;
  declare public readonly privateKeyPem: pulumi.Output<string>;

  constructor(name: string, args: { commonName: pulumi.Input<string>; validityHours: pulumi.Input<number> }, opts?: pulumi.CustomResourceOptions) {
    super(rootCaProvider, name, { certificatePem: undefined, privateKeyPem: undefined, ...args }, { ...opts, additionalSecretOutputs: ["privateKeyPem"] }, "nixmox", "RootCa");
  }
}

export class ManagedCa extends pulumi.ComponentResource {
  /** The root certificate (PEM). Public: every host and browser trusts it. */
  declare public readonly rootCertificatePem: pulumi.Output<string>;
  /** The root's private key (PEM), a Pulumi secret; delivered only to the proxy host. */
  declare public readonly rootKeyPem: pulumi.Output<string>;

  constructor(name: string, args: ManagedCaArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nixmox:index:ManagedCa", name, {}, opts);
    const root = new RootCa(`${name}-root`, { commonName: "NixMox homelab root", validityHours: args.validityHours ?? 87_600 }, { parent: this, protect: args.protectRoot ?? true });
    this.rootCertificatePem = root.certificatePem;
    this.rootKeyPem = pulumi.secret(root.privateKeyPem);
    this.registerOutputs({ rootCertificatePem: this.rootCertificatePem, rootKeyPem: this.rootKeyPem });
  }
}

/**
 * Every enabled host rendered with the managed root (each host trusts it; the proxy signs with it), one output per
 * service. Under the offline mocks the root is undefined and the hosts render as without a managed CA.
 */
export function renderWithCa(plan: Plan, sources: RenderSources, options: pulumi.Input<RenderOptions>, rootCertificatePem: pulumi.Output<string>): Record<string, pulumi.Output<RenderedHost>> {
  const rendered = pulumi.all([rootCertificatePem, options]).apply(([pem, resolved]) => renderAll(plan, sources, { ...(resolved as RenderOptions), ...(pem ? { caRootCertificate: pem } : {}) }));
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
