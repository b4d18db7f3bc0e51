// Pure tests with the real nix-instantiate (the shipped modules' checks through their Nix builders) and, where it is
// installed, the real `caddy adapt` (Debian's caddy; .ci/run installs it). The classes of accepted-but-broken
// manifests that security review 2's fuzz found, one reproducer each, then a fixed-seed fuzz over the three
// examples that renders every accepted mutant and runs the module checks: none may be accepted and broken.
import assert from "node:assert/strict";
import * as path from "node:path";
import { ManifestError, loadManifestData, type Plan } from "../manifest";
import { caddyRefusal, checkExtraConfig } from "../manifest/caddy-check";
import { renderAll } from "../render";
import { caddyfilesOf, checkDeployBuilders, moduleAssertionFailures, renderSources } from "./support/deployable";
import { deepClone, planOf, seededRandom, type RawManifest } from "./support/manifests";

const examplesDir = path.join(__dirname, "..", "manifest");
const example = (file: string) => loadManifestData(path.join(examplesDir, file)) as Promise<RawManifest>;

describe("fuzz classes of security review 2, one reproducer each", function () {
  this.timeout(60_000);

  it("N3: a route of homepage to the proxy's port 22 leaves homepage's own listen port alone, and the module checks pass", async () => {
    const manifest = await example("service-manifest.nix");
    manifest.services.homepage.interface.proxy = {
      home: manifest.services.homepage.interface.proxy,
      b: { domain: "x.nixmox.lan", upstream: "192.168.99.10:22" },
    };
    const plan = planOf(manifest);
    const hosts = renderAll(plan, renderSources);
    const homepage = JSON.parse(hosts.find((host) => host.service === "homepage")!.files["host.json"]) as { custom: { listen: { port: number } } };
    assert.equal(homepage.custom.listen.port, 8082);
    assert.deepEqual(moduleAssertionFailures(hosts), []);
  });

  it("N5: a DNS service whose kind becomes postgresql opens PostgreSQL's port although its ports list only 53", async () => {
    const manifest = await example("service-manifest.nix");
    manifest.core_services.dns.kind = "postgresql";
    delete manifest.core_services.dns.interface.health;
    manifest.services.vaultwarden.interface.db.host = "postgresql.nixmox.lan";
    const plan = planOf(manifest);
    assert.deepEqual(plan.services.find((service) => service.name === "dns")!.ports, [53, 5432]);
    assert.deepEqual(moduleAssertionFailures(renderAll(plan, renderSources)), []);
  });

  it("reports the classes it guards (the check above can fail): a listen port and the PostgreSQL port left closed", async () => {
    const manifest = await example("service-manifest.nix");
    const hosts = renderAll(planOf(deepClone(manifest)), renderSources);
    const tamper = (service: string, edit: (data: any) => void) =>
      hosts.map((host) => (host.service === service ? { ...host, files: { ...host.files, "host.json": JSON.stringify((() => { const d = JSON.parse(host.files["host.json"]); edit(d); return d; })()) } } : host));
    assert.deepEqual(moduleAssertionFailures(tamper("homepage", (d) => (d.custom.listen.port = 22))), ["homepage: its listen port is not open"]);
    assert.deepEqual(moduleAssertionFailures(tamper("postgresql", (d) => (d.host.ports = [22000]))), ["postgresql: the PostgreSQL port is not open"]);
  });
});

/** A mutation as users make them (security review 2's "plausible" half), applied with the mutant's own PRNG. */
type Edit = (manifest: RawManifest, random: () => number) => void;

const pick = <T>(random: () => number, items: readonly T[]): T => items[Math.floor(random() * items.length)];
const groups = ["core_services", "services"] as const;
const entries = (manifest: RawManifest): Array<[string, Record<string, any>]> =>
  groups.flatMap((group) => Object.entries((manifest[group] ?? {}) as Record<string, Record<string, any>>)).sort(([a], [b]) => (a < b ? -1 : 1));
const anyService = (manifest: RawManifest, random: () => number) => pick(random, entries(manifest));
const subnetOf = (manifest: RawManifest) => (manifest.network.network_cidr as string).split("/")[0].split(".").slice(0, 3).join(".");
const domainOf = (manifest: RawManifest): string => manifest.network.domain ?? "homelab.lan";
const freeIp = (manifest: RawManifest, random: () => number) => `${subnetOf(manifest)}.${100 + Math.floor(random() * 150)}`;
const proxyRoutes = (service: Record<string, any>): Record<string, any> => {
  service.interface ??= {};
  const proxy = service.interface.proxy;
  if (proxy === undefined) return (service.interface.proxy = {});
  if ("domain" in proxy || "upstream" in proxy) return (service.interface.proxy = { main: proxy });
  return proxy;
};
const extraConfigs = ["", "redir / /app/ 302", "header {\n  X-Frame-Options DENY\n}\n", "header { -Server }", "import x", "rewrit /a /b", "redir / /x 999", "encode gzip", "respond /health 200"];

