/**
 * What each built-in kind runs: its systemd units, the apps it serves with their default listen ports and OIDC
 * callbacks, and the ports it always opens. One table, read by the plan (health checks, firewall ports, default
 * redirect URIs) and by render (listen ports); the NixOS modules under nixos/services/ implement it.
 *
 * A kind may run several apps (monitoring, media): a route named after an app (`interface.proxy.grafana`) is that
 * app's route, and its upstream port is where the app listens.
 */
import type { ServiceKind } from "./plan-types";

export interface KindApp {
  /** Where the app listens when no route named after it gives another port. */
  port: number;
  /** The app's main unit. */
  unit: string;
  /** Path of the app's OIDC callback on its route's origin; `{provider}` is the SSO provider's service name. */
  callback: string;
  /**
   * How users log in to the app itself: "oidc" (it can be an OIDC client), "own" (its own accounts only) or "none"
   * (no login at all: whoever reaches it uses it). A route to an app that cannot do OIDC never inherits the service's
   * `auth: oidc`, and a route to an app without a login gets forward auth by default (resolve.ts routeAuth).
   */
  login: AppLogin;
}

export type AppLogin = "oidc" | "own" | "none";

/**
 * Which databases of a host its built-in apps use (nixos/services/<kind>.nix):
 * - "single": the one database (`interface.db`, else the only `interface.dbs` entry) belongs to the kind's apps;
 * - "by-entry": `interface.dbs.<app>` belongs to the app of that name (the media kind's *arr apps);
 * - "none": no built-in app of the kind uses PostgreSQL;
 * - "modules": a custom service, whose own NixOS modules use whichever they read.
 */
export type DatabaseUse =
  | { by: "single"; apps: string[] }
  | { by: "by-entry"; apps: string[]; /** Apps that also keep their logs in a second database (`<name>-log` by default). */ logDatabase: string[] }
  | { by: "none" }
  | { by: "modules" };

export interface KindSpec {
  /** systemd units that must be active (default health checks) and that a changed secret restarts. */
  units: string[];
  /** Which of the host's databases its built-in apps use. */
  databases: DatabaseUse;
  /** Apps by name; a single-app kind names its app after itself. */
  apps: Record<string, KindApp>;
  /** TCP ports the kind always opens besides its apps' (the proxy's 80/443, DNS, SMTP). */
  tcpPorts: number[];
  /** UDP ports the kind always opens (DNS, HTTP/3). */
  udpPorts: number[];
  /** Health checks of the kind besides its units, run on the host (the plan adds them to every such service). */
  healthCommands?: Array<{ name: string; phase: "startup" | "liveness" | "both"; command: string }>;
}

/** The unit of each Authentik outpost on its authentik host (nixos/services/authentik-outposts.nix). */
export const outpostUnit = (type: "ldap" | "radius") => `authentik-${type}.service`;

/** Where PostgreSQL listens when no client's interface.db.port says otherwise (and the default of that field). */
export const postgresqlDefaultPort = 5432;

const app = (port: number, unit: string, callback: string | null, login: AppLogin = callback === null ? "own" : "oidc"): KindApp => ({
  port,
  unit,
  callback: callback ?? "/",
  login,
});
const none: DatabaseUse = { by: "none" };
const single = (...apps: string[]): DatabaseUse => ({ by: "single", apps });

