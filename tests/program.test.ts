// Mock-based: these tests do not prove that Proxmox accepts the container arguments, which fields the provider
// replaces, the engine's real update order, or that the commands and dynamic providers work on a host.
import { strict as assert } from "node:assert";
import path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { defaultManifestPath, loadPlan, type Plan } from "../manifest";
import { fileSources, renderAll, type RenderedHost } from "../render";
import { renderConfigPayload, renderConfigPushCommand } from "../components/config-push";
import { creationOnlyFields } from "../components/container";
import { publicKeyOf } from "../components/deploy-key";
import { fakeHostKey, offlinePreviewPrivateKey, offlineStackConfig, recordProgram, renderPreviewJson, type RecordedRun } from "../components/offline-preview";
import { childrenOf, exampleManifestData, resourceNamed, runNixmoxProgram, writeManifest } from "./support/pulumi-mocks";

const stackUrn = "urn:pulumi:offline::nixmox::pulumi:pulumi:Stack::nixmox-offline";
// The mock monitor builds a child's URN from its parent's type only (not the whole chain, as the engine does).
const containerUrn = (name: string) => `urn:pulumi:offline::nixmox::nixmox:index:NixosService$proxmoxve:index/containerLegacy:ContainerLegacy::${name}-container`;

describe("program under mocks: the example manifest", function () {
  this.timeout(60_000);
  let run: RecordedRun;
  let plan: Plan;
  let hosts: Record<string, RenderedHost>;

  before(async () => {
    run = await runNixmoxProgram();
    plan = await loadPlan();
    hosts = Object.fromEntries(renderAll(plan, fileSources(plan.manifestDir)).map((host) => [host.service, host]));
  });

  it("gives the dns service exactly its children, parented to its component", () => {
    const component = resourceNamed(run, "dns");
    assert.equal(component.type, "nixmox:index:NixosService");
    assert.equal(component.parent, stackUrn);
    const children = childrenOf(run, component).map((child) => `${child.type} ${child.name}`).sort();
    assert.deepEqual(children, [
      "proxmoxve:index/containerLegacy:ContainerLegacy dns-container",
      "pulumi-nodejs:dynamic/nixmox:ContainerGuard dns-guard",
      "pulumi-nodejs:dynamic/nixmox:HealthCheck dns-health",
      "pulumi-nodejs:dynamic/nixmox:RemoteCommand dns-config",
      "pulumi-nodejs:dynamic/nixmox:RemoteCommand dns-rebuild",
      "pulumi-nodejs:dynamic/nixmox:SshHostKey dns-ssh",
    ]);
    assert.deepEqual(childrenOf(run, resourceNamed(run, "authentik")).map((child) => child.name).sort(), [
      "authentik-config", "authentik-container", "authentik-guard", "authentik-health", "authentik-rebuild", "authentik-secrets", "authentik-ssh",
    ]);
  });

  it("builds the dns container from the manifest: unprivileged NixOS with nesting, static IP, VLAN, keys, startup order", () => {
    const container = resourceNamed(run, "dns-container");
    assert.deepEqual(container.inputs, {
      cpu: { cores: 1 },
      description: 'NixMox service "dns" (managed by Pulumi; edit the manifest, not this container)',
      disk: { datastoreId: "local-lvm", size: 4 },
      features: { nesting: true },
      initialization: {
        // The DNS service itself resolves through the upstream (the gateway) until its Unbound runs.
        dns: { domain: "nixmox.lan", servers: ["192.168.99.1"] },
        hostname: "dns",
        ipConfigs: [{ ipv4: { address: "192.168.99.13/24", gateway: "192.168.99.1" } }],
        userAccount: { keys: [...plan.network.sshKeys.root, publicKeyOf(offlinePreviewPrivateKey())].sort() },
      },
      memory: { dedicated: 512, swap: 512 },
      networkInterfaces: [{ bridge: "vmbr0", name: "eth0", vlanId: 99 }],
      nodeName: "pve",
      operatingSystem: { templateFileId: "local:vztmpl/nixos-25.11-proxmox-lxc-x86_64-linux.tar.xz", type: "nixos" },
      startOnBoot: true,
      started: true,
      startup: { order: 1 },
      tags: ["dns", "nixmox"],
      unprivileged: true,
      vmId: 913,
    });
    assert.deepEqual(container.dependsOn, [
      "urn:pulumi:offline::nixmox::nixmox:index:NixosService$pulumi-nodejs:dynamic/nixmox:ContainerGuard::dns-guard",
      "urn:pulumi:offline::nixmox::pulumi-nodejs:dynamic/nixmox:NodeTemplate::nixos-template-pve",
    ]);
  });

  it("waits for SSH on the service's address and re-records the host key when the container is replaced", () => {
    const ssh = resourceNamed(run, "dns-ssh");
    assert.deepEqual(ssh.inputs, { containerId: "913", firstContact: "[secret]", host: "192.168.99.13", port: 22, privateKey: "[secret]", service: "dns", timeoutSeconds: 300 });
    // First contact is checked against the Proxmox task list of the container's node, with the stack's token (M9).
    assert.deepEqual(ssh.plainInputs.firstContact, {
      endpoint: "https://pve.offline.invalid:8006/", apiToken: "offline@pve!preview=00000000-0000-0000-0000-000000000000", insecure: false, node: "pve", vmid: 913, windowSeconds: 900,
    });
    assert.deepEqual(ssh.replaceWith, [containerUrn("dns")]);
    for (const role of ["config", "rebuild", "health"]) assert.deepEqual(resourceNamed(run, `dns-${role}`).replaceWith, [containerUrn("dns")], role);
  });

  it("requires a key pinned in nixmox:hostKeys of the server instead of trusting first contact, and refuses one for no service", async () => {
    const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0rtW4Aj39FVowGkbUlt8ziG7ZO6IpGh3ptDchjcmH0";
    const pinned = await runNixmoxProgram(undefined, { "nixmox:hostKeys": JSON.stringify({ dns: `${key} root@dns` }) });
    const ssh = resourceNamed(pinned, "dns-ssh");
    assert.equal(ssh.inputs.pinnedHostKey, key);
    assert.equal("firstContact" in ssh.inputs, false);
    assert.equal("pinnedHostKey" in resourceNamed(pinned, "caddy-ssh").inputs, false);
    await assert.rejects(runNixmoxProgram(undefined, { "nixmox:hostKeys": JSON.stringify({ dsn: key }) }), {
      name: "ManifestError",
      message: /^stack config: 1 problem\n {2}- nixmox:hostKeys\.dsn: names no enabled service of the manifest \(services: authentik, caddy, dns, /,
    });
  });

  it("pushes the rendered directory and rebuilds with the host's content hash", () => {
    const host = hosts.dns;
    const config = resourceNamed(run, "dns-config");
    assert.equal(config.inputs.command, renderConfigPushCommand("dns", host.contentHash));
    assert.equal(config.inputs.stdin, renderConfigPayload("dns", host.files));
    const rebuild = resourceNamed(run, "dns-rebuild");
    assert.match(String(rebuild.inputs.command), new RegExp(`bash "\\$wrapper" run --service dns --config-hash ${host.contentHash} --flake '/etc/nixmox#dns' --confirm-timeout 60 `));
    const health = resourceNamed(run, "dns-health");
    assert.deepEqual(health.inputs.confirm, { configHash: host.contentHash });
    // The key the SshHostKey resource recorded (a mock stand-in here) is pinned by the health check.
    assert.equal(health.inputs.hostKey, fakeHostKey("dns-ssh"));
  });

  it("registers 71 resources: 7 services × (guard, container, ssh, config, rebuild, health), 5 secrets pushes (the proxy gets the managed CA), the CA (component, root, intermediate), provider, template, 7 generated secrets (Guacamole's client is public), 4 SSO objects", () => {
    const count = (type: string) => run.resources.filter((resource) => resource.type === type).length;
    assert.equal(count("nixmox:index:NixosService"), 7);
    assert.equal(count("proxmoxve:index/containerLegacy:ContainerLegacy"), 7);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:SshHostKey"), 7);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:HealthCheck"), 7);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:RemoteCommand"), 7 * 2 + 5);
    assert.deepEqual(run.resources.filter((resource) => resource.name.endsWith("-secrets")).map((resource) => resource.name), [
      "authentik-secrets", "caddy-secrets", "guacamole-secrets", "postgresql-secrets", "vaultwarden-secrets",
    ]);
    assert.equal(count("nixmox:index:ManagedCa"), 1);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:RootCa"), 1);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:IntermediateCa"), 1);
    assert.equal(count("pulumi:providers:proxmoxve"), 1);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:NodeTemplate"), 1);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:GeneratedSecret"), 7);
    assert.equal(count("pulumi-nodejs:dynamic/nixmox:ContainerGuard"), 7);
    assert.equal(run.resources.length, 71);
  });

  it("orders rebuilds by exactly the plan's hard edges: each waits for the health checks of its dependencies and nothing else across services", () => {
    const byUrn = new Map(run.resources.map((resource) => [resource.urn, resource]));
    const crossEdges: string[] = [];
    for (const resource of run.resources) {
      if (resource.parent === null || resource.parent === stackUrn) continue;
      for (const urn of resource.dependsOn) {
        const target = byUrn.get(urn);
        // The managed CA (every host renders with its root) is data, not an ordering between services.
        if (!target || target.parent === resource.parent || target.parent === stackUrn || target.parent?.endsWith("::nixmox-ca")) continue;
        crossEdges.push(`${resource.name} -> ${target.name}`);
      }
    }
    const expected = plan.edges.filter((edge) => edge.hard).map((edge) => `${edge.from}-rebuild -> ${edge.to}-health`);
    assert.deepEqual(crossEdges.sort(), expected.sort());
    assert.ok(expected.includes("vaultwarden-rebuild -> postgresql-health"));
    // homepage only has a forward-auth route through authentik: an SSO edge, which never orders hosts.
    assert.ok(!crossEdges.includes("homepage-rebuild -> authentik-health"));
  });

  it("waits for both ends of an SSO relation: its objects after the provider's health and the client's rebuild, the client's health after its objects", () => {
    const dependencies = (name: string) => {
      const byUrn = new Map(run.resources.map((resource) => [resource.urn, resource.name]));
      // Generated secrets are data inputs, not ordering: left out.
      return resourceNamed(run, name).dependsOn.map((urn) => byUrn.get(urn)!).filter((dependency) => !dependency.startsWith("secret-")).sort();
    };
    // (authentik-ssh: the API calls go through SSH to the authentik host, pinned to its recorded key.)
    assert.deepEqual(dependencies("sso-vaultwarden"), ["authentik-health", "authentik-ssh", "vaultwarden-rebuild"]);
    assert.deepEqual(dependencies("sso-homepage-home-nixmox-lan"), ["authentik-health", "authentik-ssh", "homepage-rebuild"]);
    // A health gate also reads its own container and SSH key (data flow); what matters is what else it waits for.
    const gateOf = (name: string) => dependencies(name).filter((dependency) => dependency.startsWith("sso-") || dependency.endsWith("-rebuild"));
    assert.deepEqual(gateOf("vaultwarden-health"), ["sso-vaultwarden", "vaultwarden-rebuild"]);
    assert.deepEqual(gateOf("homepage-health"), ["homepage-rebuild", "sso-homepage-home-nixmox-lan"]);
    assert.deepEqual(gateOf("postgresql-health"), ["postgresql-rebuild"]);
  });

  it("calls Authentik's API through SSH to the authentik host, the tunnel a secret input (security review H2)", () => {
    const app = resourceNamed(run, "sso-vaultwarden");
    assert.ok(app.secretPaths.includes("tunnel"), app.secretPaths.join(","));
    const tunnel = app.plainInputs.tunnel as { host: string; port: number; privateKey: string; hostKey: string };
    assert.deepEqual([tunnel.host, tunnel.port, tunnel.hostKey], ["192.168.99.12", 22, fakeHostKey("authentik-ssh")]);
    assert.match(tunnel.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
  });

  it("delivers the managed CA's root and key to the proxy, and exports the root for browsers (review R3)", () => {
    const push = resourceNamed(run, "caddy-secrets");
    assert.match(String(push.inputs.command), /\/var\/lib\/nixmox\/secrets\/caddy\/ca_root_cert/);
    assert.match(String(push.inputs.command), /\/var\/lib\/nixmox\/secrets\/caddy\/ca_intermediate_key/);
    assert.doesNotMatch(String(push.inputs.command), /ca_root_key/);
    assert.ok(push.secretPaths.includes("stdin"));
    assert.ok("caRootCertificate" in run.outputs);
  });

  it("serializes each dynamic provider once: every resource of a type carries the same provider text", () => {
    const types = Object.keys(run.providerTexts).sort();
    assert.deepEqual(types, [
      "pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp",
      "pulumi-nodejs:dynamic/nixmox:AuthentikOutpostBinding",
      "pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp",
      "pulumi-nodejs:dynamic/nixmox:ContainerGuard",
      "pulumi-nodejs:dynamic/nixmox:GeneratedSecret",
      "pulumi-nodejs:dynamic/nixmox:HealthCheck",
      "pulumi-nodejs:dynamic/nixmox:IntermediateCa",
      "pulumi-nodejs:dynamic/nixmox:NodeTemplate",
      "pulumi-nodejs:dynamic/nixmox:RemoteCommand",
      "pulumi-nodejs:dynamic/nixmox:RootCa",
      "pulumi-nodejs:dynamic/nixmox:SshHostKey",
    ]);
    for (const type of types) assert.equal(run.providerTexts[type].length, 1, type);
  });

  it("keeps every secret input secret-wrapped and out of the printed preview", () => {
    const secretPaths = (name: string) => resourceNamed(run, name).secretPaths;
    assert.deepEqual(secretPaths("proxmox"), ["apiToken"]);
    assert.deepEqual(secretPaths("dns-ssh"), ["firstContact", "privateKey"]);
    assert.deepEqual(secretPaths("dns-health"), ["maskValues", "privateKey"]);
    assert.deepEqual(secretPaths("dns-config"), ["connection", "maskValues"]);
    assert.deepEqual(secretPaths("dns-rebuild"), ["connection", "maskValues"]);
    assert.deepEqual(secretPaths("vaultwarden-secrets"), ["connection", "maskValues", "stdin"]);
    const json = renderPreviewJson(run.resources);
    const keyBody = offlinePreviewPrivateKey().split("\n")[2];
    assert.equal(json.includes(keyBody), false);
    assert.equal(json.includes("offline@pve!preview"), false);
    assert.equal((resourceNamed(run, "vaultwarden-health").plainInputs.maskValues as string[]).length, 2);
    assert.deepEqual(resourceNamed(run, "dns-health").plainInputs.maskValues, []);
    const generated = String(resourceNamed(run, "vaultwarden-secrets").plainInputs.stdin);
    assert.ok(generated.length > 0);
    assert.equal(json.includes(generated), false);
  });

  it("protects stateful containers (postgresql by default, vaultwarden by manifest flag) and guards creation-only fields everywhere", () => {
    const protectedNames = run.resources.filter((resource) => resource.protect).map((resource) => resource.name).sort();
    // The managed CA's root (and its key) too: replacing it would make every host and browser distrust the sites.
    assert.deepEqual(protectedNames, ["nixmox-ca-root", "postgresql-container", "vaultwarden-container"]);
    const retained = run.resources.filter((resource) => resource.retainOnDelete).map((resource) => resource.name).sort();
    assert.deepEqual(retained, ["postgresql-container", "vaultwarden-container"]);
    for (const container of run.resources.filter((resource) => resource.type === "proxmoxve:index/containerLegacy:ContainerLegacy")) {
      assert.deepEqual(container.ignoreChanges, [...creationOnlyFields], container.name);
    }
  });

  it("exports vmid, ip, hostname, deployed generation and health per service", () => {
    const services = run.outputs.services as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(services), ["authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "vaultwarden"]);
    assert.equal(services.dns.vmid, 913);
    assert.equal(services.dns.ip, "192.168.99.13");
    assert.equal(services.dns.hostname, "dns.nixmox.lan");
    assert.equal(services.dns.healthy, true);
    assert.match(String(services.dns.generation), /^\/nix\/store\/[0-9a-f]{32}-nixos-system-dns$/);
    assert.equal(resourceNamed(run, "dns-health").inputs.expectedGeneration, services.dns.generation);
  });

  it("exports the recorded host keys as known_hosts lines for `nixmox status`", () => {
    const lines = String(run.outputs.knownHosts).trimEnd().split("\n");
    assert.equal(lines.length, 7);
    assert.equal(lines[2], `192.168.99.13 ${fakeHostKey("dns-ssh")}`);
    assert.ok(lines.every((line) => /^192\.168\.99\.\d+ ssh-ed25519 [A-Za-z0-9+/=]+$/.test(line)), lines.join("\n"));
  });

  it("prints the same preview JSON on every run, with exactly the documented fields", async () => {
    const again = await runNixmoxProgram();
    assert.equal(renderPreviewJson(again.resources), renderPreviewJson(run.resources));
    const parsed = JSON.parse(renderPreviewJson(run.resources)) as { resources: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(parsed.resources[0]).sort(), ["custom", "dependsOn", "inputs", "name", "options", "parent", "protect", "provider", "type", "urn"]);
  });
});