const edits: Record<string, Edit> = {
  cloneService(m, r) {
    const [name, service] = anyService(m, r);
    const clone = structuredClone(service);
    const newName = `${name}-copy`;
    clone.ip = freeIp(m, r);
    delete clone.vmid;
    if (clone.hostname) clone.hostname = `${newName}.${domainOf(m)}`;
    const proxy = clone.interface?.proxy;
    if (proxy) {
      const routes = "domain" in proxy ? { main: proxy } : proxy;
      for (const [key, route] of Object.entries(routes as Record<string, any>)) {
        route.domain = `${newName}-${key}.${domainOf(m)}`;
        route.upstream = `${clone.ip}:${String(route.upstream).split(":")[1]}`;
      }
    }
    if (clone.interface?.auth?.oidc?.client_id) clone.interface.auth.oidc.client_id = `${newName}-client`;
    m.services[newName] = clone;
  },
  changePorts(m, r) {
    const [, service] = anyService(m, r);
    const ports: number[] = service.ports ?? [];
    service.ports = r() < 0.5 && ports.length > 0 ? ports.filter((_, index) => index !== Math.floor(r() * ports.length)) : [...ports, pick(r, [22, 53, 80, 443, 5432, 8080, 9000, 3000, 65535])];
  },
  addDatabase(m, r) {
    const [, service] = anyService(m, r);
    const key = pick(r, ["sonarr", "radarr", "jellyfin", "extra", "app"]);
    service.interface ??= {};
    service.interface.dbs = { ...(service.interface.dbs ?? {}), [key]: { host: pick(r, ["postgresql", "caddy", "dns"]), ...(r() < 0.5 ? { name: pick(r, ["postgres", "template1", "template0", "shared", key]) } : {}) } };
  },
  addRoute(m, r) {
    const [name, service] = anyService(m, r);
    const others = entries(m).filter(([other]) => other !== name);
    const target = r() < 0.6 ? service : pick(r, others)[1];
    const route: Record<string, any> = {
      domain: `${name}-r${Math.floor(r() * 5)}.${domainOf(m)}`,
      upstream: `${target.ip}:${pick(r, [22, 80, 8080, 8081, 9000, 3000, 65535])}`,
      extra_config: pick(r, extraConfigs),
    };
    if (r() < 0.3) route.auth = pick(r, [{ type: "forward_auth" }, { type: "oidc" }, "none"]);
    proxyRoutes(service)[`r${Math.floor(r() * 3)}`] = route;
  },
  changeKind(m, r) {
    const [, service] = anyService(m, r);
    service.kind = pick(r, ["dns", "caddy", "postgresql", "vaultwarden", "monitoring", "media", "openbao", "mail", "pgadmin", "custom"]);
    if (service.kind === "custom") service.nixos_modules = ["modules/homepage.nix"];
  },
  toggleEnable(m, r) {
    const [, service] = anyService(m, r);
    service.enable = service.enable === false;
  },
  addHealthCheck(m, r) {
    const [, service] = anyService(m, r);
    service.interface ??= {};
    const health = (service.interface.health ??= {});
    health.checks = [...(health.checks ?? []), pick(r, [
      { type: "tcp", port: pick(r, [1, 22, 8080, 65535]) },
      { type: "http", url: pick(r, ["http://127.0.0.1:8080/", "https://x.test:65535/a?b=c", "http://[::1]:80/"]), from: pick(r, ["host", "controller"]) },
      { type: "systemd", unit: pick(r, ["x.service", "a@b.service"]) },
    ])];
    if (r() < 0.5) Object.assign(health, { interval: pick(r, [0.001, 1, 86400]), retries: pick(r, [1, 10000]), start_period: pick(r, [0, 86400]) });
  },
  addSecret(m, r) {
    const [, service] = anyService(m, r);
    service.secrets = { ...(service.secrets ?? {}), [pick(r, ["env", "token.file", "db_password"])]: { mode: pick(r, ["0400", "0440", "400", "0644"]), owner: pick(r, ["root", "app"]), restart_units: [pick(r, ["app.service", "x@y.service"])] } };
  },
  pointHostname(m, r) {
    const [name, service] = anyService(m, r);
    const [otherName, other] = pick(r, entries(m).filter(([candidate]) => candidate !== name));
    service.hostname = pick(r, [otherName, other.hostname ?? `${otherName}.${domainOf(m)}`, `${name}.other.test`, name]);
  },
  editOidc(m, r) {
    const [, service] = anyService(m, r);
    service.interface ??= {};
    service.interface.auth = { type: "oidc", ...(r() < 0.5 ? { oidc: { client_type: pick(r, ["public", "confidential"]), ...(r() < 0.5 ? { redirect_uris: [`https://x.${domainOf(m)}/cb`] } : {}) } } : {}) };
  },
  addDependency(m, r) {
    const [name, service] = anyService(m, r);
    service.depends_on = [...(service.depends_on ?? []), pick(r, entries(m).map(([other]) => other).filter((other) => other !== name))];
  },
  changeIp(m, r) {
    const [name, service] = anyService(m, r);
    service.ip = pick(r, [freeIp(m, r), m.network.gateway, pick(r, entries(m).filter(([other]) => other !== name))[1].ip, "10.255.255.1"]);
  },
  vmid(m, r) {
    const [, service] = anyService(m, r);
    if (r() < 0.5) delete service.vmid;
    else service.vmid = pick(r, entries(m))[1].vmid ?? 4242;
  },
  terraform(m, r) {
    const [, service] = anyService(m, r);
    service.interface ??= {};
    service.interface.terraform = { modules: ["./terraform/x"], variables: { domain: pick(r, [domainOf(m), "old.lan"]), network_cidr: m.network.network_cidr } };
  },
  dropDomain(m) {
    delete m.network.domain;
  },
};

