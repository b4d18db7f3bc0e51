/**
 * Manifests for tests: the original NixMox layout (12 services on 192.168.99.0/24, after
 * https://github.com/devnullvoid/nixmox/blob/main/nixos/service-manifest.nix), plus helpers to clone, shuffle
 * key order and run validate + plan without touching the file system.
 */
import assert from "node:assert/strict";
import { ManifestError, formatProblem, planManifest, validateManifest, type ManifestInput, type Plan } from "../../manifest";

/** A manifest as plain, freely mutable data (what the loader hands to `validateManifest`). */
export type RawManifest = Record<string, any>;

/** The directory pure tests pretend the manifest lives in (never read: pure tests do not touch files). */
export const testManifestDir = "/srv/nixmox";

export const seedAdminKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC10ZXN0LWtleS1mb3ItdGhlLXNlZWQtbGF5b3V0 admin@nixmox";

const ip = (host: number) => `192.168.99.${host}`;
const health = (units: string) => ({ startup: `systemctl is-active --quiet ${units}`, liveness: `systemctl is-active --quiet ${units}`, interval: 30, timeout: 60, retries: 3 });

/**
 * The seed layout: core dns/postgresql/caddy/authentik; services vaultwarden, guacamole, nextcloud, media (named
 * routes jellyfin + jellyseerr behind forward auth), monitoring (named routes grafana + prometheus), homeassistant,
 * openbao, and mail (disabled). Apps are `custom` with `nixos_modules` here (built-in kinds by name are tested on
 * manifest/examples/seed-homelab.nix).
 */
