// Content of the rendered hosts: the proxy, DNS and PostgreSQL hosts get exactly the manifest's routes,
// records and databases; secrets appear only as paths. The Caddyfile and pg_hba are produced by evaluating
// the shipped Nix helpers with the real nix-instantiate on the rendered host.json. Nothing is mocked.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Plan } from "../manifest/plan-types";
import { fileSources, planHostData, renderFlakeLock, renderHost, resolveNixpkgsPin, type HostData, type RenderedHost, type RenderSources } from "../render";
import { exampleManifestData, nixEval, planFromData, renderData, shippedNix } from "./golden/render-fixtures";

function hostData(hosts: RenderedHost[], name: string): HostData {
  return JSON.parse(hosts.find((host) => host.service === name)!.files["host.json"]) as HostData;
}

function caddyfileOf(data: HostData): string {
  return nixEval(`(import ${shippedNix("lib/caddy.nix")}).caddyfile (builtins.fromJSON ${JSON.stringify(JSON.stringify(data.caddy!.routes))})`) as string;
}

/** Site blocks of a Caddyfile, by address. */
function siteBlocks(caddyfile: string): Record<string, string> {
  // Site blocks end with "}\n" and are joined by one blank line.
  return Object.fromEntries(caddyfile.split(/\n\n/).map((block) => (block.endsWith("\n") ? block : `${block}\n`)).map((block) => [block.split(" {")[0], block]));
}

