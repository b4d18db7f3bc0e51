/**
 * The homelab's managed CA: the root every host and browser trusts for the `tls = "internal"` routes (review R3),
 * constrained to the homelab's names, and an intermediate that the proxy signs with (security-2 review N2).
 *
 * Caddy's own internal CA lives in the proxy's data directory and is trusted by no other host, so server-side calls
 * between hosts (Vaultwarden's OIDC discovery, Guacamole's JWKS download from https://auth.<domain>) would fail
 * certificate verification. This CA is Pulumi state instead:
 * - `<name>-root` (`RootCa`): an ECDSA P-256 root, ten years, path length 1, with X.509 name constraints permitting
 *   only the DNS subtrees of `permittedDomains` (the manifest's `network.domain`, plus the domains of internal-TLS
 *   routes outside it, `caPermittedDomains`). The README tells users to install it in their browsers, so it must not
 *   be able to vouch for any other name: a certificate it (or anything below it) signs for `bank.example.com` fails
 *   verification. Its key lives only in the stack's state, never on a host. Protected: replacing it makes every
 *   host and browser distrust the sites until they get the new root.
 * - `<name>-intermediate` (`IntermediateCa`): signed by the root, path length 0, the same name constraints, one year.
 *   Its certificate and key reach the proxy as secret files (render/host-data.ts `managedCaSecrets`) and Caddy issues
 *   every internal site's certificate from it (nixos/lib/caddy.nix `pkiBlock`). Renewed by the first `up` within 30
 *   days of its end; `pulumi up --replace <its URN>` rotates it at once (README, "Trusting the homelab's
 *   certificates"). Not protected: nothing but the proxy holds it.
 *
 * Both are built with @peculiar/x509 (the tls plugin behind @pulumi/tls cannot be built from the Go module proxy,
 * tools/engine/README.md, and has no name-constraint input). The subjects name no domain.
 *
 * `network.domain` edit: the root's constraints no longer cover the new domain, so the root must be replaced. The
 * root's check refuses that with the steps in the message, unless `nixmox:rotateRootCa` is true; then the root is
 * not protected for that run and is replaced, and every host re-renders with the new root (README).
 */
import * as pulumi from "@pulumi/pulumi";
import type { Plan } from "../manifest/plan-types";
import { managedCaSecretPlans, managedCaSecrets, renderAll, type RenderedHost, type RenderOptions, type RenderSources } from "../render";

export interface ManagedCaArgs {
  /** DNS subtrees the root (and so everything below it) may vouch for: `caPermittedDomains(plan)`. */
  permittedDomains: string[];
  /** How long the root is valid. @default 87600 (ten years) */
  validityHours?: number;
  /** How long each intermediate is valid. @default 8760 (a year) */
  intermediateValidityHours?: number;
  /** Replace the root when its inputs changed (`nixmox:rotateRootCa`); otherwise such a change is refused. @default false */
  allowRootReplacement?: boolean;
}

/** The names the homelab's CA may vouch for: `network.domain` and the domain of every internal-TLS route outside it. */
export function caPermittedDomains(plan: Pick<Plan, "network" | "routes">): string[] {
  const domain = plan.network.domain;
  const under = (name: string) => name === domain || name.endsWith(`.${domain}`);
  const outside = plan.routes.filter((route) => route.tls === "internal" && !under(route.domain)).map((route) => route.domain);
  return [domain, ...[...new Set(outside)].sort()];
}

export interface RootCaInputs {
  commonName: string;
  validityHours: number;
  permittedDomains: string[];
  /** Refuse (in check) a change that replaces an existing root, unless true. @default false */
  allowReplacement?: boolean;
}

export interface RootCaOutputs extends RootCaInputs {
  certificatePem: string;
  /** PKCS#8 PEM (secret). */
  privateKeyPem: string;
}

export interface IntermediateCaInputs {
  commonName: string;
  validityHours: number;
  permittedDomains: string[];
  rootCertificatePem: string;
  /** Secret. */
  rootKeyPem: string;
  /** Replace the intermediate at the first update within this many days of its end. @default 30 */
  renewBeforeDays: number;
}

export interface IntermediateCaOutputs extends Omit<IntermediateCaInputs, "rootKeyPem"> {
  certificatePem: string;
  /** PKCS#8 PEM (secret). */
  privateKeyPem: string;
  /** The certificate's notAfter, ISO 8601. */
  notAfter: string;
}

type X509 = typeof import("@peculiar/x509");
type CryptoKeyPair = import("node:crypto").webcrypto.CryptoKeyPair;

