// Real processes: every dynamic provider is serialized by a process that loads TypeScript as the language host does,
// with the SDK's serializeFunction, then run by the SDK's own dynamic-provider plugin and driven over gRPC
// (tests/support/dynamic-provider-host.ts) against a loopback sshd and the fake Authentik API. Not proven here:
// the engine's own Go side (its diffing, its secret annotation of outputs) — no Pulumi CLI is installed.
import assert from "node:assert/strict";
import { mkdirSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import type { HealthPlan } from "../manifest/plan-types";
import { parseActivationResult, renderActivationCommand } from "../components/activation";
import { connectSsh } from "../components/ssh";
import { DynamicProviderHost, HostedProvider, SerializedProvider, serializeProviders, startDynamicProviderHost } from "./support/dynamic-provider-host";
import { containsUnknown, unknownValue } from "../components/unknown";
import { FakeAuthentik, embeddedOutpostPk, oidcAppInputs, proxyAppInputs, startFakeAuthentik } from "./support/authentik-api";
import type { AuthentikOidcAppInputs } from "../components/authentik";
import { creationTask, startFakeProxmoxApi, type FakeProxmoxApi } from "./support/proxmox-api";
import { FakeNixosPaths, TestSshd, fakeNixosPaths, seedFakeNixos, startSshd } from "./support/sshd";

const specs = {
  sshHostKey: "components/ssh/ssh-host-key.ts#sshHostKeyProvider",
  healthCheck: "components/health/health-check.ts#healthCheckProvider",
  oidcApp: "components/authentik/oidc-app.ts#oidcAppProvider",
  proxyApp: "components/authentik/proxy-app.ts#proxyAppProvider",
  outpostBinding: "components/authentik/outpost-binding.ts#outpostBindingProvider",
  outpost: "components/authentik/outpost.ts#outpostProvider",
  containerGuard: "components/container-guard.ts#containerGuardProvider",
  remoteCommand: "components/ssh/remote-command.ts#remoteCommandProvider",
  generatedSecret: "components/secrets/generated-secret.ts#generatedSecretProvider",
  rootCa: "components/managed-ca.ts#rootCaProvider",
  intermediateCa: "components/managed-ca.ts#intermediateCaProvider",
  nodeTemplate: "components/template.ts#nodeTemplateProvider",
};
const unknown = pulumi.runtime.unknownValue;
const token = "ak-engine-token-7e21";

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

async function closedPort(host = "127.0.0.1"): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe("dynamic providers as the engine runs them (serialized, loaded by the SDK's dynamic-provider plugin)", function () {
  this.timeout(60_000);
  let serialized: Record<string, SerializedProvider>;
  let engine: DynamicProviderHost;
  let host: TestSshd;
  let other: TestSshd;
  let paths: FakeNixosPaths;
  let generation: string;
  let proxmox: FakeProxmoxApi;
  const provider = (name: keyof typeof specs): HostedProvider => engine.provider(serialized[specs[name]].text, name);

  before(async () => {
    [serialized, engine, host, other, proxmox] = await Promise.all([
      serializeProviders(Object.values(specs)),
      startDynamicProviderHost(),
      startSshd({ host: "127.0.0.8" }),
      startSshd({ host: "127.0.0.9" }),
      startFakeProxmoxApi(),
    ]);
    paths = fakeNixosPaths(host.dir);
  });
  after(async () => {
    await Promise.all([engine?.stop(), host?.stop(), other?.stop(), proxmox?.stop()]);
  });
  beforeEach(() => {
    proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!deploy", 30)];
    proxmox.requests = [];
    for (const sub of ["root", "units", "calls.log"]) rmSync(join(host.dir, sub), { recursive: true, force: true });
    mkdirSync(join(host.dir, "units"));
    generation = seedFakeNixos(host.dir);
  });

  const sshInputs = (server: TestSshd, extra: Record<string, unknown> = {}) => ({
    service: "dns",
    host: server.host,
    port: server.port,
    user: "root",
    privateKey: server.clientPrivateKey,
    containerId: "913",
    timeoutSeconds: 20,
    intervalSeconds: 1,
    firstContact: { endpoint: proxmox.endpoint, apiToken: proxmox.token, insecure: true, node: "pve", vmid: 913, windowSeconds: 900 },
    ...extra,
  });
  const healthPlan: HealthPlan = {
    checks: [{ name: "cmd", phase: "both", kind: "command", command: "true" }],
    intervalSeconds: 1,
    timeoutSeconds: 2,
    retries: 1,
    startPeriodSeconds: 0,
  };
  const healthInputs = (extra: Record<string, unknown> = {}) => ({
    service: "web",
    host: host.host,
    port: host.port,
    username: "root",
    privateKey: host.clientPrivateKey,
    hostKey: host.hostKey,
    health: healthPlan,
    expectedGeneration: generation,
    currentSystemPath: paths.currentSystem,
    maskValues: ["mask-me-1234"],
    ...extra,
  });

  it("serializes every provider without classes, secrets or Pulumi in its closure", () => {
    for (const spec of Object.values(specs)) {
      const { text, containsSecrets } = serialized[spec];
      assert.equal(containsSecrets, false, spec);
      // A captured `class … extends Error` shows up as a constructor function re-parented onto global.Error.
      assert.doesNotMatch(text, /Object\.setPrototypeOf\(__f\d+, global\.Error\)|__super/, spec);
      assert.doesNotMatch(text, /require\("@pulumi\/pulumi"\)/, spec);
    }
  });

  describe("SshHostKey", () => {
    it("records the presented host key on create; read and an identical diff keep it", async () => {
      const ssh = provider("sshHostKey");
      const created = await ssh.create(sshInputs(host));
      assert.equal(created.id, `${host.host}:${host.port}/913`);
      assert.equal(created.outs.hostKey, host.hostKey);
      assert.equal("privateKey" in created.outs, false);
      assert.equal("firstContact" in created.outs, false);
      // First contact was checked against Proxmox's task list from the engine's process.
      assert.deepEqual(proxmox.requests.map((request) => [request.path, request.query.vmid, request.authorized]), [["/api2/json/nodes/pve/tasks", "913", true]]);
      assert.deepEqual(await ssh.read(created.id, created.outs), { id: created.id, props: created.outs });
      assert.deepEqual(await ssh.diff(created.id, created.outs, sshInputs(host)), { changes: "none", replaces: [], deleteBeforeReplace: false });
      assert.deepEqual(await ssh.diff(created.id, created.outs, sshInputs(host, { containerId: "914" })), { changes: "some", replaces: ["containerId"], deleteBeforeReplace: false });
      await ssh.delete(created.id, created.outs);
    });

    it("fails fast on a host-key mismatch, with the mismatch in the engine's error", async () => {
      const ssh = provider("sshHostKey");
      const created = await ssh.create(sshInputs(host));
      const started = Date.now();
      const error = await rejection(ssh.update(created.id, { ...created.outs, hostKey: other.hostKey }, sshInputs(host)));
      assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms (timeoutSeconds is 20)`);
      assert.match(error.message, new RegExp(`^service "dns": host key mismatch for 127\\.0\\.0\\.8:${host.port}: expected SHA256:\\S+, the server presented SHA256:\\S+; refusing to connect`));
    });

    it("refuses first contact with a container this stack did not just create, with the pinning line", async () => {
      proxmox.tasks = [creationTask("pve", 913, "nixmox@pve!deploy", 7200)];
      const error = await rejection(provider("sshHostKey").create(sshInputs(host)));
      assert.match(error.message, /^service "dns": the SSH host key of container 913 on node pve is not trusted on first use: it was created 720\d s ago, .*pulumi config set --path 'nixmox:hostKeys\.dns'/);
    });

    it("names the refused connection when nothing listens", async () => {
      const port = await closedPort("127.0.0.8");
      const error = await rejection(provider("sshHostKey").create(sshInputs(host, { port, timeoutSeconds: 1 })));
      assert.ok(
        error.message.startsWith(`service "dns": SSH on 127.0.0.8:${port} did not run a command within 1 s (last error: cannot reach SSH on 127.0.0.8:${port} (ECONNREFUSED))`),
        error.message,
      );
    });
  });

  describe("HealthCheck", () => {
    it("gates on create, then reports generation drift on read, which the next diff turns into an update", async () => {
      const health = provider("healthCheck");
      const created = await health.create(healthInputs());
      assert.equal(created.id, "web-health");
      assert.equal(created.outs.healthy, true);
      assert.equal(created.outs.generation, generation);
      assert.equal((await health.read(created.id, created.outs)).props.drift, null);
      rmSync(paths.currentSystem);
      mkdirSync(join(paths.store, "other-system"));
      symlinkSync(join(paths.store, "other-system"), paths.currentSystem);
      const read = await health.read(created.id, created.outs);
      assert.equal(read.props.drift, `service "web": the host runs another NixOS generation (${join(paths.store, "other-system")}) than the one NixMox deployed (${generation})`);
      assert.deepEqual(await health.diff(created.id, read.props, healthInputs()), { changes: "some", replaces: [], deleteBeforeReplace: false });
      // Proxmox rebooted the container to apply an edit: gate again.
      assert.deepEqual(await health.diff(created.id, created.outs, healthInputs()), { changes: "none", replaces: [], deleteBeforeReplace: false });
      assert.deepEqual(await health.diff(created.id, created.outs, healthInputs({ rebootRevision: "r2" })), { changes: "some", replaces: [], deleteBeforeReplace: false });
    });

    it("repairs generation drift found by a refresh: the next update re-runs the rebuild's activation, then gates", async () => {
      const activation = renderActivationCommand({
        service: "web",
        configHash: "feedfacecafebeef",
        checks: healthPlan.checks,
        timing: healthPlan,
        confirmTimeoutSeconds: 0,
        paths: { stateDir: paths.stateDir, profile: paths.profile, currentSystem: paths.currentSystem },
      });
      const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
      const deployed = parseActivationResult((await session.exec(activation.command, { stdin: activation.stdin, timeoutMs: 20_000 })).stdout);
      session.close();
      assert.equal(deployed?.status, "switched");
      const health = provider("healthCheck");
      const news = healthInputs({ expectedGeneration: deployed!.generation, repair: activation });
      const created = await health.create(news);
      rmSync(paths.currentSystem);
      mkdirSync(join(paths.store, "other-system"));
      symlinkSync(join(paths.store, "other-system"), paths.currentSystem);
      const refreshed = await health.read(created.id, created.outs);
      assert.match(String(refreshed.props.drift), /runs another NixOS generation/);
      assert.equal((await health.diff(created.id, refreshed.props, news)).changes, "some");
      const rebuildsBefore = host.calls().filter((call) => call.startsWith("nixos-rebuild")).length;
      const repaired = await health.update(created.id, refreshed.props, news);
      assert.equal(host.calls().filter((call) => call.startsWith("nixos-rebuild")).length, rebuildsBefore + 1);
      assert.equal(repaired.outs.healthy, true);
      assert.equal(repaired.outs.drift, null);
      assert.equal(repaired.outs.generation, realpathSync(paths.currentSystem));
      // Without a drift report, an update does not re-run the activation.
      await health.update(created.id, repaired.outs, { ...news, expectedGeneration: repaired.outs.generation });
      assert.equal(host.calls().filter((call) => call.startsWith("nixos-rebuild")).length, rebuildsBefore + 1);
    });

    it("gates again after Proxmox rebooted the container for an edit, re-confirming the activation it already confirmed", async () => {
      const activation = renderActivationCommand({
        service: "web",
        configHash: "0123456789abcdef",
        checks: healthPlan.checks,
        timing: healthPlan,
        confirmTimeoutSeconds: 20,
        paths: { stateDir: paths.stateDir, profile: paths.profile, currentSystem: paths.currentSystem },
      });
      const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
      const pending = parseActivationResult((await session.exec(activation.command, { stdin: activation.stdin, timeoutMs: 20_000 })).stdout);
      session.close();
      assert.equal(pending?.status, "awaiting-confirmation");
      const health = provider("healthCheck");
      const confirm = { configHash: "0123456789abcdef", stateDir: paths.stateDir };
      const created = await health.create(healthInputs({ expectedGeneration: pending!.generation, confirm, repair: activation, rebootRevision: "r1" }));
      assert.equal(created.outs.healthy, true);
      const news = healthInputs({ expectedGeneration: pending!.generation, confirm, repair: activation, rebootRevision: "r2" });
      assert.equal((await health.diff(created.id, created.outs, news)).changes, "some");
      const regated = await health.update(created.id, created.outs, news);
      assert.equal(regated.outs.healthy, true);
      assert.equal(regated.outs.generation, pending!.generation);
    });

    it("fails on a host-key mismatch with the mismatch in the engine's error, before running a check", async () => {
      const error = await rejection(provider("healthCheck").create(healthInputs({ hostKey: other.hostKey })));
      assert.match(error.message, new RegExp(`host key mismatch for 127\\.0\\.0\\.8:${host.port}: expected SHA256:\\S+, the server presented SHA256:\\S+; refusing to connect`));
      assert.deepEqual(host.calls(), []);
    });

    it("names the refused connection when nothing listens", async () => {
      const port = await closedPort("127.0.0.8");
      const error = await rejection(provider("healthCheck").create(healthInputs({ port })));
      assert.match(error.message, new RegExp(`last output: cannot reach SSH on 127\\.0\\.0\\.8:${port} \\(ECONNREFUSED\\)$`));
    });

    it("check still refuses a malformed host key", async () => {
      const checked = await provider("healthCheck").check({}, healthInputs({ hostKey: "nope" }));
      assert.deepEqual(checked.failures, [{ property: "hostKey", reason: 'service "web": hostKey must look like "ssh-ed25519 AAAA…", got "nope"' }]);
    });
  });

  describe("Authentik providers", () => {
    let api: FakeAuthentik;
    beforeEach(async () => {
      api = await startFakeAuthentik(token);
    });
    afterEach(async () => {
      await api?.stop();
    });
    // Spread: the hosted provider takes plain records, as the engine passes them.
    const oidcInputs = (overrides: Partial<AuthentikOidcAppInputs> = {}) => ({ ...oidcAppInputs(api.url, token, overrides) });
    const proxyInputs = () => ({ ...proxyAppInputs(api.url, token) });

    it("OIDC app: create, drift made in Authentik found by read and undone by update, delete", async () => {
      const oidc = provider("oidcApp");
      const created = await oidc.create(oidcInputs());
      assert.equal(created.id, "vaultwarden");
      api.oauth2Providers.get(created.outs.providerPk as number)!.redirect_uris = [{ matching_mode: "regex", url: "https://.*" }];
      const read = await oidc.read(created.id, created.outs);
      assert.deepEqual(read.props.redirectUris, ["regex:https://.*"]);
      assert.deepEqual(await oidc.diff(created.id, read.props, oidcInputs()), { changes: "some", replaces: [], deleteBeforeReplace: false });
      await oidc.update(created.id, read.props, oidcInputs());
      assert.deepEqual(api.oauth2Providers.get(created.outs.providerPk as number)!.redirect_uris, [{ matching_mode: "strict", url: "https://vault.nixmox.lan/identity/connect/oidc-signin" }]);
      await oidc.delete(created.id, created.outs);
      assert.equal(api.applications.size, 0);
    });

    it("OIDC app through SSH to the authentik host (H2): the serialized provider tunnels its API calls over the pinned connection", async () => {
      const oidc = provider("oidcApp");
      const tunnel = { host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKey: host.hostKey };
      const created = await oidc.create(oidcInputs({ tunnel }));
      assert.equal(created.id, "vaultwarden");
      assert.ok(api.applications.has("vaultwarden"));
      const error = await rejection(oidc.create(oidcInputs({ tunnel: { ...tunnel, hostKey: other.hostKey } })));
      assert.match(error.message, /host key/i);
      await oidc.delete(created.id, created.outs);
    });

    it("OIDC app: an unreachable Authentik is named in the engine's error", async () => {
      const port = await closedPort();
      const error = await rejection(provider("oidcApp").create(oidcInputs({ url: `http://127.0.0.1:${port}` })));
      assert.equal(error.message, `service "vaultwarden": Authentik lookup of flow "default-provider-authorization-implicit-consent" failed: cannot reach http://127.0.0.1:${port} (ECONNREFUSED); is the authentik service up and the URL right?`);
    });

    it("proxy app and outpost binding: create, read, drift, delete", async () => {
      const proxy = provider("proxyApp");
      const app = await proxy.create(proxyInputs());
      const binding = provider("outpostBinding");
      const bindingInputs = { url: api.url, token, service: "authentik", outpostName: "authentik Embedded Outpost", providerPks: [app.outs.providerPk] };
      const bound = await binding.create(bindingInputs);
      assert.equal(bound.id, embeddedOutpostPk);
      assert.deepEqual(api.outposts.get(embeddedOutpostPk)!.providers, [app.outs.providerPk]);
      api.outposts.get(embeddedOutpostPk)!.providers = [];
      const read = await binding.read(bound.id, bound.outs);
      assert.deepEqual(read.props.providerPks, []);
      assert.deepEqual(await binding.diff(bound.id, read.props, bindingInputs), { changes: "some", replaces: [], deleteBeforeReplace: false });
      await binding.delete(bound.id, bound.outs);
      await proxy.delete(app.id, app.outs);
      assert.equal(api.proxyProviders.size, 0);
    });
  });

  describe("Authentik outposts (network.outposts)", () => {
    let api: FakeAuthentik;
    beforeEach(async () => {
      api = await startFakeAuthentik(token);
    });
    afterEach(async () => {
      await api?.stop();
    });

    it("outpost: create returns the outpost's token, read finds changed client networks, delete removes all three objects", async () => {
      const outpost = provider("outpost");
      const inputs = { url: api.url, token, service: "authentik", type: "radius", slug: "authentik-radius", baseDn: null, clientNetworks: ["10.40.0.0/24"], sharedSecret: "radius-7d1e", authorizationFlow: "default-provider-authorization-implicit-consent", invalidationFlow: "default-provider-invalidation-flow" };
      const created = await outpost.create(inputs);
      assert.equal(created.outs.outpostToken, `outpost-token-${created.id}`);
      api.radiusProviders.get(created.outs.providerPk as number)!.client_networks = "0.0.0.0/0";
      const read = await outpost.read(created.id, created.outs);
      assert.deepEqual(read.props.clientNetworks, ["0.0.0.0/0"]);
      assert.deepEqual(await outpost.diff(created.id, read.props, inputs), { changes: "some", replaces: [], deleteBeforeReplace: false });
      await outpost.delete(created.id, created.outs);
      assert.deepEqual([api.radiusProviders.size, api.outposts.has(created.id as string)], [0, false]);
    });

    it("outpost: a wrong token fails with Authentik's answer, never the token or the shared secret", async () => {
      const error = await rejection(provider("outpost").create({ url: api.url, token: "wrong-token-93c1", service: "authentik", type: "ldap", slug: "authentik-ldap", baseDn: "dc=a", clientNetworks: [], sharedSecret: null, authorizationFlow: "f", invalidationFlow: "g" }));
      assert.match(error.message, /^service "authentik": /);
      assert.ok(!error.message.includes("wrong-token-93c1"), error.message);
    });
  });

  describe("container guard", () => {
    it("containerGuard: the engine's check refuses a vmid change with its message, and passes the first deploy", async () => {
      const guard = provider("containerGuard");
      const deployed = { service: "postgresql", vmid: 911, node: "pve", diskGiB: 32, allowReplace: false };
      assert.deepEqual((await guard.check({}, deployed)).failures, []);
      const refused = await guard.check(deployed, { ...deployed, vmid: 912 });
      assert.equal(refused.failures.length, 1);
      assert.match(refused.failures[0].reason, /^service "postgresql": vmid 911 → 912 re-creates its container: .*nixmox:allowReplace/);
      assert.deepEqual((await guard.check(deployed, { ...deployed, vmid: 912, allowReplace: true })).failures, []);
    });
  });

  describe("a preview's unknown inputs (the engine's sentinel string)", () => {
    const samples = (): Record<keyof typeof specs, Record<string, unknown>> => ({
      sshHostKey: sshInputs(host),
      healthCheck: healthInputs({ rebootRevision: "r1", repair: { command: "true", stdin: "" }, confirm: { configHash: "0123456789abcdef" } }),
      oidcApp: { url: "http://127.0.0.1:9", token, service: "vaultwarden", slug: "vaultwarden", name: "vaultwarden", providerName: "nixmox-vaultwarden", clientId: "vaultwarden", clientType: "confidential", clientSecret: "s", redirectUris: ["https://a.lan/cb"], scopes: ["openid"], authorizationFlow: "f", invalidationFlow: "g", signingKey: null, launchUrl: null },
      proxyApp: { url: "http://127.0.0.1:9", token, service: "media", slug: "media", name: "media", providerName: "nixmox-media", externalHost: "https://media.lan", mode: "forward_single", cookieDomain: null, authorizationFlow: "f", invalidationFlow: "g", launchUrl: null },
      outpostBinding: { url: "http://127.0.0.1:9", token, service: "authentik", outpostName: "authentik Embedded Outpost", providerPks: [1, 2] },
      containerGuard: { service: "postgresql", vmid: 911, node: "pve", diskGiB: 32, allowReplace: false },
      outpost: { url: "http://127.0.0.1:9", token, service: "authentik", type: "radius", slug: "authentik-radius", baseDn: null, clientNetworks: ["10.0.0.0/24"], sharedSecret: "s", authorizationFlow: "f", invalidationFlow: "g" },
      remoteCommand: { service: "web", description: "config push", connection: { host: "127.0.0.1", port: 22, user: "root", privateKey: "k", hostKey: "h" }, command: "true", stdin: "x", timeoutSeconds: 5, connectTimeoutSeconds: 5, maskValues: [] },
      generatedSecret: { length: 48, alphabet: "ab" },
      rootCa: { commonName: "NixMox homelab root", validityHours: 48, permittedDomains: ["nixmox.lan"] },
      intermediateCa: { commonName: "i", validityHours: 48, permittedDomains: ["nixmox.lan"], rootCertificatePem: "c", rootKeyPem: "k", renewBeforeDays: 30, notAfter: new Date(Date.now() + 90 * 86_400_000).toISOString() },
      nodeTemplate: { proxmox: { endpoint: "https://127.0.0.1:9/", apiToken: "a@pve!t=x", insecure: true }, node: "pve", datastore: "local", url: "https://example.invalid/t.tar.xz", fileName: "t.tar.xz", sha256: "ab".repeat(32), timeoutSeconds: 5 },
    });

    it("components/unknown.ts knows the SDK's sentinel, also nested", () => {
      assert.equal(unknownValue, pulumi.runtime.unknownValue);
      assert.equal(containsUnknown({ a: [1, { b: unknown }] }), true);
      assert.equal(containsUnknown({ a: [1, { b: "known" }] }), false);
    });

    it("healthCheck: check skips a health plan with an unknown inside (a check's unit not known yet)", async () => {
      const health = { ...healthPlan, checks: [{ name: "u", phase: "startup", kind: "systemd", unit: unknown }] };
      assert.deepEqual((await provider("healthCheck").check({}, healthInputs({ health }))).failures, []);
    });

    for (const name of Object.keys(specs) as (keyof typeof specs)[]) {
      it(`${name}: check accepts the sentinel for every input and keeps it; diff does not fail on it`, async () => {
        const hosted = provider(name);
        const sample = samples()[name];
        for (const key of Object.keys(sample)) {
          const news = { ...sample, [key]: unknown };
          const checked = await hosted.check({}, news);
          assert.deepEqual(checked.failures, [], `${name}.${key}`);
          assert.equal(checked.inputs[key], unknown, `${name}.${key} stays unknown`);
          await hosted.diff("id", sample, news);
        }
      });
    }
  });

  describe("RemoteCommand", () => {
    const commandInputs = (server: TestSshd, extra: Record<string, unknown> = {}) => ({
      service: "web",
      description: "config push",
      connection: { host: server.host, port: server.port, user: "root", privateKey: server.clientPrivateKey, hostKey: server.hostKey },
      command: "cat > \"$NIXMOX_STUB_DIR/pushed\" && echo pushed",
      stdin: "flake contents",
      timeoutSeconds: 20,
      connectTimeoutSeconds: 5,
      maskValues: ["s3cret-value-77"],
      ...extra,
    });
    const pushed = () => require("node:fs").readFileSync(join(host.dir, "pushed"), "utf8") as string;

    it("runs the command with its stdin on create and keeps a hash of stdin, never stdin itself", async () => {
      const command = provider("remoteCommand");
      const created = await command.create(commandInputs(host));
      assert.equal(pushed(), "flake contents");
      assert.equal(created.outs.stdout, "pushed\n");
      assert.equal(created.outs.stdinSha256, require("node:crypto").createHash("sha256").update("flake contents").digest("hex"));
      assert.equal(JSON.stringify(created.outs).includes("flake contents"), false);
      assert.equal(JSON.stringify(created.outs).includes(host.clientPrivateKey.slice(40, 80)), false);
    });

    it("re-runs on a new command or stdin, or an unknown one, and not for a new address, key or host key", async () => {
      const command = provider("remoteCommand");
      const created = await command.create(commandInputs(host));
      assert.equal((await command.diff(created.id, created.outs, commandInputs(host))).changes, "none");
      assert.equal((await command.diff(created.id, created.outs, commandInputs(other))).changes, "none");
      assert.equal((await command.diff(created.id, created.outs, commandInputs(host, { connection: unknown }))).changes, "none");
      assert.equal((await command.diff(created.id, created.outs, commandInputs(host, { stdin: "new contents" }))).changes, "some");
      assert.equal((await command.diff(created.id, created.outs, commandInputs(host, { command: "true" }))).changes, "some");
      assert.equal((await command.diff(created.id, created.outs, commandInputs(host, { stdin: unknown }))).changes, "some");
      assert.equal((await command.diff(created.id, created.outs, commandInputs(host, { command: unknown }))).changes, "some");
      const updated = await command.update(created.id, created.outs, commandInputs(host, { stdin: "new contents" }));
      assert.equal(pushed(), "new contents");
      assert.notEqual(updated.outs.stdinSha256, created.outs.stdinSha256);
    });

    it("fails naming the service, what ran, where and how, with its last output masked", async () => {
      const command = provider("remoteCommand");
      const error = await rejection(command.create(commandInputs(host, { command: "echo 'first line'; echo 'token s3cret-value-77 leaked' >&2; exit 3" })));
      assert.equal(error.message, `service "web": the config push on ${host.host}:${host.port} exited with 3; its last output:\ntoken *** leaked\nfirst line`);
    });

    it("with a check, a refresh records drift when the pushed file changed on the host, and the next diff and update push it again", async () => {
      const command = provider("remoteCommand");
      const file = join(host.dir, "pushed");
      const check = { command: `sha256sum < ${file} | cut -c1-64`, expect: require("node:crypto").createHash("sha256").update("flake contents").digest("hex"), meaning: "the pushed file changed" };
      const inputs = commandInputs(host, { check });
      const created = await command.create(inputs);
      assert.equal(created.outs.drift, null);
      assert.deepEqual(await command.read(created.id, created.outs), { id: created.id, props: created.outs });
      require("node:fs").writeFileSync(file, "edited on the host");
      const refreshed = await command.read(created.id, created.outs);
      assert.match(String(refreshed.props.drift), /^service "web": the pushed file changed \(the config push check on .* found [0-9a-f]{64}, not [0-9a-f]{64}\); the next up runs the config push again$/);
      assert.equal((await command.diff(created.id, refreshed.props, inputs)).changes, "some");
      const repaired = await command.update(created.id, refreshed.props, inputs);
      assert.equal(pushed(), "flake contents");
      assert.equal(repaired.outs.drift, null);
      assert.equal((await command.diff(created.id, repaired.outs, inputs)).changes, "none");
      const unreachable = { ...repaired.outs, connection: { ...(repaired.outs.connection as object), port: 1 } };
      assert.deepEqual(await command.read(created.id, unreachable), { id: created.id, props: unreachable }, "an unreachable host is no drift of the push");
    });

    it("refuses a host presenting another key at once, and kills a command that runs past its timeout", async () => {
      const command = provider("remoteCommand");
      const wrongKey = await rejection(command.create(commandInputs(host, { connection: { host: host.host, port: host.port, user: "root", privateKey: host.clientPrivateKey, hostKey: other.hostKey } })));
      assert.match(wrongKey.message, /^service "web": the config push could not connect: host key mismatch for /);
      const slow = await rejection(command.create(commandInputs(host, { command: "sleep 30", timeoutSeconds: 1 })));
      assert.equal(slow.message, `service "web": the config push on ${host.host}:${host.port} did not finish within 1 s and was killed`);
    });
  });

  describe("GeneratedSecret", () => {
    it("draws 48 letters and digits once; read keeps them, and only a new length or alphabet replaces them", async () => {
      const secret = provider("generatedSecret");
      const created = await secret.create({ length: 48 });
      assert.match(String(created.outs.value), /^[A-Za-z0-9]{48}$/);
      const again = await secret.create({ length: 48 });
      assert.notEqual(again.outs.value, created.outs.value);
      assert.deepEqual(await secret.read(created.id, created.outs), { id: created.id, props: created.outs });
      assert.deepEqual(await secret.diff(created.id, created.outs, { length: 48 }), { changes: "none", replaces: [], deleteBeforeReplace: false });
      assert.deepEqual(await secret.diff(created.id, created.outs, { length: 64 }), { changes: "some", replaces: ["length"], deleteBeforeReplace: false });
    });
  });

  describe("RootCa", () => {
    it("creates a root with its key, read keeps it, and only a new name or validity replaces it", async () => {
      const ca = provider("rootCa");
      const created = await ca.create({ commonName: "NixMox homelab root", validityHours: 48, permittedDomains: ["nixmox.lan"], allowReplacement: false });
      assert.match(String(created.outs.certificatePem), /^-----BEGIN CERTIFICATE-----\n/);
      assert.match(String(created.outs.privateKeyPem), /^-----BEGIN PRIVATE KEY-----\n/);
      assert.deepEqual(await ca.read(created.id, created.outs), { id: created.id, props: created.outs });
      assert.deepEqual(await ca.diff(created.id, created.outs, { commonName: "NixMox homelab root", validityHours: 48, permittedDomains: ["nixmox.lan"], allowReplacement: false }), { changes: "none", replaces: [], deleteBeforeReplace: false });
      assert.deepEqual(await ca.diff(created.id, created.outs, { commonName: "NixMox homelab root", validityHours: 72, permittedDomains: ["nixmox.lan"], allowReplacement: false }), { changes: "some", replaces: ["validityHours"], deleteBeforeReplace: false });
      // A network.domain edit is refused by check, naming the rotation steps (through the plugin, as the engine asks).
      const refused = await ca.check({ commonName: "NixMox homelab root", validityHours: 48, permittedDomains: ["nixmox.lan"], allowReplacement: false }, { commonName: "NixMox homelab root", validityHours: 48, permittedDomains: ["home.arpa"], allowReplacement: false });
      assert.match(refused.failures[0]?.reason ?? "", /nixmox:rotateRootCa/);
    });
  });

  describe("NodeTemplate (the fake Proxmox API: the calls and their answers, not a real download)", () => {
    const templateInputs = (extra: Record<string, unknown> = {}) => ({
      proxmox: { endpoint: proxmox.endpoint, apiToken: proxmox.token, insecure: true },
      node: "pve",
      datastore: "local",
      url: "https://hydra.example/nixos-lxc.tar.xz",
      fileName: "nixos-25.11-lxc.tar.xz",
      sha256: "c0ffee".repeat(10) + "abcd",
      timeoutSeconds: 10,
      ...extra,
    });
    beforeEach(() => {
      proxmox.volumes.clear();
      proxmox.downloads.length = 0;
      proxmox.downloadFailure = undefined;
    });

    it("downloads a missing template with the pinned checksum, and adopts one already there without downloading (review A1)", async () => {
      const template = provider("nodeTemplate");
      const created = await template.create(templateInputs());
      assert.deepEqual(proxmox.downloads, [{ node: "pve", storage: "local", form: { url: "https://hydra.example/nixos-lxc.tar.xz", content: "vztmpl", filename: "nixos-25.11-lxc.tar.xz", checksum: "c0ffee".repeat(10) + "abcd", "checksum-algorithm": "sha256" } }]);
      assert.deepEqual([created.id, created.outs.volumeId, created.outs.adopted], ["pve/local:vztmpl/nixos-25.11-lxc.tar.xz", "local:vztmpl/nixos-25.11-lxc.tar.xz", false]);
      // The state of this stack is gone (destroy retains the file; or another stack): the next create adopts it.
      const again = await template.create(templateInputs());
      assert.equal(proxmox.downloads.length, 1);
      assert.deepEqual([again.outs.volumeId, again.outs.adopted], ["local:vztmpl/nixos-25.11-lxc.tar.xz", true]);
      // Deleting never touches the file; a refresh keeps it while it is listed, and forgets it once it is gone.
      await template.delete(again.id, again.outs);
      assert.deepEqual(await template.read(again.id, again.outs), { id: again.id, props: again.outs });
      proxmox.volumes.clear();
      assert.deepEqual(await template.read(again.id, again.outs), { id: "", props: {} });
    });

    it("fails with the download task's exit status and log, naming the template and node", async () => {
      proxmox.downloadFailure = "checksum mismatch: got 'deadbeef…'";
      const error = await rejection(provider("nodeTemplate").create(templateInputs()));
      assert.equal(error.message, `the template local:vztmpl/nixos-25.11-lxc.tar.xz on node pve: the download ended with "checksum mismatch: got 'deadbeef…'"; its log ends:\ndownloading …\nchecksum mismatch: got 'deadbeef…'\nTASK ERROR: checksum mismatch: got 'deadbeef…'`);
      assert.equal(error.message.includes(proxmox.token), false);
    });

    it("replaces for another node, datastore or file, and only records a new URL or checksum for the same file", async () => {
      const template = provider("nodeTemplate");
      const created = await template.create(templateInputs());
      assert.deepEqual(await template.diff(created.id, created.outs, templateInputs()), { changes: "none", replaces: [], deleteBeforeReplace: false });
      assert.deepEqual(await template.diff(created.id, created.outs, templateInputs({ fileName: "nixos-26.05-lxc.tar.xz" })), { changes: "some", replaces: ["fileName"], deleteBeforeReplace: false });
      assert.deepEqual(await template.diff(created.id, created.outs, templateInputs({ node: "pve2" })), { changes: "some", replaces: ["node"], deleteBeforeReplace: false });
      assert.deepEqual(await template.diff(created.id, created.outs, templateInputs({ url: "https://mirror.example/x.tar.xz" })), { changes: "some", replaces: [], deleteBeforeReplace: false });
      const updated = await template.update(created.id, created.outs, templateInputs({ url: "https://mirror.example/x.tar.xz" }));
      assert.equal(proxmox.downloads.length, 1, "no second download");
      assert.equal(updated.outs.url, "https://mirror.example/x.tar.xz");
    });
  });
});
