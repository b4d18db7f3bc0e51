// The PostgreSQL host's pg_hba.conf and setup.sql from `nixmox render --configs`, fed to a real PostgreSQL from
// Debian (a throwaway cluster made with initdb, run as the `postgres` user on the host's loopback address).
// setup.sql runs twice through psql exactly as the nixmox-postgresql-passwords unit runs it, with the
// passwords in a credentials directory; then every owner logs in from its service's address (a relay in this
// process connects from that address), and other addresses, databases, roles and passwords are refused.
// Needs root (to run PostgreSQL as `postgres`) and Debian's postgresql (.ci/run installs it).
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as nodePath from "node:path";
import { loadManifestData } from "../manifest";
import { systemDatabases } from "../manifest/rules";
import { problemsOf } from "./support/manifests";
import { exampleManifestData, exampleManifestDir, nixEval } from "./golden/render-fixtures";
import { freePort, moveToSubnet, randomLoopbackSubnet, renderWithConfigs, startDaemon, waitFor, type Daemon } from "./support/daemons";

const pgBin = (() => {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  return path.join("/usr/lib/postgresql", versions[0], "bin");
})();

const run = promisify(execFile);

interface Database {
  service: string;
  name: string;
  owner: string;
  clientIp: string;
  credential: string;
}

const manifests = [
  { label: "example manifest", from: "192.168.99.", pgadmin: false, guacamole: true, load: async () => exampleManifestData() },
  { label: "seed homelab (additional databases)", from: "10.40.0.", pgadmin: true, guacamole: true, load: async () => loadManifestData(nodePath.join(exampleManifestDir, "examples", "seed-homelab.nix")) as Promise<Record<string, any>> },
  { label: "older homelab (default log databases, one no app uses)", from: "10.77.0.", pgadmin: false, guacamole: false, load: async () => loadManifestData(nodePath.join(exampleManifestDir, "examples", "older-homelab.nix")) as Promise<Record<string, any>> },
];