/** @peculiar/x509 on Node's WebCrypto (reflect-metadata first: its dependency injection, tsyringe, needs the Reflect polyfill). */
function x509Library(): { x509: X509; crypto: typeof import("node:crypto") } {
  require("reflect-metadata");
  const x509 = require("@peculiar/x509") as X509;
  const crypto = require("node:crypto") as typeof import("node:crypto");
  x509.cryptoProvider.set(crypto.webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
  return { x509, crypto };
}

const ecdsa = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

/** A positive random 16-byte serial (the top bit cleared, never zero), hex. */
function serialNumber(crypto: typeof import("node:crypto")): string {
  const serial = crypto.randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01;
  return serial.toString("hex");
}

/** The critical name-constraints extension (RFC 5280 §4.2.1.10) permitting only these DNS subtrees. */
function nameConstraints(x509: X509, domains: string[]): InstanceType<X509["Extension"]> {
  const asn1 = require("@peculiar/asn1-x509") as typeof import("@peculiar/asn1-x509");
  const { AsnConvert } = require("@peculiar/asn1-schema") as typeof import("@peculiar/asn1-schema");
  const permitted = new asn1.GeneralSubtrees(domains.map((domain) => new asn1.GeneralSubtree({ base: new asn1.GeneralName({ dNSName: domain }) })));
  return new x509.Extension(asn1.id_ce_nameConstraints, true, AsnConvert.serialize(new asn1.NameConstraints({ permittedSubtrees: permitted })));
}

function privateKeyPem(crypto: typeof import("node:crypto"), keys: CryptoKeyPair): string {
  return crypto.KeyObject.from(keys.privateKey as unknown as import("node:crypto").webcrypto.CryptoKey).export({ type: "pkcs8", format: "pem" }) as string;
}

function checkDomains(domains: string[]): void {
  const bad = domains.filter((domain) => !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(domain));
  if (domains.length === 0 || bad.length > 0) throw new Error(`the CA's permitted domains must be DNS names, got ${JSON.stringify(domains)}`);
}

/**
 * A self-signed root: a fresh ECDSA P-256 key, a random serial, valid from an hour ago (clock skew between hosts)
 * for `validityHours`, basic constraints CA with path length 1, key usage cert and CRL signing, name constraints
 * permitting `permittedDomains` (all three critical), subject `CN=<commonName>, O=NixMox`, its key identifier.
 */
export async function createRootCa(inputs: RootCaInputs, now: Date = new Date()): Promise<RootCaOutputs> {
  checkDomains(inputs.permittedDomains);
  const { x509, crypto } = x509Library();
  const keys = (await crypto.webcrypto.subtle.generateKey(ecdsa, true, ["sign", "verify"])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(crypto),
    name: [{ CN: [inputs.commonName] }, { O: ["NixMox"] }],
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + inputs.validityHours * 3_600_000),
    keys,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, 1, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      nameConstraints(x509, inputs.permittedDomains),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { ...inputs, certificatePem: `${certificate.toString("pem")}\n`, privateKeyPem: privateKeyPem(crypto, keys) };
}

/**
 * An intermediate signed by the root: a fresh key, valid from an hour ago for `validityHours` (never past the root),
 * path length 0, cert and CRL signing, the same name constraints, its own and the root's key identifiers.
 */
export async function createIntermediateCa(inputs: IntermediateCaInputs, now: Date = new Date()): Promise<IntermediateCaOutputs> {
  checkDomains(inputs.permittedDomains);
  const { x509, crypto } = x509Library();
  const root = new x509.X509Certificate(inputs.rootCertificatePem);
  const rootDer = crypto.createPrivateKey(inputs.rootKeyPem).export({ type: "pkcs8", format: "der" });
  const rootKey = await crypto.webcrypto.subtle.importKey("pkcs8", rootDer, ecdsa, false, ["sign"]);
  const keys = (await crypto.webcrypto.subtle.generateKey(ecdsa, true, ["sign", "verify"])) as CryptoKeyPair;
  const notAfter = new Date(Math.min(now.getTime() + inputs.validityHours * 3_600_000, root.notAfter.getTime()));
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(crypto),
    subject: [{ CN: [inputs.commonName] }, { O: ["NixMox"] }],
    issuer: root.subject,
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: rootKey,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      nameConstraints(x509, inputs.permittedDomains),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root),
    ],
  });
  const { rootKeyPem: _secret, ...kept } = inputs;
  return { ...kept, certificatePem: `${certificate.toString("pem")}\n`, privateKeyPem: privateKeyPem(crypto, keys), notAfter: notAfter.toISOString() };
}

