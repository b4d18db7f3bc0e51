// The built-in modules of the application kinds pgadmin, forgejo, nextcloud, openbao and mail (issue 13): the seed
// example's data for them (planHostData / renderHost, no mocks), nix-instantiate --parse of every file they ship,
// and their pure Nix builders evaluated for real with nix-instantiate --eval. What the builders produce is run for
// real: pgAdmin's Python by python3, the SQL by a throwaway PostgreSQL, the scripts by bash. The scripts call
// stand-in forgejo/psql/nextcloud-occ/bao programs that only record argv, stdin and PGPASSWORD: they do not prove
// that the real CLIs accept these flags (that rests on the upstream sources cited in nixos/lib/*.nix). The modules are
// also called with the seed's data through tests/support/nixos-stub.nix (nixpkgs' lib and packages stood in): that
// proves their own wiring and assertion messages, not nixpkgs 25.11's option names or types (each module cites them).
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ManifestError, kindSpecs, loadManifestData, planManifest, validateManifest, type Plan } from "../manifest";
import { fileSources, planHostData, renderHost, type HostData, type OidcData } from "../render";
import { nixEval, shippedNix } from "./golden/render-fixtures";
import { evalAppModule, nixJson } from "./support/app-module";

const seedPath = path.join(__dirname, "..", "manifest", "examples", "seed-homelab.nix");
const secretsDir = "/var/lib/nixmox/secrets";

const oidcLib = `(import ${shippedNix("lib/oidc.nix")})`;
const pgadminLib = `(import ${shippedNix("lib/pgadmin.nix")})`;
const forgejoLib = `(import ${shippedNix("lib/forgejo.nix")})`;
const nextcloudLib = `(import ${shippedNix("lib/nextcloud.nix")})`;
const openbaoLib = `(import ${shippedNix("lib/openbao.nix")})`;

const json = nixJson;

const myFiles = [
  "services/pgadmin.nix",
  "services/forgejo.nix",
  "services/nextcloud.nix",
  "services/openbao.nix",
  "services/mail.nix",
  "lib/oidc.nix",
  "lib/pgadmin.nix",
  "lib/forgejo.nix",
  "lib/nextcloud.nix",
  "lib/openbao.nix",
];


/** The shipped module called with the host data and the `config.services` values this file's modules read. */
function evalModule(file: string, data: HostData, section: string, select: string): unknown {
  return evalAppModule(file, data, section, select, `{
        forgejo = { package = package "forgejo" "forgejo"; stateDir = "/var/lib/forgejo"; };
        nextcloud = { occ = package "nextcloud-occ" "nextcloud-occ"; package.packages.apps.user_oidc = "user_oidc-app"; };
        openbao.package = package "openbao" "bao";
      }`);
}

function planOf(raw: unknown): Plan {
  return planManifest(validateManifest(raw, "seed-homelab.nix"), { manifestDir: path.dirname(seedPath) });
}

function tempDir(label: string): string {
  return mkdtempSync(path.join(tmpdir(), `nixmox-kinds-${label}-`));
}

