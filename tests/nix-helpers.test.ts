// The pure Nix helpers under nixos/lib, evaluated with the real nix-instantiate --eval (builtins only, no
// nixpkgs needed), and the shell quoting helper run through a real /bin/sh. Nothing is mocked.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { nixEval, shippedNix } from "./golden/render-fixtures";

const caddy = `(import ${shippedNix("lib/caddy.nix")})`;
const dns = `(import ${shippedNix("lib/dns.nix")})`;
const pg = `(import ${shippedNix("lib/postgresql.nix")})`;
const shell = `(import ${shippedNix("lib/shell.nix")})`;

/** A Nix expression for a JSON value. */
const json = (value: unknown) => `(builtins.fromJSON ${JSON.stringify(JSON.stringify(value))})`;

const route = (fields: Record<string, unknown>) => ({
  service: "app", name: "default", domain: "app.lan", path: "/", upstream: "10.0.0.5:80", tls: "internal", forwardAuthUpstream: null, extraConfig: "", ...fields,
});

describe("nix: pure helpers evaluated by nix-instantiate", function () {
  this.timeout(60_000);

  describe("lib/caddy.nix", () => {
    it("turns route paths into Caddy path matchers", () => {
      assert.deepEqual(nixEval(`map ${caddy}.pathMatcher [ "/" "/admin" "/admin/" "/api*" ]`), [null, ["/admin", "/admin/*"], ["/admin", "/admin/*"], ["/api*"]]);
    });

    it("prefixes plain-HTTP sites with http:// and leaves TLS sites bare", () => {
      assert.deepEqual(nixEval(`[ (${caddy}.siteAddress "a.lan" "off") (${caddy}.siteAddress "a.lan" "internal") (${caddy}.siteAddress "a.lan" "acme") ]`), ["http://a.lan", "a.lan", "a.lan"]);
    });

    it("renders an ACME site without `tls internal` and a plain HTTP site without TLS", () => {
      assert.equal(
        nixEval(`${caddy}.caddyfile ${json([route({ domain: "b.lan", tls: "acme" }), route({ domain: "a.lan", tls: "off", upstream: "10.0.0.6:81" })])}`),
        "http://a.lan {\n\thandle {\n\t\treverse_proxy 10.0.0.6:81\n\t}\n}\n\nb.lan {\n\thandle {\n\t\treverse_proxy 10.0.0.5:80\n\t}\n}\n",
      );
    });

    it("orders a domain's routes from the longest path to the catch-all", () => {
      const out = nixEval(`${caddy}.caddyfile ${json([route({}), route({ name: "api", path: "/api" }), route({ name: "apiv2", path: "/api/v2" })])}`) as string;
      const order = [...out.matchAll(/handle( @\w+)? \{/g)].map((match) => match[1]?.trim() ?? "catch-all");
      assert.deepEqual(order, ["@nixmox_app_apiv2", "@nixmox_app_api", "catch-all"]);
    });

    it("opens one-line blocks of extra_config onto lines (Caddy rejects a token after '{' on its line) and keeps placeholders", () => {
      assert.equal(nixEval(`${caddy}.expandBlocks "header { -Server }\nheader X-Host {http.request.host}"`), "header {\n-Server\n}\nheader X-Host {http.request.host}");
    });

    it("reports domains whose routes disagree on TLS or on the forward-auth outpost", () => {
      const routes = [
        route({}),
        route({ name: "b", path: "/b", tls: "off" }),
        route({ domain: "c.lan", forwardAuthUpstream: "10.0.0.9:9000" }),
        route({ domain: "c.lan", name: "x", path: "/x", forwardAuthUpstream: "10.0.0.8:9000" }),
      ];
      assert.deepEqual(nixEval(`[ (${caddy}.conflictingTls ${json(routes)}) (${caddy}.conflictingOutposts ${json(routes)}) ]`), [["app.lan"], ["c.lan"]]);
    });
  });

  describe("lib/dns.nix", () => {
    const records = [
      { name: "web.lan", type: "A", value: "10.0.0.10", source: "route" },
      { name: "proxy.lan", type: "A", value: "10.0.0.10", source: "host" },
      { name: "db.lan", type: "A", value: "10.0.0.11", source: "host" },
    ];

    it("renders sorted, quoted local-data and PTR records only for hosts", () => {
      assert.deepEqual(nixEval(`${dns}.localData ${json(records)}`), ['"db.lan. IN A 10.0.0.11"', '"proxy.lan. IN A 10.0.0.10"', '"web.lan. IN A 10.0.0.10"']);
      assert.deepEqual(nixEval(`${dns}.localDataPtr ${json(records)}`), ['"10.0.0.11 db.lan."', '"10.0.0.10 proxy.lan."']);
    });

    it("finds records that would inject unbound.conf syntax and names with two addresses", () => {
      const bad = [...records, { name: "x.lan\" IN A 1.1.1.1", type: "A", value: "10.0.0.1", source: "host" }, { name: "db.lan", type: "A", value: "10.0.0.12", source: "route" }];
      assert.deepEqual(nixEval(`map (r: r.name) (${dns}.invalidRecords ${json(bad)})`), ['x.lan" IN A 1.1.1.1']);
      assert.deepEqual(nixEval(`${dns}.conflictingNames ${json(bad)}`), ["db.lan"]);
    });

    it("allows loopback and the given networks and forwards the root zone", () => {
      assert.deepEqual(nixEval(`${dns}.accessControl [ "10.0.0.0/24" ]`), ["127.0.0.0/8 allow", "10.0.0.0/24 allow"]);
      assert.deepEqual(nixEval(`${dns}.forwardZone [ "10.0.0.1" ]`), [{ name: ".", "forward-addr": ["10.0.0.1"] }]);
    });
  });

  describe("lib/postgresql.nix", () => {
    const dbs = [
      { name: "wiki", owner: "wiki_owner", clientIp: "10.0.0.21", credential: "wiki-db_password" },
      { name: "app", owner: "app", clientIp: "10.0.0.20", credential: "app-db_password" },
    ];

    it("renders one host line per database for its owner from its client's address only", () => {
      assert.equal(nixEval(`${pg}.hba ${json(dbs)}`), 'local all postgres peer\nhost "app" "app" 10.0.0.20/32 scram-sha-256\nhost "wiki" "wiki_owner" 10.0.0.21/32 scram-sha-256\n');
    });

    it("sets passwords from the credential files through psql variables, never as SQL text", () => {
      assert.equal(
        nixEval(`${pg}.setupScript ${json([dbs[1]])}`),
        [
          "\\set ON_ERROR_STOP on",
          "SET ROLE NONE;",
          "SET search_path = pg_catalog, pg_temp;",
          "SET log_statement TO 'none';",
          'ALTER DATABASE "postgres" OWNER TO CURRENT_USER;',
          'ALTER DATABASE "postgres" RESET ALL;',
          'ALTER DATABASE "template0" OWNER TO CURRENT_USER;',
          'ALTER DATABASE "template0" RESET ALL;',
          'ALTER DATABASE "template1" OWNER TO CURRENT_USER;',
          'ALTER DATABASE "template1" RESET ALL;',
          `SELECT 'CREATE ROLE "app" LOGIN' WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'app')\\gexec`,
          `SELECT 'CREATE DATABASE "app" OWNER "app"' WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = 'app')\\gexec`,
          'ALTER DATABASE "app" OWNER TO "app";',
          '\\set pw `cat "$CREDENTIALS_DIRECTORY/app-db_password"`',
          `ALTER ROLE "app" WITH LOGIN PASSWORD :'pw';`,
          "\\unset pw",
          "",
        ].join("\n"),
      );
    });

    it("quotes every name, so an additional database with '-' and reserved words stay plain names", () => {
      const named = [{ name: "sonarr-log", owner: "user", clientIp: "10.0.0.22", credential: "media-sonarr_db_password" }];
      assert.equal(nixEval(`${pg}.hba ${json(named)}`), 'local all postgres peer\nhost "sonarr-log" "user" 10.0.0.22/32 scram-sha-256\n');
      assert.match(nixEval(`${pg}.setupScript ${json(named)}`) as string, /^SELECT 'CREATE DATABASE "sonarr-log" OWNER "user"' WHERE NOT EXISTS \(SELECT FROM pg_catalog\.pg_database WHERE datname = 'sonarr-log'\)\\gexec$/m);
      assert.deepEqual(nixEval(`${pg}.invalidDatabases ${json(named)}`), []);
    });

    it("finds database requests whose identifiers or addresses could inject SQL or pg_hba syntax", () => {
      const bad = [...dbs, { name: "x; DROP", owner: "a", clientIp: "10.0.0.1", credential: "c" }, { name: "y", owner: "y", clientIp: "0.0.0.0/0", credential: "c" }];
      assert.deepEqual(nixEval(`map (d: d.name) (${pg}.invalidDatabases ${json(bad)})`), ["x; DROP", "y"]);
    });

    it("finds a request for one of PostgreSQL's own databases (security review N1), as validate does", () => {
      const system = ["postgres", "template0", "template1"].map((name) => ({ name, owner: "app", clientIp: "10.0.0.20", credential: "c" }));
      assert.deepEqual(nixEval(`map (d: d.name) (${pg}.invalidDatabases ${json([...dbs, ...system])})`), ["postgres", "template0", "template1"]);
    });
  });

  describe("lib/shell.nix", () => {
    it("single-quotes values so that a real /bin/sh gives them back unchanged", () => {
      const values = ["plain", "it's", "$(id) `id` $HOME", "a\nb", "'", "", "\\\"*?[]"];
      const quoted = nixEval(`map ${shell}.shellQuote ${json(values)}`) as string[];
      for (let i = 0; i < values.length; i += 1) {
        assert.equal(execFileSync("/bin/sh", ["-c", `printf %s ${quoted[i]}`], { encoding: "utf8", timeout: 10_000 }), values[i]);
      }
    });

    it("accepts only absolute paths of safe characters and makes credential ids without / or :", () => {
      assert.deepEqual(nixEval(`map ${shell}.isSafePath [ "/var/lib/nixmox/secrets/a/b" "relative" "/a b" "/a:b" ]`), [true, false, false, false]);
      assert.equal(nixEval(`${shell}.credentialId "a/b:c"`), "a_b_c");
    });
  });
});
