// NixMox's own index.ts under the real engine (tools/engine: the Pulumi CLI, our language host, bpg's provider)
// deploys the example homelab into the twin (twin/): the Proxmox VE API twin creates real hosts, the stand-in
// nixos-rebuild in each builds its system from the pushed flake with NixMox's own config builders and runs Debian's
// caddy, unbound and postgresql on the result, and the fake Authentik API runs behind the authentik host, reached
// through the SSH tunnel. One twin serves the scenarios of this file in order, each asserting the twin's state and
// the stack's. Needs root (namespaces, mounts) and the daemons .ci/run installs.
// What the twin does not prove: NixOS evaluation and builds, systemd's unit semantics, the Proxmox kernel (cgroups,
// LXC id maps), Hydra downloads, a real Authentik (twin/README.md).
import { strict as assert } from "node:assert";
import { readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { loadPlan } from "../manifest";
import { named, startHomelab, type Homelab } from "./support/twin-homelab";

describe("the example homelab in the twin (real engine, NixMox's index.ts)", function () {
  this.timeout(900_000);
  let homelab: Homelab;
  const services = ["authentik", "caddy", "dns", "guacamole", "homepage", "postgresql", "vaultwarden"];

  before(async () => {
    homelab = await startHomelab();
  });

  after(async () => {
    await homelab?.stop({ remove: true });
  });

  describe("scenario 1: the first deploy", () => {
    let upRun: Awaited<ReturnType<Homelab["nixmox"]>>;

    before(async () => {
      upRun = await homelab.nixmox(["up", "--yes"], { allowFailure: true });
    });

    it("nixmox up --yes succeeds and every service reports healthy", async () => {
      assert.equal(upRun.status, 0, `${upRun.stdout}\n${upRun.stderr}`);
      const outputs = await homelab.outputs();
      assert.deepEqual(Object.keys(outputs.services).sort(), services);
      for (const name of services) assert.equal(outputs.services[name].healthy, true, name);
    });

    it("created and started every container as the manifest says: vmid, address, memory, hostname", async () => {
      const plan = await loadPlan(homelab.manifest);
      const node = homelab.twin.cluster.node("pve");
      assert.deepEqual([...node.containers.keys()].sort(), [910, 911, 912, 913, 914, 915, 916]);
      for (const name of services) {
        const { ip, vmid } = homelab.service(name);
        const container = node.container(vmid);
        assert.equal(container.host.running, true, name);
        assert.match(String(container.conf.net0), new RegExp(`,ip=${ip.replace(/\./g, "\\.")}/24,tag=99,`), name);
        assert.equal(container.conf.hostname, name);
        assert.equal(container.conf.memory, plan.services.find((entry) => entry.name === name)!.resources.memoryMiB, name);
      }
    });

    it("pushed each host's flake and activated it: the host runs a system built from exactly the pushed directory", async () => {
      for (const name of services) {
        const { vmid } = homelab.service(name);
        const root = homelab.rootfs(vmid);
        const pushed = readlinkSync(path.join(root, "etc/nixmox"));
        const deployed = readFileSync(path.join(root, "var/lib/nixmox", name, "deployed"), "utf8");
        assert.equal(pushed, `/etc/nixmox.d/${/config_hash=([0-9a-f]+)/.exec(deployed)![1]}`, name);
        const ran = await homelab.ssh(name, "readlink -f /run/current-system; readlink -f /nix/var/nix/profiles/system; cat /run/current-system/flake-ref; diff -r /etc/nixmox/ /run/current-system/flake/ && echo same-flake");
        assert.equal(ran.status, 0, ran.stderr);
        const [current, profile, flakeRef, same] = ran.stdout.trim().split("\n");
        assert.equal(current, profile, name);
        assert.equal(current, /generation=(\S+)/.exec(deployed)![1], name);
        assert.equal(flakeRef, `/etc/nixmox#${name}`);
        assert.equal(same, "same-flake", name);
      }
    });

    it("activated the hosts in dependency order: no host switched before every host it depends on had finished", async () => {
      const plan = await loadPlan(homelab.manifest);
      const times = (name: string) => {
        const dir = path.join(homelab.rootfs(homelab.service(name).vmid), "var/lib/nixmox", name, "attempts");
        const attempt = path.join(dir, readFileSync(path.join(homelab.rootfs(homelab.service(name).vmid), "var/lib/nixmox", name, "deployed"), "utf8").match(/config_hash=(\S+)/)![1]);
        return { start: statSync(path.join(attempt, "previous")).mtimeMs, end: statSync(path.join(attempt, "result")).mtimeMs };
      };
      let edges = 0;
      for (const service of plan.services) {
        for (const dependency of service.dependsOn) {
          assert.ok(times(service.name).start >= times(dependency).end, `${service.name} switched before ${dependency} finished`);
          edges += 1;
        }
      }
      assert.ok(edges >= 10, `${edges} edges`);
    });

    it("runs the real daemons on the generated configs: unbound answers the homelab's names, caddy proxies with the managed CA, postgresql lets each app in with its delivered password", async () => {
      const dig = await homelab.command(["dig", "+short", "@192.168.99.13", "vault.nixmox.lan", "A"]);
      assert.equal(dig.stdout.trim(), "192.168.99.10");
      const outputs = await homelab.outputs();
      const ca = path.join(homelab.work, "root-ca.pem");
      writeFileSync(ca, outputs.caRootCertificate);
      const curl = await homelab.command(["curl", "-sS", "--cacert", ca, "--resolve", "vault.nixmox.lan:443:192.168.99.10", "https://vault.nixmox.lan/alive"]);
      assert.match(curl.stdout, /^twin listener on port 8080: GET \/alive/, "caddy proxied the route to vaultwarden's listener over TLS from the managed CA");
      for (const app of ["vaultwarden", "authentik", "guacamole"]) {
        const login = await homelab.ssh(app, `PGPASSWORD="$(cat /var/lib/nixmox/secrets/${app}/db_password)" psql -h 192.168.99.11 -U ${app} -d ${app} -Atc 'select current_user'`);
        assert.equal(login.stdout.trim(), app, `${app}: ${login.stderr}`);
      }
      const wrong = await homelab.ssh("homepage", "PGCONNECT_TIMEOUT=3 PGPASSWORD=x psql -h 192.168.99.11 -U vaultwarden -d vaultwarden -Atc 'select 1' 2>&1");
      assert.notEqual(wrong.status, 0, "the firewall and pg_hba refuse a host that has no database");
    });

    it("created the SSO objects in the fake Authentik, reached through the SSH tunnel to the authentik host", async () => {
      const authentik = homelab.twin.authentik(912)!;
      assert.ok(authentik, "the authentik host's unit registered its database");
      assert.deepEqual([...authentik.oauth2Providers.values()].map((provider) => provider.name).sort(), ["nixmox-guacamole", "nixmox-vaultwarden"]);
      assert.deepEqual([...authentik.proxyProviders.values()].map((provider) => provider.external_host), ["https://home.nixmox.lan"]);
      assert.deepEqual([...authentik.applications.keys()].sort(), ["guacamole", "homepage-home-nixmox-lan", "vaultwarden"].sort());
      const embedded = [...authentik.outposts.values()].find((outpost) => outpost.managed === "goauthentik.io/outposts/embedded")!;
      assert.deepEqual(embedded.providers, [...authentik.proxyProviders.keys()]);
      const vaultwarden = [...authentik.oauth2Providers.values()].find((provider) => provider.name === "nixmox-vaultwarden")!;
      const secret = readFileSync(path.join(homelab.rootfs(914), "var/lib/nixmox/secrets/vaultwarden/oidc_client_secret"), "utf8").trim();
      assert.equal(vaultwarden.client_secret, secret, "the client secret in Authentik is the one vaultwarden received");
    });

    it("a second up changes nothing: every resource is `same`", async () => {
      const second = await homelab.up();
      assert.deepEqual(named(second.steps), []);
      assert.deepEqual(Object.keys(second.changes), ["same"]);
    });
  });
});