describe("render: host content", function () {
  this.timeout(60_000);
  let data: Record<string, any>;
  let plan: Plan;
  let hosts: RenderedHost[];

  before(async () => {
    data = await exampleManifestData();
    data.services.vaultwarden.interface.proxy = {
      web: { domain: "vault.nixmox.lan", upstream: "192.168.99.14:8080" },
      admin: { domain: "vault.nixmox.lan", path: "/admin", upstream: "192.168.99.14:8080", authz: true, auth: "forward_auth", extra_config: "header X-Robots-Tag noindex" },
    };
    plan = planFromData(data);
    hosts = renderData(data);
  });

  it("caddy gets a site for every route domain and forward auth for exactly the forward-auth routes", () => {
    const sites = siteBlocks(caddyfileOf(hostData(hosts, "caddy")));
    assert.deepEqual(Object.keys(sites).sort(), [...new Set(plan.routes.map((route) => route.domain))].sort());
    const protectedRoutes = plan.routes.filter((route) => route.auth === "forward_auth").map((route) => `${route.domain}${route.path}`).sort();
    assert.deepEqual(protectedRoutes, ["home.nixmox.lan/", "vault.nixmox.lan/admin"]);
    const withForwardAuth = Object.keys(sites).filter((domain) => sites[domain].includes("forward_auth ")).sort();
    assert.deepEqual(withForwardAuth, ["home.nixmox.lan", "vault.nixmox.lan"]);
    assert.equal(
      sites["vault.nixmox.lan"],
      [
        "vault.nixmox.lan {",
        "\ttls internal",
        "\t@nixmox_outpost path /outpost.goauthentik.io/*",
        "\thandle @nixmox_outpost {",
        "\t\treverse_proxy 192.168.99.12:9000",
        "\t}",
        "\t@nixmox_vaultwarden_admin path /admin /admin/*",
        "\thandle @nixmox_vaultwarden_admin {",
        "\t\tforward_auth 192.168.99.12:9000 {",
        "\t\t\turi /outpost.goauthentik.io/auth/caddy",
        "\t\t\tcopy_headers X-Authentik-Username X-Authentik-Groups X-Authentik-Entitlements X-Authentik-Email X-Authentik-Name X-Authentik-Uid X-Authentik-Jwt X-Authentik-Meta-Jwks X-Authentik-Meta-Outpost X-Authentik-Meta-Provider X-Authentik-Meta-App X-Authentik-Meta-Version",
        "\t\t}",
        "\t\theader X-Robots-Tag noindex",
        "\t\treverse_proxy 192.168.99.14:8080",
        "\t}",
        "\thandle {",
        "\t\treverse_proxy 192.168.99.14:8080",
        "\t}",
        "}",
        "",
      ].join("\n"),
    );
    assert.doesNotMatch(sites["guac.nixmox.lan"], /forward_auth|outpost/);
  });

  it("dns answers every host name with its IP and every route domain with the proxy's IP", () => {
    const dns = hostData(hosts, "dns").dns!;
    const expected = [
      ...plan.services.map((service) => ({ name: service.fqdn, type: "A", value: service.ip, source: "host" })),
      ...[...new Set(plan.routes.map((route) => route.domain))].filter((domain) => !plan.services.some((s) => s.fqdn === domain))
        .map((domain) => ({ name: domain, type: "A", value: "192.168.99.10", source: "route" })),
    ].sort((a, b) => (a.name < b.name ? -1 : 1));
    assert.deepEqual(dns.records, expected);
    assert.deepEqual(dns.forwarders, ["192.168.99.1"]);
    assert.deepEqual(dns.allowedNetworks, ["192.168.99.0/24"]);
    const localData = nixEval(`(import ${shippedNix("lib/dns.nix")}).localData (builtins.fromJSON ${JSON.stringify(JSON.stringify(dns.records))})`) as string[];
    assert.ok(localData.includes('"vault.nixmox.lan. IN A 192.168.99.10"'));
    assert.ok(localData.includes('"vaultwarden.nixmox.lan. IN A 192.168.99.14"'));
    assert.equal(localData.length, expected.length);
  });

  it("postgresql gets every database request and exactly one pg_hba line per owner, from its service's IP", () => {
    const pg = hostData(hosts, "postgresql").postgresql!;
    assert.deepEqual(pg, {
      port: 5432,
      // The example's PostgreSQL host has no route, so it runs no pgAdmin and gives it no role.
      admin: null,
      databases: [
        { service: "authentik", name: "authentik", owner: "authentik", clientIp: "192.168.99.12", credential: "authentik-db_password", passwordFile: "/var/lib/nixmox/secrets/authentik/db_password" },
        { service: "guacamole", name: "guacamole", owner: "guacamole", clientIp: "192.168.99.15", credential: "guacamole-db_password", passwordFile: "/var/lib/nixmox/secrets/guacamole/db_password" },
        { service: "vaultwarden", name: "vaultwarden", owner: "vaultwarden", clientIp: "192.168.99.14", credential: "vaultwarden-db_password", passwordFile: "/var/lib/nixmox/secrets/vaultwarden/db_password" },
      ],
    });
    const hba = nixEval(`(import ${shippedNix("lib/postgresql.nix")}).hba (builtins.fromJSON ${JSON.stringify(JSON.stringify(pg.databases))})`);
    assert.equal(
      hba,
      "local all postgres peer\n" +
        'host "authentik" "authentik" 192.168.99.12/32 scram-sha-256\n' +
        'host "guacamole" "guacamole" 192.168.99.15/32 scram-sha-256\n' +
        'host "vaultwarden" "vaultwarden" 192.168.99.14/32 scram-sha-256\n',
    );
  });

  it("an app gets its own database, OIDC client and listen address, and no other host's data", () => {
    const vw = hostData(hosts, "vaultwarden");
    assert.deepEqual(Object.keys(vw).sort(), ["host", "schemaVersion", "secrets", "vaultwarden"]);
    assert.deepEqual(vw.vaultwarden!.listen, { address: "192.168.99.14", port: 8080 });
    assert.equal(vw.vaultwarden!.publicUrl, "https://vault.nixmox.lan");
    assert.deepEqual(vw.vaultwarden!.database, { host: "192.168.99.11", port: 5432, name: "vaultwarden", owner: "vaultwarden", passwordFile: "/var/lib/nixmox/secrets/vaultwarden/db_password", additional: [] });
    assert.equal(vw.vaultwarden!.oidc!.issuer, "https://auth.nixmox.lan/application/o/vaultwarden/");
    assert.equal(vw.vaultwarden!.oidc!.clientSecretFile, "/var/lib/nixmox/secrets/vaultwarden/oidc_client_secret");
    const guac = hostData(hosts, "guacamole").guacamole!;
    assert.deepEqual(guac.listen, { address: "192.168.99.15", port: 8280 });
    assert.deepEqual(guac.oidc!.redirectUris, ["https://guac.nixmox.lan/guacamole/"]);
    // A custom app gets the same slice under `custom`: its route (for its public URL), no database or OIDC client.
    const home = hostData(hosts, "homepage");
    assert.deepEqual(Object.keys(home).sort(), ["custom", "host", "schemaVersion", "secrets"]);
    assert.deepEqual(home.custom!.routes, { default: { domain: "home.nixmox.lan", path: "/", url: "https://home.nixmox.lan", upstreamPort: 8082, auth: "forward_auth" } });
    assert.deepEqual([home.custom!.database, home.custom!.oidc, home.custom!.listen], [null, null, { address: "192.168.99.16", port: 8082 }]);
  });

  it("secrets appear only as paths under the secrets directory, never as values", () => {
    for (const host of hosts) {
      const parsed = JSON.parse(host.files["host.json"]) as HostData;
      for (const [name, file] of Object.entries(parsed.secrets)) assert.match(file, /^\/var\/lib\/nixmox\/secrets\/[a-z0-9-]+\/[a-z0-9_.-]+$/, `${host.service}: ${name}`);
      assert.doesNotMatch(host.files["host.json"], /"(password|secret|token|clientSecret)"\s*:/i, host.service);
    }
  });

  it("renders flake.lock for a pin without branch or lastModified as a pin to the commit itself", () => {
    const pin = resolveNixpkgsPin({ rev: "1267bb4920d0fc06ea916734c11b0bf004bbe17e", narHash: "sha256-7DaQVv4R97cii/Qdfy4tmDZMB2xxtyIvNGSwXBBhSmo=" });
    assert.equal(
      renderFlakeLock(pin),
      JSON.stringify({
        nodes: {
          nixpkgs: {
            locked: { narHash: "sha256-7DaQVv4R97cii/Qdfy4tmDZMB2xxtyIvNGSwXBBhSmo=", owner: "NixOS", repo: "nixpkgs", rev: "1267bb4920d0fc06ea916734c11b0bf004bbe17e", type: "github" },
            original: { owner: "NixOS", repo: "nixpkgs", rev: "1267bb4920d0fc06ea916734c11b0bf004bbe17e", type: "github" },
          },
          root: { inputs: { nixpkgs: "nixpkgs" } },
        },
        root: "root",
        version: 7,
      }, null, 2) + "\n",
    );
  });

  it("fails with every unknown or bad field of the nixpkgs pin override", () => {
    assert.throws(() => resolveNixpkgsPin({ rev: "1267bb4920d0fc06ea916734c11b0bf004bbe17e", narHash: "sha256-7DaQVv4R97cii/Qdfy4tmDZMB2xxtyIvNGSwXBBhSmo=", ref: "nixos 25.11", lastModified: -1, branch: "x" }), {
      message:
        "stack config: 3 problems\n" +
        "  - nixpkgs pin: branch is not a known field; use rev, narHash, ref or lastModified\n" +
        '  - nixpkgs pin: ref must be a branch name such as "nixos-25.11", got "nixos 25.11"\n' +
        "  - nixpkgs pin: lastModified must be the commit's Unix time in seconds, got -1",
    });
  });

  it("fails naming the service when asked to render a disabled or unknown service", () => {
    const disabled = structuredClone(data);
    disabled.services.guacamole.enable = false;
    const disabledPlan = planFromData(disabled);
    assert.throws(() => planHostData(disabledPlan, "guacamole"), {
      message: 'render: 1 problem\n  - service "guacamole": is not an enabled service of the manifest (it is disabled: set enable = true to render it); enabled services: authentik, caddy, dns, homepage, postgresql, vaultwarden',
    });
  });

  it("fails naming the service and field when a custom module path leaves the manifest's directory or cannot be read", () => {
    const sources: RenderSources = {
      shipped: () => "{ }\n",
      manifest: (relative) => {
        throw Object.assign(new Error(`ENOENT: ${relative}`), { code: "ENOENT" });
      },
    };
    const escaping: Plan = { ...plan, services: plan.services.map((s) => (s.name === "homepage" ? { ...s, nixosModules: ["modules/../../etc/x.nix"] } : s)) };
    assert.throws(() => renderHost(escaping, "homepage", sources), {
      message: 'render: 1 problem\n  - service "homepage": nixos_modules[0] must be a relative path to a .nix file inside the manifest\'s directory, got "modules/../../etc/x.nix"',
    });
    assert.throws(() => renderHost(plan, "homepage", sources), {
      message: 'render: 1 problem\n  - service "homepage": nixos_modules[0] cannot read "modules/homepage.nix" (relative to the manifest\'s directory): file not found',
    });
  });

  it("fails naming the service and the path when a module symlink points outside the manifest's directory (security review M8)", () => {
    const root = mkdtempSync(join(tmpdir(), "nixmox-m8-"));
    try {
      const manifestDir = join(root, "homelab");
      mkdirSync(join(manifestDir, "modules"), { recursive: true });
      mkdirSync(join(manifestDir, "shared"));
      writeFileSync(join(root, "id_ed25519"), "PRIVATE KEY MATERIAL canary\n");
      writeFileSync(join(manifestDir, "shared", "homepage.nix"), "{ ... }: { }\n");
      const withModule = (module: string): Plan => ({ ...plan, services: plan.services.map((s) => (s.name === "homepage" ? { ...s, nixosModules: [module] } : s)) });
      const render = (module: string) => renderHost(withModule(module), "homepage", fileSources(manifestDir));

      symlinkSync("../shared/homepage.nix", join(manifestDir, "modules", "inside.nix"));
      assert.equal(render("modules/inside.nix").files["custom/modules/inside.nix"], "{ ... }: { }\n", "a link that stays inside is fine");

      symlinkSync("../../id_ed25519", join(manifestDir, "modules", "homepage.nix"));
      writeFileSync(join(root, "outside.nix"), "{ ... }: { }\n");
      symlinkSync(root, join(manifestDir, "up")); // a directory link
      for (const [module, target] of [["modules/homepage.nix", "id_ed25519"], ["up/outside.nix", "outside.nix"]]) {
        assert.throws(() => render(module), {
          message: `render: 1 problem\n  - service "homepage": nixos_modules[0] cannot read ${JSON.stringify(module)} (relative to the manifest's directory): ` +
            `it resolves to ${realpathSync(root)}/${target}, outside the manifest's directory ${realpathSync(manifestDir)}; a module (or a symlink to it) must stay inside that directory`,
        });
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("fails naming the PostgreSQL service when its clients ask for different ports", () => {
    const mixed: Plan = { ...plan, databases: plan.databases.map((db) => (db.service === "guacamole" ? { ...db, port: 5433 } : db)) };
    assert.throws(() => planHostData(mixed, "postgresql"), {
      message: 'render: 1 problem\n  - service "postgresql": its clients ask for different ports (authentik: 5432, guacamole: 5433, vaultwarden: 5432); one PostgreSQL listens on one port, make interface.db.port agree',
    });
  });
});