for (const manifest of manifests) describe(`daemon: PostgreSQL runs the generated pg_hba.conf and setup.sql (${manifest.label} on loopback)`, function () {
  this.timeout(180_000);
  const subnet = randomLoopbackSubnet();
  let dir: string;
  let port: number;
  let pgIp: string;
  let databases: Database[];
  let admin: { role: string; credential: string } | null = null;
  let postgres: Daemon | undefined;
  let uid: number;
  let gid: number;
  const passwords = new Map<string, string>();
  const relays: Server[] = [];

  /** Runs a command as the postgres user (setpriv execs it, so signals reach it directly). */
  const asPostgres = (command: string, args: string[]) => ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", command, ...args]] as const;

  /** psql over the Unix socket as the postgres superuser (peer authentication through the generated pg_hba). */
  async function superuser(sql: string): Promise<string> {
    const [cmd, args] = asPostgres(path.join(pgBin, "psql"), ["--no-psqlrc", "-h", dir, "-p", String(port), "-d", "postgres", "-At", "-c", sql]);
    return (await run(cmd, [...args], { encoding: "utf8", timeout: 30_000 })).stdout;
  }

  async function runSetup(): Promise<void> {
    // As the unit does: `psql --no-psqlrc --port=<port> --dbname=postgres --file=<setup.sql>`, with $CREDENTIALS_DIRECTORY.
    const [cmd, args] = asPostgres("/usr/bin/env", [`CREDENTIALS_DIRECTORY=${path.join(dir, "credentials")}`, path.join(pgBin, "psql"), "--no-psqlrc", "-h", dir, `--port=${port}`, "--dbname=postgres", `--file=${path.join(dir, "setup.sql")}`]);
    await run(cmd, [...args], { encoding: "utf8", timeout: 30_000 });
  }

  /** A TCP relay on 127.0.0.1 whose connections reach PostgreSQL from `source`. */
  async function relayFrom(source: string): Promise<number> {
    const server = createServer((client) => {
      const upstream = connect({ host: pgIp, port, localAddress: source });
      client.pipe(upstream).pipe(client);
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
    relays.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    return (server.address() as { port: number }).port;
  }

  async function login(from: string, role: string, database: string, password: string): Promise<{ ok: boolean; output: string }> {
    const relayPort = await relayFrom(from);
    try {
      const { stdout } = await run("psql", ["--no-psqlrc", "-h", "127.0.0.1", "-p", String(relayPort), "-U", role, "-d", database, "-At", "-c", "SELECT current_user || ' ' || host(inet_client_addr())"], {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" },
      });
      return { ok: true, output: stdout.trim() };
    } catch (error) {
      return { ok: false, output: String((error as { stderr?: string }).stderr ?? error) };
    }
  }

  before(async () => {
    const raw = moveToSubnet(await manifest.load(), subnet, manifest.from) as Record<string, any>;
    port = await freePort();
    // Every client asks for the same free port, so the generated config itself listens there (no override).
    // interface.db is one request, interface.dbs named ones ({ <name> = { host, … }; }).
    for (const group of [raw.core_services, raw.services]) {
      for (const service of Object.values(group ?? {}) as any[]) {
        const requests = [...(service.interface?.db ? [service.interface.db] : []), ...Object.values(service.interface?.dbs ?? {})] as any[];
        for (const request of requests) request.port = port;
      }
    }
    const pgService = Object.entries(raw.core_services).find(([name, service]: [string, any]) => name === "postgresql" || service.kind === "postgresql")![1] as any;
    pgService.ports = [...(pgService.ports ?? []).filter((p: number) => p !== 5432), port];
    const rendered = renderWithConfigs(raw);
    const data = rendered.data("postgresql");
    assert.equal(data.postgresql.port, port);
    pgIp = data.host.ip;
    databases = data.postgresql.databases;

    uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-postgresql-"));
    chmodSync(dir, 0o755);
    mkdirSync(path.join(dir, "credentials"), { mode: 0o700 });
    for (const [name, content] of Object.entries(rendered.configs.postgresql)) writeFileSync(path.join(dir, name), content);
    admin = data.postgresql.admin;
    if (admin) {
      const password = `pw-pgadmin-'"\\$(id)-${Math.random().toString(36).slice(2)}`;
      passwords.set(admin.credential, password);
      writeFileSync(path.join(dir, "credentials", admin.credential), `${password}\n`, { mode: 0o400 });
      chownSync(path.join(dir, "credentials", admin.credential), uid, gid);
    }
    for (const db of databases) {
      // Characters that would break naive quoting in SQL or the shell.
      const password = `pw-${db.service}-'"\\$(id)-${Math.random().toString(36).slice(2)}`;
      passwords.set(db.credential, password);
      writeFileSync(path.join(dir, "credentials", db.credential), `${password}\n`, { mode: 0o400 });
      chownSync(path.join(dir, "credentials", db.credential), uid, gid);
    }
    chownSync(path.join(dir, "credentials"), uid, gid);
    chownSync(dir, uid, gid);

    const [initCmd, initArgs] = asPostgres(path.join(pgBin, "initdb"), ["-D", path.join(dir, "data"), "-U", "postgres", "--auth=peer"]);
    execFileSync(initCmd, [...initArgs], { stdio: "ignore", timeout: 120_000 });
    const [cmd, args] = asPostgres(path.join(pgBin, "postgres"), [
      "-D", path.join(dir, "data"),
      "-c", `hba_file=${path.join(dir, "pg_hba.conf")}`,
      // The host's address and loopback, as NixOS's enableTCPIP (listen_addresses = '*') gives on the host.
      "-c", `listen_addresses=${pgIp},127.0.0.1`,
      "-c", `port=${port}`,
      "-c", `unix_socket_directories=${dir}`,
      "-c", "password_encryption=scram-sha-256",
      // Everything the server executes is logged, so the test can show the passwords are not.
      "-c", "log_statement=all",
    ]);
    postgres = startDaemon(cmd, [...args]);
    await waitFor("PostgreSQL to accept connections", async () => ((await superuser("SELECT 1")).trim() === "1" ? true : undefined), 60_000);
  });

  after(async () => {
    for (const relay of relays) relay.close();
    await postgres?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("renders one database per interface.db request of the manifest, and pgAdmin's role only where pgAdmin runs", () => {
    assert.equal(admin !== null, manifest.pgadmin);
    if (manifest.label === "example manifest") assert.deepEqual(databases.map((db) => db.service).sort(), ["authentik", "guacamole", "vaultwarden"]);
    else if (manifest.guacamole === false) {
      assert.deepEqual(databases.map((db) => db.name), ["authentik", "jellyfin", "monitoring", "prowlarr", "prowlarr-log", "radarr", "radarr-log", "sonarr", "sonarr-log", "vaultwarden"]);
    }
    else assert.ok(databases.length >= 10 && new Set(databases.map((db) => db.owner)).size < databases.length, "several databases share an owner");
  });

  it("runs setup.sql twice without error and creates every database owned by its role", async () => {
    await runSetup();
    await runSetup();
    const owners = (await superuser("SELECT d.datname || ' ' || r.rolname FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE NOT d.datistemplate AND d.datname <> 'postgres' ORDER BY 1")).trim().split("\n");
    assert.deepEqual(owners, databases.map((db) => `${db.name} ${db.owner}`).sort());
  });

  it("lets each owner log in to its database from its service's address with the password from its secret file", async () => {
    for (const db of databases) {
      const result = await login(db.clientIp, db.owner, db.name, passwords.get(db.credential)!);
      assert.deepEqual(result, { ok: true, output: `${db.owner} ${db.clientIp}` }, db.service);
    }
  });

  it("refuses an owner from another service's address, to another database, with a wrong password, and the superuser over TCP", async () => {
    const a = databases[0];
    const b = databases.find((db) => db.owner !== a.owner && db.clientIp !== a.clientIp)!;
    const cases: Array<[string, string, string, string, RegExp]> = [
      [b.clientIp, a.owner, a.name, passwords.get(a.credential)!, /no pg_hba\.conf entry/],
      [a.clientIp, a.owner, b.name, passwords.get(a.credential)!, /no pg_hba\.conf entry/],
      [a.clientIp, a.owner, a.name, "wrong", /password authentication failed/],
      [a.clientIp, "postgres", a.name, "x", /no pg_hba\.conf entry/],
      [`${subnet}.200`, a.owner, a.name, passwords.get(a.credential)!, /no pg_hba\.conf entry/],
    ];
    for (const [from, role, database, password, expected] of cases) {
      const result = await login(from, role, database, password);
      assert.equal(result.ok, false, `${role}@${database} from ${from} got in`);
      assert.match(result.output, expected);
    }
  });

  it("refuses PostgreSQL's own databases as an app's (N1): exactly the ones the real server has besides the manifest's", async () => {
    const others = (await superuser("SELECT datname FROM pg_catalog.pg_database ORDER BY 1")).trim().split("\n").filter((name) => !databases.some((db) => db.name === name));
    assert.deepEqual(others, systemDatabases);
    const raw = structuredClone(await manifest.load()) as Record<string, any>;
    const vaultwarden = raw.services.vaultwarden.interface;
    vaultwarden.db = { ...vaultwarden.db, name: "postgres" };
    raw.services.vaultwarden.interface.dbs = { extra: { host: vaultwarden.db.host, additionaldbs: ["template1"] } };
    assert.deepEqual(problemsOf(raw).filter((problem) => problem.includes("PostgreSQL's own databases")).map((problem) => problem.split(" is one of")[0]), [
      'service "vaultwarden": interface.db.name "postgres"',
      'service "vaultwarden": interface.dbs.extra.additionaldbs[0] "template1"',
    ]);
  });

  it("runs setup.sql, connected to postgres, as the superuser even after an app owned that database and laid a trap there (N1)", async () => {
    const owner = databases[0].owner;
    // What an owner of `postgres` could do under an older NixMox (the review's reproduction on PostgreSQL 15): a view
    // that shadows pg_roles through the database's search_path and makes whoever reads it as superuser grant SUPERUSER.
    await superuser(`ALTER DATABASE postgres OWNER TO "${owner}"`);
    await superuser([
      `SET ROLE "${owner}"`,
      `CREATE FUNCTION public.nixmox_trap() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN IF current_setting('is_superuser') = 'on' THEN EXECUTE 'ALTER ROLE "${owner}" SUPERUSER'; END IF; RETURN true; END $$`,
      "CREATE VIEW public.pg_roles AS SELECT r.* FROM pg_catalog.pg_roles r WHERE public.nixmox_trap()",
      "ALTER DATABASE postgres SET search_path = public, pg_catalog",
    ].join("; "));
    const isSuperuser = async () => (await superuser(`SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = '${owner}'`)).trim();
    try {
      // The trap works: a superuser session that reads pg_roles unqualified, with the database's search_path, springs it.
      await superuser("SELECT count(*) FROM pg_roles");
      assert.equal(await isSuperuser(), "t", "the trap did not work, so this test would prove nothing");
      await superuser(`ALTER ROLE "${owner}" NOSUPERUSER`);

      await runSetup();
      assert.equal(await isSuperuser(), "f", "setup.sql ran the owner's code as superuser");
      assert.equal((await superuser("SELECT r.rolname || ' ' || coalesce(array_to_string(s.setconfig, ','), '-') FROM pg_catalog.pg_database d JOIN pg_catalog.pg_roles r ON r.oid = d.datdba LEFT JOIN pg_catalog.pg_db_role_setting s ON s.setdatabase = d.oid AND s.setrole = 0 WHERE d.datname = 'postgres'")).trim(), "postgres -");
    } finally {
      await superuser(`ALTER ROLE "${owner}" NOSUPERUSER; ALTER DATABASE postgres RESET ALL; ALTER DATABASE postgres OWNER TO postgres; DROP VIEW IF EXISTS public.pg_roles; DROP FUNCTION IF EXISTS public.nixmox_trap()`);
    }
  });

  // The older homelab runs no Guacamole.
  if (manifest.guacamole) it("creates Guacamole's JDBC schema once, as the database owner from its address, through the schema unit's script (R5)", async () => {
    const db = databases.find((candidate) => candidate.service === "guacamole");
    assert.ok(db, "these manifests give guacamole a database");
    // Stand-in for the release's 001-create-schema.sql (not downloadable here): its first statements, and a
    // broken copy that fails after creating a type and a table.
    const schema = [
      "CREATE TYPE guacamole_entity_type AS ENUM('USER', 'USER_GROUP');",
      "CREATE TABLE guacamole_entity (entity_id serial NOT NULL, name varchar(128) NOT NULL, type guacamole_entity_type NOT NULL, PRIMARY KEY (entity_id));",
      "CREATE TABLE guacamole_user (user_id serial NOT NULL, entity_id integer NOT NULL REFERENCES guacamole_entity (entity_id), PRIMARY KEY (user_id));",
    ].join("\n");
    const work = mkdtempSync(path.join(tmpdir(), "nixmox-guacamole-schema-"));
    try {
      writeFileSync(path.join(work, "001-create-schema.sql"), `${schema}\n`);
      writeFileSync(path.join(work, "broken.sql"), `${schema.split("\n").slice(0, 2).join("\n")}\nCREATE TABLE oops (;\n`);
      mkdirSync(path.join(work, "credentials"), { mode: 0o700 });
      writeFileSync(path.join(work, "credentials", "db-password"), `${passwords.get(db.credential)}\n`, { mode: 0o400 });
      const relayPort = await relayFrom(db.clientIp);
      const lib = `(import ${path.join(__dirname, "..", "nixos", "lib", "guacamole.nix")})`;
      const runUnit = async (schemaFile: string) => {
        const scriptFile = path.join(work, `${path.basename(schemaFile)}.psql`);
        writeFileSync(scriptFile, nixEval(`${lib}.schemaScript "${schemaFile}"`) as string);
        const command = nixEval(`${lib}.schemaCommand { psql = "${path.join(pgBin, "psql")}"; host = "127.0.0.1"; port = ${relayPort}; user = "${db.owner}"; database = "${db.name}"; credential = "db-password"; script = "${scriptFile}"; }`) as string;
        assert.ok(!command.includes(passwords.get(db.credential)!));
        try {
          const { stdout } = await run("bash", ["-euo", "pipefail", "-c", command], { encoding: "utf8", timeout: 30_000, env: { PATH: process.env.PATH, CREDENTIALS_DIRECTORY: path.join(work, "credentials") } });
          return { ok: true, output: stdout };
        } catch (error) {
          return { ok: false, output: String((error as { stderr?: string }).stderr ?? error) };
        }
      };
      const inDatabase = async (sql: string) => {
        const [cmd, args] = asPostgres(path.join(pgBin, "psql"), ["--no-psqlrc", "-h", dir, "-p", String(port), "-d", db.name, "-At", "-c", sql]);
        return (await run(cmd, [...args], { encoding: "utf8", timeout: 30_000 })).stdout.trim();
      };
      const tables = () => inDatabase("SELECT string_agg(tablename || ':' || tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'");

      const broken = await runUnit(path.join(work, "broken.sql"));
      assert.equal(broken.ok, false);
      assert.match(broken.output, /syntax error/);
      assert.equal(await tables(), "", "a failed load leaves nothing behind");
      assert.equal(await inDatabase("SELECT count(*) FROM pg_type WHERE typname = 'guacamole_entity_type'"), "0");

      const first = await runUnit(path.join(work, "001-create-schema.sql"));
      assert.equal(first.ok, true, first.output);
      assert.match(first.output, /nixmox: creating the Guacamole schema/);
      assert.equal(await tables(), `guacamole_entity:${db.owner},guacamole_user:${db.owner}`);
      // Again (every boot): nothing is loaded a second time; CREATE TYPE would fail if it were.
      const again = await runUnit(path.join(work, "001-create-schema.sql"));
      assert.equal(again.ok, true, again.output);
      assert.match(again.output, /nixmox: the Guacamole schema is already there/);
      assert.equal(await tables(), `guacamole_entity:${db.owner},guacamole_user:${db.owner}`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  /** psql as `role` with `password`, over TCP to 127.0.0.1 (where pgAdmin on the host connects), from loopback. */
  async function asRole(role: string, password: string, database: string, sql: string): Promise<{ ok: boolean; output: string }> {
    try {
      const { stdout } = await run("psql", ["--no-psqlrc", "-h", "127.0.0.1", "-p", String(port), "-U", role, "-d", database, "-At", "-c", sql], {
        encoding: "utf8",
        timeout: 30_000,
        env: { ...process.env, PGPASSWORD: password, PGCONNECT_TIMEOUT: "10" },
      });
      return { ok: true, output: stdout.trim() };
    } catch (error) {
      return { ok: false, output: String((error as { stderr?: string }).stderr ?? error) };
    }
  }

  if (manifest.pgadmin) it("gives pgAdmin's own role (the seed's PostgreSQL host runs pgAdmin) every database from loopback, with an admin tool's rights and no more (review N2)", async () => {
    assert.ok(admin, "the host data names pgAdmin's role");
    await runSetup();
    const password = passwords.get(admin.credential)!;
    // An app's data, written by its owner from its address.
    const db = databases.find((candidate) => candidate.service === "vaultwarden")!;
    const owner = await relayFrom(db.clientIp);
    await run("psql", ["--no-psqlrc", "-h", "127.0.0.1", "-p", String(owner), "-U", db.owner, "-d", db.name, "-c", "CREATE TABLE IF NOT EXISTS pgadmin_probe (x int); INSERT INTO pgadmin_probe VALUES (7);"], {
      encoding: "utf8",
      timeout: 30_000,
      env: { ...process.env, PGPASSWORD: passwords.get(db.credential)! },
    });
    for (const database of ["postgres", ...databases.map((candidate) => candidate.name)]) {
      assert.deepEqual(await asRole("pgadmin", password, database, "SELECT current_user || ' ' || host(inet_client_addr())"), { ok: true, output: "pgadmin 127.0.0.1" }, database);
    }
    assert.deepEqual(await asRole("pgadmin", password, db.name, "SELECT sum(x) FROM pgadmin_probe"), { ok: true, output: "7" }, "reads an app's data");
    assert.deepEqual(await asRole("pgadmin", password, "postgres", "SELECT count(*) > 0 FROM pg_stat_activity WHERE usename IS NOT NULL AND query <> '<insufficient privilege>'"), { ok: true, output: "t" });
    assert.deepEqual(await asRole("pgadmin", password, "postgres", "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'pgadmin'"), { ok: true, output: "f|f|t" });
    assert.match((await asRole("pgadmin", password, "postgres", "CREATE ROLE intruder")).output, /permission denied/);
    assert.match((await asRole("pgadmin", password, "postgres", `ALTER ROLE "${db.owner}" PASSWORD 'x'`)).output, /permission denied/);
    // Only from loopback, only with its password.
    assert.match((await login(`${subnet}.200`, "pgadmin", "postgres", password)).output, /no pg_hba\.conf entry/);
    assert.match((await login(pgIp, "pgadmin", "postgres", password)).output, /no pg_hba\.conf entry/);
    assert.match((await asRole("pgadmin", "wrong", "postgres", "SELECT 1")).output, /password authentication failed/);
    // No app role gains anything: not loopback, not pgAdmin's role, no membership.
    for (const app of databases) {
      const result = await asRole(app.owner, passwords.get(app.credential)!, app.name, "SELECT 1");
      assert.equal(result.ok, false, `${app.owner} logged in from loopback`);
      assert.match(result.output, /no pg_hba\.conf entry/);
    }
    const owners = [...new Set(databases.map((app) => `'${app.owner}'`))].join(", ");
    assert.equal((await superuser(`SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname IN (${owners})`)).trim(), "0", "an app role is a member of some role");
    assert.equal((await superuser(`SELECT count(*) FROM pg_roles WHERE rolname IN (${owners}) AND (rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls)`)).trim(), "0");
    assert.equal((await superuser("SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member JOIN pg_roles g ON g.oid = m.roleid WHERE r.rolname = 'pgadmin'")).trim(), "pg_monitor,pg_read_all_data,pg_signal_backend,pg_write_all_data");
  });

  it("never writes a password to the server log", () => {
    assert.match(postgres!.output(), /statement: /);
    for (const password of passwords.values()) assert.ok(!postgres!.output().includes(password.slice(0, 20)), "a password reached the log");
  });
});
