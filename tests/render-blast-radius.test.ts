// Blast radius, measured by content hash: an edit changes exactly the hosts that consume what was edited.
// Real manifest evaluation (nix-instantiate) and the real renderer; nothing is mocked.
import assert from "node:assert/strict";
import type { RenderedHost } from "../render";
import { changedHosts, exampleManifestData, renderData } from "./golden/render-fixtures";

describe("render: blast radius", function () {
  this.timeout(60_000);
  let base: Record<string, any>;
  let baseline: RenderedHost[];

  before(async () => {
    base = await exampleManifestData();
    baseline = renderData(base);
  });

  const edit = (change: (data: Record<string, any>) => void): RenderedHost[] => {
    const data = structuredClone(base);
    change(data);
    return renderData(data);
  };

  it("a container-only edit (cores, memory, swap, disk, vmid, node, tags, onboot, startup health) changes no host", () => {
    const after = edit((data) => {
      const vw = data.services.vaultwarden;
      vw.resources = { cores: 4, memory: 8192, swap: 0, disk_gb: 64 };
      vw.vmid = 1914;
      vw.node = "pve2";
      vw.tags = ["critical"];
      vw.onboot = false;
      vw.interface.health = { checks: [{ type: "tcp", port: 8080 }], start_period: 60 };
      data.core_services.postgresql.resources.memory = 4096;
    });
    assert.deepEqual(changedHosts(baseline, after), []);
  });

  it("changing one app route's domain changes that service, the proxy and the DNS host only", () => {
    const after = edit((data) => {
      data.services.vaultwarden.interface.proxy.domain = "vw.nixmox.lan";
      data.services.vaultwarden.interface.auth.oidc = { redirect_uris: ["https://vw.nixmox.lan/identity/connect/oidc-signin"] };
    });
    assert.deepEqual(changedHosts(baseline, after), ["caddy", "dns", "vaultwarden"]);
  });

  it("changing a forward-auth route's domain touches the proxy, DNS and the app it serves (which receives its route's URL), nothing else", () => {
    const after = edit((data) => {
      data.services.homepage.interface.proxy.domain = "start.nixmox.lan";
    });
    assert.deepEqual(changedHosts(baseline, after), ["caddy", "dns", "homepage"]);
  });

  it("changing the SSO provider's domain also changes every OIDC client, which consumes its issuer URL", () => {
    const after = edit((data) => {
      data.core_services.authentik.interface.proxy.domain = "sso.nixmox.lan";
    });
    assert.deepEqual(changedHosts(baseline, after), ["authentik", "caddy", "dns", "guacamole", "vaultwarden"]);
  });

  it("adding a service with a route and a database adds its host and changes only the proxy, DNS and PostgreSQL", () => {
    const after = edit((data) => {
      data.services.wiki = {
        ip: "192.168.99.17",
        vmid: 917,
        nixos_modules: ["modules/homepage.nix"],
        ports: [3000],
        interface: {
          proxy: { domain: "docs.nixmox.lan", upstream: "192.168.99.17:3000" },
          db: { host: "postgresql" },
        },
      };
    });
    assert.deepEqual(changedHosts(baseline, after), ["caddy", "dns", "postgresql", "wiki"]);
    assert.deepEqual(after.map((host) => host.service), ["authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "vaultwarden", "wiki"]);
  });

  it("disabling a service removes its host and every trace of it from the other hosts", () => {
    const after = edit((data) => {
      data.services.guacamole.enable = false;
    });
    assert.deepEqual(changedHosts(baseline, after), ["caddy", "dns", "guacamole", "postgresql"]);
    assert.equal(after.some((host) => host.service === "guacamole"), false);
    for (const host of after) {
      for (const [file, content] of Object.entries(host.files)) {
        if (file.startsWith("nixos/")) continue;
        assert.doesNotMatch(content, /guac|192\.168\.99\.15/, `${host.service}/${file}`);
      }
    }
  });

  it("changing the nixpkgs pin changes every host's flake.lock and nothing else", () => {
    const pinned = renderData(base, {
      nixpkgs: { rev: "1267bb4920d0fc06ea916734c11b0bf004bbe17e", narHash: "sha256-7DaQVv4R97cii/Qdfy4tmDZMB2xxtyIvNGSwXBBhSmo=", ref: "nixos-25.11", lastModified: 1772047000 },
    });
    assert.deepEqual(changedHosts(baseline, pinned), baseline.map((host) => host.service));
    for (const host of pinned) {
      const before = baseline.find((candidate) => candidate.service === host.service)!;
      const differing = Object.keys(host.files).filter((file) => host.files[file] !== before.files[file]);
      assert.deepEqual(differing, ["flake.lock"], host.service);
    }
  });
});
