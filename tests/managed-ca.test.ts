// Two parts. The CA itself (createRootCa, createIntermediateCa, the providers' check and diff) is checked with the
// real openssl: the chain verifies, a name outside the homelab's domain is refused. (tests/daemon-caddy.test.ts has
// the real Caddy issue from the intermediate.) The component part is mock-based (Pulumi's setMocks): it shows which
// resources the managed CA registers, with which options, and that keys stay secret; it does NOT prove the engine's
// handling of them (tests/engine-real.test.ts previews the program with the real engine).
import { strict as assert } from "node:assert";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
  secretOutputs: string[];
  protect: boolean;
}

const registered: Registered[] = [];
const fakeKeyPem = "-----BEGIN PRIVATE KEY-----\nZmFrZQ==\n-----END PRIVATE KEY-----\n";
const fakeCertPem = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n";
const fakeIntermediatePem = "-----BEGIN CERTIFICATE-----\naW50ZXI=\n-----END CERTIFICATE-----\n";

function resolve<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((done) => output.apply((value) => done(value)));
}

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { encoding: "utf8", ...(input === undefined ? {} : { input }) });
}

describe("components: the managed CA, checked with openssl", () => {
  let dir: string;
  let root: import("../components/managed-ca").RootCaOutputs;
  let intermediate: import("../components/managed-ca").IntermediateCaOutputs;
  const now = new Date("2026-12-06T12:00:00Z");

  /** A leaf for `name`, signed with the intermediate's key by openssl, as Caddy would sign a site. */
  const leaf = (name: string) => {
    const file = join(dir, `${name}.pem`);
    openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, `${name}.key`), "-subj", "/", "-addext", `subjectAltName=DNS:${name}`, "-out", join(dir, `${name}.csr`)]);
    openssl(["x509", "-req", "-in", join(dir, `${name}.csr`), "-CA", join(dir, "intermediate.pem"), "-CAkey", join(dir, "intermediate.key"), "-CAcreateserial", "-days", "1", "-copy_extensions", "copy", "-out", file]);
    return file;
  };
  const verify = (file: string) => spawnSync("openssl", ["verify", "-CAfile", join(dir, "root.pem"), "-untrusted", join(dir, "intermediate.pem"), file], { encoding: "utf8" });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "nixmox-ca-"));
    const { createIntermediateCa, createRootCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    root = await createRootCa({ commonName: "NixMox homelab root", validityHours: 87_600, permittedDomains: ["nixmox.lan"] }, now);
    intermediate = await createIntermediateCa({ commonName: "NixMox homelab intermediate", validityHours: 8760, permittedDomains: ["nixmox.lan"], rootCertificatePem: root.certificatePem, rootKeyPem: root.privateKeyPem, renewBeforeDays: 30 }, now);
    writeFileSync(join(dir, "root.pem"), root.certificatePem);
    writeFileSync(join(dir, "intermediate.pem"), intermediate.certificatePem);
    writeFileSync(join(dir, "intermediate.key"), intermediate.privateKeyPem);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("makes a self-signed ECDSA P-256 root, path length 1, cert and CRL signing only, constrained to the homelab's domain, no domain in its subject", () => {
    const text = openssl(["x509", "-in", join(dir, "root.pem"), "-noout", "-text"]);
    assert.match(text, /Subject: CN = NixMox homelab root, O = NixMox/);
    assert.match(text, /Issuer: CN = NixMox homelab root, O = NixMox/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    assert.match(text, /X509v3 Name Constraints: critical\s+Permitted:\s+DNS:nixmox\.lan\n/);
    assert.match(text, /ASN1 OID: prime256v1/);
    assert.match(text, /Not Before: Dec  6 11:00:00 2026 GMT/);
    assert.match(text, /Not After : Dec  3 12:00:00 2036 GMT/);
    assert.equal(openssl(["verify", "-CAfile", join(dir, "root.pem"), join(dir, "root.pem")]).trim(), `${join(dir, "root.pem")}: OK`);
    assert.equal(openssl(["pkey", "-pubout"], root.privateKeyPem), openssl(["x509", "-in", join(dir, "root.pem"), "-noout", "-pubkey"]));
  });

  it("signs an intermediate with the root: path length 0, the same constraints, a year, and the root's key identifier", () => {
    const text = openssl(["x509", "-in", join(dir, "intermediate.pem"), "-noout", "-text"]);
    assert.match(text, /Subject: CN = NixMox homelab intermediate, O = NixMox/);
    assert.match(text, /Issuer: CN = NixMox homelab root, O = NixMox/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    assert.match(text, /X509v3 Name Constraints: critical\s+Permitted:\s+DNS:nixmox\.lan\n/);
    assert.match(text, /Not After : Dec  6 12:00:00 2027 GMT/);
    assert.equal(intermediate.notAfter, "2027-12-06T12:00:00.000Z");
    const rootKeyId = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(openssl(["x509", "-in", join(dir, "root.pem"), "-noout", "-text"]))![1];
    assert.match(text, new RegExp(`Authority Key Identifier:\\s+(keyid:)?${rootKeyId}`));
    assert.equal(openssl(["verify", "-CAfile", join(dir, "root.pem"), join(dir, "intermediate.pem")]).trim(), `${join(dir, "intermediate.pem")}: OK`);
    assert.equal(JSON.stringify(intermediate).includes(root.privateKeyPem), false, "the root's key is not an output");
  });

  it("lets openssl accept a site certificate under the domain and refuse one outside it (name constraints)", () => {
    const inside = verify(leaf("vault.nixmox.lan"));
    assert.equal(inside.status, 0, inside.stdout + inside.stderr);
    const apex = verify(leaf("nixmox.lan"));
    assert.equal(apex.status, 0, apex.stdout + apex.stderr);
    const outside = verify(leaf("bank.example.com"));
    assert.notEqual(outside.status, 0);
    assert.match(outside.stdout + outside.stderr, /permitted subtree violation/);
    const lookalike = verify(leaf("nixmox.lan.evil.com"));
    assert.match(lookalike.stdout + lookalike.stderr, /permitted subtree violation/);
  });

  it("draws a new key and serial each time", async () => {
    const { createRootCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const inputs = { commonName: "x", validityHours: 24, permittedDomains: ["a.lan"] };
    const [a, b] = await Promise.all([createRootCa(inputs), createRootCa(inputs)]);
    assert.notEqual(a.privateKeyPem, b.privateKeyPem);
    assert.notEqual(a.certificatePem, b.certificatePem);
  });

  it("refuses a root whose permitted domains change (a network.domain edit), naming the steps, unless rotation is allowed", async () => {
    const { rootCaProvider } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const olds = { commonName: "NixMox homelab root", validityHours: 87_600, permittedDomains: ["nixmox.lan"], allowReplacement: false };
    const refused = await rootCaProvider.check(olds, { ...olds, permittedDomains: ["home.arpa"] });
    assert.equal(refused.failures?.length, 1);
    assert.match(refused.failures![0].reason, /^the homelab's root CA may vouch only for nixmox\.lan; the manifest now needs home\.arpa .*`pulumi config set nixmox:rotateRootCa true`, `nixmox up --yes`/);
    assert.deepEqual((await rootCaProvider.check(olds, { ...olds, permittedDomains: ["home.arpa"], allowReplacement: true })).failures, []);
    assert.deepEqual((await rootCaProvider.check({}, { ...olds, permittedDomains: ["home.arpa"] })).failures, [], "a first deploy");
    const created = { ...olds, certificatePem: "c", privateKeyPem: "k" };
    assert.deepEqual(await rootCaProvider.diff("id", created, { ...olds, permittedDomains: ["home.arpa"], allowReplacement: true }), { changes: true, replaces: ["permittedDomains"], deleteBeforeReplace: false });
    assert.deepEqual(await rootCaProvider.diff("id", created, olds), { changes: false, replaces: [], deleteBeforeReplace: false });
  });

  it("renews the intermediate at the first update within 30 days of its end, and with a new root", async () => {
    const { intermediateCaProvider } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const news = { commonName: "NixMox homelab intermediate", validityHours: 8760, permittedDomains: ["nixmox.lan"], rootCertificatePem: root.certificatePem, rootKeyPem: root.privateKeyPem, renewBeforeDays: 30 };
    const fresh = { ...intermediate, notAfter: new Date(Date.now() + 200 * 86_400_000).toISOString() };
    assert.deepEqual(await intermediateCaProvider.diff("id", fresh, news), { changes: false, replaces: [], deleteBeforeReplace: false });
    const ending = { ...fresh, notAfter: new Date(Date.now() + 10 * 86_400_000).toISOString() };
    assert.deepEqual(await intermediateCaProvider.diff("id", ending, news), { changes: true, replaces: ["notAfter"], deleteBeforeReplace: false });
    assert.deepEqual(await intermediateCaProvider.diff("id", fresh, { ...news, rootCertificatePem: "another root" }), { changes: true, replaces: ["rootCertificatePem"], deleteBeforeReplace: false });
  });
});

describe("components: ManagedCa (the homelab's CA for tls-internal routes)", () => {
  let ca: import("../components/managed-ca").ManagedCa;

  before(async () => {
    await pulumi.runtime.setMocks({
      newResource: (args) => {
        if (args.type === "pulumi-nodejs:dynamic/nixmox:RootCa") return { id: `${args.name}-id`, state: { ...args.inputs, certificatePem: fakeCertPem, privateKeyPem: fakeKeyPem } };
        if (args.type === "pulumi-nodejs:dynamic/nixmox:IntermediateCa") return { id: `${args.name}-id`, state: { ...args.inputs, certificatePem: fakeIntermediatePem, privateKeyPem: fakeKeyPem } };
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    }, "nixmox", "test", false);
    const { ManagedCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const monitor = pulumi.runtime.getMonitor() as any;
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: any) => {
      const inputs = pulumi.runtime.deserializeProperties(req.getObject());
      registered.push({ type: req.getType(), name: req.getName(), inputs, secretOutputs: req.getAdditionalsecretoutputsList(), protect: req.getProtect() });
      return register(req, callback);
    };
    ca = new ManagedCa("ca", { permittedDomains: ["nixmox.lan"] });
    await resolve(ca.rootCertificatePem);
  });

  it("registers a protected root and an intermediate signed by it, their keys secret outputs", () => {
    assert.deepEqual(registered.map((r) => `${r.type} ${r.name}`), [
      "nixmox:index:ManagedCa ca",
      "pulumi-nodejs:dynamic/nixmox:RootCa ca-root",
      "pulumi-nodejs:dynamic/nixmox:IntermediateCa ca-intermediate",
    ]);
    const [, root, intermediate] = registered;
    assert.deepEqual([root.inputs.commonName, root.inputs.validityHours, root.inputs.permittedDomains, root.inputs.allowReplacement], ["NixMox homelab root", 87_600, ["nixmox.lan"], false]);
    assert.deepEqual(root.secretOutputs, ["privateKeyPem"]);
    assert.equal(root.protect, true);
    assert.deepEqual([intermediate.inputs.validityHours, intermediate.inputs.permittedDomains, intermediate.inputs.renewBeforeDays], [8760, ["nixmox.lan"], 30]);
    assert.equal(intermediate.protect, false);
    assert.deepEqual(intermediate.secretOutputs, ["privateKeyPem"]);
  });

  it("exposes the root and intermediate certificates in the clear and the intermediate's key only as a secret", async () => {
    assert.equal(await resolve(ca.rootCertificatePem), fakeCertPem);
    assert.equal(await resolve(ca.intermediateCertificatePem), fakeIntermediatePem);
    assert.equal(await pulumi.isSecret(ca.intermediateKeyPem), true);
    assert.equal(await pulumi.isSecret(ca.rootCertificatePem), false);
  });

  it("permits network.domain and the internal-TLS route domains outside it", async () => {
    const { caPermittedDomains } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const { loadPlan } = require("../manifest") as typeof import("../manifest");
    const plan = await loadPlan();
    assert.deepEqual(caPermittedDomains(plan), ["nixmox.lan"]);
    const route = { ...plan.routes[0], domain: "vault.example.org", tls: "internal" as const };
    assert.deepEqual(caPermittedDomains({ ...plan, routes: [...plan.routes, route, { ...route, domain: "acme.example.org", tls: "acme" as const }] }), ["nixmox.lan", "vault.example.org"]);
  });

  it("renders every host with the root it trusts and gives the proxy the root and the intermediate as secret files, never the root's key", async () => {
    const { managedCaSecretPlans, managedCaSecretValues, renderWithCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const { loadPlan } = require("../manifest") as typeof import("../manifest");
    const { fileSources } = require("../render") as typeof import("../render");
    const plan = await loadPlan();
    const hosts = renderWithCa(plan, fileSources(plan.manifestDir), {}, ca.rootCertificatePem);
    assert.deepEqual(Object.keys(hosts).sort(), plan.services.map((service) => service.name).sort());
    for (const name of Object.keys(hosts)) {
      const data = JSON.parse((await resolve(hosts[name])).files["host.json"]);
      assert.deepEqual(data.host.caCertificates, [fakeCertPem], name);
    }
    const caddy = JSON.parse((await resolve(hosts.caddy)).files["host.json"]);
    assert.deepEqual(caddy.caddy.ca, {
      certFile: "/var/lib/nixmox/secrets/caddy/ca_root_cert",
      intermediateCertFile: "/var/lib/nixmox/secrets/caddy/ca_intermediate_cert",
      intermediateKeyFile: "/var/lib/nixmox/secrets/caddy/ca_intermediate_key",
    });
    assert.deepEqual(managedCaSecretPlans(plan).map((secret) => `${secret.service} ${secret.path} ${secret.restartUnits}`), [
      "caddy /var/lib/nixmox/secrets/caddy/ca_root_cert caddy.service",
      "caddy /var/lib/nixmox/secrets/caddy/ca_intermediate_cert caddy.service",
      "caddy /var/lib/nixmox/secrets/caddy/ca_intermediate_key caddy.service",
    ]);
    const values = managedCaSecretValues(plan, ca);
    assert.deepEqual(Object.keys(values).sort(), ["caddy/ca_intermediate_cert", "caddy/ca_intermediate_key", "caddy/ca_root_cert"]);
    assert.equal(await resolve(values["caddy/ca_root_cert"]), fakeCertPem);
    assert.equal(await resolve(values["caddy/ca_intermediate_cert"]), fakeIntermediatePem);
    assert.equal(await resolve(values["caddy/ca_intermediate_key"]), fakeKeyPem);
    for (const value of Object.values(values)) assert.equal(await pulumi.isSecret(value), true);
  });
});