export function seedManifest(): RawManifest {
  const manifest = {
    network: {
      domain: "nixmox.lan",
      dns_server: ip(13),
      gateway: ip(1),
      network_cidr: "192.168.99.0/24",
      vlan_tag: 99,
      ssh_keys: { root: [seedAdminKey] },
    },
    core_services: {
      dns: {
        enable: true,
        ip: ip(13),
        hostname: "dns.nixmox.lan",
        vmid: 904,
        resources: { cores: 2, memory: 2048, disk_gb: 16 },
        ports: [53],
        interface: { health: health("unbound") },
      },
      postgresql: {
        ip: ip(11),
        hostname: "postgresql.nixmox.lan",
        vmid: 902,
        version: "1.0",
        resources: { cores: 4, memory: 4096, disk_gb: 64 },
        ports: [5432],
        interface: { health: health("postgresql") },
      },
      caddy: {
        ip: ip(10),
        hostname: "caddy.nixmox.lan",
        vmid: 901,
        ports: [80, 443],
        interface: { health: health("caddy") },
      },
      authentik: {
        ip: ip(12),
        hostname: "authentik.nixmox.lan",
        vmid: 903,
        resources: { cores: 2, memory: 2048, disk_gb: 16 },
        ports: [9000, 9443],
        interface: {
          db: { host: ip(11), name: "authentik", owner: "authentik", port: 5432 },
          proxy: { domain: "auth.nixmox.lan", path: "/", upstream: `${ip(12)}:9000` },
          health: health("authentik"),
        },
      },
    },
    services: {
      vaultwarden: {
        ip: ip(14),
        hostname: "vaultwarden.nixmox.lan",
        vmid: 905,
        depends_on: ["postgresql", "caddy", "authentik"],
        ports: [8080],
        interface: {
          db: { host: ip(11), name: "vaultwarden", owner: "vaultwarden" },
          auth: { type: "oidc", provider: "authentik", oidc: { redirect_uris: ["https://vault.nixmox.lan/identity/connect/oidc-signin"] } },
          proxy: { domain: "vault.nixmox.lan", path: "/", upstream: `${ip(14)}:8080` },
        },
      },
      guacamole: {
        ip: ip(16),
        hostname: "guacamole.nixmox.lan",
        vmid: 907,
        depends_on: ["postgresql", "caddy", "authentik"],
        ports: [8280, 4822],
        interface: {
          db: { host: "postgresql", name: "guacamole" },
          auth: { type: "oidc", provider: "authentik", oidc: { client_id: "guacamole-oidc", client_type: "public" } },
          proxy: { domain: "guac.nixmox.lan", path: "/guacamole", upstream: `${ip(16)}:8280` },
        },
      },
      nextcloud: {
        kind: "custom",
        ip: ip(15),
        hostname: "nextcloud.nixmox.lan",
        vmid: 906,
        resources: { cores: 4, memory: 4096, disk_gb: 32 },
        depends_on: ["postgresql", "caddy", "authentik"],
        nixos_modules: ["modules/nextcloud.nix"],
        interface: {
          db: { host: "postgresql.nixmox.lan" },
          auth: { type: "oidc", oidc: { redirect_uris: ["https://cloud.nixmox.lan/apps/user_oidc/code"], scopes: ["email", "profile", "nextcloud", "openid"] } },
          proxy: { domain: "cloud.nixmox.lan", upstream: `${ip(15)}:80` },
          health: { startup: "systemctl is-active --quiet phpfpm-nextcloud", liveness: "curl -f -s http://localhost:80/status.php" },
        },
      },
      media: {
        kind: "custom",
        ip: ip(17),
        hostname: "media.nixmox.lan",
        vmid: 908,
        resources: { cores: 2, memory: 2048, disk_gb: 32 },
        depends_on: ["caddy"],
        nixos_modules: ["modules/media.nix"],
        ports: [8096, 5055],
        interface: {
          proxy: {
            jellyfin: { domain: "jellyfin.nixmox.lan", upstream: `${ip(17)}:8096`, authz: true },
            jellyseerr: { domain: "requests.nixmox.lan", upstream: `${ip(17)}:5055`, authz: true },
          },
          health: { checks: [{ type: "systemd", unit: "jellyfin.service" }, { type: "tcp", port: 5055 }] },
        },
      },
      monitoring: {
        kind: "custom",
        ip: ip(18),
        hostname: "monitoring.nixmox.lan",
        vmid: 909,
        depends_on: ["caddy", "authentik"],
        nixos_modules: ["modules/monitoring.nix"],
        ports: [3000, 9090],
        interface: {
          auth: { type: "oidc", provider: "authentik", oidc: { client_id: "monitoring-oidc", redirect_uris: ["https://grafana.nixmox.lan/login/generic_oauth"] } },
          proxy: {
            grafana: { domain: "grafana.nixmox.lan", upstream: `${ip(18)}:3000` },
            prometheus: { domain: "prometheus.nixmox.lan", upstream: `${ip(18)}:9090`, auth: "forward_auth" },
          },
          health: health("prometheus"),
        },
      },
      homeassistant: {
        ip: ip(21),
        hostname: "homeassistant",
        vmid: 912,
        depends_on: ["caddy"],
        nixos_modules: ["./modules/homeassistant.nix"],
        ports: [8123],
        interface: {
          // ACME needs a name in the public DNS (manifest/rules.ts acmeNameIsPublic).
          proxy: { domain: "ha.nixmox.net", upstream: `${ip(21)}:8123`, tls: "acme", extra_config: "header { -Server }" },
          health: { checks: [{ type: "http", url: `http://${ip(21)}:8123/`, expect_status: 200, from: "host" }], start_period: 60 },
        },
      },
      openbao: {
        kind: "custom",
        ip: ip(20),
        hostname: "openbao.nixmox.lan",
        vmid: 911,
        depends_on: ["caddy", "authentik"],
        nixos_modules: ["modules/openbao.nix"],
        ports: [8200],
        secrets: { unseal_key: { restart_units: ["openbao.service"], description: "OpenBao unseal key" } },
        interface: {
          proxy: { domain: "bao.nixmox.lan", upstream: `${ip(20)}:8200`, auth: false },
        },
      },
      mail: {
        kind: "custom",
        enable: false,
        ip: ip(19),
        hostname: "mail.nixmox.lan",
        vmid: 910,
        depends_on: ["postgresql", "caddy", "authentik"],
        nixos_modules: ["modules/mail.nix"],
        ports: [25, 587, 465, 993],
        interface: {
          auth: { type: "oidc", provider: "authentik", oidc: { redirect_uris: ["https://mail.nixmox.lan/index.php/login/oauth"] } },
          proxy: { domain: "mail.nixmox.lan", upstream: `${ip(19)}:8080` },
        },
      },
    },
  } satisfies ManifestInput;
  return manifest;
}

