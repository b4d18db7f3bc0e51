// Pure tests, no mocks (the example loads through the real nix-instantiate): older NixMox homelabs load without false
// refusals (issue 19). The third example, manifest/examples/older-homelab.nix, carries every shape; the single
// cases below edit the small test manifest to show each one alone, with its exact note, warning or problem.
import assert from "node:assert/strict";
import path from "node:path";
import { renderPlanJson, renderPlanText } from "../cli/views";
import { loadManifestData, loadPlan, type Plan } from "../manifest";
import { planHostData } from "../render";
import { deepClone, planOf, problemsOf, smallManifest, smallManifestBuildWarning, type RawManifest } from "./support/manifests";

const olderExample = path.join(__dirname, "..", "manifest", "examples", "older-homelab.nix");

describe("manifest: an older NixMox homelab (manifest/examples/older-homelab.nix)", function () {
  this.timeout(60_000);
  let plan: Plan;
  let raw: RawManifest;

  before(async () => {
    raw = (await loadManifestData(olderExample)) as RawManifest;
    plan = await loadPlan(olderExample);
  });

  it("validates and plans 7 services with the domain derived, the terraform blocks noted once and the Jellyfin database warned about", () => {
    assert.equal(plan.network.domain, "homelab.lan");
    assert.deepEqual(plan.services.map((service) => service.name), ["authentik", "caddy", "dns", "media", "monitoring", "postgresql", "vaultwarden"]);
    assert.deepEqual(plan.notes, [
      'network: domain is not set: NixMox uses "homelab.lan", the suffix the hostnames share (authentik.homelab.lan, caddy.homelab.lan, dns.homelab.lan, … (7 in all)); set network.domain = "homelab.lan" to make it explicit',
      "manifest: interface.terraform of 7 services authentik, caddy, dns, media, monitoring, … (7 in all) is ignored: the Pulumi program creates the containers now (no per-service Terraform modules); remove the blocks when convenient",
      'service "media": interface.dbs.prowlarr lists no additionaldbs: prowlarr\'s log database is "prowlarr-log" (owner "prowlarr")',
      'service "media": interface.dbs.radarr lists no additionaldbs: radarr\'s log database is "radarr-log" (owner "radarr")',
      'service "media": interface.dbs.sonarr lists no additionaldbs: sonarr\'s log database is "sonarr-log" (owner "sonarr")',
    ]);
    assert.deepEqual(plan.warnings, [
      'service "media": interface.dbs.jellyfin is used by no built-in app on this host (on a media host PostgreSQL is used by prowlarr, radarr, sonarr, each through interface.dbs.<app>); ' +
        'NixMox still creates database "jellyfin" and role "jellyfin" on "postgresql" for a module of your own (nixos_modules)',
      'service "monitoring": port 9093 is open to no other host (no route, database or depends_on uses it); route it through the proxy, or list it in public_ports to open it to the LAN',
      // No builder: every host builds itself (issue 18).
      'builds on the host itself with less memory than a NixOS evaluation needs (2048 MiB of memory + swap; nixpkgs#85148, nix#2664): dns (1024 MiB + 512 MiB swap), monitoring (1024 MiB + 512 MiB swap), vaultwarden (1024 MiB + 512 MiB swap); add a service of kind builder, set build.on = "controller", or give them more memory',
    ]);
  });

  it("leaves every vmid to Proxmox: null in the plan, \"assigned at first deploy\" in its text", () => {
    assert.ok(plan.services.every((service) => service.vmid === null));
    const text = renderPlanText(plan);
    assert.ok(text.includes("  dns [dns] ct (assigned at first deploy)  10.77.0.13/24  dns.homelab.lan\n"), text);
    const json = JSON.parse(renderPlanJson(plan)) as { services: Array<{ name: string; vmid: unknown }> };
    assert.deepEqual([...new Set(json.services.map((service) => service.vmid))], [null]);
  });

  it("writes each *arr app's default log database into the plan, owned by the app's role", () => {
    const media = plan.databases.filter((database) => database.service === "media").map((database) => [database.key, database.name, database.owner, database.additional]);
    assert.deepEqual(media, [
      ["jellyfin", "jellyfin", "jellyfin", []],
      ["prowlarr", "prowlarr", "prowlarr", ["prowlarr-log"]],
      ["radarr", "radarr", "radarr", ["radarr-log"]],
      ["sonarr", "sonarr", "sonarr", ["sonarr-log"]],
    ]);
    assert.ok(renderPlanText(plan).includes("    database sonarr + sonarr-log (owner sonarr) on postgresql\n"));
  });

  it("creates the database no built-in app uses like any other: its role, password file on both hosts and pg_hba line", () => {
    const secrets = plan.secrets.filter((secret) => secret.name === "jellyfin_db_password").map((secret) => `${secret.configService}→${secret.service}`);
    assert.deepEqual(secrets, ["media→media", "media→postgresql"]);
    const server = planHostData(plan, "postgresql").postgresql as { databases: Array<{ name: string; owner: string; clientIp: string }> };
    assert.deepEqual(server.databases.filter((database) => database.owner === "jellyfin").map((database) => [database.name, database.clientIp]), [["jellyfin", "10.77.0.17"]]);
  });

  it("fails when two services share an explicit vmid, and not for the ones without", () => {
    const manifest = deepClone(raw);
    manifest.services.vaultwarden.vmid = 4000;
    manifest.services.media.vmid = 4000;
    assert.deepEqual(problemsOf(manifest), ['service "vaultwarden": vmid 4000 is already the vmid of service "media"']);
  });
});

