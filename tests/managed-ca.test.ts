// Mock-based (Pulumi's setMocks): shows which @pulumi/tls resources the managed CA registers, with which inputs
// and options, and that the key stays secret. It does NOT prove what the tls provider generates (the daemon
// test tests/daemon-caddy.test.ts runs the real Caddy with an openssl root of the same shape).
import { strict as assert } from "node:assert";
import * as pulumi from "@pulumi/pulumi";

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, any>;
}

const registered: Registered[] = [];
const fakeKeyPem = "-----BEGIN PRIVATE KEY-----\nZmFrZQ==\n-----END PRIVATE KEY-----\n";
const fakeCertPem = "-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n";

function resolve<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((done) => output.apply((value) => done(value)));
}

describe("components: ManagedCa (the homelab's root for tls-internal routes)", () => {
  let ca: import("../components/managed-ca").ManagedCa;

  before(async () => {
    await pulumi.runtime.setMocks({
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        if (args.type === "tls:index/privateKey:PrivateKey") return { id: `${args.name}-id`, state: { ...args.inputs, privateKeyPem: fakeKeyPem } };
        if (args.type === "tls:index/selfSignedCert:SelfSignedCert") return { id: `${args.name}-id`, state: { ...args.inputs, certPem: fakeCertPem } };
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    }, "nixmox", "test", false);
    const { ManagedCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
    ca = new ManagedCa("ca", { domain: "nixmox.lan" });
    await resolve(ca.rootCertificatePem);
  });

  it("registers one ECDSA P-256 key and one self-signed CA root of it, as children named ca-root-key and ca-root", () => {
    assert.deepEqual(registered.map((r) => `${r.type} ${r.name}`), [
      "nixmox:index:ManagedCa ca",
      "tls:index/privateKey:PrivateKey ca-root-key",
      "tls:index/selfSignedCert:SelfSignedCert ca-root",
    ]);
    assert.deepEqual(registered[1].inputs, { algorithm: "ECDSA", ecdsaCurve: "P256" });
    const root = registered[2].inputs;
    // The key reaches the certificate only as a secret (the engine's secret envelope, 4dabf18193072939515e22adb298388d).
    assert.deepEqual(root.privateKeyPem, { "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: fakeKeyPem });
    assert.equal(root.isCaCertificate, true);
    assert.equal(root.maxPathLength, 1);
    assert.deepEqual(root.allowedUses, ["cert_signing", "crl_signing"]);
    assert.equal(root.validityPeriodHours, 87_600);
    assert.deepEqual(root.subject, { commonName: "NixMox nixmox.lan root", organization: "NixMox" });
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
