// Two parts. The root itself (createRootCa, and the RootCa provider run as the engine's plugin loads it) is checked
// with the real openssl. The component part is mock-based (Pulumi's setMocks): it shows which resource the managed
// CA registers, with which options, and that the key stays secret; it does NOT prove the engine's handling of it
// (tests/engine-real.test.ts previews the program with the real engine).
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
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

function resolve<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((done) => output.apply((value) => done(value)));
}

function openssl(args: string[], input?: string): string {
  return execFileSync("openssl", args, { encoding: "utf8", ...(input === undefined ? {} : { input }) });
}

describe("components: the managed root CA, checked with openssl", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nixmox-ca-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("is a self-signed ECDSA P-256 CA with path length 1, cert and CRL signing only, and no domain in its subject", async () => {
    const { createRootCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const now = new Date("2026-12-06T12:00:00Z");
    const root = await createRootCa({ commonName: "NixMox homelab root", validityHours: 87_600 }, now);
    writeFileSync(join(dir, "root.pem"), root.certificatePem);
    const text = openssl(["x509", "-in", join(dir, "root.pem"), "-noout", "-text"]);
    assert.match(text, /Subject: CN = NixMox homelab root, O = NixMox/);
    assert.match(text, /Issuer: CN = NixMox homelab root, O = NixMox/);
    assert.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    assert.match(text, /X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    assert.match(text, /X509v3 Subject Key Identifier/);
    assert.match(text, /ASN1 OID: prime256v1/);
    assert.match(text, /Not Before: Dec  6 11:00:00 2026 GMT/);
    assert.match(text, /Not After : Dec  3 12:00:00 2036 GMT/);
    // It verifies as its own trust anchor, and the key is the certificate's.
    assert.equal(openssl(["verify", "-CAfile", join(dir, "root.pem"), join(dir, "root.pem")]).trim(), `${join(dir, "root.pem")}: OK`);
    const fromCert = openssl(["x509", "-in", join(dir, "root.pem"), "-noout", "-pubkey"]);
    const fromKey = openssl(["pkey", "-pubout"], root.privateKeyPem);
    assert.equal(fromKey, fromCert);
  });

  it("draws a new key and serial each time", async () => {
    const { createRootCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    const [a, b] = await Promise.all([createRootCa({ commonName: "x", validityHours: 24 }), createRootCa({ commonName: "x", validityHours: 24 })]);
    assert.notEqual(a.privateKeyPem, b.privateKeyPem);
    assert.notEqual(a.certificatePem, b.certificatePem);
  });
});

describe("components: ManagedCa (the homelab's root for tls-internal routes)", () => {
  let ca: import("../components/managed-ca").ManagedCa;

  before(async () => {
    await pulumi.runtime.setMocks({
      newResource: (args) => {
        if (args.type === "pulumi-nodejs:dynamic/nixmox:RootCa") return { id: `${args.name}-id`, state: { ...args.inputs, certificatePem: fakeCertPem, privateKeyPem: fakeKeyPem } };
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
    ca = new ManagedCa("ca", {});
    await resolve(ca.rootCertificatePem);
  });

  it("registers one protected root, child ca-root, whose private key is a secret output", () => {
    assert.deepEqual(registered.map((r) => `${r.type} ${r.name}`), ["nixmox:index:ManagedCa ca", "pulumi-nodejs:dynamic/nixmox:RootCa ca-root"]);
    const root = registered[1];
    assert.equal(root.inputs.commonName, "NixMox homelab root");
    assert.equal(root.inputs.validityHours, 87_600);
    assert.deepEqual(root.secretOutputs, ["privateKeyPem"]);
    assert.equal(root.protect, true);
  });

  it("exposes the root certificate in the clear and the key only as a secret", async () => {
    assert.equal(await resolve(ca.rootCertificatePem), fakeCertPem);
    assert.equal(await pulumi.isSecret(ca.rootKeyPem), true);
    assert.equal(await pulumi.isSecret(ca.rootCertificatePem), false);
  });
  it("renders every host with the root it trusts and gives the proxy the root and key as secret files", async () => {
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
    assert.deepEqual(caddy.caddy.ca, { certFile: "/var/lib/nixmox/secrets/caddy/ca_root_cert", keyFile: "/var/lib/nixmox/secrets/caddy/ca_root_key" });
    assert.deepEqual(managedCaSecretPlans(plan).map((secret) => `${secret.service} ${secret.path} ${secret.restartUnits}`), [
      "caddy /var/lib/nixmox/secrets/caddy/ca_root_cert caddy.service",
      "caddy /var/lib/nixmox/secrets/caddy/ca_root_key caddy.service",
    ]);
    const values = managedCaSecretValues(plan, ca);
    assert.equal(await resolve(values["caddy/ca_root_key"]), fakeKeyPem);
    assert.equal(await pulumi.isSecret(values["caddy/ca_root_cert"]), true);
  });
});