describe("program under mocks: the seed-format homelab (manifest/examples/seed-homelab.nix)", function () {
  this.timeout(90_000);

  it("previews one NixosService per enabled host, the SSO objects of route-level clients, and both outposts, with no cycle", async () => {
    const run = await runNixmoxProgram(path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix"));
    const components = run.resources.filter((resource) => resource.type === "nixmox:index:NixosService").map((resource) => resource.name).sort();
    assert.deepEqual(components, ["authentik", "caddy", "dns", "forgejo", "guacamole", "media", "monitoring", "nextcloud", "openbao", "postgresql", "vaultwarden"]);
    const names = new Set(run.resources.map((resource) => resource.name));
    for (const name of ["sso-media-jellyfin", "sso-postgresql", "sso-authentik-ldap", "sso-authentik-radius", "sso-authentik-radius-token", "sso-media-sonarr-home-lab"]) {
      assert.ok(names.has(name), name);
    }
    const byUrn = new Map(run.resources.map((resource) => [resource.urn, resource.name]));
    const dependsOn = (name: string) => resourceNamed(run, name).dependsOn.map((urn) => byUrn.get(urn));
    // pgAdmin's client (postgresql) does not gate on its SSO object: authentik boots after postgresql.
    assert.ok(!dependsOn("postgresql-health").includes("sso-postgresql"));
    assert.ok(dependsOn("sso-postgresql").includes("postgresql-rebuild") && dependsOn("sso-postgresql").includes("authentik-health"));
    assert.ok(dependsOn("media-health").includes("sso-media-jellyfin"));
  });
});

describe("program under mocks: the older homelab (manifest/examples/older-homelab.nix)", function () {
  this.timeout(90_000);

  it("creates containers without vmId; the id Proxmox assigns (the mock's stand-in) reaches the first contact and the stack output", async () => {
    const run = await runNixmoxProgram(path.join(__dirname, "..", "manifest", "examples", "older-homelab.nix"));
    const components = run.resources.filter((resource) => resource.type === "nixmox:index:NixosService").map((resource) => resource.name).sort();
    assert.deepEqual(components, ["authentik", "caddy", "dns", "media", "monitoring", "postgresql", "vaultwarden"]);
    const container = resourceNamed(run, "media-container");
    assert.ok(!("vmId" in container.inputs));
    const assigned = (run.outputs.services as Record<string, { vmid: number }>).media.vmid;
    assert.ok(Number.isInteger(assigned) && assigned >= 100, String(assigned));
    assert.equal((resourceNamed(run, "media-ssh").plainInputs.firstContact as { vmid: number }).vmid, assigned);
    assert.equal(resourceNamed(run, "media-guard").inputs.vmid, null);
    // The database no built-in app uses is still delivered to both hosts.
    assert.ok(resourceNamed(run, "secret-media-jellyfin_db_password"));
  });
});

describe("program under mocks: edits", function () {
  this.timeout(90_000);

  const rebuildCommands = (run: RecordedRun) =>
    Object.fromEntries(run.resources.filter((resource) => resource.name.endsWith("-rebuild")).map((resource) => [resource.name, String(resource.inputs.command)]));

  it("runs every activation with rollback, and without it when the manifest sets enable_rollback = false", async () => {
    const data = await exampleManifestData();
    const edited = writeManifest({ ...data, enable_rollback: false });
    try {
      const [before, after] = [rebuildCommands(await runNixmoxProgram()), rebuildCommands(await runNixmoxProgram(edited.path))];
      assert.ok(Object.values(before).every((command) => command.includes(" --rollback 1 ")), Object.values(before)[0]);
      assert.ok(Object.values(after).every((command) => command.includes(" --rollback 0 ")), Object.values(after)[0]);
    } finally {
      edited.remove();
    }
  });

  it("checks each host for the firewall's kernel modules before its switch, and not when the Proxmox firewall filters", async () => {
    const data = await exampleManifestData();
    const edited = writeManifest({ ...data, network: { ...(data.network as Record<string, unknown>), firewall: "proxmox" } });
    try {
      const [before, after] = [rebuildCommands(await runNixmoxProgram()), rebuildCommands(await runNixmoxProgram(edited.path))];
      assert.ok(Object.values(before).every((command) => command.includes(" --kernel-modules nf_tables,nft_ct,nf_conntrack ")), Object.values(before)[0]);
      assert.ok(Object.values(after).every((command) => command.includes(" --kernel-modules '' ")), Object.values(after)[0]);
    } finally {
      edited.remove();
    }
  });

  it("creates the manifest's outposts after authentik is healthy and pushes each outpost's token to the authentik host on stdin", async () => {
    const data = await exampleManifestData();
    const network = data.network as Record<string, unknown>;
    const edited = writeManifest({ ...data, network: { ...network, outposts: { ldap: {}, radius: { client_networks: ["192.168.99.0/24"] } } } });
    try {
      const run = await runNixmoxProgram(edited.path);
      const byUrn = new Map(run.resources.map((resource) => [resource.urn, resource.name]));
      const radius = resourceNamed(run, "sso-authentik-radius");
      assert.equal(radius.type, "pulumi-nodejs:dynamic/nixmox:AuthentikOutpost");
      assert.deepEqual(
        [radius.inputs.type, radius.inputs.slug, radius.inputs.clientNetworks, radius.inputs.url],
        ["radius", "authentik-radius", ["192.168.99.0/24"], "http://192.168.99.12:9000"],
      );
      assert.deepEqual(radius.secretPaths, ["sharedSecret", "token", "tunnel"]);
      assert.deepEqual(resourceNamed(run, "sso-authentik-ldap").inputs.baseDn, "dc=nixmox,dc=lan");
      assert.ok(radius.dependsOn.map((urn) => byUrn.get(urn)).includes("authentik-health"));
      const push = resourceNamed(run, "sso-authentik-radius-token");
      assert.equal(push.type, "pulumi-nodejs:dynamic/nixmox:RemoteCommand");
      assert.equal(
        push.inputs.command,
        "set -eu && umask 077 && mkdir -p /var/lib/nixmox/outposts && chmod 0700 /var/lib/nixmox/outposts && " +
          "cat > /var/lib/nixmox/outposts/radius-token.tmp && mv -f /var/lib/nixmox/outposts/radius-token.tmp /var/lib/nixmox/outposts/radius-token && " +
          "systemctl restart authentik-radius.service",
      );
      assert.ok(push.secretPaths.includes("stdin"), push.secretPaths.join(","));
      assert.equal((push.plainInputs.connection as { host: string }).host, "192.168.99.12");
    } finally {
      edited.remove();
    }
  });

  it("changes the rebuild command of exactly the hosts whose rendered directory changed when one route's domain changes", async () => {
    const data = await exampleManifestData();
    const services = data.services as Record<string, { interface: { proxy: { domain: string } } }>;
    services.homepage.interface.proxy.domain = "start.nixmox.lan";
    const edited = writeManifest(data);
    try {
      const [before, after] = [await runNixmoxProgram(), await runNixmoxProgram(edited.path)];
      const [old, now] = [rebuildCommands(before), rebuildCommands(after)];
      const changed = Object.keys(old).filter((name) => old[name] !== now[name]).sort();
      // The proxy serves the route, the DNS host holds its record, and homepage receives its route's URL.
      assert.deepEqual(changed, ["caddy-rebuild", "dns-rebuild", "homepage-rebuild"]);
      const hashes = async (file?: string) => {
        const plan = await loadPlan(file);
        return Object.fromEntries(renderAll(plan, fileSources(plan.manifestDir)).map((host) => [host.service, host.contentHash]));
      };
      const [oldHashes, newHashes] = [await hashes(), await hashes(edited.path)];
      assert.deepEqual(changed, Object.keys(oldHashes).filter((name) => oldHashes[name] !== newHashes[name]).map((name) => `${name}-rebuild`));
      assert.ok(now["caddy-rebuild"].includes(`--config-hash ${newHashes.caddy} `));
      const containers = (run: RecordedRun) => run.resources.filter((resource) => resource.type.endsWith("ContainerLegacy")).map((resource) => JSON.stringify(resource.inputs));
      assert.deepEqual(containers(after), containers(before));
    } finally {
      edited.remove();
    }
  });

  describe("resource options", () => {
    const secretOutputs = new Map<string, string[]>();
    const timeoutSeconds = new Map<string, unknown>();
    before(async () => {
      const { config, secretKeys } = offlineStackConfig(defaultManifestPath);
      const program = require("../index") as () => Promise<unknown>;
      await recordProgram(async () => {
        pulumi.runtime.registerStackTransformation((args) => {
          const opts = args.opts as pulumi.CustomResourceOptions;
          secretOutputs.set(args.name, [...(opts.additionalSecretOutputs ?? [])]);
          timeoutSeconds.set(args.name, (args.props as { timeoutSeconds?: unknown }).timeoutSeconds);
          return undefined;
        });
        return program();
      }, { config, secretKeys });
    });

    it("bounds every config and secrets push with an overall deadline (security review M4)", () => {
      const pushes = [...timeoutSeconds.keys()].filter((name) => /-(config|secrets)$/.test(name)).sort();
      assert.equal(pushes.length, 12);
      for (const name of pushes) assert.equal(timeoutSeconds.get(name), 600, name);
    });

    it("keeps the rebuild's stdout and stderr (the activation result and log) as secret outputs (security review L3)", () => {
    const rebuilds = [...secretOutputs.keys()].filter((name) => name.endsWith("-rebuild")).sort();
    assert.equal(rebuilds.length, 7);
    for (const name of rebuilds) assert.deepEqual(secretOutputs.get(name)?.sort(), ["stderr", "stdout"], name);
    });
  });

  it("drops the creation-only guard for a service listed in nixmox:allowReplace", async () => {
    const run = await runNixmoxProgram(undefined, { "nixmox:allowReplace": '["caddy"]' });
    assert.deepEqual(resourceNamed(run, "caddy-container").ignoreChanges, []);
    assert.deepEqual(resourceNamed(run, "dns-container").ignoreChanges, [...creationOnlyFields]);
  });

  it("fails before registering any resource when a required, non-generatable secret is missing", async () => {
    const data = await exampleManifestData();
    const services = data.services as Record<string, Record<string, unknown>>;
    services.homepage.secrets = { api_key: { description: "homepage widget API key" } };
    const manifest = writeManifest(data);
    const registered: string[] = [];
    try {
      const { config, secretKeys } = offlineStackConfig(manifest.path);
      const program = require("../index") as () => Promise<unknown>;
      await assert.rejects(recordProgram(program, { config, secretKeys, onRegister: (name) => registered.push(name) }), {
        name: "SecretsMissingError",
        message: [
          "secrets: 1 required secret is not usable; nothing was changed:",
          `  service "homepage": secret "api_key" is missing and not generatable: pulumi config set --secret --path 'nixmox:secrets.homepage.api_key' < FILE`,
        ].join("\n"),
      });
      assert.deepEqual(registered, ["nixmox-offline"], "only the stack itself");
    } finally {
      manifest.remove();
    }
  });

  it("fails naming every missing or bad stack config key", async () => {
    await assert.rejects(runNixmoxProgram(undefined, { "nixmox:proxmoxNode": "", "nixmox:bridge": "vmbr 0" }), {
      name: "ManifestError",
      message: [
        "stack config: 2 problems",
        "  - nixmox:proxmoxNode: is not set; run `pulumi config set nixmox:proxmoxNode <node>` (the Proxmox node of services without `node`)",
        '  - nixmox:bridge: must be a Proxmox bridge name ([A-Za-z0-9._-]), got "vmbr 0"',
      ].join("\n"),
    });
  });
});
