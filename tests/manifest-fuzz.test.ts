// Pure tests with the real nix-instantiate (the shipped modules' checks through their Nix builders) and, where it is
// installed, the real `caddy adapt` (Debian's caddy; .ci/run installs it). The classes of accepted-but-broken
// manifests that security review 2's fuzz found, one reproducer each, then a fixed-seed fuzz over the three
// examples that renders every accepted mutant and runs the module checks: none may be accepted and broken.
import assert from "node:assert/strict";
import * as path from "node:path";
import { loadManifestData } from "../manifest";
import { renderAll } from "../render";
import { moduleAssertionFailures, renderSources } from "./support/deployable";
import { deepClone, planOf, type RawManifest } from "./support/manifests";

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
