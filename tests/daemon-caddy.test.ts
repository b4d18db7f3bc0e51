// The proxy host's Caddyfile from `nixmox render --configs`, fed to the real Debian caddy: `caddy validate`
// accepts it (example manifest and seed layout), and a live caddy runs it in front of stub upstreams and a stub
// authentik outpost on the manifest's (loopback) addresses. The only change for the test is in the JSON
// `caddy adapt` makes of the file: the servers listen on 127.0.0.1 with free ports instead of :80/:443 and the
// admin endpoint is off; site addresses, routes, TLS and forward auth are the generated ones.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { connect as tlsConnect } from "node:tls";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { loadManifestData } from "../manifest";
import { exampleManifestData, exampleManifestDir } from "./golden/render-fixtures";
import { freePort, moveToSubnet, randomLoopbackSubnet, renderWithConfigs, startDaemon, waitFor, type Daemon } from "./support/daemons";
import { seedManifest } from "./support/manifests";

interface Seen {
  path: string;
  headers: IncomingHttpHeaders;
}

interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function caddyEnv(dir: string): NodeJS.ProcessEnv {
  return { ...process.env, HOME: dir, XDG_DATA_HOME: path.join(dir, "data"), XDG_CONFIG_HOME: path.join(dir, "config") };
}