describe("manifest: the false refusals of issue 19, one at a time", () => {
  const withApp = (edit: (manifest: RawManifest) => void) => {
    const manifest = smallManifest();
    edit(manifest);
    return manifest;
  };

  it("accepts a service without vmid", () => {
    const plan = planOf(withApp((m) => delete m.services.app.vmid));
    assert.equal(plan.services.find((service) => service.name === "app")!.vmid, null);
    assert.equal(plan.services.find((service) => service.name === "caddy")!.vmid, 110);
  });

  it("derives network.domain from the hostnames' common suffix and notes it", () => {
    const plan = planOf(withApp((m) => {
      delete m.network.domain;
      m.core_services.caddy.hostname = "caddy.srv.lab.test";
      m.services.app.hostname = "app.lab.test";
      m.core_services.postgresql.hostname = "postgresql";
    }));
    assert.equal(plan.network.domain, "lab.test");
    assert.equal(plan.services.find((service) => service.name === "postgresql")!.fqdn, "postgresql.lab.test");
    assert.deepEqual(plan.notes, ['network: domain is not set: NixMox uses "lab.test", the suffix the hostnames share (app.lab.test, caddy.srv.lab.test); set network.domain = "lab.test" to make it explicit']);
  });

  it("accepts interface.terraform with one note per manifest, and warns where its variables disagree with network", () => {
    const plan = planOf(withApp((m) => {
      m.services.app.interface.terraform = { modules: ["./terraform/app"], variables: { domain: "old.lab", network_cidr: "10.9.0.0/24", cores: 2 } };
      m.core_services.caddy.interface = { terraform: { modules: ["./terraform/caddy"], variables: { network_cidr: "10.8.0.0/24" }, backend: "local" } };
    }));
    assert.deepEqual(plan.notes, [
      "manifest: interface.terraform of 2 services app, caddy is ignored: the Pulumi program creates the containers now (no per-service Terraform modules); remove the blocks when convenient",
    ]);
    assert.deepEqual(plan.warnings, [
      'service "app": interface.terraform.variables.domain is "old.lab" but network.domain is "lab.test"; the block is ignored and network.domain applies (fix whichever is wrong)',
      'service "caddy": interface.terraform.variables.network_cidr is "10.8.0.0/24" but network.network_cidr is "10.9.0.0/24"; the block is ignored and network.network_cidr applies (fix whichever is wrong)',
      smallManifestBuildWarning,
    ]);
  });

  it("fails when an interface.terraform block holds a secret, with the pulumi config set line, never echoing it", () => {
    const problems = problemsOf(withApp((m) => {
      m.services.app.interface.terraform = { variables: { proxmox_api_token: "root@pam!x=secret-value", domain: "lab.test" } };
    }));
    assert.deepEqual(problems, [
      'service "app": interface.terraform.variables.proxmox_api_token looks like a secret: secret values never go in the manifest. Declare it under secrets and set the value from a file or stdin with ' +
        "`pulumi config set --secret --path 'nixmox:secrets.app.proxmox_api_token' < FILE`",
    ]);
  });

  it("warns, and creates it, for a single interface.db on a media host", () => {
    const plan = planOf(withApp((m) => {
      m.services.app.kind = "media";
      delete m.services.app.interface.auth;
    }));
    assert.deepEqual(plan.databases.filter((database) => database.service === "app").map((database) => database.name), ["app"]);
    // (The media apps' ports nothing reaches are the firewall's warnings, not this rule's.)
    assert.deepEqual(plan.warnings.filter((warning) => !warning.includes("is open to no other host")), [
      'service "app": interface.db is used by no built-in app on this host (on a media host PostgreSQL is used by prowlarr, radarr, sonarr, each through interface.dbs.<app>); ' +
        'NixMox still creates database "app" and role "app" on "postgresql" for a module of your own (nixos_modules)',
      smallManifestBuildWarning,
    ]);
  });

  it("warns for a database on a kind whose apps do not use PostgreSQL, and for a second database of a one-database app", () => {
    const plan = planOf(withApp((m) => {
      m.core_services.caddy.interface = { db: { host: "postgresql" } };
      m.services.app.interface.dbs = { attachments: { host: "postgresql" } };
    }));
    assert.deepEqual(plan.warnings, [
      'service "app": interface.dbs.attachments is used by no built-in app on this host (on a vaultwarden host PostgreSQL is used by vaultwarden through interface.db); ' +
        'NixMox still creates database "attachments" and role "attachments" on "postgresql" for a module of your own (nixos_modules)',
      'service "caddy": interface.db is used by no built-in app on this host (no built-in app of kind "caddy" uses PostgreSQL); ' +
        'NixMox still creates database "caddy" and role "caddy" on "postgresql" for a module of your own (nixos_modules)',
      smallManifestBuildWarning,
    ]);
  });

  it("gives an *arr entry without additionaldbs the log database <name>-log, and keeps the ones listed", () => {
    const plan = planOf(withApp((m) => {
      m.services.app.kind = "media";
      delete m.services.app.interface.auth;
      delete m.services.app.interface.db;
      m.services.app.interface.dbs = { sonarr: { host: "postgresql", name: "tv" }, radarr: { host: "postgresql", additionaldbs: ["radarr-logs"] } };
    }));
    assert.deepEqual(plan.databases.filter((database) => database.service === "app").map((database) => [database.name, database.additional]), [["radarr", ["radarr-logs"]], ["tv", ["tv-log"]]]);
    assert.deepEqual(plan.notes, ['service "app": interface.dbs.sonarr lists no additionaldbs: sonarr\'s log database is "tv-log" (owner "tv")']);
  });

  it("fails when the default log database collides with another database, naming the additionaldbs it came from", () => {
    const problems = problemsOf(withApp((m) => {
      m.services.app.kind = "media";
      delete m.services.app.interface.auth;
      m.services.app.interface.db = { host: "postgresql", name: "sonarr-log" };
      m.services.app.interface.dbs = { sonarr: { host: "postgresql" } };
    }));
    assert.deepEqual(problems, ['service "app": interface.dbs.sonarr.additionaldbs[0] database "sonarr-log" on "postgresql" is already claimed by service "app" (interface.db.name); give it another name']);
  });
});
