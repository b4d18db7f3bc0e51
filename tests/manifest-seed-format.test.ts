// Pure tests, no mocks: the original NixMox manifest format as real homelabs write it (issue 13), loaded from
// manifest/examples/seed-homelab.nix through the real nix-instantiate, then validated and planned.
import assert from "node:assert/strict";
import path from "node:path";
import { loadManifestData, loadPlan, planManifest, validateManifest, type Plan } from "../manifest";
import { ssoGatedClients } from "../components/homelab";
import { planHostData } from "../render";
import { problemsOf } from "./support/manifests";

const seedExample = path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix");

describe("manifest: the original NixMox format (manifest/examples/seed-homelab.nix)", function () {
  this.timeout(60_000);
  let plan: Plan;
  let raw: Record<string, unknown>;

  before(async () => {
    raw = (await loadManifestData(seedExample)) as Record<string, unknown>;
    plan = await loadPlan(seedExample);
  });

  it("validates with every service named after its kind, and plans 11 enabled services (mail disabled)", () => {
    assert.deepEqual(
      plan.services.map((service) => `${service.name}:${service.kind}`),
      ["authentik:authentik", "caddy:caddy", "dns:dns", "forgejo:forgejo", "guacamole:guacamole", "media:media", "monitoring:monitoring",
        "nextcloud:nextcloud", "openbao:openbao", "postgresql:postgresql", "vaultwarden:vaultwarden"],
    );
    assert.deepEqual(plan.disabled, ["mail"]);
  });

  it("plans no false cycle: pgAdmin's SSO on the PostgreSQL host is a soft edge, Authentik's database a hard one", () => {
    const edge = (from: string, to: string) => plan.edges.find((candidate) => candidate.from === from && candidate.to === to);
    assert.deepEqual(edge("postgresql", "authentik"), { from: "postgresql", to: "authentik", reasons: ["interface.auth.provider"], hard: false });
    assert.deepEqual(edge("authentik", "postgresql"), { from: "authentik", to: "postgresql", reasons: ["interface.db.host is postgresql's address"], hard: true });
    assert.deepEqual(plan.waves, [
      ["dns"],
      ["caddy", "postgresql"],
      ["authentik"],
      ["forgejo", "guacamole", "media", "monitoring", "nextcloud", "openbao", "vaultwarden"],
    ]);
    const postgresql = plan.services.find((service) => service.name === "postgresql")!;
    assert.deepEqual([postgresql.dependsOn, postgresql.ssoProviders], [["dns"], ["authentik"]]);
  });

  it("lets a client's health gate wait for its SSO objects, except where the provider boots after the client", () => {
    assert.deepEqual(ssoGatedClients(plan), ["forgejo", "guacamole", "media", "monitoring", "nextcloud", "openbao", "vaultwarden"]);
  });

  it("fails with the edge reasons when depends_on makes the soft relation hard in the other direction too", () => {
    const manifest = structuredClone(raw) as { core_services: { postgresql: { depends_on?: string[] } } };
    manifest.core_services.postgresql.depends_on = ["authentik"];
    assert.deepEqual(problemsOf(manifest), [
      `service "authentik": interface.db.host forms a dependency cycle: authentik → postgresql (interface.db.host is postgresql's address), ` +
        `postgresql → authentik (depends_on); remove one of: postgresql's depends_on "authentik"`,
    ]);
  });

  it("gives each named route its own auth: an OIDC client for jellyfin, forward auth through the named outpost for the *arr apps", () => {
    const mediaRoutes = plan.routes.filter((route) => route.service === "media").map((route) => [route.name, route.auth, route.forwardAuthUpstream, route.oidcClient, route.app]);
    assert.deepEqual(mediaRoutes, [
      ["jellyfin", "oidc", null, "media-jellyfin", "jellyfin"],
      ["prowlarr", "forward_auth", "10.40.0.12:9000", null, "prowlarr"],
      ["radarr", "forward_auth", "10.40.0.12:9000", null, "radarr"],
      ["sonarr", "forward_auth", "10.40.0.12:9000", null, "sonarr"],
      ["transmission", "forward_auth", "10.40.0.12:9000", null, "transmission"],
    ]);
    const jellyfin = plan.authClients.find((client) => client.type === "oidc" && client.service === "media");
    assert.deepEqual(jellyfin, {
      type: "oidc",
      service: "media",
      route: "jellyfin",
      slug: "media-jellyfin",
      provider: "authentik",
      clientId: "media-jellyfin",
      clientType: "confidential",
      redirectUris: ["https://jellyfin.home.lab/sso/OID/redirect/authentik"],
      scopes: ["openid", "email", "profile"],
      usernameClaim: "preferred_username",
      groupsClaim: "groups",
      clientSecret: "jellyfin_oidc_client_secret",
      launchUrl: "https://jellyfin.home.lab/",
    });
    assert.deepEqual(
      plan.authClients.filter((client) => client.type === "forward_auth").map((client) => client.type === "forward_auth" && [client.service, client.domains, client.upstream]),
      [
        ["media", ["prowlarr.home.lab", "radarr.home.lab", "sonarr.home.lab", "transmission.home.lab"], "10.40.0.12:9000"],
        // The seed routes Prometheus, Alertmanager and Loki with no auth: apps without a login get forward auth (N3).
        ["monitoring", ["alertmanager.home.lab", "loki.home.lab", "prometheus.home.lab"], "10.40.0.12:9000"],
      ],
    );
    assert.match(plan.routes.find((route) => route.name === "jellyfin")!.extraConfig, /X-Frame-Options DENY/);
  });

  it("creates each interface.dbs entry with its additional databases, one role and password each, flattened on the PostgreSQL host", () => {
    assert.deepEqual(
      plan.databases.filter((db) => db.service === "media").map((db) => [db.key, db.name, db.owner, db.additional, db.passwordSecret]),
      [
        ["prowlarr", "prowlarr", "prowlarr", ["prowlarr-log"], "prowlarr_db_password"],
        ["radarr", "radarr", "radarr", ["radarr-log"], "radarr_db_password"],
        ["sonarr", "sonarr", "sonarr", ["sonarr-log"], "sonarr_db_password"],
      ],
    );
    const postgres = planHostData(plan, "postgresql").postgresql!;
    assert.deepEqual(
      postgres.databases.filter((db) => db.service === "media").map((db) => `${db.name} ${db.owner} ${db.credential} ${db.passwordFile}`),
      [
        "prowlarr prowlarr media-prowlarr_db_password /var/lib/nixmox/secrets/media/prowlarr_db_password",
        "prowlarr-log prowlarr media-prowlarr_db_password /var/lib/nixmox/secrets/media/prowlarr_db_password",
        "radarr radarr media-radarr_db_password /var/lib/nixmox/secrets/media/radarr_db_password",
        "radarr-log radarr media-radarr_db_password /var/lib/nixmox/secrets/media/radarr_db_password",
        "sonarr sonarr media-sonarr_db_password /var/lib/nixmox/secrets/media/sonarr_db_password",
        "sonarr-log sonarr media-sonarr_db_password /var/lib/nixmox/secrets/media/sonarr_db_password",
      ],
    );
    assert.deepEqual(
      plan.secrets.filter((secret) => secret.configService === "media").map((secret) => `${secret.service}/${secret.name}`),
      [
        "media/jellyfin_oidc_client_secret", "media/prowlarr_db_password", "media/radarr_db_password", "media/sonarr_db_password",
        "postgresql/prowlarr_db_password", "postgresql/radarr_db_password", "postgresql/sonarr_db_password",
      ],
    );
  });

  it("plans the LDAP and RADIUS outposts on the authentik host, the RADIUS shared secret generated", () => {
    assert.deepEqual(plan.outposts, [
      { type: "ldap", provider: "authentik", baseDn: "dc=home,dc=lab" },
      { type: "radius", provider: "authentik", clientNetworks: ["10.40.0.0/24"], sharedSecret: "radius_shared_secret" },
    ]);
    const secret = plan.secrets.find((entry) => entry.name === "radius_shared_secret")!;
    assert.deepEqual([secret.service, secret.generated, secret.required], ["authentik", true, true]);
    const authentik = plan.services.find((service) => service.name === "authentik")!;
    assert.deepEqual([authentik.ports, authentik.udpPorts], [[3389, 9000], [1812]]);
  });

  it("opens the ports each kind and route needs without the manifest listing them", () => {
    const ports = Object.fromEntries(plan.services.map((service) => [service.name, `${service.ports.join(",")} / ${service.udpPorts.join(",")}`]));
    assert.deepEqual(ports, {
      authentik: "3389,9000 / 1812",
      caddy: "80,443 / 443",
      dns: "53 / 53",
      forgejo: "3000 / ",
      guacamole: "4822,8280 / ",
      media: "7878,8096,8989,9091,9696 / ",
      monitoring: "3000,3100,9090,9093 / ",
      nextcloud: "80,8080 / ",
      openbao: "8200 / ",
      postgresql: "5050,5432 / ",
      vaultwarden: "8080 / ",
    });
  });

  it("takes the global health knobs as defaults: health_check_timeout → start_period, retry_attempts → retries, retry_delay → interval", () => {
    const forgejo = plan.services.find((service) => service.name === "forgejo")!.health;
    assert.deepEqual([forgejo.intervalSeconds, forgejo.timeoutSeconds, forgejo.retries, forgejo.startPeriodSeconds], [30, 60, 3, 600]);
    const manifest = structuredClone(raw) as { services: { forgejo: { interface: { health: Record<string, unknown> } } } };
    manifest.services.forgejo.interface.health = { startup: "true" };
    const defaults = planManifest(validateManifest(manifest, "test"), { manifestDir: "/" }).services.find((service) => service.name === "forgejo")!.health;
    assert.deepEqual([defaults.intervalSeconds, defaults.timeoutSeconds, defaults.retries, defaults.startPeriodSeconds], [15, 5, 5, 600]);
  });

  it("shows the deployment phases, checked against the services, without letting them order anything", () => {
    assert.deepEqual(plan.phases.map((phase) => phase.name), ["nix_core", "services", "tf_infra"]);
    assert.deepEqual(plan.phases[1].services, ["vaultwarden", "guacamole", "monitoring", "nextcloud", "media", "mail", "openbao", "forgejo"]);
    assert.equal(plan.rollback, true);
  });

  it("fails on exactly one problem for the original project's plain-text RADIUS secret, pointing at the stack config", () => {
    const manifest = structuredClone(raw) as { network: { outposts: { radius: Record<string, unknown> } } };
    manifest.network.outposts.radius.shared_secret = "radius_secret_change_me";
    const problems = problemsOf(manifest);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^network: outposts\.radius\.shared_secret looks like a secret: .*nixmox:secrets\.<authentik service>\.radius_shared_secret/);
    assert.ok(!problems[0].includes("radius_secret_change_me"));
  });

  it("gives a built-in secret file an owner when the service declares it, on its own host only (custom modules read it as that user)", () => {
    const manifest = structuredClone(raw) as { services: { forgejo: Record<string, unknown> } };
    manifest.services.forgejo.secrets = { db_password: { owner: "forgejo", group: "forgejo", mode: "0440", restart_units: ["forgejo-setup.service"] } };
    const edited = planManifest(validateManifest(manifest, "test"), { manifestDir: "/" });
    const copies = edited.secrets.filter((secret) => secret.configService === "forgejo" && secret.name === "db_password");
    assert.deepEqual(copies.map((secret) => [secret.service, secret.owner, secret.group, secret.mode, secret.restartUnits, secret.generated]), [
      ["forgejo", "forgejo", "forgejo", "0440", ["forgejo-setup.service", "forgejo.service"], true],
      ["postgresql", "root", "root", "0400", ["nixmox-postgresql-passwords.service"], true],
    ]);
  });

  it("warns (never silently healthy) about a custom service without health checks, and uses its declared units otherwise", () => {
    const manifest = structuredClone(raw) as { services: Record<string, unknown> };
    manifest.services.wiki = { kind: "custom", ip: "10.40.0.30", vmid: 1030, nixos_modules: ["modules/wiki.nix"] };
    manifest.services.notes = {
      kind: "custom",
      ip: "10.40.0.31",
      vmid: 1031,
      nixos_modules: ["modules/notes.nix"],
      secrets: { api_key: { restart_units: ["notes.service"] } },
    };
    const withCustom = planManifest(validateManifest(manifest, "test"), { manifestDir: "/" });
    assert.deepEqual(withCustom.warnings, [
      'service "wiki": has no health checks, so its deploy is gated on nothing; add interface.health (startup, liveness or checks) or secrets with restart_units',
      'service "guacamole": port 4822 is open to no other host (no route, database or depends_on uses it); route it through the proxy, or list it in public_ports to open it to the LAN',
      'service "nextcloud": port 8080 is open to no other host (no route, database or depends_on uses it); route it through the proxy, or list it in public_ports to open it to the LAN',
      // The seed has no builder: every host builds itself, and these are too small for a NixOS evaluation (issue 18).
      "builds on the host itself with less memory than a NixOS evaluation needs (2048 MiB of memory + swap; nixpkgs#85148, nix#2664): dns (1024 MiB + 512 MiB swap), " +
        "guacamole (1024 MiB + 512 MiB swap), monitoring (1024 MiB + 512 MiB swap), notes (1024 MiB + 512 MiB swap), openbao (1024 MiB + 512 MiB swap), " +
        'vaultwarden (1024 MiB + 512 MiB swap), wiki (1024 MiB + 512 MiB swap); add a service of kind builder, set build.on = "controller", or give them more memory',
    ]);
    assert.deepEqual(withCustom.services.find((service) => service.name === "notes")!.health.checks.map((check) => check.name), ["systemd:notes.service"]);
  });
});
