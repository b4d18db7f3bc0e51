// The monitoring, media and authentik-outpost modules: the data the seed example renders for them, the pure
// Nix builders under nixos/lib evaluated for real by nix-instantiate --eval with that data, the modules
// themselves called with that data, and nix-instantiate --parse of every shipped and rendered file.
// The module calls use tests/support/nixos-stub.nix for nixpkgs' lib and packages: they prove the modules' own
// wiring and messages, not nixpkgs 25.11's option names or types (no nixpkgs here; each module cites them).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { kindSpecs, loadManifestData, manifestSchema, outpostUnit, planManifest, validateManifest } from "../manifest";
import type { Plan } from "../manifest/plan-types";
import { fileSources, planHostData, renderHost, shippedFiles, type HostData } from "../render";
import { nixEval, shippedNix } from "./golden/render-fixtures";
import { evalAppModule, nixJson } from "./support/app-module";

const seedPath = path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix");
const secrets = "/var/lib/nixmox/secrets";

const monitoringLib = `(import ${shippedNix("lib/monitoring.nix")})`;
const mediaLib = `(import ${shippedNix("lib/media.nix")})`;
const outpostsLib = `(import ${shippedNix("lib/authentik-outposts.nix")})`;

const json = nixJson;


/** The shipped module called with the host data and the `config.services` values this file's modules read. */
function evalModule(file: string, data: HostData, section: string, select: string): unknown {
  return evalAppModule(file, data, section, select, `{ loki.dataDir = "/var/lib/loki"; }`);
}

let seedData: Promise<unknown> | undefined;
async function seed(): Promise<Record<string, any>> {
  seedData ??= loadManifestData(seedPath);
  return structuredClone(await seedData) as Record<string, any>;
}

/**
 * Plans a manifest that validation refuses (it has twins of these module assertions), to show that the module itself
 * still stops with a human message when such data reaches it: schema parse only, no cross-service rules.
 */
function planUnchecked(data: unknown): Plan {
  assert.throws(() => validateManifest(data, "edited"), "validation refuses this edit too");
  return planManifest(manifestSchema.parse(data), { manifestDir: path.dirname(seedPath) });
}

function planOf(data: unknown): Plan {
  return planManifest(validateManifest(data, "seed-homelab.nix"), { manifestDir: path.dirname(seedPath) });
}

function parseNix(text: string, label: string): void {
  try {
    execFileSync("nix-instantiate", ["--parse", "-"], { input: text, encoding: "utf8", timeout: 30_000, stdio: ["pipe", "pipe", "pipe"] });
  } catch (error) {
    assert.fail(`${label} does not parse: ${(error as { stderr?: string }).stderr ?? String(error)}`);
  }
}

const grafanaClient = {
  provider: "authentik",
  clientId: "monitoring-oidc",
  clientType: "confidential",
  clientSecretFile: `${secrets}/monitoring/oidc_client_secret`,
  issuer: "https://auth.home.lab/application/o/monitoring/",
  authorizationEndpoint: "https://auth.home.lab/application/o/authorize/",
  tokenEndpoint: "https://auth.home.lab/application/o/token/",
  userinfoEndpoint: "https://auth.home.lab/application/o/userinfo/",
  jwksEndpoint: "https://auth.home.lab/application/o/monitoring/jwks/",
  redirectUris: ["https://grafana.home.lab/login/generic_oauth"],
  scopes: ["openid", "email", "profile"],
  usernameClaim: "preferred_username",
  groupsClaim: "groups",
};