/** Writes an executable stand-in that appends "<name> <argv…>" (one argv element per line) and its stdin to the log. */
function standIn(dir: string, name: string, body = ""): string {
  const file = path.join(dir, name);
  writeFileSync(
    file,
    `#!/bin/bash\n{ printf '== %s\\n' ${name}; printf '%s\\n' "$@"; } >> "$LOG"\n${body}\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

function runBash(script: string, env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  // stdin from /dev/null: bash reads ~/.bashrc when its stdin is a socket (Node's default pipes are).
  const result = spawnSync("/bin/bash", ["--norc", "-e", "-c", script], {
    encoding: "utf8",
    timeout: 20_000,
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The log of stand-in calls as [name, ...argv] lists. */
function calls(log: string): string[][] {
  return readFileSync(log, "utf8")
    .split("== ")
    .filter(Boolean)
    .map((chunk) => chunk.replace(/\n$/, "").split("\n"));
}

describe("kinds: pgadmin, forgejo, nextcloud, openbao, mail", function () {
  this.timeout(120_000);
  let raw: Record<string, any>;
  let plan: Plan;

  before(async () => {
    raw = (await loadManifestData(seedPath)) as Record<string, any>;
    plan = planOf(raw);
  });

  describe("seed example: the data each module reads", () => {
    it("pgadmin on the PostgreSQL host: its route's port, URL and OIDC client, and the pgadmin module shipped and imported", () => {
      const data = planHostData(plan, "postgresql");
      const pgadmin = data.pgadmin!;
      assert.deepEqual(pgadmin.listen, { address: "10.40.0.11", port: 5050 });
      assert.deepEqual(data.host.ports, [5050, 5432]);
      assert.equal(pgadmin.publicUrl, "https://pgadmin.home.lab");
      assert.deepEqual(pgadmin.oidc, {
        provider: "authentik",
        clientId: "pgadmin-oidc",
        clientType: "confidential",
        clientSecretFile: `${secretsDir}/postgresql/oidc_client_secret`,
        issuer: "https://auth.home.lab/application/o/postgresql/",
        authorizationEndpoint: "https://auth.home.lab/application/o/authorize/",
        tokenEndpoint: "https://auth.home.lab/application/o/token/",
        userinfoEndpoint: "https://auth.home.lab/application/o/userinfo/",
        jwksEndpoint: "https://auth.home.lab/application/o/postgresql/jwks/",
        redirectUris: ["https://pgadmin.home.lab/oauth2/authorize"],
        scopes: ["openid", "email", "profile"],
        usernameClaim: "preferred_username",
        groupsClaim: "groups",
      });
      assert.deepEqual(pgadmin.apps.pgadmin.oidc, pgadmin.oidc);
      assert.equal(data.secrets.oidc_client_secret, pgadmin.oidc!.clientSecretFile);
      // The initial account's password, generated by NixMox; the module uses it by this name.
      assert.equal(data.secrets.pgadmin_password, `${secretsDir}/postgresql/pgadmin_password`);

      const host = renderHost(plan, "postgresql", fileSources(plan.manifestDir));
      for (const file of ["services/pgadmin.nix", "lib/pgadmin.nix", "lib/oidc.nix", "services/postgresql.nix"]) assert.ok(`nixos/${file}` in host.files, file);
      assert.match(host.files["flake.nix"], /\.\/nixos\/services\/postgresql\.nix\n\s+\.\/nixos\/services\/pgadmin\.nix\n/);
    });

    it("forgejo: port 3000, its database with the password file, and an OIDC client whose callback names the provider", () => {
      const data = planHostData(plan, "forgejo");
      const forgejo = data.forgejo!;
      const db = { host: "10.40.0.11", port: 5432, name: "forgejo", owner: "forgejo", passwordFile: `${secretsDir}/forgejo/db_password`, additional: [] };
      assert.deepEqual(forgejo.listen, { address: "10.40.0.21", port: 3000 });
      assert.deepEqual(forgejo.database, db);
      assert.deepEqual(forgejo.databases, { db });
      assert.equal(forgejo.publicUrl, "https://git.home.lab");
      assert.equal(forgejo.oidc!.clientId, "forgejo");
      assert.equal(forgejo.oidc!.clientSecretFile, `${secretsDir}/forgejo/oidc_client_secret`);
      assert.deepEqual(forgejo.oidc!.redirectUris, ["https://git.home.lab/user/oauth2/authentik/callback"]);
      // The module names its login source after oidc.provider; Forgejo's callback path carries that name.
      assert.equal(`${forgejo.publicUrl}${kindSpecs.forgejo.apps.forgejo.callback.replace("{provider}", forgejo.oidc!.provider)}`, forgejo.oidc!.redirectUris[0]);
      // secret_key: Forgejo's SECRET_KEY, a stack secret so a restored database can be read (D2).
      assert.deepEqual(data.secrets, { db_password: db.passwordFile, oidc_client_secret: forgejo.oidc!.clientSecretFile, secret_key: `${secretsDir}/forgejo/secret_key` });

      const server = planHostData(plan, "postgresql").postgresql!.databases.filter((entry) => entry.service === "forgejo");
      assert.deepEqual(server, [{ service: "forgejo", name: "forgejo", owner: "forgejo", clientIp: "10.40.0.21", credential: "forgejo-db_password", passwordFile: db.passwordFile }]);
    });

    it("forgejo with additional databases: listed on the app and created for the same owner on the PostgreSQL host", () => {
      const edited = structuredClone(raw);
      edited.services.forgejo.interface.db.additionaldbs = ["forgejo-log"];
      const edPlan = planOf(edited);
      assert.deepEqual(planHostData(edPlan, "forgejo").forgejo!.database!.additional, ["forgejo-log"]);
      const names = planHostData(edPlan, "postgresql").postgresql!.databases.filter((entry) => entry.owner === "forgejo").map((entry) => entry.name);
      assert.deepEqual(names, ["forgejo", "forgejo-log"]);
    });

    it("nextcloud: port 80 from its route, its database, the user_oidc client with the manifest's scopes", () => {
      const data = planHostData(plan, "nextcloud");
      const nextcloud = data.nextcloud!;
      assert.deepEqual(nextcloud.listen, { address: "10.40.0.15", port: 80 });
      assert.ok(data.host.ports.includes(80));
      assert.deepEqual(nextcloud.database, { host: "10.40.0.11", port: 5432, name: "nextcloud", owner: "nextcloud", passwordFile: `${secretsDir}/nextcloud/db_password`, additional: [] });
      assert.equal(nextcloud.oidc!.clientId, "nextcloud");
      assert.equal(nextcloud.oidc!.clientSecretFile, `${secretsDir}/nextcloud/oidc_client_secret`);
      assert.deepEqual(nextcloud.oidc!.scopes, ["email", "profile", "nextcloud", "openid"]);
      assert.deepEqual(nextcloud.oidc!.redirectUris, [`${nextcloud.publicUrl}${kindSpecs.nextcloud.apps.nextcloud.callback}`]);
      // The admin password nixpkgs' nextcloud-setup installs with, generated by NixMox; the module uses it by this name.
      assert.equal(data.secrets.admin_password, `${secretsDir}/nextcloud/admin_password`);
    });

    it("openbao: port 8200, no database, both redirect URIs of the client", () => {
      const openbao = planHostData(plan, "openbao").openbao!;
      assert.deepEqual(openbao.listen, { address: "10.40.0.20", port: 8200 });
      assert.equal(openbao.database, null);
      assert.deepEqual(openbao.databases, {});
      assert.equal(openbao.oidc!.clientId, "openbao-oidc");
      assert.equal(openbao.oidc!.clientSecretFile, `${secretsDir}/openbao/oidc_client_secret`);
      assert.deepEqual(openbao.oidc!.redirectUris, ["https://bao.home.lab/oidc/callback", `https://bao.home.lab${kindSpecs.openbao.apps.openbao.callback}`]);
    });

    it("mail: disabled in the seed renders nothing; enabled, it opens 25 and 587 and ships the mail module", () => {
      assert.throws(() => planHostData(plan, "mail"), (error: unknown) => error instanceof ManifestError && /is disabled/.test(error.message));
      const edited = structuredClone(raw);
      edited.services.mail.enable = true;
      const edPlan = planOf(edited);
      const data = planHostData(edPlan, "mail");
      assert.deepEqual(data.host.ports, [25, 587]);
      assert.equal(data.mail!.oidc, null);
      const host = renderHost(edPlan, "mail", fileSources(edPlan.manifestDir));
      assert.ok("nixos/services/mail.nix" in host.files);
      assert.match(host.files["flake.nix"], /\.\/nixos\/services\/mail\.nix/);
    });
  });

  describe("the modules called with the seed's data", () => {
    it("pgadmin on the PostgreSQL host: listens on the route's address and port, logs in through OIDC, its initial account on the homelab domain", () => {
      const data = planHostData(plan, "postgresql");
      const result = evalModule("services/pgadmin.nix", data, "pgadmin", `{
        inherit failed;
        inherit (m.config) warnings;
        inherit (m.config.services.pgadmin) port settings initialEmail initialPasswordFile;
        unit = m.config.systemd.services.pgadmin;
      }`) as Record<string, any>;
      assert.deepEqual(result.failed, []);
      assert.deepEqual(result.initialPasswordFile, { _type: "if", condition: true, content: `${secretsDir}/postgresql/pgadmin_password` });
      assert.deepEqual(result.warnings, []);
      assert.equal(result.port, 5050);
      assert.deepEqual(result.initialEmail, { _type: "if", condition: true, content: "nixmox-admin@home.lab" });
      const oauth2 = nixEval(`${pgadminLib}.oauth2Config { oidc = ${json(data.pgadmin!.oidc)}; credential = "oidc_client_secret"; }`);
      assert.deepEqual(result.settings, {
        DEFAULT_SERVER: "10.40.0.11",
        CHECK_EMAIL_DELIVERABILITY: false,
        ALLOW_SPECIAL_EMAIL_DOMAINS: ["lab"],
        AUTHENTICATION_SOURCES: ["oauth2", "internal"],
        OAUTH2_AUTO_CREATE_USER: true,
        OAUTH2_CONFIG: { _expr: oauth2 },
      });
      assert.deepEqual(result.unit, {
        // Review N1: the OAuth2 client (requests, certifi) verifies against the system bundle with the managed CA.
        environment: { REQUESTS_CA_BUNDLE: "/etc/ssl/certs/ca-certificates.crt", NIX_SSL_CERT_FILE: "/etc/ssl/certs/ca-certificates.crt" },
        serviceConfig: { LoadCredential: { _type: "if", condition: true, content: [`oidc_client_secret:${secretsDir}/postgresql/oidc_client_secret`] } },
        partOf: { _type: "if", condition: true, content: ["postgresql.service"] },
      });
    });

    it("postgresql with pgAdmin: pgAdmin's role and the generated secret with its password (review N2)", () => {
      const data = planHostData(plan, "postgresql");
      assert.deepEqual(data.postgresql!.admin, { role: "pgadmin", credential: "pgadmin-db-password", passwordFile: `${secretsDir}/postgresql/pgadmin_db_password` });
      assert.deepEqual(plan.secrets.find((entry) => entry.name === "pgadmin_db_password"), {
        name: "pgadmin_db_password",
        configService: "postgresql",
        service: "postgresql",
        path: `${secretsDir}/postgresql/pgadmin_db_password`,
        owner: "root",
        group: "root",
        mode: "0400",
        restartUnits: ["nixmox-postgresql-passwords.service"],
        generated: true,
        required: true,
        description: 'password of pgAdmin\'s PostgreSQL role "pgadmin"',
      });
    });

    it("pgadmin takes another initial email, fails without the pgadmin_password secret, and warns when the scopes lack email", () => {
      const data = planHostData(plan, "postgresql");
      Object.assign(data.pgadmin!, { initialEmail: "admin@home.lab" });
      data.pgadmin!.oidc!.scopes = ["openid", "profile"];
      const result = evalModule("services/pgadmin.nix", data, "pgadmin", `{
        inherit failed;
        inherit (m.config) warnings;
        inherit (m.config.services.pgadmin) initialEmail initialPasswordFile;
      }`);
      assert.deepEqual(result, {
        failed: [],
        warnings: [
          'nixmox pgadmin: service "postgresql": the OIDC scopes ["openid","profile"] do not include email; pgAdmin refuses OAuth2 logins without an email claim. Add "email" to interface.auth.oidc.scopes.',
        ],
        initialEmail: { _type: "if", condition: true, content: "admin@home.lab" },
        initialPasswordFile: { _type: "if", condition: true, content: `${secretsDir}/postgresql/pgadmin_password` },
      });
      delete data.secrets.pgadmin_password;
      assert.deepEqual(evalModule("services/pgadmin.nix", data, "pgadmin", "failed"), [
        'nixmox pgadmin: service "postgresql" has no secret pgadmin_password (the initial account\'s password, which NixMox generates for hosts running pgAdmin); re-render with this NixMox version or set nixmox.pgadmin.initialPasswordFile.',
      ]);
    });

    it("forgejo: PostgreSQL from interface.db, the route's domain and URL, SSO-only sign-up, and the login source in preStart", () => {
      const data = planHostData(plan, "forgejo");
      const result = evalModule("services/forgejo.nix", data, "forgejo", `{
        inherit failed;
        inherit (m.config.services.forgejo) database settings;
        secretKey = m.config.services.forgejo.secrets.security.SECRET_KEY;
        unit = m.config.systemd.services.forgejo;
        retry = { inherit (m.config.systemd.services.nixmox-forgejo-sso-retry) condition; unit = m.config.systemd.services.nixmox-forgejo-sso-retry.content.unitConfig; timer = m.config.systemd.timers.nixmox-forgejo-sso-retry.content; };
      }`) as Record<string, any>;
      assert.deepEqual(result.failed, []);
      assert.deepEqual(result.database, {
        _type: "if",
        condition: true,
        content: { type: "postgres", host: "10.40.0.11", port: 5432, name: "forgejo", user: "forgejo", passwordFile: `${secretsDir}/forgejo/db_password`, createDatabase: false },
      });
      // D2: the stack secret replaces the key nixpkgs would generate into the state directory.
      assert.deepEqual(result.secretKey, { _type: "if", condition: true, content: { _type: "override", priority: 50, content: `${secretsDir}/forgejo/secret_key` } });
      assert.deepEqual(
        plan.secrets.filter((entry) => ["secret_key", "grafana_secret_key", "grafana_admin_password"].includes(entry.name)).map((entry) => [entry.service, entry.name, entry.generated, entry.restartUnits]),
        [
          ["authentik", "secret_key", true, kindSpecs.authentik.units],
          ["forgejo", "secret_key", true, ["forgejo.service"]],
          ["monitoring", "grafana_admin_password", true, kindSpecs.monitoring.units],
          ["monitoring", "grafana_secret_key", true, kindSpecs.monitoring.units],
        ],
      );
      assert.deepEqual(result.settings, {
        server: { HTTP_ADDR: "10.40.0.21", HTTP_PORT: 3000, SSH_DOMAIN: "forgejo.home.lab", SSH_PORT: 22, DOMAIN: "git.home.lab", ROOT_URL: "https://git.home.lab/" },
        session: { COOKIE_SECURE: true },
        service: { ALLOW_ONLY_EXTERNAL_REGISTRATION: true },
        oauth2_client: { ENABLE_AUTO_REGISTRATION: true, USERNAME: "nickname", ACCOUNT_LINKING: "login" },
      });
      assert.equal(result.unit.condition, true);
      assert.deepEqual(result.unit.content.serviceConfig.LoadCredential, [
        `nixmox_oidc_client_secret:${secretsDir}/forgejo/oidc_client_secret`,
        `nixmox_db_password:${secretsDir}/forgejo/db_password`,
      ]);
      const preStart = nixEval(
        `${forgejoLib}.sourceScript { forgejo = "/nix/store/stub-forgejo/bin/forgejo"; awk = "/nix/store/stub-gawk/bin/awk"; psql = "/nix/store/stub-postgresql/bin/psql"; name = "authentik"; oidc = ${json(data.forgejo!.oidc)}; db = ${json(data.forgejo!.database)}; sqlFile = "/nix/store/stub-nixmox-forgejo-oidc-secret.sql"; dbCredential = "nixmox_db_password"; pendingFile = "/var/lib/forgejo/nixmox-oidc-source-pending"; }`,
      );
      assert.deepEqual(result.unit.content.preStart, { _type: "order", priority: 1500, content: preStart });
      assert.deepEqual(result.retry, { condition: true, unit: { ConditionPathExists: "/var/lib/forgejo/nixmox-oidc-source-pending" }, timer: { wantedBy: ["timers.target"], timerConfig: { OnCalendar: "*:*:0/10" } } });
    });

    it("forgejo: fails with human messages for a closed port and a username claim Forgejo cannot use", () => {
      const data = planHostData(plan, "forgejo");
      data.host.ports = [8080];
      data.forgejo!.oidc!.usernameClaim = "name";
      assert.deepEqual(evalModule("services/forgejo.nix", data, "forgejo", "failed"), [
        'nixmox forgejo: service "forgejo" listens on 3000 but ports does not list it; add it to ports.',
        'nixmox forgejo: service "forgejo": Forgejo takes user names only from the claims preferred_username, sub or email, not "name"; set interface.auth.oidc.username_claim to one of them.',
      ]);
    });

    it("nextcloud: PostgreSQL with the password credential, the generated admin password, nginx on the manifest's address and port, user_oidc upserted by a oneshot", () => {
      const data = planHostData(plan, "nextcloud");
      const result = evalModule("services/nextcloud.nix", data, "nextcloud", `{
        inherit failed;
        nextcloud = { inherit (m.config.services.nextcloud) hostName https config settings extraApps; };
        nginx = m.config.services.nginx.virtualHosts;
        oidc = m.config.systemd.services.nextcloud-oidc-provider;
      }`) as Record<string, any>;
      assert.deepEqual(result.failed, []);
      assert.deepEqual(result.nextcloud, {
        hostName: "cloud.home.lab",
        https: true,
        config: {
          dbtype: "pgsql",
          adminpassFile: { _type: "if", condition: true, content: `${secretsDir}/nextcloud/admin_password` },
          dbhost: "10.40.0.11:5432",
          dbname: "nextcloud",
          dbuser: "nextcloud",
          dbpassFile: `${secretsDir}/nextcloud/db_password`,
        },
        settings: { trusted_proxies: ["10.40.0.0/24"], overwriteprotocol: "https", "overwrite.cli.url": "https://cloud.home.lab" },
        extraApps: { _type: "if", condition: true, content: { user_oidc: "user_oidc-app" } },
      });
      assert.deepEqual(result.nginx, { "cloud.home.lab": { listen: [{ addr: "10.40.0.15", port: 80 }] } });
      assert.equal(result.oidc.condition, true);
      assert.deepEqual(result.oidc.content.serviceConfig, {
        Type: "oneshot",
        RemainAfterExit: true,
        // Tried again when the upsert fails (the database not reachable yet); no Nextcloud restart is needed after it.
        Restart: "on-failure",
        RestartSec: "15s",
        User: "nextcloud",
        LoadCredential: [`oidc_client_secret:${secretsDir}/nextcloud/oidc_client_secret`, `dbpass:${secretsDir}/nextcloud/db_password`],
      });
      assert.deepEqual([result.oidc.content.after, result.oidc.content.partOf], [["nextcloud-setup.service"], ["phpfpm-nextcloud.service"]]);
      assert.equal(
        result.oidc.content.script,
        nixEval(`${nextcloudLib}.providerCommand { occ = "/nix/store/stub-nextcloud-occ/bin/nextcloud-occ"; oidc = ${json(data.nextcloud!.oidc)}; credential = "oidc_client_secret"; }`),
      );
    });

    it("nextcloud fails with a human message without the admin_password secret", () => {
      const data = planHostData(plan, "nextcloud");
      delete data.secrets.admin_password;
      assert.deepEqual(evalModule("services/nextcloud.nix", data, "nextcloud", "failed"), [
        'nixmox nextcloud: service "nextcloud" has no secret admin_password (the admin account\'s password Nextcloud is installed with, which NixMox generates for nextcloud hosts); re-render with this NixMox version or set nixmox.nextcloud.adminPasswordFile.',
      ]);
    });

    it("openbao: the listener on the manifest's address and port, cluster traffic on loopback, and the OIDC helper installed", () => {
      const data = planHostData(plan, "openbao");
      const result = evalModule("services/openbao.nix", data, "openbao", `{
        inherit failed;
        inherit (m.config.services.openbao) settings;
        packages = map (p: p.text) m.config.environment.systemPackages;
        listener = { inherit (m.config.systemd.services.nixmox-openbao-listener) restartTriggers after script; };
      }`) as Record<string, any>;
      assert.deepEqual(result.failed, []);
      assert.deepEqual(result.settings, {
        ui: true,
        listener: { nixmox: { type: "tcp", address: "10.40.0.20:8200", cluster_address: "127.0.0.1:8201", tls_disable: true } },
        api_addr: "https://bao.home.lab",
        cluster_addr: "http://127.0.0.1:8201",
        storage: { raft: { path: "/var/lib/openbao", node_id: "openbao" } },
      });
      assert.deepEqual(result.packages, [
        nixEval(`${openbaoLib}.healthScript { curl = "/nix/store/stub-curl/bin/curl"; address = "10.40.0.20:8200"; }`),
        nixEval(`${openbaoLib}.oidcScript { bao = "/nix/store/stub-openbao/bin/bao"; address = "http://10.40.0.20:8200"; oidc = ${json(data.openbao!.oidc)}; secretFile = "${secretsDir}/openbao/oidc_client_secret"; }`),
      ]);
      // Review N5: a listener change restarts OpenBao although nixpkgs' unit has restartIfChanged = false.
      assert.deepEqual(result.listener, {
        restartTriggers: ["10.40.0.20:8200"],
        after: ["openbao.service"],
        script: nixEval(`${openbaoLib}.listenerRestartScript { systemctl = "/nix/store/stub-systemd/bin/systemctl"; listener = "10.40.0.20:8200"; stateFile = "/var/lib/nixmox/openbao/listener"; }`),
      });
      // The kind's health checks run the helper: the deploy waits for the listener, refresh and status for "serving".
      assert.deepEqual(plan.services.find((service) => service.name === "openbao")!.health.checks.filter((check) => check.name.startsWith("openbao:")), [
        { name: "openbao:listening", phase: "startup", kind: "command", command: "/run/current-system/sw/bin/nixmox-openbao-health listening" },
        { name: "openbao:serving", phase: "liveness", kind: "command", command: "/run/current-system/sw/bin/nixmox-openbao-health serving" },
      ]);
    });

    it("mail: Postfix for the homelab network on 25 and 587, and a human message when a port is closed", () => {
      const edited = structuredClone(raw);
      edited.services.mail.enable = true;
      const data = planHostData(planOf(edited), "mail");
      assert.deepEqual(evalModule("services/mail.nix", data, "mail", "{ inherit failed; inherit (m.config.services.postfix) settings enableSubmission submissionOptions; }"), {
        failed: [],
        settings: { main: { myhostname: "mail.home.lab", mydomain: "home.lab", mydestination: ["mail.home.lab", "localhost.home.lab", "localhost"], mynetworks: ["127.0.0.0/8", "10.40.0.0/24"] } },
        enableSubmission: true,
        submissionOptions: { smtpd_client_restrictions: "permit_mynetworks,reject", smtpd_relay_restrictions: "permit_mynetworks,reject" },
      });
      data.host.ports = [25];
      assert.deepEqual(evalModule("services/mail.nix", data, "mail", "failed"), [
        'nixmox mail: service "mail" runs Postfix on 587 but ports does not list it; add it to ports.',
      ]);
    });
  });

  describe("files shipped", () => {
    it("every file these modules ship passes nix-instantiate --parse", () => {
      for (const file of myFiles) {
        const result = spawnSync("nix-instantiate", ["--parse", shippedNix(file)], { encoding: "utf8", timeout: 30_000 });
        assert.equal(result.status, 0, `nixos/${file}: ${result.stderr}`);
      }
    });
  });

  describe("lib/oidc.nix", () => {
    it("puts exactly one / between the issuer and .well-known", () => {
      assert.deepEqual(nixEval(`map ${oidcLib}.discoveryUrl [ "https://a.lan/application/o/x/" "https://a.lan/realm" ]`), [
        "https://a.lan/application/o/x/.well-known/openid-configuration",
        "https://a.lan/realm/.well-known/openid-configuration",
      ]);
    });

    it("accepts plain provider names only", () => {
      assert.deepEqual(nixEval(`map ${oidcLib}.isPlainName [ "authentik" "auth-2.x_y" "a b" "a'b" "" "-x" ]`), [true, true, false, false, false, false]);
    });
  });

  describe("lib/pgadmin.nix, run by python3", () => {
    const evalConfig = (oidc: OidcData, env: Record<string, string>) => {
      const expression = nixEval(`${pgadminLib}.oauth2Config { oidc = ${json(oidc)}; credential = "oidc_client_secret"; }`) as string;
      const out = execFileSync("python3", ["-c", `import json, sys\nsys.stdout.write(json.dumps(${expression}))`], { encoding: "utf8", env: { PATH: process.env.PATH ?? "", ...env } });
      return { config: JSON.parse(out) as Array<Record<string, string>> };
    };

    it("builds OAUTH2_CONFIG from the seed's client and reads the secret from $CREDENTIALS_DIRECTORY at load time", () => {
      const oidc = planHostData(plan, "postgresql").pgadmin!.oidc!;
      const credentials = tempDir("pgadmin");
      try {
        writeFileSync(path.join(credentials, "oidc_client_secret"), "pg'se\"cret\n");
        const { config } = evalConfig(oidc, { CREDENTIALS_DIRECTORY: credentials });
        assert.deepEqual(config, [
          {
            OAUTH2_API_BASE_URL: "https://auth.home.lab/application/o/postgresql/",
            OAUTH2_AUTHORIZATION_URL: "https://auth.home.lab/application/o/authorize/",
            OAUTH2_CLIENT_ID: "pgadmin-oidc",
            OAUTH2_CLIENT_SECRET: "pg'se\"cret",
            OAUTH2_DISPLAY_NAME: "authentik",
            OAUTH2_NAME: "authentik",
            OAUTH2_SCOPE: "openid email profile",
            OAUTH2_SERVER_METADATA_URL: "https://auth.home.lab/application/o/postgresql/.well-known/openid-configuration",
            OAUTH2_TOKEN_URL: "https://auth.home.lab/application/o/token/",
            OAUTH2_USERINFO_ENDPOINT: "https://auth.home.lab/application/o/userinfo/",
            OAUTH2_USERNAME_CLAIM: "preferred_username",
          },
        ]);
      } finally {
        rmSync(credentials, { recursive: true, force: true });
      }
    });

    it("still loads outside the unit (no $CREDENTIALS_DIRECTORY): the secret is empty, the rest unchanged", () => {
      const { config } = evalConfig(planHostData(plan, "postgresql").pgadmin!.oidc!, {});
      assert.equal(config[0].OAUTH2_CLIENT_SECRET, "");
      assert.equal(config[0].OAUTH2_CLIENT_ID, "pgadmin-oidc");
    });
  });

  describe("lib/forgejo.nix", () => {
    it("maps the username claim to Forgejo's [oauth2_client] USERNAME, null for claims Forgejo cannot use", () => {
      assert.deepEqual(nixEval(`map ${forgejoLib}.usernameSource [ "preferred_username" "sub" "email" "name" ]`), ["nickname", "userid", "email", null]);
    });

    it("gives add-oauth/update-oauth every field of the seed's client except the secret", () => {
      const oidc = planHostData(plan, "forgejo").forgejo!.oidc!;
      assert.deepEqual(nixEval(`${forgejoLib}.oauthArgs { name = "authentik"; oidc = ${json(oidc)}; }`), [
        "--name", "authentik",
        "--provider", "openidConnect",
        "--key", "forgejo",
        "--auto-discover-url", "https://auth.home.lab/application/o/forgejo/.well-known/openid-configuration",
        "--scopes", "openid", "--scopes", "email", "--scopes", "profile",
        "--group-claim-name", "groups",
      ]);
    });

    it("the \"can log in\" check: passes until the provider knows the client, then only when Forgejo sends logins to its authorization endpoint (real sh and curl, stand-in HTTP servers)", async () => {
      let discovery = 404;
      let login: { status: number; location?: string } = { status: 404 };
      const server = createHttpServer((req, res) => {
        if (req.url === "/application/o/forgejo/.well-known/openid-configuration") res.writeHead(discovery);
        else if (req.url === "/user/oauth2/authentik") res.writeHead(login.status, login.location ? { Location: login.location } : {});
        else res.writeHead(500);
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
      const port = (server.address() as { port: number }).port;
      const base = `http://127.0.0.1:${port}`;
      const oidc = { ...planHostData(plan, "forgejo").forgejo!.oidc!, issuer: `${base}/application/o/forgejo/`, authorizationEndpoint: `${base}/application/o/authorize/` };
      const script = nixEval(`${forgejoLib}.ssoCheckScript { curl = "curl"; listen = { address = "127.0.0.1"; port = ${port}; }; name = "authentik"; oidc = ${json(oidc)}; }`) as string;
      const check = () =>
        new Promise<{ status: number | null; stdout: string }>((resolve) => {
          const child = spawn("/bin/sh", ["-c", script], { stdio: ["ignore", "pipe", "inherit"] });
          let stdout = "";
          child.stdout.on("data", (chunk) => (stdout += chunk));
          child.on("close", (status) => resolve({ status, stdout }));
        });
      try {
        const early = await check();
        assert.equal(early.status, 0);
        assert.match(early.stdout, /does not serve .*openid-configuration yet \(its application is created after this host's rebuild\)/);
        discovery = 200;
        const broken = await check();
        assert.equal(broken.status, 1);
        assert.match(broken.stdout, /does not send users to the SSO provider \(got: 404 \)/);
        login = { status: 307, location: `${base}/application/o/authorize/?client_id=someone-else&state=x` };
        assert.equal((await check()).status, 1, "another client's redirect is no login");
        login = { status: 307, location: `${base}/application/o/authorize/?client_id=forgejo&redirect_uri=x&state=y` };
        const works = await check();
        assert.deepEqual(works, { status: 0, stdout: `nixmox forgejo: ${base}/user/oauth2/authentik sends users to ${base}/application/o/authorize/\n` });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });

    describe("the preStart fragment, run by bash against stand-ins", () => {
      let dir: string;
      let script: string;
      let oidc: OidcData;
      const dbPassword = "db-pass'word";
      const clientSecret = "client-secret-value";

      before(() => {
        dir = tempDir("forgejo");
        const data = planHostData(plan, "forgejo").forgejo!;
        oidc = data.oidc!;
        const listing = "printf 'ID\\tName\\tType\\tEnabled\\n3\\tauthentik-old\\tOAuth2\\ttrue\\n'; [ -z \"$EXISTING\" ] || printf '7\\tauthentik\\tOAuth2\\ttrue\\n'";
        const forgejo = standIn(dir, "forgejo", `if [ "$1 $2 $3" = "admin auth list" ]; then ${listing}; fi\n[ "$3" != add-oauth ] || [ -z "$FAIL" ] || exit 1`);
        const psql = standIn(dir, "psql", 'printf "%s" "$PGPASSWORD" > "$PGPASSWORD_LOG"');
        writeFileSync(path.join(dir, "nixmox_db_password"), `${dbPassword}\n`);
        writeFileSync(path.join(dir, "nixmox_oidc_client_secret"), `${clientSecret}\n`);
        script = nixEval(
          `${forgejoLib}.sourceScript { forgejo = ${JSON.stringify(forgejo)}; awk = "awk"; psql = ${JSON.stringify(psql)}; name = "authentik"; oidc = ${json(oidc)}; db = ${json(data.database)}; sqlFile = "/nix/store/x-secret.sql"; dbCredential = "nixmox_db_password"; pendingFile = ${JSON.stringify(path.join(dir, "pending"))}; }`,
        ) as string;
      });
      after(() => rmSync(dir, { recursive: true, force: true }));

      const run = (existing: boolean, fail = false) => {
        const log = path.join(dir, `log-${existing}-${fail}`);
        const passwordLog = path.join(dir, `pgpassword-${existing}-${fail}`);
        const result = runBash(script, { LOG: log, PGPASSWORD_LOG: passwordLog, CREDENTIALS_DIRECTORY: dir, EXISTING: existing ? "1" : "", FAIL: fail ? "1" : "" });
        assert.equal(result.status, 0, result.stderr);
        return { calls: calls(log), log: readFileSync(log, "utf8"), pgpassword: fail ? "" : readFileSync(passwordLog, "utf8"), stderr: result.stderr };
      };
      const args = () => nixEval(`${forgejoLib}.oauthArgs { name = "authentik"; oidc = ${json(oidc)}; }`) as string[];
      const psqlCall = ["psql", "--no-psqlrc", "--quiet", "--host=10.40.0.11", "--port=5432", "--dbname=forgejo", "--username=forgejo", "--file=/nix/store/x-secret.sql"];

      it("adds the source when no source has exactly the provider's name, then sets the secret with psql", () => {
        const { calls: made, log, pgpassword } = run(false);
        assert.deepEqual(made, [["forgejo", "admin", "auth", "list"], ["forgejo", "admin", "auth", "add-oauth", ...args()], psqlCall]);
        assert.equal(pgpassword, dbPassword, "psql gets the database password in its environment");
        assert.ok(!log.includes(clientSecret) && !log.includes(dbPassword), "no secret in any argv");
      });

      it("lets Forgejo start without the source when the CLI fails (provider not reachable yet), saying why", () => {
        const { calls: made, stderr } = run(false, true);
        assert.deepEqual(made, [["forgejo", "admin", "auth", "list"], ["forgejo", "admin", "auth", "add-oauth", ...args()]]);
        assert.equal(
          stderr.trim(),
          'nixmox forgejo: could not create or update the login source "authentik" (is https://auth.home.lab/application/o/forgejo/.well-known/openid-configuration reachable?); Forgejo starts without it and restarts once that URL answers',
        );
        assert.ok(existsSync(path.join(dir, "pending")), "the retry timer's marker is written");
        run(false);
        assert.ok(!existsSync(path.join(dir, "pending")), "and cleared once the source is set up");
      });

      it("updates the existing source in place by its id", () => {
        const { calls: made, log } = run(true);
        assert.deepEqual(made, [["forgejo", "admin", "auth", "list"], ["forgejo", "admin", "auth", "update-oauth", "--id", "7", ...args()], psqlCall]);
        assert.ok(!log.includes(clientSecret) && !log.includes(dbPassword));
      });
    });

    describe("the secret SQL, on a real throwaway PostgreSQL", () => {
      // Debian's postgresql package (.ci/run): the newest installed major version.
      const pgBin = path.join("/usr/lib/postgresql", readdirSync("/usr/lib/postgresql").sort((a, b) => Number(a) - Number(b)).pop() ?? "", "bin");
      const asRoot = process.getuid?.() === 0;
      const as = (command: string, args: string[]) => (asRoot ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args]) as [string, string[]];
      let dir: string;
      let server: ChildProcess | undefined;
      let serverLog = "";
      const port = "55432";
      const secret = "it's a \"secret\"\\value";

      const psql = (args: string[], env: Record<string, string> = {}) => {
        const [command, argv] = as(`${pgBin}/psql`, ["--no-psqlrc", "--quiet", "--tuples-only", "--no-align", `--host=${dir}`, `--port=${port}`, "--dbname=postgres", ...args]);
        const result = spawnSync(command, argv, { encoding: "utf8", timeout: 20_000, env: { PATH: process.env.PATH ?? "", ...env } });
        assert.equal(result.status, 0, result.stderr);
        return result.stdout.trim();
      };

      before(async function () {
        dir = tempDir("pg");
        chmodSync(dir, 0o755);
        if (asRoot) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), 0);
        const [initdb, initArgs] = as(`${pgBin}/initdb`, ["--auth=trust", "--username=postgres", `--pgdata=${dir}/data`]);
        execFileSync(initdb, initArgs, { stdio: "pipe", timeout: 60_000 });
        const [postgres, pgArgs] = as(`${pgBin}/postgres`, ["-D", `${dir}/data`, "-p", port, "-c", "listen_addresses=", "-c", `unix_socket_directories=${dir}`]);
        server = spawn(postgres, pgArgs, { stdio: ["ignore", "pipe", "pipe"] });
        server.stderr!.on("data", (chunk) => (serverLog += String(chunk)));
        const deadline = Date.now() + 30_000;
        while (!/ready to accept connections/.test(serverLog)) {
          if (Date.now() > deadline) throw new Error(`PostgreSQL did not start:\n${serverLog}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        // Forgejo's login_source columns that matter here (models/auth/source.go: Name unique, Cfg TEXT).
        psql(["--command=CREATE TABLE login_source (id bigserial PRIMARY KEY, type int, name varchar(255) UNIQUE, cfg text)"]);
        psql([`--command=INSERT INTO login_source (type, name, cfg) VALUES (6, 'authentik', '{"Provider":"openidConnect","ClientID":"forgejo","ClientSecret":"","Scopes":["openid"]}'), (6, 'other', '{"ClientSecret":"keep"}')`]);
      });

      after(() => {
        server?.kill("SIGINT");
        rmSync(dir, { recursive: true, force: true });
      });

      it("stores the secret from the credential file in the named source only, idempotently, without logging it", () => {
        const sql = path.join(dir, "secret.sql");
        writeFileSync(sql, nixEval(`${forgejoLib}.secretSql { name = "authentik"; credential = "oidc"; }`) as string);
        writeFileSync(path.join(dir, "oidc"), `${secret}\n`);
        chmodSync(sql, 0o644);
        chmodSync(path.join(dir, "oidc"), 0o644);
        for (let i = 0; i < 2; i += 1) psql([`--file=${sql}`], { CREDENTIALS_DIRECTORY: dir });
        const rows = psql(["--command=SELECT name || ' ' || cfg FROM login_source ORDER BY name"]).split("\n");
        assert.deepEqual(JSON.parse(rows[0].slice("authentik ".length)), { Provider: "openidConnect", ClientID: "forgejo", ClientSecret: secret, Scopes: ["openid"] });
        assert.deepEqual(JSON.parse(rows[1].slice("other ".length)), { ClientSecret: "keep" });
        assert.ok(!serverLog.includes("secret"), serverLog);
      });
    });
  });

  describe("lib/nextcloud.nix", () => {
    it("the \"can log in\" check: passes until the provider knows the client, then only when user_oidc stored the provider (real sh and curl, a stand-in systemctl)", async () => {
      let discovery = 404;
      const server = createHttpServer((req, res) => {
        res.writeHead(req.url === "/application/o/nextcloud/.well-known/openid-configuration" ? discovery : 500);
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      const work = tempDir("nextcloud-sso");
      const systemctl = standIn(work, "systemctl", '[ -n "$ACTIVE" ]');
      const oidc = { ...planHostData(plan, "nextcloud").nextcloud!.oidc!, issuer: `${base}/application/o/nextcloud/` };
      const script = nixEval(`${nextcloudLib}.ssoCheckScript { curl = "curl"; systemctl = ${JSON.stringify(systemctl)}; oidc = ${json(oidc)}; }`) as string;
      const check = (active: boolean) =>
        new Promise<{ status: number | null; stdout: string }>((resolve) => {
          const child = spawn("/bin/sh", ["-c", script], { stdio: ["ignore", "pipe", "inherit"], env: { PATH: process.env.PATH, LOG: path.join(work, "log"), ACTIVE: active ? "1" : "" } });
          let stdout = "";
          child.stdout.on("data", (chunk) => (stdout += chunk));
          child.on("close", (status) => resolve({ status, stdout }));
        });
      try {
        assert.equal((await check(false)).status, 0, "before the provider has the application");
        discovery = 200;
        const missing = await check(false);
        assert.equal(missing.status, 1);
        assert.match(missing.stdout, /user_oidc has no provider yet: nextcloud-oidc-provider\.service is not active/);
        assert.deepEqual(await check(true), { status: 0, stdout: "nixmox nextcloud: user_oidc has the provider authentik; logins go to https://auth.home.lab/application/o/authorize/\n" });
        assert.deepEqual(calls(path.join(work, "log")).at(-1), ["systemctl", "is-active", "--quiet", "nextcloud-oidc-provider.service"]);
      } finally {
        await new Promise((resolve) => server.close(resolve));
        rmSync(work, { recursive: true, force: true });
      }
    });

    it("runs occ user_oidc:provider with the seed's client and the secret's path, never the secret", () => {
      const oidc = planHostData(plan, "nextcloud").nextcloud!.oidc!;
      const dir = tempDir("nextcloud");
      try {
        const occ = standIn(dir, "nextcloud-occ");
        writeFileSync(path.join(dir, "oidc_client_secret"), "nc-secret\n");
        const command = nixEval(`${nextcloudLib}.providerCommand { occ = ${JSON.stringify(occ)}; oidc = ${json(oidc)}; credential = "oidc_client_secret"; }`) as string;
        const log = path.join(dir, "log");
        const result = runBash(command, { LOG: log, CREDENTIALS_DIRECTORY: dir });
        assert.equal(result.status, 0, result.stderr);
        assert.deepEqual(calls(log), [
          [
            "nextcloud-occ",
            "user_oidc:provider",
            "authentik",
            "--clientid=nextcloud",
            "--discoveryuri=https://auth.home.lab/application/o/nextcloud/.well-known/openid-configuration",
            "--scope=email profile nextcloud openid",
            "--unique-uid=0",
            "--mapping-uid=preferred_username",
            "--mapping-groups=groups",
            `--clientsecret-file=${dir}/oidc_client_secret`,
          ],
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("lib/openbao.nix", () => {
    let dir: string;
    let oidc: OidcData;
    const secret = "bao-secret";
    const script = (bao: string) =>
      nixEval(`${openbaoLib}.oidcScript { bao = ${JSON.stringify(bao)}; address = "http://10.40.0.20:8200"; oidc = ${json(oidc)}; secretFile = ${JSON.stringify(path.join(dir, "secret"))}; }`) as string;

    before(() => {
      dir = tempDir("openbao");
      oidc = planHostData(plan, "openbao").openbao!.oidc!;
      writeFileSync(path.join(dir, "secret"), `${secret}\n`);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    const run = (enabled: boolean, env: Record<string, string> = { BAO_TOKEN: "t" }) => {
      const log = path.join(dir, `log-${enabled}`);
      const stdin = path.join(dir, `stdin-${enabled}`);
      const bao = standIn(dir, "bao", `[ "$1 $2" != "auth list" ] || { [ -z "$ENABLED" ] || echo 'oidc/    oidc    auth_oidc_1'; }\n[ "$1 $2" != "write auth/oidc/config" ] || cat > "$STDIN_LOG"\nprintf 'BAO_ADDR=%s\\n' "$BAO_ADDR" >> "$LOG"`);
      const result = runBash(script(bao), { LOG: log, STDIN_LOG: stdin, ENABLED: enabled ? "1" : "", ...env });
      return { result, log, stdin };
    };

    it("enables the oidc method once, writes its config with the secret on stdin (first line, no newline) and the default role", () => {
      const first = run(false);
      assert.equal(first.result.status, 0, first.result.stderr);
      const made = calls(first.log).map((call) => call.filter((line) => !line.startsWith("BAO_ADDR=")));
      assert.deepEqual(made, [
        ["bao", "auth", "list"],
        ["bao", "auth", "enable", "oidc"],
        ["bao", "write", "auth/oidc/config", "oidc_discovery_url=https://auth.home.lab/application/o/openbao/", "oidc_client_id=openbao-oidc", "oidc_client_secret=-", "default_role=default"],
        [
          "bao", "write", "auth/oidc/role/default",
          "role_type=oidc",
          "user_claim=preferred_username",
          "groups_claim=groups",
          "allowed_redirect_uris=https://bao.home.lab/oidc/callback,https://bao.home.lab/ui/vault/auth/oidc/oidc/callback",
          "oidc_scopes=email,profile",
          "token_policies=default",
        ],
      ]);
      assert.equal(readFileSync(first.stdin, "utf8"), secret);
      assert.ok(!readFileSync(first.log, "utf8").includes(secret));
      assert.match(readFileSync(first.log, "utf8"), /BAO_ADDR=http:\/\/10\.40\.0\.20:8200/);

      const again = run(true);
      assert.equal(again.result.status, 0, again.result.stderr);
      assert.ok(!calls(again.log).some((call) => call[1] === "auth" && call[2] === "enable"), "an enabled method is not enabled again");
    });

    it("health: passes only when /v1/sys/health says unsealed and active; sealed fails with the unseal command; the startup mode wants any answer (real sh and curl, a stand-in OpenBao)", async () => {
      let status = 503;
      const server = createHttpServer((req, res) => {
        res.writeHead(req.url === "/v1/sys/health" ? status : 404);
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
      const address = `127.0.0.1:${(server.address() as { port: number }).port}`;
      const health = nixEval(`${openbaoLib}.healthScript { curl = "curl"; address = "${address}"; }`) as string;
      // Asynchronous: the stand-in answers from this process's event loop.
      const probe = (mode: string) =>
        new Promise<{ status: number | null; stdout: string }>((resolve) => {
          const child = spawn("/bin/sh", ["-c", health, "nixmox-openbao-health", mode], { stdio: ["ignore", "pipe", "inherit"] });
          let stdout = "";
          child.stdout.on("data", (chunk) => (stdout += chunk));
          child.on("close", (status) => resolve({ status, stdout }));
        });
      try {
        const sealed = await probe("serving");
        assert.equal(sealed.status, 1);
        assert.equal(sealed.stdout, `OpenBao at ${address} is sealed, as after every restart: unseal it with \`BAO_ADDR=http://${address} bao operator unseal\`, once per unseal key up to the threshold\n`);
        assert.deepEqual(await probe("listening"), { status: 0, stdout: `OpenBao answers at ${address} (HTTP 503)\n` });
        status = 501;
        assert.match((await probe("serving")).stdout, /is not initialised: run `BAO_ADDR=http:\/\/127\.0\.0\.1:\d+ bao operator init` once/);
        status = 429;
        assert.deepEqual(await probe("serving"), { status: 1, stdout: `OpenBao at ${address} is unsealed but a standby node, not the active one\n` });
        status = 200;
        assert.deepEqual(await probe("serving"), { status: 0, stdout: `OpenBao at ${address} is unsealed and active\n` });
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      assert.deepEqual(await probe("listening"), { status: 1, stdout: `OpenBao does not answer at ${address} (see: systemctl status openbao)\n` });
    });

    it("restarts OpenBao when the listener differs from the one it started with, and only then (real bash, a stand-in systemctl)", () => {
      const state = path.join(dir, "state", "listener");
      const systemctl = standIn(dir, "systemctl");
      const log = path.join(dir, "systemctl-log");
      const once = (listener: string) =>
        runBash(nixEval(`${openbaoLib}.listenerRestartScript { systemctl = ${JSON.stringify(systemctl)}; listener = ${JSON.stringify(listener)}; stateFile = ${JSON.stringify(state)}; }`) as string, { LOG: log });
      writeFileSync(log, "");
      assert.equal(once("10.40.0.20:8200").status, 0);
      assert.equal(readFileSync(state, "utf8"), "10.40.0.20:8200\n");
      assert.equal(once("10.40.0.20:8200").status, 0);
      assert.deepEqual(calls(log), [], "the first start and an unchanged listener restart nothing");
      const moved = once("10.40.0.20:8300");
      assert.equal(moved.status, 0);
      assert.match(moved.stderr, /the listener changed to 10\.40\.0\.20:8300; restarting openbao\.service, which then starts sealed: unseal it/);
      assert.deepEqual(calls(log), [["systemctl", "try-restart", "--no-block", "openbao.service"]]);
      assert.equal(readFileSync(state, "utf8"), "10.40.0.20:8300\n");
    });

    it("refuses to run without BAO_TOKEN, saying what to set", () => {
      const { result } = run(false, {});
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, /BAO_TOKEN: set BAO_TOKEN to a token that may manage auth methods/);
    });
  });
});