describe("daemon: caddy validates the generated Caddyfile", function () {
  this.timeout(120_000);
  for (const [label, load] of [
    ["example manifest", async () => exampleManifestData()],
    ["seed layout", async () => seedManifest()],
    ["seed homelab with the new kinds", async () => loadManifestData(path.join(exampleManifestDir, "examples", "seed-homelab.nix"))],
    ["older homelab (no domain, no vmids)", async () => loadManifestData(path.join(exampleManifestDir, "examples", "older-homelab.nix"))],
  ] as const) {
    it(`caddy validate accepts the ${label}'s Caddyfile`, async () => {
      const rendered = renderWithConfigs(await load());
      const dir = mkdtempSync(path.join(tmpdir(), "nixmox-caddy-validate-"));
      try {
        writeFileSync(path.join(dir, "Caddyfile"), rendered.configs.caddy.Caddyfile);
        const out = execFileSync("caddy", ["validate", "--adapter", "caddyfile", "--config", path.join(dir, "Caddyfile")], {
          encoding: "utf8",
          env: caddyEnv(dir),
          timeout: 60_000,
          stdio: ["ignore", "pipe", "pipe"],
        });
        assert.match(out, /Valid configuration/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

for (const managedCa of [false, true]) describe(`daemon: a live caddy runs the generated site blocks (example manifest on loopback, ${managedCa ? "managed CA" : "Caddy's own CA"})`, function () {
  this.timeout(120_000);
  const subnet = randomLoopbackSubnet();
  let dir: string;
  let caddy: Daemon | undefined;
  let httpsPort: number;
  let ca: string;
  const servers: Server[] = [];
  const seen = new Map<string, Seen[]>();
  const outpostSeen: Seen[] = [];

  /** An upstream that records what reached it and answers 200 with its name. */
  function stubUpstream(name: string, host: string, port: number, outpost = false): Promise<void> {
    const server = createServer((req, res) => {
      const entry = { path: req.url ?? "", headers: req.headers };
      if (outpost && entry.path.startsWith("/outpost.goauthentik.io/auth/caddy")) {
        outpostSeen.push(entry);
        // authentik's outpost: 200 plus the identity headers for a session, otherwise a redirect to the login flow.
        if ((req.headers.cookie ?? "").includes("authentik_session=valid")) {
          res.writeHead(200, { "X-Authentik-Username": "alice", "X-Authentik-Groups": "admins", "X-Not-Copied": "x" });
        } else {
          res.writeHead(302, { Location: `https://auth.nixmox.lan/outpost.goauthentik.io/start?rd=${encodeURIComponent(String(req.headers["x-forwarded-host"]))}` });
        }
        res.end();
        return;
      }
      seen.set(name, [...(seen.get(name) ?? []), entry]);
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end(name);
    });
    servers.push(server);
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
  }

  function get(domain: string, urlPath: string, headers: Record<string, string> = {}): Promise<Response> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: "127.0.0.1", port: httpsPort, path: urlPath, servername: domain, ca, headers: { Host: domain, ...headers } },
        (res) => {
          let body = "";
          res.on("data", (chunk) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });
  }

  let root: { cert: string } | undefined;
  /** caddy's environment; with the managed CA, $CREDENTIALS_DIRECTORY holds its root as systemd's LoadCredential= would. */
  const env = () => ({ ...caddyEnv(dir), ...(managedCa ? { CREDENTIALS_DIRECTORY: path.join(dir, "credentials") } : {}) });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-caddy-"));
    mkdirSync(path.join(dir, "data"));
    mkdirSync(path.join(dir, "credentials"), { mode: 0o700 });
    if (managedCa) {
      // NixMox's own CA (components/managed-ca.ts), constrained to the example's domain: the root and the
      // intermediate reach the proxy as their credentials; the root's key does not.
      const { createIntermediateCa, createRootCa } = require("../components/managed-ca") as typeof import("../components/managed-ca");
      const made = await createRootCa({ commonName: "NixMox test root", validityHours: 720, permittedDomains: ["nixmox.lan"] });
      const intermediate = await createIntermediateCa({ commonName: "NixMox test intermediate", validityHours: 720, permittedDomains: ["nixmox.lan"], rootCertificatePem: made.certificatePem, rootKeyPem: made.privateKeyPem, renewBeforeDays: 30 });
      root = { cert: made.certificatePem };
      writeFileSync(path.join(dir, "credentials", "nixmox_ca_cert"), made.certificatePem);
      writeFileSync(path.join(dir, "credentials", "nixmox_ca_intermediate_cert"), intermediate.certificatePem);
      writeFileSync(path.join(dir, "credentials", "nixmox_ca_intermediate_key"), intermediate.privateKeyPem, { mode: 0o600 });
    }
    const raw = moveToSubnet(await exampleManifestData(), subnet);
    // A monitoring host whose routes set no auth, as the seed's do (review N3).
    raw.services.monitoring = {
      ip: `${subnet}.18`,
      vmid: 918,
      depends_on: ["caddy"],
      interface: {
        proxy: {
          prometheus: { domain: "prometheus.nixmox.lan", upstream: `${subnet}.18:9090` },
          loki: { domain: "loki.nixmox.lan", upstream: `${subnet}.18:3100` },
          // Outside the homelab's domain: the managed CA's name constraints must make it untrusted.
          grafana: { domain: "grafana.example.org", upstream: `${subnet}.18:3000` },
        },
      },
    };
    const rendered = renderWithConfigs(raw, root ? { caRootCertificate: root.cert } : {});
    const caddyfile = rendered.configs.caddy.Caddyfile;
    assert.equal(caddyfile.includes("pki {"), managedCa);
    writeFileSync(path.join(dir, "Caddyfile"), caddyfile);

    const config = JSON.parse(execFileSync("caddy", ["adapt", "--adapter", "caddyfile", "--config", path.join(dir, "Caddyfile")], {
      encoding: "utf8",
      env: env(),
      timeout: 60_000,
      stdio: ["ignore", "pipe", "pipe"],
    }));
    httpsPort = await freePort();
    const httpPort = await freePort();
    config.admin = { disabled: true };
    config.apps.http.http_port = httpPort;
    config.apps.http.https_port = httpsPort;
    for (const server of Object.values(config.apps.http.servers) as Array<{ listen: string[] }>) {
      server.listen = server.listen.map((address) => (address === ":443" ? `127.0.0.1:${httpsPort}` : address === ":80" ? `127.0.0.1:${httpPort}` : address));
    }
    writeFileSync(path.join(dir, "caddy.json"), JSON.stringify(config));

    for (const route of rendered.data("caddy").caddy.routes as Array<{ service: string; upstream: string }>) {
      const [host, port] = route.upstream.split(":");
      if (servers.some((server) => (server.address() as { address: string; port: number }).port === Number(port) && (server.address() as { address: string }).address === host)) continue;
      await stubUpstream(route.service, host, Number(port), route.service === "authentik");
    }

    caddy = startDaemon("caddy", ["run", "--config", path.join(dir, "caddy.json")], { env: env() });
    // The client trusts exactly one root: the managed CA's, or the one Caddy generated for itself.
    const localRoot = path.join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt");
    ca = root?.cert ?? await waitFor("caddy's internal CA", () => {
      try {
        return readFileSync(localRoot, "utf8");
      } catch {
        return undefined;
      }
    });
    await waitFor("caddy to serve", async () => ((await get("vault.nixmox.lan", "/")).status === 200 ? true : undefined));
  });

  after(async () => {
    await caddy?.stop();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it(managedCa ? "serves every internal-TLS site with a certificate from the managed CA and never makes a CA of its own" : "serves every internal-TLS site with a certificate from its own CA", async () => {
    for (const domain of ["vault.nixmox.lan", "home.nixmox.lan", "auth.nixmox.lan", "guac.nixmox.lan"]) {
      assert.ok((await get(domain, "/")).status > 0, domain);
    }
    if (managedCa) assert.throws(() => readFileSync(path.join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt")));
  });

  if (managedCa) it("serves a chain up to the managed root through its intermediate, and a site outside the homelab's domain is refused by the client (name constraints)", async () => {
    const chain = await new Promise<string[]>((resolve, reject) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: httpsPort, servername: "vault.nixmox.lan", ca }, () => {
        const names: string[] = [];
        for (let certificate = socket.getPeerCertificate(true); certificate && !names.includes(certificate.fingerprint256); certificate = certificate.issuerCertificate) names.push(certificate.fingerprint256, String(certificate.subject.CN ?? "(no CN)"));
        socket.end();
        resolve(names.filter((_, index) => index % 2 === 1));
      });
      socket.on("error", reject);
    });
    assert.deepEqual(chain.slice(1), ["NixMox test intermediate", "NixMox test root"]);
    await assert.rejects(get("grafana.example.org", "/"), (error: NodeJS.ErrnoException) => error.code === "ERR_TLS_CERT_ALTNAME_INVALID" || /permitted subtree violation|PERMITTED_VIOLATION/i.test(`${error.code} ${error.message}`));
  });

  it("sends a route's requests to its upstream with the path and query intact", async () => {
    const response = await get("vault.nixmox.lan", "/api/config?x=1");
    assert.equal(response.status, 200);
    assert.equal(response.body, "vaultwarden");
    assert.equal(seen.get("vaultwarden")!.at(-1)!.path, "/api/config?x=1");
  });

  it("sends the bare Guacamole domain to /guacamole/ (the example's route) and proxies the app's paths", async () => {
    const response = await get("guac.nixmox.lan", "/");
    assert.equal(response.status, 302);
    assert.equal(response.headers.location, "/guacamole/");
    assert.equal((await get("guac.nixmox.lan", "/guacamole/api/languages")).body, "guacamole");
    assert.equal(seen.get("guacamole")!.at(-1)!.path, "/guacamole/api/languages");
  });

  it("redirects a forward-auth route to the login when the outpost refuses, without reaching the upstream", async () => {
    const before = seen.get("homepage")?.length ?? 0;
    const response = await get("home.nixmox.lan", "/dashboard");
    assert.equal(response.status, 302);
    assert.match(String(response.headers.location), /^https:\/\/auth\.nixmox\.lan\/outpost\.goauthentik\.io\/start/);
    assert.equal(seen.get("homepage")?.length ?? 0, before);
  });

  it("passes the outpost's X-Authentik-* headers (and only those) to the upstream when the outpost allows", async () => {
    const response = await get("home.nixmox.lan", "/dashboard", { Cookie: "authentik_session=valid" });
    assert.equal(response.status, 200);
    assert.equal(response.body, "homepage");
    const upstream = seen.get("homepage")!.at(-1)!;
    assert.equal(upstream.path, "/dashboard");
    assert.equal(upstream.headers["x-authentik-username"], "alice");
    assert.equal(upstream.headers["x-authentik-groups"], "admins");
    assert.equal(upstream.headers["x-not-copied"], undefined);
  });

  it("never lets a client-supplied X-Forwarded-Host or X-Forwarded-Proto reach the outpost", async () => {
    await get("home.nixmox.lan", "/x", { "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http" });
    const asked = outpostSeen.at(-1)!;
    assert.equal(asked.headers["x-forwarded-host"], "home.nixmox.lan");
    assert.equal(asked.headers["x-forwarded-proto"], "https");
    assert.equal(asked.headers["x-forwarded-uri"], "/x");
  });

  it("proxies the outpost's own endpoints on a forward-auth domain to the outpost", async () => {
    const response = await get("home.nixmox.lan", "/outpost.goauthentik.io/callback?code=1");
    assert.equal(response.body, "authentik");
    assert.equal(seen.get("authentik")!.at(-1)!.path, "/outpost.goauthentik.io/callback?code=1");
  });

  it("protects a route to an app without a login (Prometheus, no auth in the manifest) with forward auth", async () => {
    const before = seen.get("monitoring")?.length ?? 0;
    const response = await get("prometheus.nixmox.lan", "/api/v1/query?query=up");
    assert.equal(response.status, 302);
    assert.match(String(response.headers.location), /^https:\/\/auth\.nixmox\.lan\/outpost\.goauthentik\.io\/start/);
    assert.equal(seen.get("monitoring")?.length ?? 0, before);
    assert.equal((await get("prometheus.nixmox.lan", "/api/v1/query?query=up", { Cookie: "authentik_session=valid" })).body, "monitoring");
  });

  it("refuses Loki's push endpoints through the proxy, even with a session, and proxies its queries", async () => {
    const before = seen.get("monitoring")?.length ?? 0;
    for (const pushPath of ["/loki/api/v1/push", "/api/prom/push", "/otlp/v1/logs"]) {
      assert.equal((await get("loki.nixmox.lan", pushPath, { Cookie: "authentik_session=valid" })).status, 403, pushPath);
    }
    assert.equal((await get("loki.nixmox.lan", "/loki/api/v1/push")).status, 302, "without a session the login comes first");
    assert.equal(seen.get("monitoring")?.length ?? 0, before);
    const query = await get("loki.nixmox.lan", "/loki/api/v1/labels", { Cookie: "authentik_session=valid" });
    assert.equal(query.body, "monitoring");
    assert.equal(seen.get("monitoring")!.at(-1)!.path, "/loki/api/v1/labels");
  });
});
