// Selective deploys: the closure over the plan's deploy edges (pure), and the targets checked against the
// resources the real program registers (under mocks, through `nixmox preview --offline`). Not proven here:
// that a real engine accepts the targets (the Automation API arguments are in tests/engine.test.ts).
import { strict as assert } from "node:assert";
import { managedCaSecretPlans } from "../render";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { planAuthentikObjects } from "../components/authentik/plan";
import { loadPlan, type Plan } from "../manifest";
import { SelectionError, engineQualifiedType, generatedSecretTargets, parseOnly, selectServices, sharedTargets, targetResources, targetUrn, undeployedDependencies } from "../cli/select";
import { checkSecrets } from "../components/secrets";
import { exampleManifestData, writeManifest } from "./support/pulumi-mocks";

const root = path.resolve(__dirname, "..");
const example = path.join(root, "manifest", "service-manifest.nix");
const cli = path.join(root, "bin", "nixmox.js");

interface PreviewResource {
  urn: string;
  name: string;
  type: string;
  targeted?: boolean;
}

function offlinePreview(...args: string[]): PreviewResource[] {
  return offlinePreviewOf(example, ...args);
}

function offlinePreviewOf(manifest: string, ...args: string[]): PreviewResource[] {
  const result = spawnSync(process.execPath, [cli, "preview", "--offline", "--json", ...args, manifest], { encoding: "utf8", timeout: 100_000, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, result.stderr);
  return (JSON.parse(result.stdout) as { resources: PreviewResource[] }).resources;
}

describe("cli: --only, --with-dependencies, --with-dependents", function () {
  this.timeout(120_000);
  let plan: Plan;

  before(async () => {
    plan = await loadPlan(example);
  });

  it("splits comma lists and repeated flags", () => {
    assert.deepEqual(parseOnly(["dns,caddy", " vaultwarden ", "dns", ""]), ["dns", "caddy", "vaultwarden"]);
  });

  it("closes over the plan's edges, hard and soft (SSO), in either direction", () => {
    assert.deepEqual(selectServices(plan, { only: ["vaultwarden"] }), ["vaultwarden"]);
    assert.deepEqual(selectServices(plan, { only: ["vaultwarden"], withDependencies: true }), ["authentik", "caddy", "dns", "postgresql", "vaultwarden"]);
    assert.deepEqual(selectServices(plan, { only: ["authentik"], withDependents: true }), ["authentik", "guacamole", "homepage", "vaultwarden"]);
    // homepage only uses authentik's forward auth: a soft edge, which orders no boot but ties their SSO objects.
    assert.equal(plan.edges.find((edge) => edge.from === "homepage" && edge.to === "authentik")?.hard, false);
    // Each direction is its own closure: dependents of authentik's dependencies are not pulled in.
    assert.deepEqual(selectServices(plan, { only: ["authentik"], withDependencies: true, withDependents: true }), ["authentik", "dns", "guacamole", "homepage", "postgresql", "vaultwarden"]);
    for (const service of plan.services) {
      const closure = selectServices(plan, { only: [service.name], withDependencies: true });
      for (const dependency of service.dependsOn) assert.ok(closure.includes(dependency), `${service.name} → ${dependency}`);
    }
  });

  it("fails for a name that is not an enabled service", () => {
    assert.throws(() => selectServices({ ...plan, disabled: ["mail"] }, { only: ["mail"] }), (error: unknown) => error instanceof SelectionError && /"mail" is disabled in the manifest/.test(error.message));
  });

  it("names engine URNs without the root stack type, project and bare stack name", () => {
    assert.equal(targetUrn("org/nixmox/homelab", "nixmox", { qualifiedType: "nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:RemoteCommand", name: "dns-config" }), "urn:pulumi:homelab::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:RemoteCommand::dns-config");
    assert.equal(engineQualifiedType("urn:pulumi:offline::nixmox::pulumi:pulumi:Stack$nixmox:index:NixosService::dns"), "nixmox:index:NixosService");
  });

  it("targets exactly what the program registers (the engine fails on a target it cannot find): every service's resources and its SSO objects", () => {
    const registered = new Set(offlinePreview().map((resource) => `${engineQualifiedType(resource.urn)}::${resource.name}`));
    const sources = { sso: planAuthentikObjects(plan), outposts: plan.outposts, secrets: [...plan.secrets, ...managedCaSecretPlans(plan)] };
    for (const service of plan.services) {
      const wanted = targetResources([service.name], sources);
      const missing = wanted.filter((resource) => !registered.has(`${resource.qualifiedType}::${resource.name}`)).map((resource) => resource.name);
      assert.deepEqual(missing, [], service.name);
    }
    // The generated passwords of every host, as the program registers them when the stack sets none.
    for (const service of plan.services) {
      const passwords = generatedSecretTargets(checkSecrets(plan, {}), [service.name]);
      assert.deepEqual(passwords.filter((resource) => !registered.has(`${resource.qualifiedType}::${resource.name}`)), [], service.name);
    }
    assert.ok(generatedSecretTargets(checkSecrets(plan, {}), ["vaultwarden"]).some((resource) => resource.name === "secret-vaultwarden-db_password"));
    // And the other way round: every child the program gives a service's component is targeted with the service.
    const previewed = offlinePreview();
    for (const service of plan.services) {
      const component = previewed.find((resource) => resource.type === "nixmox:index:NixosService" && resource.name === service.name)!;
      const children = previewed.filter((resource) => (resource as { parent?: string }).parent === component.urn).map((resource) => resource.name).sort();
      const wanted = new Set(targetResources([service.name], sources).map((resource) => resource.name));
      assert.deepEqual(children.filter((name) => !wanted.has(name)), [], service.name);
    }
    // Only hosts that receive secrets have the secrets step: homepage has none.
    assert.ok(!targetResources(["homepage"], sources).some((resource) => resource.name === "homepage-secrets"));
    assert.ok(targetResources(["vaultwarden"], sources).some((resource) => resource.name === "vaultwarden-secrets"));
    const byGuacamole = targetResources(["guacamole"], sources).map((resource) => resource.name);
    assert.ok(byGuacamole.includes("sso-guacamole"));
    const byHomepage = targetResources(["homepage"], sources).map((resource) => resource.name);
    assert.ok(byHomepage.some((name) => name.startsWith("sso-homepage")) && byHomepage.includes("sso-authentik-outpost"), byHomepage.join(", "));
  });

  it("preview --offline --only … --with-dependents --json marks exactly the selected resources targeted", () => {
    const resources = offlinePreview("--only", "postgresql", "--with-dependents");
    const targeted = resources.filter((resource) => resource.targeted).map((resource) => resource.name).sort();
    const services = ["authentik", "guacamole", "homepage", "postgresql", "vaultwarden"];
    const expected = new Set([
      ...services.flatMap((service) => [service, ...["config", "container", "guard", "health", "rebuild", "secrets", "ssh"].map((phase) => `${service}-${phase}`)]),
      // What every host is built from: the managed CA and the template on the offline node.
      "nixmox-ca", "nixmox-ca-intermediate", "nixmox-ca-root", "nixos-template-pve",
    ]);
    const named = (prefix: string) => (names: string[]) => names.filter((name) => name.startsWith(prefix)).sort();
    assert.deepEqual(targeted.filter((name) => !name.startsWith("sso-") && !name.startsWith("secret-")), resources.map((resource) => resource.name).filter((name) => expected.has(name)).sort());
    assert.deepEqual(named("sso-")(targeted), named("sso-")(resources.map((resource) => resource.name)));
    // Every generated password goes to a selected host (postgresql receives each database's), so all are targeted.
    assert.deepEqual(named("secret-")(targeted), named("secret-")(resources.map((resource) => resource.name)));
    assert.ok(named("secret-")(targeted).length > 0);
    assert.ok(resources.some((resource) => resource.name === "dns-container" && resource.targeted === undefined));
    assert.ok(resources.every((resource) => resource.targeted === undefined || resource.targeted === true));
  });

  it("targets an authentik service's LDAP and RADIUS outposts with it", async () => {
    const data = (await exampleManifestData()) as { network: Record<string, unknown> };
    const manifest = writeManifest({ ...data, network: { ...data.network, outposts: { ldap: {}, radius: { client_networks: ["192.168.99.0/24"] } } } });
    try {
      const resources = offlinePreviewOf(manifest.path, "--only", "authentik");
      const outposts = resources.filter((resource) => /^sso-authentik-(ldap|radius)/.test(resource.name)).map((resource) => [resource.name, resource.targeted]);
      assert.deepEqual(outposts.sort(), [["sso-authentik-ldap", true], ["sso-authentik-ldap-token", true], ["sso-authentik-radius", true], ["sso-authentik-radius-token", true]]);
    } finally {
      manifest.remove();
    }
  });

  it("fails with exit 2 for --with-dependents without --only, and for --backend with --offline", () => {
    const without = spawnSync(process.execPath, [cli, "preview", "--offline", "--with-dependents"], { encoding: "utf8" });
    assert.equal(without.status, 2);
    assert.equal(without.stderr, "nixmox: --with-dependencies and --with-dependents extend an --only selection; add --only NAME\n");
    const backend = spawnSync(process.execPath, [cli, "preview", "--offline", "--backend", "local"], { encoding: "utf8" });
    assert.equal(backend.status, 2);
    assert.equal(backend.stderr, "nixmox: --offline uses no backend (built-in fake settings); drop --backend, or drop --offline to preview the stack\n");
  });

  it("names what the selection needs that is not deployed yet, along hard and SSO edges, with who needs it", async () => {
    const plan = await loadPlan(example);
    const health = (service: string) => `health:${service}`;
    assert.deepEqual(undeployedDependencies(plan, ["dns"], new Set(), health), []);
    assert.deepEqual(undeployedDependencies(plan, ["postgresql", "vaultwarden"], new Set(["health:dns"]), health), [
      { service: "authentik", neededBy: ["vaultwarden"] },
      { service: "caddy", neededBy: ["vaultwarden"] },
    ]);
    assert.deepEqual(undeployedDependencies(plan, ["vaultwarden"], new Set(["authentik", "caddy", "dns", "postgresql"].map(health)), health), []);
  });

  it("targets the outpost binding only when every application it binds is selected or deployed", async () => {
    const plan = await loadPlan(example);
    const sources = { sso: planAuthentikObjects(plan), outposts: plan.outposts, secrets: plan.secrets };
    const binding = (services: string[], deployed: (service: string) => boolean) => targetResources(services, { ...sources, deployed }).some((resource) => resource.name === "sso-authentik-outpost");
    // homepage's forward-auth application is the one the example's binding lists.
    assert.equal(binding(["authentik"], () => false), false);
    assert.equal(binding(["authentik"], (service) => service === "homepage"), true);
    assert.equal(binding(["authentik", "homepage"], () => false), true);
    assert.equal(binding(["homepage"], () => false), true);
  });

  it("targets the managed CA always, and the template of each selected node only when it is downloaded", () => {
    assert.deepEqual(sharedTargets(["pve2", "pve", "pve"], true).map((resource) => `${resource.qualifiedType}::${resource.name}`), [
      "nixmox:index:ManagedCa::nixmox-ca",
      "nixmox:index:ManagedCa$pulumi-nodejs:dynamic/nixmox:RootCa::nixmox-ca-root",
      "nixmox:index:ManagedCa$pulumi-nodejs:dynamic/nixmox:IntermediateCa::nixmox-ca-intermediate",
      "pulumi-nodejs:dynamic/nixmox:NodeTemplate::nixos-template-pve",
      "pulumi-nodejs:dynamic/nixmox:NodeTemplate::nixos-template-pve2",
    ]);
    assert.deepEqual(sharedTargets(["pve"], false).map((resource) => resource.name), ["nixmox-ca", "nixmox-ca-root", "nixmox-ca-intermediate"]);
  });
});