function certificateId(pem: string): string {
  const { createHash } = require("node:crypto") as typeof import("node:crypto");
  return createHash("sha256").update(pem).digest("hex").slice(0, 32);
}

/**
 * The root CA as a dynamic resource.
 * - check: a change of name, validity or permitted domains of an existing root is refused with the steps to rotate
 *   it, unless `allowReplacement` (`nixmox:rotateRootCa`) is set.
 * - create draws the key and signs the certificate; diff replaces for a new name, validity or permitted domains;
 *   read returns the state; delete has nothing to delete.
 */
export const rootCaProvider = {
  async check(olds: Partial<RootCaInputs>, news: RootCaInputs): Promise<pulumi.dynamic.CheckResult<RootCaInputs>> {
    const unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const known = (value: unknown) => value !== undefined && !JSON.stringify(value ?? null).includes(unknown);
    if (olds.permittedDomains !== undefined && known(news.permittedDomains) && known(olds.permittedDomains) && JSON.stringify(olds.permittedDomains) !== JSON.stringify(news.permittedDomains) && news.allowReplacement !== true) {
      failures.push({
        property: "permittedDomains",
        reason:
          `the homelab's root CA may vouch only for ${olds.permittedDomains.join(", ")}; the manifest now needs ${news.permittedDomains.join(", ")} (network.domain or an internal-TLS route changed). ` +
          "A new root is needed: every host then re-renders with it and every browser must import it again. To do that, run " +
          "`pulumi config set nixmox:rotateRootCa true`, `nixmox up --yes`, then `pulumi config rm nixmox:rotateRootCa` and " +
          "`pulumi stack output caRootCertificate > nixmox-root.crt` for the browsers; or undo the domain change",
      });
    }
    return { inputs: news, failures };
  },

  async create(raw: RootCaInputs): Promise<{ id: string; outs: RootCaOutputs }> {
    const outs = await createRootCa({ commonName: raw.commonName, validityHours: raw.validityHours, permittedDomains: raw.permittedDomains, allowReplacement: raw.allowReplacement ?? false });
    return { id: certificateId(outs.certificatePem), outs };
  },

  async diff(_id: string, olds: RootCaOutputs, news: RootCaInputs): Promise<pulumi.dynamic.DiffResult> {
    const replaces = (["commonName", "validityHours", "permittedDomains"] as const).filter((key) => JSON.stringify(olds[key] ?? null) !== JSON.stringify(news[key]));
    // allowReplacement is a switch for one run, not a property of the root: recorded without a replacement.
    const changed = replaces.length > 0 || (olds.allowReplacement ?? false) !== (news.allowReplacement ?? false);
    return { changes: changed, replaces, deleteBeforeReplace: false };
  },

  async update(_id: string, olds: RootCaOutputs, news: RootCaInputs): Promise<{ outs: RootCaOutputs }> {
    return { outs: { ...olds, allowReplacement: news.allowReplacement ?? false } };
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

  constructor(name: string, args: { commonName: pulumi.Input<string>; validityHours: pulumi.Input<number>; permittedDomains: pulumi.Input<string[]>; allowReplacement?: pulumi.Input<boolean> }, opts?: pulumi.CustomResourceOptions) {
    super(rootCaProvider, name, { certificatePem: undefined, privateKeyPem: undefined, ...args }, { ...opts, additionalSecretOutputs: ["privateKeyPem"] }, "nixmox", "RootCa");
  }
}

/**
 * The intermediate as a dynamic resource: create signs a fresh one with the root; diff replaces it for another
 * root, name, validity or permitted domains, and once it ends within `renewBeforeDays` (so the first `up` in its
 * last month renews it); read returns the state; delete has nothing to delete.
 */
export const intermediateCaProvider = {
  async create(raw: IntermediateCaInputs): Promise<{ id: string; outs: IntermediateCaOutputs }> {
    const outs = await createIntermediateCa({
      commonName: raw.commonName,
      validityHours: raw.validityHours,
      permittedDomains: raw.permittedDomains,
      rootCertificatePem: raw.rootCertificatePem,
      rootKeyPem: raw.rootKeyPem,
      renewBeforeDays: raw.renewBeforeDays,
    });
    return { id: certificateId(outs.certificatePem), outs };
  },

  async diff(_id: string, olds: IntermediateCaOutputs, news: IntermediateCaInputs): Promise<pulumi.dynamic.DiffResult> {
    const replaces: string[] = (["commonName", "validityHours", "permittedDomains", "rootCertificatePem", "renewBeforeDays"] as const).filter((key) => JSON.stringify(olds[key] ?? null) !== JSON.stringify(news[key]));
    if (Date.parse(olds.notAfter) - Date.now() < news.renewBeforeDays * 86_400_000) replaces.push("notAfter");
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
  },

  async read(id: string, props: IntermediateCaOutputs): Promise<pulumi.dynamic.ReadResult<IntermediateCaOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class IntermediateCa extends pulumi.dynamic.Resource {
  declare public readonly certificatePem: pulumi.Output<string>;
  declare public readonly privateKeyPem: pulumi.Output<string>;

  constructor(name: string, args: { [K in keyof IntermediateCaInputs]: pulumi.Input<IntermediateCaInputs[K]> }, opts?: pulumi.CustomResourceOptions) {
    super(intermediateCaProvider, name, { certificatePem: undefined, privateKeyPem: undefined, notAfter: undefined, ...args, rootKeyPem: pulumi.secret(args.rootKeyPem) }, { ...opts, additionalSecretOutputs: ["privateKeyPem"] }, "nixmox", "IntermediateCa");
  }
}

export class ManagedCa extends pulumi.ComponentResource {
  /** The root certificate (PEM). Public: every host and browser trusts it. */
  declare public readonly rootCertificatePem: pulumi.Output<string>;
  /** The intermediate's certificate (PEM), served by the proxy with each site's certificate. */
  declare public readonly intermediateCertificatePem: pulumi.Output<string>;
  /** The intermediate's private key (PEM), a Pulumi secret; delivered only to the proxy host. */
  declare public readonly intermediateKeyPem: pulumi.Output<string>;

  constructor(name: string, args: ManagedCaArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nixmox:index:ManagedCa", name, {}, opts);
    const allowReplacement = args.allowRootReplacement ?? false;
    const root = new RootCa(`${name}-root`, {
      commonName: "NixMox homelab root",
      validityHours: args.validityHours ?? 87_600,
      permittedDomains: args.permittedDomains,
      allowReplacement,
    }, { parent: this, protect: !allowReplacement });
    const intermediate = new IntermediateCa(`${name}-intermediate`, {
      commonName: "NixMox homelab intermediate",
      validityHours: args.intermediateValidityHours ?? 8760,
      permittedDomains: args.permittedDomains,
      rootCertificatePem: root.certificatePem,
      rootKeyPem: root.privateKeyPem,
      renewBeforeDays: 30,
    }, { parent: this });
    this.rootCertificatePem = root.certificatePem;
    this.intermediateCertificatePem = intermediate.certificatePem;
    this.intermediateKeyPem = pulumi.secret(intermediate.privateKeyPem);
    this.registerOutputs({ rootCertificatePem: this.rootCertificatePem, intermediateCertificatePem: this.intermediateCertificatePem });
  }
}

/**
 * Every enabled host rendered with the managed root (each host trusts it; the proxy signs with its intermediate), one
 * output per service. Under the offline mocks the root is undefined and the hosts render as without a managed CA.
 */
export function renderWithCa(plan: Plan, sources: RenderSources, options: pulumi.Input<RenderOptions>, rootCertificatePem: pulumi.Output<string>): Record<string, pulumi.Output<RenderedHost>> {
  const rendered = pulumi.all([rootCertificatePem, options]).apply(([pem, resolved]) => renderAll(plan, sources, { ...(resolved as RenderOptions), ...(pem ? { caRootCertificate: pem } : {}) }));
  return Object.fromEntries(plan.services.map((service) => [service.name, rendered.apply((hosts) => hosts.find((host) => host.service === service.name)!)]));
}

/** The values of `managedCaSecretPlans`, keyed `<service>/<name>` like every secret value (secret outputs). */
export { managedCaSecretPlans };

export function managedCaSecretValues(plan: Plan, ca: ManagedCa): Record<string, pulumi.Output<string>> {
  const plans = managedCaSecretPlans(plan);
  if (plans.length === 0) return {};
  const value: Record<string, pulumi.Output<string>> = {
    [managedCaSecrets.cert]: ca.rootCertificatePem,
    [managedCaSecrets.intermediateCert]: ca.intermediateCertificatePem,
    [managedCaSecrets.intermediateKey]: ca.intermediateKeyPem,
  };
  // Under the offline mocks nothing computes the certificates: deliver empty files there.
  return Object.fromEntries(plans.map((secret) => [`${secret.configService}/${secret.name}`, pulumi.secret(value[secret.name].apply((pem) => pem ?? ""))]));
}