/** The NixOS module files the seed layout's custom services import (for loader tests that write it to disk). */
export const seedModuleFiles = ["modules/homeassistant.nix", "modules/mail.nix", "modules/media.nix", "modules/monitoring.nix", "modules/nextcloud.nix", "modules/openbao.nix"];

/**
 * A homelab as a newcomer writes one (shared/reviews/newcomer-2.md): dns, caddy, postgresql and authentik under
 * home.arpa on 10.42.0.0/24, and mealie, a custom app with a module of its own (`modules/mealie.nix`, which imports
 * `./mealie-tuning.nix`: `customAppModules`), a database, an OIDC client and an http health check.
 */
export function customAppHomelab(): RawManifest {
  return {
    network: { domain: "home.arpa", dns_server: "10.42.0.2", gateway: "10.42.0.1", network_cidr: "10.42.0.0/24", ssh_keys: { root: [seedAdminKey] } },
    core_services: {
      dns: { ip: "10.42.0.2", vmid: 200 },
      caddy: { ip: "10.42.0.3", vmid: 201 },
      postgresql: { ip: "10.42.0.4", vmid: 202 },
      authentik: { ip: "10.42.0.5", vmid: 203, interface: { db: { host: "postgresql" }, proxy: { domain: "sso.home.arpa", upstream: "10.42.0.5:9000" } } },
    },
    services: {
      mealie: {
        kind: "custom",
        ip: "10.42.0.20",
        vmid: 220,
        nixos_modules: ["modules/mealie.nix"],
        interface: {
          proxy: { domain: "recipes.home.arpa", upstream: "10.42.0.20:9925" },
          db: { host: "postgresql" },
          auth: { type: "oidc", oidc: { redirect_uris: ["https://recipes.home.arpa/login"] } },
          health: { checks: [{ type: "http", url: "http://10.42.0.20:9925/api/app/about" }] },
        },
      },
    },
  };
}

/** The module files of `customAppHomelab`, by path relative to the manifest. */
export function customAppModules(): Record<string, string> {
  return {
    "modules/mealie.nix": [
      "{ config, lib, pkgs, ... }:",
      "let cfg = config.nixmox.custom; in {",
      "  imports = [ ./mealie-tuning.nix ];",
      "  services.mealie = {",
      "    enable = true;",
      "    listenAddress = cfg.listen.address;",
      "    port = cfg.listen.port;",
      "  };",
      "}",
      "",
    ].join("\n"),
    "modules/mealie-tuning.nix": '{ ... }: { systemd.services.mealie.serviceConfig.MemoryMax = "1G"; }\n',
  };
}

/**
 * A small valid manifest for single-rule tests: caddy, postgresql, authentik and one app with a route, a
 * database and OIDC, on 10.9.0.0/24 (data only: nothing connects to it).
 */