export const kindSpecs: Record<ServiceKind, KindSpec> = {
  dns: { databases: none, units: ["unbound.service"], apps: {}, tcpPorts: [53], udpPorts: [53] },
  caddy: { databases: none, units: ["caddy.service"], apps: {}, tcpPorts: [80, 443], udpPorts: [443] },
  // The database port comes from its clients' interface.db.port (plan.ts); pgAdmin runs when the host has a route.
  postgresql: { databases: none, units: ["postgresql.service"], apps: { pgadmin: app(5050, "pgadmin.service", "/oauth2/authorize") }, tcpPorts: [], udpPorts: [] },
  authentik: { databases: single("authentik"), units: ["authentik.service", "authentik-worker.service"], apps: { authentik: app(9000, "authentik.service", null) }, tcpPorts: [], udpPorts: [] },
  vaultwarden: { databases: single("vaultwarden"), units: ["vaultwarden.service"], apps: { vaultwarden: app(8222, "vaultwarden.service", "/identity/connect/oidc-signin") }, tcpPorts: [], udpPorts: [] },
  guacamole: { databases: single("guacamole"), units: ["guacamole-server.service", "tomcat.service"], apps: { guacamole: app(8080, "tomcat.service", "/guacamole/") }, tcpPorts: [], udpPorts: [] },
  forgejo: {
    databases: single("forgejo"),
    units: ["forgejo.service"],
    apps: { forgejo: app(3000, "forgejo.service", "/user/oauth2/{provider}/callback") },
    tcpPorts: [],
    udpPorts: [],
    // nixos/lib/forgejo.nix ssoCheckScript: a login reaches the SSO provider (passes until the provider knows the client).
    healthCommands: [{ name: "forgejo:sso-login", phase: "both", command: "/run/current-system/sw/bin/nixmox-forgejo-sso-check" }],
  },
  nextcloud: {
    databases: single("nextcloud"),
    units: ["phpfpm-nextcloud.service", "nginx.service"],
    apps: { nextcloud: app(80, "nginx.service", "/apps/user_oidc/code") },
    tcpPorts: [],
    udpPorts: [],
    // nixos/lib/nextcloud.nix ssoCheckScript: user_oidc has the provider (passes until the provider knows the client).
    healthCommands: [{ name: "nextcloud:sso-login", phase: "both", command: "/run/current-system/sw/bin/nixmox-nextcloud-sso-check" }],
  },
  monitoring: {
    databases: single("grafana"),
    units: ["prometheus.service", "grafana.service", "alertmanager.service", "loki.service", "promtail.service"],
    apps: {
      prometheus: app(9090, "prometheus.service", null, "none"),
      grafana: app(3000, "grafana.service", "/login/generic_oauth"),
      alertmanager: app(9093, "alertmanager.service", null, "none"),
      loki: app(3100, "loki.service", null, "none"),
    },
    tcpPorts: [],
    udpPorts: [],
  },
  media: {
    databases: { by: "by-entry", apps: ["prowlarr", "radarr", "sonarr"], logDatabase: ["prowlarr", "radarr", "sonarr"] },
    units: ["jellyfin.service", "sonarr.service", "radarr.service", "prowlarr.service", "transmission.service"],
    apps: {
      jellyfin: app(8096, "jellyfin.service", "/sso/OID/redirect/{provider}"),
      sonarr: app(8989, "sonarr.service", null),
      radarr: app(7878, "radarr.service", null),
      prowlarr: app(9696, "prowlarr.service", null),
      transmission: app(9091, "transmission.service", null, "none"),
    },
    tcpPorts: [],
    udpPorts: [],
  },
  openbao: {
    databases: none,
    units: ["openbao.service"],
    apps: { openbao: app(8200, "openbao.service", "/ui/vault/auth/oidc/oidc/callback") },
    tcpPorts: [],
    udpPorts: [],
    // nixos/lib/openbao.nix healthScript: serving = unsealed and active (a sealed OpenBao is unhealthy, the message
    // gives the unseal command); the deploy waits only for the new listener, since a restart leaves OpenBao sealed.
    healthCommands: [
      { name: "openbao:listening", phase: "startup", command: "/run/current-system/sw/bin/nixmox-openbao-health listening" },
      { name: "openbao:serving", phase: "liveness", command: "/run/current-system/sw/bin/nixmox-openbao-health serving" },
    ],
  },
  mail: { databases: none, units: ["postfix.service"], apps: {}, tcpPorts: [25, 587], udpPorts: [] },
  pgadmin: { databases: none, units: ["pgadmin.service"], apps: { pgadmin: app(5050, "pgadmin.service", "/oauth2/authorize") }, tcpPorts: [], udpPorts: [] },
  // Builds every other host's system (components/build) and serves nothing: only its Nix daemon must answer. NixOS
  // starts nix-daemon.service on demand (nix-daemon.socket, nixos/modules/services/system/nix-daemon.nix), so the
  // socket is what is always active.
  builder: { databases: none, units: ["nix-daemon.socket"], apps: {}, tcpPorts: [], udpPorts: [] },
  custom: { databases: { by: "modules" }, units: [], apps: {}, tcpPorts: [], udpPorts: [] },
};

/**
 * The app a route serves on a host of `kind`: the app named like the route, else the kind's only app
 * (a single-app kind, or the default route), else null (a custom route).
 */
export function appOfRoute(kind: ServiceKind, routeName: string): string | null {
  const apps = appNamesOf[kind];
  if (apps.includes(routeName)) return routeName;
  return apps.length === 1 ? apps[0] : null;
}

/** Each kind's app names, listed once: appOfRoute runs for every route of every service (linear at 10,000 services). */
const appNamesOf = Object.fromEntries(Object.entries(kindSpecs).map(([kind, spec]) => [kind, Object.keys(spec.apps)])) as Record<ServiceKind, string[]>;

/**
 * The built-in apps that use one of a host's databases: `key` is "db" for interface.db, else the interface.dbs
 * entry's name; `keys` are all of the host's. Empty when no built-in app uses it (a custom module may); for a
 * custom service, ["modules"].
 */
export function databaseUsers(kind: ServiceKind, key: string, keys: string[]): string[] {
  const use = kindSpecs[kind].databases;
  switch (use.by) {
    case "single":
      // nixos/services/app-options.nix: `database` is interface.db, else the only interface.dbs entry.
      return key === "db" || (!keys.includes("db") && keys.length === 1) ? use.apps : [];
    case "by-entry":
      return use.apps.includes(key) ? [key] : [];
    case "none":
      return [];
    case "modules":
      return ["modules"];
    default: {
      const unreachable: never = use;
      throw new Error(`unknown database use ${JSON.stringify(unreachable)}`);
    }
  }
}

/** The apps of a kind that keep their data in PostgreSQL (for messages), sorted. */
export function databaseApps(kind: ServiceKind): string[] {
  const use = kindSpecs[kind].databases;
  return use.by === "single" || use.by === "by-entry" ? [...use.apps].sort() : [];
}