describe("kinds: monitoring, media and the authentik outposts", function () {
  this.timeout(120_000);
  let plan: Plan;

  before(async () => {
    plan = planOf(await seed());
  });

  describe("rendered data of the seed example", () => {
    it("gives every monitoring app its route's port, Grafana the database and the service's OIDC client", () => {
      const data = planHostData(plan, "monitoring");
      const monitoring = data.monitoring!;
      assert.deepEqual(
        Object.fromEntries(Object.entries(monitoring.apps).map(([app, value]) => [app, [value.listen.address, value.listen.port, value.publicUrl]])),
        {
          alertmanager: ["10.40.0.18", 9093, "https://alertmanager.home.lab"],
          grafana: ["10.40.0.18", 3000, "https://grafana.home.lab"],
          loki: ["10.40.0.18", 3100, "https://loki.home.lab"],
          prometheus: ["10.40.0.18", 9090, "https://prometheus.home.lab"],
        },
      );
      // The loki route's port is opened although the manifest's ports forgot it.
      assert.deepEqual(data.host.ports, [3000, 3100, 9090, 9093]);
      assert.deepEqual(monitoring.database, { host: "10.40.0.11", port: 5432, name: "monitoring", owner: "monitoring", passwordFile: `${secrets}/monitoring/db_password`, additional: [] });
      assert.deepEqual(monitoring.apps.grafana.oidc, grafanaClient);
      assert.equal(monitoring.apps.grafana.auth, "oidc");
    });

    it("gives every media app its port, the *arr apps their main and log databases, Jellyfin its route's own OIDC client", () => {
      const data = planHostData(plan, "media");
      const media = data.media!;
      assert.deepEqual(
        Object.fromEntries(Object.entries(media.apps).map(([app, value]) => [app, [value.listen.port, value.auth, value.oidc?.clientId ?? null]])),
        {
          jellyfin: [8096, "oidc", "media-jellyfin"],
          prowlarr: [9696, "forward_auth", null],
          radarr: [7878, "forward_auth", null],
          sonarr: [8989, "forward_auth", null],
          transmission: [9091, "forward_auth", null],
        },
      );
      assert.deepEqual(data.host.ports, [7878, 8096, 8989, 9091, 9696]);
      assert.equal(media.database, null);
      assert.deepEqual(media.databases, {
        prowlarr: { host: "10.40.0.11", port: 5432, name: "prowlarr", owner: "prowlarr", passwordFile: `${secrets}/media/prowlarr_db_password`, additional: ["prowlarr-log"] },
        radarr: { host: "10.40.0.11", port: 5432, name: "radarr", owner: "radarr", passwordFile: `${secrets}/media/radarr_db_password`, additional: ["radarr-log"] },
        sonarr: { host: "10.40.0.11", port: 5432, name: "sonarr", owner: "sonarr", passwordFile: `${secrets}/media/sonarr_db_password`, additional: ["sonarr-log"] },
      });
      const jellyfin = media.apps.jellyfin.oidc!;
      assert.equal(jellyfin.clientSecretFile, `${secrets}/media/jellyfin_oidc_client_secret`);
      assert.deepEqual(jellyfin.redirectUris, ["https://jellyfin.home.lab/sso/OID/redirect/authentik"]);
      assert.equal(jellyfin.issuer, "https://auth.home.lab/application/o/media-jellyfin/");
    });

    it("gives the authentik host both outposts with their ports and token files", () => {
      const data = planHostData(plan, "authentik");
      assert.deepEqual(data.outposts, {
        ldap: { baseDn: "dc=home,dc=lab", port: 3389 },
        radius: { clientNetworks: ["10.40.0.0/24"], port: 1812, sharedSecretFile: `${secrets}/authentik/radius_shared_secret` },
        tokenFiles: { ldap: "/var/lib/nixmox/outposts/ldap-token", radius: "/var/lib/nixmox/outposts/radius-token" },
      });
      assert.deepEqual([data.host.ports, data.host.udpPorts], [[3389, 9000], [1812]]);
    });

    it("ships each module with the helper it imports, and the authentik flake imports the outposts module", () => {
      const sources = fileSources(plan.manifestDir);
      const nixosFiles = (service: string) => Object.keys(renderHost(plan, service, sources).files).filter((file) => file.startsWith("nixos/"));
      assert.deepEqual(nixosFiles("monitoring"), ["nixos/core.nix", "nixos/lib/firewall.nix", "nixos/lib/monitoring.nix", "nixos/lib/resolv.nix", "nixos/lib/shell.nix", "nixos/services/app-options.nix", "nixos/services/monitoring.nix"]);
      assert.deepEqual(nixosFiles("media"), ["nixos/core.nix", "nixos/lib/firewall.nix", "nixos/lib/media.nix", "nixos/lib/resolv.nix", "nixos/lib/shell.nix", "nixos/services/app-options.nix", "nixos/services/media.nix"]);
      const authentik = renderHost(plan, "authentik", sources).files;
      assert.ok("nixos/services/authentik-outposts.nix" in authentik && "nixos/lib/authentik-outposts.nix" in authentik);
      assert.match(authentik["flake.nix"], /\.\/nixos\/services\/authentik\.nix\n {8}\.\/nixos\/services\/authentik-outposts\.nix\n/);
    });
  });

  describe("units", () => {
    it("restarts the unit that reads a changed secret: grafana for monitoring's, each *arr app for its database password", () => {
      const restarts = (service: string) =>
        Object.fromEntries(plan.secrets.filter((secret) => secret.service === service && secret.configService === service).map((secret) => [secret.name, secret.restartUnits]));
      for (const units of Object.values(restarts("monitoring"))) assert.ok(units.includes("grafana.service"));
      const media = restarts("media");
      for (const app of ["sonarr", "radarr", "prowlarr"]) assert.ok(media[`${app}_db_password`].includes(`${app}.service`), app);
      assert.deepEqual(Object.keys(media).sort(), ["jellyfin_oidc_client_secret", "prowlarr_db_password", "radarr_db_password", "sonarr_db_password"]);
      assert.deepEqual(kindSpecs.monitoring.units, ["prometheus.service", "grafana.service", "alertmanager.service", "loki.service", "promtail.service"]);
    });

    it("names the outpost units as the token delivery restarts them", () => {
      const units = nixEval(`map (t: "\${${outpostsLib}.unitName t}.service") ${outpostsLib}.types`);
      assert.deepEqual(units, [outpostUnit("ldap"), outpostUnit("radius")]);
    });
  });

  describe("the modules called with the seed's data", () => {
    const unprotected = (app: string) =>
      `nixmox monitoring: service "monitoring": ${app} has no login of its own and its route asks nobody first, so anyone who reaches the proxy can use it; set interface.proxy.${app}.auth = { type = "forward_auth"; provider = …; }.`;

    it("monitoring: holds, has no route left open (the seed's routes without auth get forward_auth), and wires every app to its listener", () => {
      const result = evalModule("services/monitoring.nix", planHostData(plan, "monitoring"), "monitoring", `{
        inherit failed;
        inherit (m.config) warnings;
        prometheus = { inherit (m.config.services.prometheus) listenAddress port webExternalUrl; };
        alertmanager = { inherit (m.config.services.prometheus.alertmanager) listenAddress port extraFlags; };
        grafana = { inherit (m.config.services.grafana.settings.server) http_addr http_port root_url; inherit (m.config.services.grafana.settings.security) admin_password; };
        credentials = m.config.systemd.services.grafana.serviceConfig.LoadCredential;
        grafanaAfter = m.config.systemd.services.grafana.after;
        generatesOnHost = m.config.systemd.services ? nixmox-grafana-secrets;
        loki = m.config.services.loki.configuration.server.http_listen_port;
        promtail = (builtins.head m.config.services.promtail.configuration.clients).url;
      }`);
      assert.deepEqual(result, {
        failed: [],
        warnings: [],
        prometheus: { listenAddress: "10.40.0.18", port: 9090, webExternalUrl: "https://prometheus.home.lab" },
        alertmanager: { listenAddress: "10.40.0.18", port: 9093, extraFlags: ["--cluster.listen-address="] },
        grafana: { http_addr: "10.40.0.18", http_port: 3000, root_url: "https://grafana.home.lab/", admin_password: "$__file{/run/credentials/grafana.service/admin_password}" },
        credentials: [
          `secret_key:${secrets}/monitoring/grafana_secret_key`,
          `admin_password:${secrets}/monitoring/grafana_admin_password`,
          `db_password:${secrets}/monitoring/db_password`,
          `oidc_client_secret:${secrets}/monitoring/oidc_client_secret`,
        ],
        grafanaAfter: ["network-online.target"],
        // Nothing is generated on the host any more: both values are stack secrets (D2).
        generatesOnHost: false,
        loki: 3100,
        promtail: "http://10.40.0.18:3100/loki/api/v1/push",
      });
    });

    it("monitoring: warns about a route to an app without a login left open on purpose (auth = \"none\")", async () => {
      const data = await seed();
      data.services.monitoring.interface.proxy.loki.auth = "none";
      const result = evalModule("services/monitoring.nix", planHostData(planOf(data), "monitoring"), "monitoring", "m.config.warnings");
      assert.deepEqual(result, [unprotected("loki")]);
    });

    it("monitoring: fails with a human message for a closed route port and a missing Grafana callback", async () => {
      const data = await seed();
      data.services.monitoring.interface.auth.oidc.redirect_uris = ["https://grafana.home.lab/oauth"];
      const hostData = planHostData(planUnchecked(data), "monitoring");
      hostData.host.ports = [3000, 9090, 9093];
      assert.deepEqual(evalModule("services/monitoring.nix", hostData, "monitoring", "failed"), [
        'nixmox monitoring: service "monitoring" routes to loki on port 3100 but ports does not list it; add it to ports.',
        'nixmox monitoring: service "monitoring": Grafana sends users back to https://grafana.home.lab/login/generic_oauth, which the OIDC client\'s redirect_uris does not list; add it to interface.auth.oidc.redirect_uris.',
      ]);
    });

    it("media: holds, warns that Jellyfin's SSO is manual, and gives each *arr app its settings and password file", () => {
      const result = evalModule("services/media.nix", planHostData(plan, "media"), "media", `{
        inherit failed;
        inherit (m.config) warnings;
        envFiles = m.config.nixmox.environmentFiles;
        sonarr = { inherit (m.config.services.sonarr) environmentFiles; inherit (m.config.services.sonarr.settings) server postgres; };
        transmission = { package = "\${m.config.services.transmission.package}"; inherit (m.config.services.transmission.settings) rpc-port; };
        after = m.config.systemd.services.transmission.after;
        jellyfin = m.config.services.jellyfin.enable;
      }`);
      assert.deepEqual(result, {
        failed: [],
        warnings: [
          'nixmox media: service "media": Jellyfin\'s OIDC login is not configured by NixOS (the SSO plugin is not in nixpkgs). Install jellyfin-plugin-sso from Jellyfin\'s plugin catalog and add provider "authentik" with client id media-jellyfin, OpenID endpoint https://auth.home.lab/application/o/media-jellyfin/ and redirect https://jellyfin.home.lab/sso/OID/redirect/authentik; the client secret is in /var/lib/nixmox/secrets/media/jellyfin_oidc_client_secret on this host.',
        ],
        envFiles: Object.fromEntries(["prowlarr", "radarr", "sonarr"].map((app) => [app, {
          consumers: [`${app}.service`],
          variables: { [`${app.toUpperCase()}__POSTGRES__PASSWORD`]: { file: `${secrets}/media/${app}_db_password` } },
        }])),
        sonarr: {
          environmentFiles: ["/run/nixmox/env/sonarr.env"],
          server: { port: 8989, bindaddress: "10.40.0.17" },
          postgres: { host: "10.40.0.11", port: 5432, user: "sonarr", maindb: "sonarr", logdb: "sonarr-log" },
        },
        transmission: { package: "/nix/store/stub-transmission-4", "rpc-port": 9091 },
        after: ["network-online.target"],
        jellyfin: true,
      });
    });

    it("media: fails with a human message for a Jellyfin port NixOS cannot set", async () => {
      const data = await seed();
      data.services.media.interface.proxy.jellyfin.upstream = "10.40.0.17:8097";
      data.services.media.ports = [8097, 8989, 7878, 9696, 9091];
      assert.deepEqual(evalModule("services/media.nix", planHostData(planUnchecked(data), "media"), "media", "failed"), [
        'nixmox media: service "media": Jellyfin listens on 8096 (its port is set in Jellyfin\'s network.xml, not by NixOS), but its route sends to port 8097; use 8096 in interface.proxy.jellyfin.upstream.',
      ]);
    });

    it("media: warns, and does not fail, for a database no app uses; an *arr entry without additionaldbs gets <name>-log as its log database", async () => {
      const data = await seed();
      delete data.services.media.interface.dbs.sonarr.additionaldbs;
      data.services.media.interface.dbs.jellyfin = { host: "10.40.0.11", name: "jellyfin", owner: "jellyfin", port: 5432 };
      const result = evalModule("services/media.nix", planHostData(planOf(data), "media"), "media", `{
        inherit failed;
        warnings = m.config.warnings;
        logdb = m.config.services.sonarr.settings.postgres.logdb;
      }`) as { failed: string[]; warnings: string[]; logdb: string };
      assert.deepEqual(result.failed, []);
      assert.equal(result.logdb, "sonarr-log");
      assert.deepEqual(result.warnings.filter((warning) => warning.includes("jellyfin is used")), [
        'nixmox media: service "media": interface.dbs.jellyfin is used by no app on this host (prowlarr, radarr, sonarr use interface.dbs.<app>); its database exists for a module of your own.',
      ]);
    });

    it("outposts: hold, and start each outpost from its token file through a path unit and a composed environment file", () => {
      const result = evalModule("services/authentik-outposts.nix", planHostData(plan, "authentik"), "outposts", `{
        inherit failed;
        ldap = let u = m.config.systemd.services.authentik-ldap; in {
          inherit (u.serviceConfig) ExecStart EnvironmentFile DynamicUser;
          inherit (u.unitConfig) ConditionPathExists;
          inherit (u.environment) AUTHENTIK_HOST AUTHENTIK_LISTEN__LDAP;
          token = u.environment ? AUTHENTIK_TOKEN;
        };
        radiusExec = m.config.systemd.services.authentik-radius.serviceConfig.ExecStart;
        envUnitCondition = m.config.systemd.services.nixmox-env-authentik-radius.unitConfig.ConditionPathExists;
        path = m.config.systemd.paths.authentik-radius.pathConfig;
        envFiles = m.config.nixmox.environmentFiles;
      }`);
      assert.deepEqual(result, {
        failed: [],
        ldap: {
          ExecStart: "/nix/store/stub-authentik-ldap-outpost/bin/ldap",
          EnvironmentFile: ["/run/nixmox/env/authentik-ldap.env"],
          DynamicUser: true,
          ConditionPathExists: "/var/lib/nixmox/outposts/ldap-token",
          AUTHENTIK_HOST: "http://10.40.0.12:9000",
          AUTHENTIK_LISTEN__LDAP: "10.40.0.12:3389",
          token: false,
        },
        radiusExec: "/nix/store/stub-authentik-radius-outpost/bin/radius",
        envUnitCondition: "/var/lib/nixmox/outposts/radius-token",
        path: { PathExists: "/var/lib/nixmox/outposts/radius-token", Unit: "authentik-radius.service" },
        envFiles: {
          "authentik-ldap": { consumers: ["authentik-ldap.service"], variables: { AUTHENTIK_TOKEN: { file: "/var/lib/nixmox/outposts/ldap-token" } } },
          "authentik-radius": { consumers: ["authentik-radius.service"], variables: { AUTHENTIK_TOKEN: { file: "/var/lib/nixmox/outposts/radius-token" } } },
        },
      });
    });

    it("outposts: fail with a human message on another kind's host, without a token path, or with the LDAP port closed", () => {
      const hostData = planHostData(plan, "authentik");
      hostData.host.kind = "vaultwarden";
      hostData.host.ports = [9000];
      hostData.outposts!.tokenFiles = { ldap: "/var/lib/nixmox/outposts/ldap-token" };
      assert.deepEqual(evalModule("services/authentik-outposts.nix", hostData, "outposts", "failed"), [
        'nixmox: service "authentik" of kind vaultwarden imports the authentik outposts module; outposts run on the authentik host, this is a renderer bug.',
        'nixmox outposts: service "authentik" runs the radius outpost but tokenFiles has no path for it; render the host again with this NixMox version.',
        'nixmox outposts: service "authentik" runs the LDAP outpost on TCP 3389 but ports does not list it; add it to ports.',
      ]);
    });
  });

  describe("nix-instantiate --parse", () => {
    const files = ["services/monitoring.nix", "services/media.nix", "services/authentik-outposts.nix", "lib/monitoring.nix", "lib/media.nix", "lib/authentik-outposts.nix"];

    it("parses every file these modules ship, each naming what it was checked against", () => {
      for (const file of files) {
        const text = readFileSync(shippedNix(file), "utf8");
        parseNix(text, `nixos/${file}`);
        assert.match(text.split("\n").slice(0, 30).join("\n"), /Checked against/, `nixos/${file}`);
      }
      assert.ok(shippedFiles.monitoring.includes("lib/monitoring.nix") && shippedFiles.media.includes("lib/media.nix"));
    });

    it("parses every rendered .nix file of the monitoring, media and authentik hosts", () => {
      const sources = fileSources(plan.manifestDir);
      let count = 0;
      for (const service of ["monitoring", "media", "authentik"]) {
        for (const [file, content] of Object.entries(renderHost(plan, service, sources).files)) {
          if (!file.endsWith(".nix")) continue;
          parseNix(content, `${service}/${file}`);
          count += 1;
        }
      }
      // monitoring 7, media 7, authentik 8 (core, firewall, shell, authentik, app-options, outposts + its helper, flake).
      assert.equal(count, 25);
    });
  });

  describe("lib/monitoring.nix with the seed's data", () => {
    const monitoring = () => json(planHostData(plan, "monitoring").monitoring);

    it("configures Grafana from the data: listener, root_url, PostgreSQL and generic_oauth, secrets only as $__file{} credentials", () => {
      const credentials = "/run/credentials/grafana.service";
      assert.deepEqual(nixEval(`${monitoringLib}.grafanaSettings ${monitoring()} "authentik Admins"`), {
        server: { http_addr: "10.40.0.18", http_port: 3000, domain: "grafana.home.lab", root_url: "https://grafana.home.lab/", serve_from_sub_path: false },
        security: { secret_key: `$__file{${credentials}/secret_key}`, admin_password: `$__file{${credentials}/admin_password}` },
        users: { allow_sign_up: false },
        analytics: { reporting_enabled: false, check_for_updates: false },
        database: { type: "postgres", host: "10.40.0.11:5432", name: "monitoring", user: "monitoring", password: `$__file{${credentials}/db_password}` },
        "auth.generic_oauth": {
          enabled: true,
          name: "authentik",
          allow_sign_up: true,
          client_id: "monitoring-oidc",
          client_secret: `$__file{${credentials}/oidc_client_secret}`,
          scopes: "openid email profile",
          auth_url: "https://auth.home.lab/application/o/authorize/",
          token_url: "https://auth.home.lab/application/o/token/",
          api_url: "https://auth.home.lab/application/o/userinfo/",
          login_attribute_path: "preferred_username",
          groups_attribute_path: "groups",
          role_attribute_path: "contains(groups[*], 'authentik Admins') && 'Admin' || 'Viewer'",
          email_attribute_path: "email",
          use_pkce: true,
          use_refresh_token: true,
        },
      });
    });

    it("loads exactly the credentials Grafana's $__file{} references read, from the host's secret files", () => {
      const settings = JSON.stringify(nixEval(`${monitoringLib}.grafanaSettings ${monitoring()} "authentik Admins"`));
      const referenced = [...settings.matchAll(/\$__file\{\/run\/credentials\/grafana\.service\/([a-z_]+)\}/g)].map((match) => match[1]).sort();
      const stackSecrets = json(planHostData(plan, "monitoring").secrets);
      const loaded = nixEval(`${monitoringLib}.grafanaCredentials ${monitoring()} ${stackSecrets}`) as string[];
      assert.deepEqual(loaded, [
        `secret_key:${secrets}/monitoring/grafana_secret_key`,
        `admin_password:${secrets}/monitoring/grafana_admin_password`,
        `db_password:${secrets}/monitoring/db_password`,
        `oidc_client_secret:${secrets}/monitoring/oidc_client_secret`,
      ]);
      assert.deepEqual(loaded.map((entry) => entry.split(":")[0]).sort(), referenced);
    });

    it("checks Grafana's callback against the client's redirect URIs", async () => {
      assert.deepEqual(nixEval(`[ (${monitoringLib}.grafanaCallback ${monitoring()}) (${monitoringLib}.grafanaCallbackMissing ${monitoring()}) ]`), [
        "https://grafana.home.lab/login/generic_oauth",
        false,
      ]);
      const data = await seed();
      data.services.monitoring.interface.auth.oidc.redirect_uris = ["https://grafana.home.lab/oauth"];
      const edited = json(planHostData(planUnchecked(data), "monitoring").monitoring);
      assert.equal(nixEval(`${monitoringLib}.grafanaCallbackMissing ${edited}`), true);
    });

    it("serves Grafana and Prometheus under their route's path prefix and scrapes /metrics below it", async () => {
      const data = await seed();
      data.services.monitoring.interface.proxy.grafana = { domain: "mon.home.lab", path: "/grafana", upstream: "10.40.0.18:3000" };
      data.services.monitoring.interface.proxy.prometheus = { domain: "mon.home.lab", path: "/prometheus", upstream: "10.40.0.18:9090" };
      data.services.monitoring.interface.auth.oidc.redirect_uris = ["https://mon.home.lab/grafana/login/generic_oauth"];
      const edited = json(planHostData(planOf(data), "monitoring").monitoring);
      const result = nixEval(`let m = ${monitoringLib}; c = ${edited}; in { server = (m.grafanaSettings c "admins").server; missing = m.grafanaCallbackMissing c; scrape = map (s: s.metrics_path) (m.prometheusScrapeConfigs c); datasource = (builtins.head (m.grafanaDatasources c)).url; }`);
      assert.deepEqual(result, {
        server: { http_addr: "10.40.0.18", http_port: 3000, domain: "mon.home.lab", root_url: "https://mon.home.lab/grafana/", serve_from_sub_path: true },
        missing: false,
        scrape: ["/prometheus/metrics", "/metrics"],
        datasource: "http://10.40.0.18:9090/prometheus",
      });
    });

    it("points Prometheus at itself and the Alertmanager, Grafana at all three, and Promtail at the local Loki", () => {
      const result = nixEval(`let m = ${monitoringLib}; c = ${monitoring()}; in {
        scrape = map (s: [ s.job_name (builtins.head (builtins.head s.static_configs).targets) ]) (m.prometheusScrapeConfigs c);
        alerting = m.prometheusAlertmanagers c;
        datasources = map (d: [ d.type d.url ]) (m.grafanaDatasources c);
        push = (builtins.head (m.promtailConfig c "monitoring").clients).url;
        promtailServer = (m.promtailConfig c "monitoring").server;
        journal = (builtins.head (m.promtailConfig c "monitoring").scrape_configs).journal.labels;
      }`);
      assert.deepEqual(result, {
        scrape: [["prometheus", "10.40.0.18:9090"], ["alertmanager", "10.40.0.18:9093"]],
        alerting: [{ static_configs: [{ targets: ["10.40.0.18:9093"] }] }],
        datasources: [["prometheus", "http://10.40.0.18:9090"], ["loki", "http://10.40.0.18:3100"], ["alertmanager", "http://10.40.0.18:9093"]],
        push: "http://10.40.0.18:3100/loki/api/v1/push",
        promtailServer: { disable: true },
        journal: { job: "systemd-journal", host: "monitoring" },
      });
    });

    it("runs Loki on the app's port with gRPC on loopback and filesystem storage under its data directory", () => {
      const loki = nixEval(`${monitoringLib}.lokiConfig ${monitoring()} "/var/lib/loki"`) as Record<string, any>;
      assert.deepEqual(loki.server, { http_listen_address: "10.40.0.18", http_listen_port: 3100, grpc_listen_address: "127.0.0.1", grpc_listen_port: 9095, log_level: "warn" });
      assert.deepEqual(loki.common.storage.filesystem, { chunks_directory: "/var/lib/loki/chunks", rules_directory: "/var/lib/loki/rules" });
      assert.deepEqual([loki.common.instance_addr, loki.common.ring], ["127.0.0.1", { kvstore: { store: "inmemory" } }]);
      assert.deepEqual(loki.schema_config.configs, [{ from: "2024-01-01", store: "tsdb", object_store: "filesystem", schema: "v13", index: { prefix: "index_", period: "24h" } }]);
      assert.equal(loki.auth_enabled, false);
    });

    it("names the apps without a login whose route was left open on purpose (auth = \"none\"), and none of the seed's", async () => {
      assert.deepEqual(nixEval(`${monitoringLib}.unprotectedApps ${monitoring()}`), []);
      const data = await seed();
      for (const app of ["prometheus", "loki"]) data.services.monitoring.interface.proxy[app].auth = "none";
      assert.deepEqual(nixEval(`${monitoringLib}.unprotectedApps ${json(planHostData(planOf(data), "monitoring").monitoring)}`), ["loki", "prometheus"]);
    });

    it("fails with the URL when a public URL is not http(s)", () => {
      assert.throws(() => nixEval(`${monitoringLib}.parseUrl "ftp://x"`), /nixmox monitoring: ftp:\/\/x is not an http\(s\) URL/);
    });
  });

  describe("lib/media.nix with the seed's data", () => {
    const media = () => json(planHostData(plan, "media").media);

    it("gives each *arr app its listener and its main and log databases, with no password among the settings", () => {
      assert.deepEqual(nixEval(`map (${mediaLib}.arrSettings ${media()}) ${mediaLib}.arrApps`), [
        { server: { port: 9696, bindaddress: "10.40.0.17" }, postgres: { host: "10.40.0.11", port: 5432, user: "prowlarr", maindb: "prowlarr", logdb: "prowlarr-log" } },
        { server: { port: 7878, bindaddress: "10.40.0.17" }, postgres: { host: "10.40.0.11", port: 5432, user: "radarr", maindb: "radarr", logdb: "radarr-log" } },
        { server: { port: 8989, bindaddress: "10.40.0.17" }, postgres: { host: "10.40.0.11", port: 5432, user: "sonarr", maindb: "sonarr", logdb: "sonarr-log" } },
      ]);
    });

    it("names the password variable the way the Servarr apps read it", () => {
      assert.deepEqual(nixEval(`map ${mediaLib}.passwordVariable ${mediaLib}.arrApps`), ["PROWLARR__POSTGRES__PASSWORD", "RADARR__POSTGRES__PASSWORD", "SONARR__POSTGRES__PASSWORD"]);
    });

    it("keeps an *arr app without a database on SQLite", async () => {
      const data = await seed();
      delete data.services.media.interface.dbs.prowlarr;
      const edited = json(planHostData(planOf(data), "media").media);
      assert.deepEqual(nixEval(`${mediaLib}.arrSettings ${edited} "prowlarr"`), { server: { port: 9696, bindaddress: "10.40.0.17" } });
    });

    it("finds a database without a log database (hand-written data: the plan always gives one) and one that belongs to no app", async () => {
      assert.deepEqual(nixEval(`[ (${mediaLib}.missingLogDatabases ${media()}) (${mediaLib}.unknownDatabases ${media()}) ]`), [[], []]);
      const data = await seed();
      data.services.media.interface.dbs.lidarr = { host: "10.40.0.11", name: "lidarr", owner: "lidarr", port: 5432 };
      const hostData = planHostData(planOf(data), "media").media as { databases: Record<string, { additional: string[] }> };
      hostData.databases.sonarr.additional = [];
      assert.deepEqual(nixEval(`[ (${mediaLib}.missingLogDatabases ${json(hostData)}) (${mediaLib}.unknownDatabases ${json(hostData)}) ]`), [["sonarr"], ["lidarr"]]);
    });

    it("binds Transmission's RPC to the app's listener and lets the route's domain through its Host check", () => {
      assert.deepEqual(nixEval(`${mediaLib}.transmissionSettings ${media()}`), {
        "rpc-bind-address": "10.40.0.17",
        "rpc-port": 9091,
        "rpc-whitelist-enabled": false,
        "rpc-host-whitelist-enabled": true,
        "rpc-host-whitelist": "transmission.home.lab",
      });
    });
  });

  describe("lib/authentik-outposts.nix with the seed's data", () => {
    const outposts = () => json(planHostData(plan, "authentik").outposts);
    const environment = (type: string, port: number, metricsPort: number) =>
      nixEval(`${outpostsLib}.environment { type = "${type}"; authentikUrl = "http://10.40.0.12:9000"; address = "10.40.0.12"; port = ${port}; metricsPort = ${metricsPort}; }`);

    it("runs both outposts, as authentik-ldap and authentik-radius, each with a token file", () => {
      assert.deepEqual(nixEval(`let o = ${outpostsLib}; d = ${outposts()}; in [ (o.enabledTypes d) (map o.unitName (o.enabledTypes d)) (o.missingTokenFiles d) ]`), [
        ["ldap", "radius"],
        ["authentik-ldap", "authentik-radius"],
        [],
      ]);
    });

    it("finds an outpost whose token file path is missing", () => {
      const data = planHostData(plan, "authentik").outposts!;
      assert.deepEqual(nixEval(`${outpostsLib}.missingTokenFiles ${json({ ...data, ldap: null, tokenFiles: {} })}`), ["radius"]);
    });

    it("points each outpost at authentik and opens only its protocol port on the host's address, without the token", () => {
      assert.deepEqual(environment("ldap", 3389, 9301), {
        AUTHENTIK_HOST: "http://10.40.0.12:9000",
        AUTHENTIK_INSECURE: "false",
        AUTHENTIK_DEBUG: "false",
        AUTHENTIK_LISTEN__METRICS: "127.0.0.1:9301",
        AUTHENTIK_LISTEN__LDAP: "10.40.0.12:3389",
        AUTHENTIK_LISTEN__LDAPS: "127.0.0.1:6636",
      });
      assert.deepEqual(environment("radius", 1812, 9302), {
        AUTHENTIK_HOST: "http://10.40.0.12:9000",
        AUTHENTIK_INSECURE: "false",
        AUTHENTIK_DEBUG: "false",
        AUTHENTIK_LISTEN__METRICS: "127.0.0.1:9302",
        AUTHENTIK_LISTEN__RADIUS: "10.40.0.12:1812",
      });
    });
  });
});