export function smallManifest(): RawManifest {
  return {
    network: { domain: "lab.test", dns_server: "10.9.0.1", gateway: "10.9.0.1", network_cidr: "10.9.0.0/24" },
    core_services: {
      caddy: { ip: "10.9.0.10", vmid: 110, ports: [80, 443] },
      postgresql: { ip: "10.9.0.11", vmid: 111, ports: [5432] },
      authentik: { ip: "10.9.0.12", vmid: 112, interface: { db: { host: "postgresql" } } },
    },
    services: {
      app: {
        kind: "vaultwarden",
        ip: "10.9.0.20",
        vmid: 120,
        depends_on: ["caddy"],
        interface: {
          proxy: { domain: "web.lab.test", upstream: "10.9.0.20:8080" },
          auth: { type: "oidc" },
          db: { host: "postgresql" },
        },
      },
    },
  };
}

export function deepClone<T>(value: T): T {
  return structuredClone(value);
}

/** A small seeded PRNG (mulberry32), so shuffles are random but reproducible from the seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A deep copy with the keys of every object in a seeded random order. Arrays keep their order: list order is
 * meaningful in a manifest (it numbers `depends_on[1]` in messages), attribute-set order never is.
 */
export function shuffleKeys<T>(value: T, seed: number): T {
  const random = seededRandom(seed);
  const shuffle = (item: unknown): unknown => {
    if (Array.isArray(item)) return item.map(shuffle);
    if (item && typeof item === "object") {
      const keys = Object.keys(item);
      for (let index = keys.length - 1; index > 0; index -= 1) {
        const other = Math.floor(random() * (index + 1));
        [keys[index], keys[other]] = [keys[other], keys[index]];
      }
      return Object.fromEntries(keys.map((key) => [key, shuffle((item as Record<string, unknown>)[key])]));
    }
    return item;
  };
  return shuffle(value) as T;
}

/** Validates and plans raw manifest data, the way the loader does after parsing (without the module-file check). */
export function planOf(raw: unknown, source = "test-manifest"): Plan {
  return planManifest(validateManifest(raw, source), { manifestDir: testManifestDir });
}

/** The `ManifestError` that validating `raw` throws (fails the test when it does not throw one). */
export function manifestErrorOf(raw: unknown, source = "test-manifest"): ManifestError {
  try {
    validateManifest(raw, source);
  } catch (error) {
    if (error instanceof ManifestError) return error;
    throw error;
  }
  assert.fail("expected validateManifest to throw a ManifestError, but the manifest was accepted");
}

/** The formatted problem lines of validating `raw`, in reporting order. */
export function problemsOf(raw: unknown): string[] {
  return manifestErrorOf(raw).problems.map(formatProblem);
}

/** The example homelab has no builder: `validate` warns about the hosts too small to evaluate NixOS (issue 18). */
/**
 * The plan's warnings without the build placement's memory warning (manifest/build-plan.ts): a homelab without a
 * builder service builds on its hosts, and small ones are named there; tests of other rules leave it out.
 */
export function withoutBuildWarning(warnings: string[]): string[] {
  return warnings.filter((warning) => !warning.startsWith("builds on the host itself with less memory than a NixOS evaluation needs"));
}

export const exampleBuildWarning =
  "  warning: builds on the host itself with less memory than a NixOS evaluation needs (2048 MiB of memory + swap; nixpkgs#85148, nix#2664): " +
  "caddy (1024 MiB + 512 MiB swap), dns (512 MiB + 512 MiB swap), guacamole (1024 MiB + 512 MiB swap), homepage (1024 MiB + 512 MiB swap), " +
  'vaultwarden (1024 MiB + 512 MiB swap); add a service of kind builder, set build.on = "controller", or give them more memory\n';

/** What `smallManifest()` warns about its hosts, which build themselves (issue 18). */
export const smallManifestBuildWarning =
  'builds on the host itself with less memory than a NixOS evaluation needs (2048 MiB of memory + swap; nixpkgs#85148, nix#2664): app (1024 MiB + 512 MiB swap), authentik (1024 MiB + 512 MiB swap), caddy (1024 MiB + 512 MiB swap), postgresql (1024 MiB + 512 MiB swap); add a service of kind builder, set build.on = "controller", or give them more memory';
