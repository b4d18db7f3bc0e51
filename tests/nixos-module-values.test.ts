// The values the shipped NixOS modules compute from a rendered host.json (units, environments, files, ports),
// evaluated with the real nix-instantiate through tests/support/eval-module.nix. That harness stubs nixpkgs'
// `lib`/`pkgs` and resolves mkIf/mkForce naively: it does NOT prove the option names exist in nixpkgs or how the
// real module system merges them (those were checked against the nixpkgs files cited in each module).
// Where a module and `render --configs` must agree, the test compares the module's value with the rendered file.
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { loadManifestData } from "../manifest";
import { exampleManifestData, exampleManifestDir, nixEval, shippedNix } from "./golden/render-fixtures";
import { moveToSubnet, randomLoopbackSubnet, renderWithConfigs, type RenderedWithConfigs } from "./support/daemons";
import { seedManifest } from "./support/manifests";

const harness = path.join(__dirname, "support", "eval-module.nix");

describe("nixos modules: values computed from the rendered host data", function () {
  this.timeout(120_000);
  let dir: string;
  let example: RenderedWithConfigs;
  let seed: RenderedWithConfigs;

  function evalModule(rendered: RenderedWithConfigs, service: string, module: string, args: string[] = []): any {
    const hostJson = path.join(dir, `${service}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(hostJson, rendered.hosts.find((host) => host.service === service)!.files["host.json"]);
    const out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", harness, "--arg", "module", shippedNix(module), "--arg", "hostJson", hostJson, ...args], {
      encoding: "utf8",
      timeout: 60_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
    return JSON.parse(out);
  }

  const failedAssertions = (config: any) => (config.assertions as Array<{ assertion: boolean; message: string }>).filter((a) => !a.assertion).map((a) => a.message);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-module-values-"));
    example = renderWithConfigs(await exampleManifestData());
    seed = renderWithConfigs(seedManifest());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe("core (R1: /etc/resolv.conf)", () => {
    it("writes /etc/resolv.conf itself with resolvconf off, the same text as configs/resolv.conf, naming the manifest's resolver", () => {
      for (const host of example.hosts) {
        const config = evalModule(example, host.service, "core.nix");
        const text = config.environment.etc["resolv.conf"].text as string;
        assert.equal(config.networking.resolvconf.enable, false, host.service);
        assert.equal(config.services.resolved.enable, false, host.service);
        assert.equal(text, example.configs[host.service]["resolv.conf"], host.service);
        const nameservers = [...text.matchAll(/^nameserver (.+)$/gm)].map((m) => m[1]);
        assert.match(text, /^search nixmox\.lan$/m);
        if (host.service === "dns") assert.deepEqual(nameservers, ["127.0.0.1", "192.168.99.1"]);
        else assert.deepEqual(nameservers, ["192.168.99.13"], host.service);
      }
    });

    it("gives the DNS host its own unbound first and at most three resolvers in all (glibc reads three)", () => {
      const data = { host: { ip: "10.0.0.2", dnsServer: "10.0.0.2", domain: "lab.test" }, dns: { forwarders: ["10.0.0.1", "9.9.9.9", "1.1.1.1"] } };
      assert.deepEqual(nixEval(`(import ${shippedNix("lib/resolv.nix")}).nameservers (builtins.fromJSON ${JSON.stringify(JSON.stringify(data))})`), ["127.0.0.1", "10.0.0.1", "9.9.9.9"]);
    });
  });

  describe("core (security review H1: a restart during an activation)", () => {
    it("rolls back, shortly after boot, every attempt that has no result, with the attempt's own wrapper in recover mode", () => {
      const config = evalModule(example, "postgresql", "core.nix");
      const unit = config.systemd.services["nixmox-activation-recover"];
      assert.equal(unit.serviceConfig.Type, "oneshot");
      assert.match(unit.script, /for dir in \/var\/lib\/nixmox\/postgresql\/attempts\/\*\/; do/);
      assert.match(unit.script, /bash "\$dir\/nixmox-activate\.sh" recover --service postgresql --config-hash "\$\(basename "\$dir"\)"/);
      assert.deepEqual(config.systemd.timers["nixmox-activation-recover"].timerConfig, { OnBootSec: "15s" });
      assert.ok(unit.path.includes("/nix/store/stub-util-linux") && unit.path.includes("/nix/store/stub-nix"), "flock and nix-env are on its PATH");
    });
  });

  describe("core (S1: system.stateVersion)", () => {
    /** core.nix of a written host directory, evaluated with that directory's state-version file. */
    function stateVersionOf(stateVersionFile: string | null, fromManifest: boolean): { stateVersion: string; failed: string[] } {
      const host = example.hosts.find((candidate) => candidate.service === "postgresql")!;
      const root = mkdtempSync(path.join(dir, "host-"));
      for (const [file, content] of Object.entries(host.files)) {
        if (file === "state-version") continue;
        mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
        writeFileSync(path.join(root, file), content);
      }
      if (stateVersionFile !== null) writeFileSync(path.join(root, "state-version"), stateVersionFile);
      const data = JSON.parse(host.files["host.json"]);
      data.host.stateVersionFromManifest = fromManifest;
      writeFileSync(path.join(root, "host.json"), JSON.stringify(data));
      const out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", harness, "--arg", "module", path.join(root, "nixos", "core.nix"), "--arg", "hostJson", path.join(root, "host.json")], { encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] });
      const config = JSON.parse(out);
      return { stateVersion: config.system.stateVersion, failed: failedAssertions(config) };
    }

    it("keeps the release of the host's first install (its state-version file) over a newer default, unless the manifest sets one", () => {
      assert.equal(JSON.parse(example.hosts[0].files["host.json"]).host.stateVersion, "25.11");
      assert.deepEqual(stateVersionOf("24.05\n", false), { stateVersion: "24.05", failed: [] });
      assert.deepEqual(stateVersionOf(null, false), { stateVersion: "25.11", failed: [] });
      assert.deepEqual(stateVersionOf("24.05\n", true), { stateVersion: "25.11", failed: [] });
      assert.deepEqual(stateVersionOf("garbage\n", false).failed, [
        'nixmox: service "postgresql": /etc/nixmox/state-version is not a NixOS release such as 25.11; set state_version in the manifest to the release the host was installed with.',
      ]);
    });
  });

  describe("core (R8: the firewall)", () => {
    it("uses the nftables firewall without reverse-path filter or logging by default, and none with network.firewall = proxmox", async () => {
      const inside = evalModule(example, "postgresql", "core.nix").networking;
      assert.equal(inside.nftables.enable, true);
      assert.deepEqual(
        { enable: inside.firewall.enable, checkReversePath: inside.firewall.checkReversePath, logRefusedConnections: inside.firewall.logRefusedConnections, allowedTCPPorts: inside.firewall.allowedTCPPorts },
        { enable: true, checkReversePath: false, logRefusedConnections: false, allowedTCPPorts: [] },
      );
      const raw = await exampleManifestData();
      raw.network.firewall = "proxmox";
      const outside = evalModule(renderWithConfigs(raw), "postgresql", "core.nix").networking;
      assert.equal(outside.nftables.enable, false);
      assert.equal(outside.firewall.enable, false);
    });
  });

  describe("core (the gate behind forward auth)", () => {
    it("opens a route's port to the proxy only, a database's to its clients, and only public ports to everyone; the same rules as configs/nftables.conf", () => {
      const firewall = (service: string) => evalModule(example, service, "core.nix").networking.firewall;
      assert.deepEqual(firewall("vaultwarden").allowedTCPPorts, []);
      assert.equal(firewall("vaultwarden").extraInputRules, "# route vault.nixmox.lan\nip saddr { 192.168.99.10 } tcp dport 8080 accept");
      assert.equal(
        firewall("postgresql").extraInputRules,
        "# database authentik (authentik); database guacamole (guacamole); database vaultwarden (vaultwarden)\nip saddr { 192.168.99.12, 192.168.99.14, 192.168.99.15 } tcp dport 5432 accept",
      );
      assert.deepEqual(firewall("caddy").allowedTCPPorts, [80, 443]);
      assert.equal(firewall("caddy").extraInputRules, "");
      assert.deepEqual({ tcp: firewall("dns").allowedTCPPorts, udp: firewall("dns").allowedUDPPorts }, { tcp: [53], udp: [53] });
      for (const host of example.hosts) {
        const config = firewall(host.service);
        const table = example.configs[host.service]["nftables.conf"];
        const publicTcp = [...config.allowedTCPPorts, 22].sort((a: number, b: number) => a - b).join(", ");
        assert.ok(table.includes(`    tcp dport { ${publicTcp} } accept\n`), host.service);
        for (const line of (config.extraInputRules as string).split("\n").filter(Boolean)) assert.ok(table.includes(`    ${line}\n`), `${host.service}: ${line}`);
      }
    });

    it("opens a port to everyone with public_ports, to its dependents when they depend_on the service, and to nobody else when nothing uses it", async () => {
      const raw = await exampleManifestData();
      raw.services.guacamole.ports = [8280, 4822];
      raw.services.vaultwarden.public_ports = [8080];
      raw.services.homepage.ports = [8082, 3001];
      raw.services.vaultwarden.depends_on = [...raw.services.vaultwarden.depends_on, "homepage"];
      const rendered = renderWithConfigs(raw);
      const rules = (service: string) => rendered.data(service).host.firewallRules;
      assert.deepEqual(rules("vaultwarden"), [{ protocol: "tcp", port: 8080, from: null, reasons: ["public_ports", "route vault.nixmox.lan"] }]);
      assert.deepEqual(rules("guacamole").find((rule: { port: number }) => rule.port === 4822), { protocol: "tcp", port: 4822, from: [], reasons: ["nothing uses it: only this host"] });
      assert.deepEqual(rules("homepage").find((rule: { port: number }) => rule.port === 3001), { protocol: "tcp", port: 3001, from: ["192.168.99.14"], reasons: ["depends_on (vaultwarden)"] });
      assert.doesNotMatch(rendered.configs.guacamole["nftables.conf"], /dport 4822/);
      const config = evalModule(rendered, "vaultwarden", "core.nix").networking.firewall;
      assert.deepEqual({ tcp: config.allowedTCPPorts, rules: config.extraInputRules }, { tcp: [8080], rules: "" });
    });
  });

  describe("postgresql with pgAdmin (review N2)", () => {
    it("gives the passwords unit pgAdmin's credential, writes the same pg_hba as configs/pg_hba.conf, and refuses an app owner named like pgAdmin's role", async () => {
      const homelab = renderWithConfigs(await loadManifestData(path.join(exampleManifestDir, "examples", "seed-homelab.nix")));
      const config = evalModule(homelab, "postgresql", "services/postgresql.nix");
      assert.deepEqual(failedAssertions(config), []);
      assert.ok(config.systemd.services["nixmox-postgresql-passwords"].serviceConfig.LoadCredential.includes("pgadmin-db-password:/var/lib/nixmox/secrets/postgresql/pgadmin_db_password"));
      assert.equal(config.services.postgresql.authentication, homelab.configs.postgresql["pg_hba.conf"]);
      assert.match(config.services.postgresql.authentication, /^host all "pgadmin" 127\.0\.0\.1\/32 scram-sha-256$/m);
      const raw = (await loadManifestData(path.join(exampleManifestDir, "examples", "seed-homelab.nix"))) as Record<string, any>;
      raw.services.vaultwarden.interface.db.owner = "pgadmin";
      assert.deepEqual(failedAssertions(evalModule(renderWithConfigs(raw), "postgresql", "services/postgresql.nix")), [
        'nixmox postgresql: service "postgresql" runs pgAdmin, whose role is "pgadmin", and a database request uses the same owner; give that database another owner (interface.db.owner).',
      ]);
    });
  });

  describe("authentik (R2, R11)", () => {
    it("gives the worker its own loopback HTTP and metrics listeners, so no two units share a socket", () => {
      const units = evalModule(example, "authentik", "services/authentik.nix").systemd.services;
      const server = units.authentik.environment;
      const worker = units["authentik-worker"].environment;
      assert.equal(server.AUTHENTIK_LISTEN__HTTP, "192.168.99.12:9000");
      assert.equal(worker.AUTHENTIK_LISTEN__HTTP, "127.0.0.1:9001");
      assert.equal(worker.AUTHENTIK_LISTEN__METRICS, "127.0.0.1:9310");
      for (const key of ["AUTHENTIK_LISTEN__HTTP", "AUTHENTIK_LISTEN__HTTPS", "AUTHENTIK_LISTEN__METRICS"]) assert.notEqual(server[key], worker[key], key);
      assert.match(server.AUTHENTIK_LISTEN__HTTPS, /^127\.0\.0\.1:/);
    });

    it("runs migrations once in a oneshot unit that both the server and the worker require and follow", () => {
      const units = evalModule(example, "authentik", "services/authentik.nix").systemd.services;
      assert.equal(units["authentik-migrate"].serviceConfig.Type, "oneshot");
      assert.match(units["authentik-migrate"].serviceConfig.ExecStart, /\/bin\/ak migrate$/);
      for (const unit of ["authentik", "authentik-worker"]) {
        assert.ok(units[unit].requires.includes("authentik-migrate.service"), unit);
        assert.ok(units[unit].after.includes("authentik-migrate.service"), unit);
        assert.ok(units[unit].after.includes("network-online.target"), unit);
      }
      assert.equal(units["authentik-migrate"].wantedBy, undefined);
      // `ak migrate` does not wait for the database as `ak server` does: the unit waits for its port first.
      assert.match(units["authentik-migrate"].preStart, /<\/dev\/tcp\/192\.168\.99\.11\/5432/);
      assert.equal(units["authentik-migrate"].serviceConfig.TimeoutStartSec, "15min");
    });

    it("authentik-migrate's wait for the database, run by a real bash: done once the port listens, a clear error when it never does", async () => {
      const subnet = randomLoopbackSubnet();
      const rendered = renderWithConfigs(moveToSubnet(await exampleManifestData(), subnet));
      const script = (evalModule(rendered, "authentik", "services/authentik.nix").systemd.services["authentik-migrate"].preStart as string)
        .replace("/nix/store/stub-bash/bin/bash", "/bin/bash");
      const db = rendered.data("authentik").authentik.database;
      const server = createServer((socket) => socket.end());
      await new Promise<void>((resolve) => server.listen(db.port, db.host, () => resolve()));
      try {
        await promisify(execFile)("/bin/bash", ["-c", script], { timeout: 30_000 });
      } finally {
        server.close();
      }
      // Nothing listens any more: with `seq` cut to one round and `sleep` a no-op, the script gives up at once.
      const bin = path.join(dir, "fake-bin");
      mkdirSync(bin, { recursive: true });
      writeFileSync(path.join(bin, "seq"), "#!/bin/sh\necho 1\n", { mode: 0o755 });
      writeFileSync(path.join(bin, "sleep"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
      await assert.rejects(
        promisify(execFile)("/bin/bash", ["-c", script], { timeout: 30_000, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } }),
        (error: { code?: number; stderr?: string }) => error.code === 1 && new RegExp(`PostgreSQL at ${db.host}:5432 did not accept connections within 10 minutes`).test(error.stderr ?? ""),
      );
    });

    it("runs no Redis and passes no Redis setting", () => {
      const config = evalModule(example, "authentik", "services/authentik.nix");
      assert.doesNotMatch(JSON.stringify(config), /redis/i);
    });

    it("warns when ports lists 9443 (bound to loopback only) and not otherwise", () => {
      assert.deepEqual(evalModule(example, "authentik", "services/authentik.nix").warnings, []);
      assert.match(evalModule(seed, "authentik", "services/authentik.nix").warnings.join("\n"), /lists 9443 in ports/);
    });
  });

  describe("caddy (R11) and its Caddyfile", () => {
    it("opens UDP 443 for HTTP/3, skips installing its root, and its site blocks are the rendered Caddyfile's", () => {
      assert.deepEqual(evalModule(example, "caddy", "core.nix").networking.firewall.allowedUDPPorts, [443]);
      const config = evalModule(example, "caddy", "services/caddy.nix");
      assert.equal(config.services.caddy.globalConfig, "skip_install_trust");
      assert.ok(example.configs.caddy.Caddyfile.endsWith(config.services.caddy.extraConfig));
      assert.match(example.configs.caddy.Caddyfile, /^\{\n\tskip_install_trust\n/);
    });
  });

  describe("dns (R9, R10) and its unbound.conf", () => {
    it("installs dnsutils for the liveness check's `host`, validates DNSSEC only when asked, and its settings are configs/unbound.conf", () => {
      const config = evalModule(example, "dns", "services/dns.nix");
      assert.ok(config.environment.systemPackages.includes("/nix/store/stub-dnsutils"));
      assert.equal(config.services.unbound.enableRootTrustAnchor, false);
      const settings = JSON.stringify(JSON.stringify(config.services.unbound.settings));
      assert.equal(nixEval(`(import ${shippedNix("lib/dns.nix")}).toConf (builtins.fromJSON ${settings})`), example.configs.dns["unbound.conf"]);
    });

    it("turns validation on with network.dns.dnssec", async () => {
      const raw = await exampleManifestData();
      raw.network.dns = { dnssec: true, forwarders: ["9.9.9.9"] };
      const rendered = renderWithConfigs(raw);
      const config = evalModule(rendered, "dns", "services/dns.nix");
      assert.equal(config.services.unbound.enableRootTrustAnchor, true);
      assert.deepEqual(config.services.unbound.settings["forward-zone"], [{ name: ".", "forward-addr": ["9.9.9.9"] }]);
    });
  });

  describe("postgresql and its pg_hba.conf / setup.sql", () => {
    it("uses exactly the rendered pg_hba.conf as its authentication", () => {
      const config = evalModule(example, "postgresql", "services/postgresql.nix");
      assert.equal(config.services.postgresql.authentication, example.configs.postgresql["pg_hba.conf"]);
      assert.match(config.systemd.services["nixmox-postgresql-passwords"].serviceConfig.ExecStart, /--file=\/nix\/store\/stub-nixmox-postgresql-passwords\.sql$/);
    });
  });

  describe("the managed CA (R3)", () => {
    const pem = "-----BEGIN CERTIFICATE-----\nTUlJQmZha2U=\n-----END CERTIFICATE-----\n";

    it("is trusted by every host, signs the proxy's internal-TLS sites from credentials, and is Tomcat's trust store", async () => {
      const rendered = renderWithConfigs(await exampleManifestData(), { caRootCertificate: pem });
      for (const host of rendered.hosts) assert.deepEqual(evalModule(rendered, host.service, "core.nix").security.pki.certificates, [pem], host.service);
      const caddy = evalModule(rendered, "caddy", "services/caddy.nix");
      assert.deepEqual(caddy.systemd.services.caddy.serviceConfig.LoadCredential, [
        "nixmox_ca_cert:/var/lib/nixmox/secrets/caddy/ca_root_cert",
        "nixmox_ca_intermediate_cert:/var/lib/nixmox/secrets/caddy/ca_intermediate_cert",
        "nixmox_ca_intermediate_key:/var/lib/nixmox/secrets/caddy/ca_intermediate_key",
      ]);
      // Caddy signs with the intermediate; the root's key is nowhere on the host (its slot holds the intermediate's).
      assert.match(caddy.services.caddy.globalConfig, /pki \{\n\tca nixmox \{[\s\S]*root \{\n\t\t\tcert \{\$CREDENTIALS_DIRECTORY\}\/nixmox_ca_cert\n\t\t\tkey \{\$CREDENTIALS_DIRECTORY\}\/nixmox_ca_intermediate_key\n[\s\S]*intermediate \{\n\t\t\tcert \{\$CREDENTIALS_DIRECTORY\}\/nixmox_ca_intermediate_cert\n\t\t\tkey \{\$CREDENTIALS_DIRECTORY\}\/nixmox_ca_intermediate_key/);
      assert.doesNotMatch(caddy.services.caddy.extraConfig, /tls internal/);
      assert.ok(rendered.configs.caddy.Caddyfile.endsWith(caddy.services.caddy.extraConfig));
      const tomcat = evalModule(rendered, "guacamole", "services/guacamole.nix").services.tomcat;
      assert.ok(tomcat.javaOpts.includes("-Djavax.net.ssl.trustStore=/nix/store/stub-nixmox-truststore.p12"));
    });

    it("changes nothing without a managed CA: Caddy's own internal CA, no extra roots, no trust store", () => {
      assert.deepEqual(evalModule(example, "dns", "core.nix").security.pki.certificates, []);
      const caddy = evalModule(example, "caddy", "services/caddy.nix");
      assert.equal(caddy.systemd?.services?.caddy?.serviceConfig?.LoadCredential, undefined);
      assert.match(caddy.services.caddy.extraConfig, /\ttls internal\n/);
      assert.equal(evalModule(example, "guacamole", "services/guacamole.nix").services.tomcat.javaOpts, undefined);
    });

    it("rejects a root that is not one PEM certificate", () => {
      assert.throws(() => renderWithConfigs(seedManifest(), { caRootCertificate: "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----" }), /managed CA: caRootCertificate must be one PEM certificate/);
    });
  });

  describe("the example's homepage module (R4)", () => {
    it("accepts the Host header of every route the proxy sends it", () => {
      const config = evalModule(example, "homepage", "../manifest/modules/homepage.nix");
      const allowed = (config.services["homepage-dashboard"].allowedHosts as string).split(",");
      const domains = (example.data("caddy").caddy.routes as Array<{ service: string; domain: string }>).filter((r) => r.service === "homepage").map((r) => r.domain);
      assert.ok(domains.length > 0);
      for (const domain of domains) assert.ok(allowed.includes(domain), `${domain} not in ${allowed.join(",")}`);
      assert.ok(allowed.includes("192.168.99.16:8082"));
    });
  });

  describe("guacamole (R5)", () => {
    const pinned = { jdbc: "sha256-l7xf09Z9JcDpikddHf0wigN4WfVJ+sRxcccjt6cDk2Y=", sso: "sha256-6VeYRHGsUKh/Ry9Rrsm/fjeK5nziUC/5OAMAEaZw3K4=" };

    it("links the pinned JDBC and OpenID extensions and nixpkgs' JDBC driver, and signs users in through OpenID first", () => {
      const config = evalModule(example, "guacamole", "services/guacamole.nix");
      assert.deepEqual(failedAssertions(config), []);
      const etc = config.environment.etc as Record<string, { source: string }>;
      assert.deepEqual(Object.keys(etc).sort(), [
        "guacamole/extensions/guacamole-auth-jdbc-postgresql-1.6.0.jar",
        "guacamole/extensions/guacamole-auth-sso-openid-1.6.0.jar",
        "guacamole/lib/postgresql-jdbc.jar",
      ]);
      // The stub's runCommand names its output; the jar paths inside it are the tarballs' layout.
      assert.equal(etc["guacamole/extensions/guacamole-auth-jdbc-postgresql-1.6.0.jar"].source, "/nix/store/stub-guacamole-auth-jdbc-1.6.0/guacamole-auth-jdbc-1.6.0/postgresql/guacamole-auth-jdbc-postgresql-1.6.0.jar");
      assert.equal(etc["guacamole/extensions/guacamole-auth-sso-openid-1.6.0.jar"].source, "/nix/store/stub-guacamole-auth-sso-1.6.0/guacamole-auth-sso-1.6.0/openid/guacamole-auth-sso-openid-1.6.0.jar");
      assert.equal(etc["guacamole/lib/postgresql-jdbc.jar"].source, "/nix/store/stub-postgresql-jdbc/share/java/postgresql-jdbc.jar");
      const settings = config.services["guacamole-client"].settings;
      assert.equal(settings["postgresql-auto-create-accounts"], true);
      assert.equal(settings["extension-priority"], "openid");
      const lib = `(import ${shippedNix("lib/guacamole.nix")})`;
      assert.equal(nixEval(`${lib}.tarballUrl "jdbc" "1.6.0"`), "mirror://apache/guacamole/1.6.0/binary/guacamole-auth-jdbc-1.6.0.tar.gz");
      assert.deepEqual(nixEval(`${lib}.releases."1.6.0"`), pinned);
    });

    it("creates the schema once before Tomcat, as the database owner with the password from a credential", () => {
      const unit = evalModule(example, "guacamole", "services/guacamole.nix").systemd.services["nixmox-guacamole-schema"];
      assert.deepEqual(unit.before, ["tomcat.service"]);
      assert.ok(unit.wantedBy.includes("tomcat.service"));
      assert.equal(unit.serviceConfig.Type, "oneshot");
      assert.deepEqual(unit.serviceConfig.LoadCredential, ["db-password:/var/lib/nixmox/secrets/guacamole/db_password"]);
      const db = example.data("guacamole").guacamole.database;
      assert.match(unit.script, new RegExp(`--single-transaction --host='${db.host.replace(/\./g, "\\.")}' --port=${db.port} --username='${db.owner}' --dbname='${db.name}' --file='/nix/store/stub-nixmox-guacamole-schema\\.sql'`));
      assert.doesNotMatch(unit.script, /PGPASSWORD=[^"]/, "the password is read at run time, not written into the script");
    });

    it("refuses a database or OIDC client for a guacamole-client version without pinned hashes, unless jars and schema are given", () => {
      const unpinned = evalModule(example, "guacamole", "services/guacamole.nix", ["--argstr", "guacamoleVersion", "1.7.0"]);
      const failed = failedAssertions(unpinned);
      assert.equal(failed.length, 2, failed.join("\n"));
      assert.match(failed[0], /service "guacamole" has a database, but NixMox pins no extension hashes for guacamole-client 1\.7\.0; set nixmox\.guacamole\.extensionJars to include guacamole-auth-jdbc-postgresql-1\.7\.0\.jar and nixmox\.guacamole\.schemaFile/);
      assert.match(failed[1], /service "guacamole" has an OIDC client, but NixMox pins no extension hashes for guacamole-client 1\.7\.0; set nixmox\.guacamole\.extensionJars to include guacamole-auth-sso-openid-1\.7\.0\.jar/);
      // Given by hand (as a custom module would), they satisfy the assertions and are linked as given.
      const data = JSON.parse(example.hosts.find((host) => host.service === "guacamole")!.files["host.json"]);
      data.guacamole = { ...data.guacamole, extensionJars: ["/srv/jars/guacamole-auth-jdbc-postgresql-1.7.0.jar", "/srv/jars/guacamole-auth-sso-openid-1.7.0.jar"], schemaFile: "/srv/jars/001-create-schema.sql" };
      const hostJson = path.join(dir, "guacamole-by-hand.json");
      writeFileSync(hostJson, JSON.stringify(data));
      const byHand = JSON.parse(execFileSync("nix-instantiate", ["--eval", "--strict", "--json", harness, "--arg", "module", shippedNix("services/guacamole.nix"), "--arg", "hostJson", hostJson, "--argstr", "guacamoleVersion", "1.7.0"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }));
      assert.deepEqual(failedAssertions(byHand), []);
      assert.equal(byHand.environment.etc["guacamole/extensions/guacamole-auth-sso-openid-1.7.0.jar"].source, "/srv/jars/guacamole-auth-sso-openid-1.7.0.jar");
      assert.ok(byHand.systemd.services["nixmox-guacamole-schema"]);
    });

    it("fetches nothing and creates no schema for a Guacamole without database and OIDC client", () => {
      const raw = seedManifest() as Record<string, any>;
      delete raw.services.guacamole.interface.db;
      delete raw.services.guacamole.interface.auth;
      const rendered = renderWithConfigs(raw);
      const config = evalModule(rendered, "guacamole", "services/guacamole.nix", ["--argstr", "guacamoleVersion", "1.7.0"]);
      assert.deepEqual(failedAssertions(config), []);
      assert.deepEqual(config.environment.etc, {});
      assert.equal(config.systemd?.services?.["nixmox-guacamole-schema"], undefined);
    });
  });

  describe("vaultwarden (S5)", () => {
    it("leaves openid out of SSO_SCOPES (Vaultwarden always adds it)", () => {
      const config = evalModule(example, "vaultwarden", "services/vaultwarden.nix");
      assert.equal(config.services.vaultwarden.config.SSO_SCOPES, "email profile");
      assert.deepEqual(failedAssertions(config), []);
    });

    it("refuses an OIDC client when the pinned Vaultwarden predates SSO (1.35.0)", () => {
      const config = evalModule(example, "vaultwarden", "services/vaultwarden.nix", ["--argstr", "vaultwardenVersion", "1.34.3"]);
      assert.match(failedAssertions(config).join("\n"), /Vaultwarden 1\.34\.3 has no SSO \(it needs 1\.35\.0 or later\)/);
    });
  });
});