interface Outcome {
  accepted: number;
  rejected: number;
  broken: string[];
}

describe("fixed-seed fuzz of the three examples: nothing accepted is broken (security review 2, target 0)", function () {
  this.timeout(900_000);

  it("renders every accepted mutant, runs the deploy builders, the modules' checks and the real Caddy on its Caddyfile", async () => {
    const perExample = 300;
    const bases: Array<[string, RawManifest]> = [];
    for (const file of ["service-manifest.nix", "examples/seed-homelab.nix", "examples/older-homelab.nix"]) bases.push([file, await example(file)]);
    const outcome: Outcome = { accepted: 0, rejected: 0, broken: [] };
    const hostsToCheck = new Map<string, { service: string; files: Record<string, string> }>();
    const caddyHosts = new Map<string, string[]>();
    const names = Object.keys(edits).sort();
    for (const [baseIndex, [file, base]] of bases.entries()) {
      for (let index = 0; index < perExample; index += 1) {
        const random = seededRandom(19 * 1_000_003 + baseIndex * 10_000 + index);
        const label = `${file}#${index}`;
        const manifest = deepClone(base);
        const applied: string[] = [];
        for (let count = 1 + Math.floor(random() * 3); count > 0; count -= 1) {
          const name = pick(random, names);
          applied.push(name);
          edits[name](manifest, random);
        }
        const tag = `${label} (${applied.join(", ")})`;
        let plan: Plan;
        try {
          plan = planOf(manifest, "mutant.json");
        } catch (error) {
          if (error instanceof ManifestError) {
            outcome.rejected += 1;
            continue;
          }
          outcome.broken.push(`${tag}: validation threw ${String(error)}`);
          continue;
        }
        // As loadPlan does: Caddy refuses a route's extra_config before anything is planned.
        const caddyCheck = await checkExtraConfig(plan.routes.map((route) => ({ service: route.service, field: route.name, extraConfig: route.extraConfig })));
        if (caddyCheck.problems.length > 0) {
          outcome.rejected += 1;
          continue;
        }
        outcome.accepted += 1;
        try {
          const hosts = renderAll(plan, renderSources);
          checkDeployBuilders(plan, hosts);
          for (const host of hosts) {
            const key = host.files["host.json"];
            if (!hostsToCheck.has(key)) hostsToCheck.set(key, { service: `${tag} ${host.service}`, files: host.files });
            if ((JSON.parse(key) as { host: { kind: string } }).host.kind === "caddy") caddyHosts.set(key, [...(caddyHosts.get(key) ?? []), `${tag} ${host.service}`]);
          }
        } catch (error) {
          outcome.broken.push(`${tag}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    }
    // The modules' checks through their Nix builders, each distinct host once, in batches.
    const distinct = [...hostsToCheck.values()];
    for (let start = 0; start < distinct.length; start += 80) outcome.broken.push(...moduleAssertionFailures(distinct.slice(start, start + 80)));
    // Each distinct Caddyfile, as the proxy's own builder writes it, through the real Caddy.
    const caddyfiles = new Map<string, string[]>();
    const caddyList = [...caddyHosts.entries()];
    for (let start = 0; start < caddyList.length; start += 80) {
      const batch = caddyList.slice(start, start + 80);
      const texts = caddyfilesOf(batch.map(([hostJson]) => hostJson));
      batch.forEach(([, labels], at) => caddyfiles.set(texts[at], [...(caddyfiles.get(texts[at]) ?? []), ...labels]));
    }
    for (const [text, labels] of caddyfiles) {
      const refusal = await caddyRefusal(text);
      if (refusal !== null) outcome.broken.push(`${labels[0]}: caddy refuses the Caddyfile: ${refusal}`);
    }
    assert.deepEqual(outcome.broken, [], `${outcome.broken.length} of ${outcome.accepted} accepted mutants are broken`);
    // The fuzz proves something only when a fair share of mutants gets through validation.
    assert.ok(outcome.accepted >= perExample, `only ${outcome.accepted} of ${3 * perExample} mutants were accepted`);
    assert.ok(caddyfiles.size >= 10, `only ${caddyfiles.size} distinct Caddyfiles were checked`);
  });
});
