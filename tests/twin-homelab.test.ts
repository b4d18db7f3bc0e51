// NixMox's own index.ts under the real engine (tools/engine: the Pulumi CLI, our language host, bpg's provider)
// deploys the example homelab into the twin (twin/): the Proxmox VE API twin creates real hosts, the stand-in
// nixos-rebuild in each builds its system from the pushed flake with NixMox's own config builders and runs Debian's
// caddy, unbound and postgresql on the result, and the fake Authentik API runs behind the authentik host, reached
// through the SSH tunnel. One twin serves the scenarios of this file in order, each asserting the twin's state and
// the stack's. Needs root (namespaces, mounts) and the daemons .ci/run installs.
// What the twin does not prove: NixOS evaluation and builds, systemd's unit semantics, the Proxmox kernel (cgroups,
// LXC id maps), Hydra downloads, a real Authentik (twin/README.md).
import { strict as assert } from "node:assert";
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { loadPlan } from "../manifest";
import { selectServices } from "../cli/select";
import { named, startHomelab, stepsOfEvents, type Homelab } from "./support/twin-homelab";
import { sshKeyPair } from "./support/twin-engine";
import { repoDir } from "./support/real-engine";

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
  describe("scenario 2: edits run exactly the operations their preview showed", () => {
    /** Applies an edit, previews it, deploys it; the up's steps must be the preview's, and there must be some. */
    async function deployEdit(edit: () => void | Promise<void>): Promise<string[]> {
      await edit();
      homelab.writeManifest();
      const planned = named(await homelab.preview());
      const ran = await homelab.up();
      assert.deepEqual(named(ran.steps), planned, "the up ran other operations than its preview showed");
      assert.ok(planned.length > 0, "the edit changed nothing");
      return planned;
    }
    const app = (name: string) => homelab.data.core_services[name] ?? homelab.data.services[name];

    it("an app's memory: the container is updated and restarted, the gate runs again, nothing else", async () => {
      const before = homelab.twin.cluster.node("pve").container(914).host.initLog().match(/twin-init: starting/g)!.length;
      const steps = await deployEdit(() => {
        app("vaultwarden").resources = { ...(app("vaultwarden").resources ?? {}), memory: 1536 };
      });
      assert.deepEqual(steps, ["update vaultwarden-container", "update vaultwarden-health"]);
      const container = homelab.twin.cluster.node("pve").container(914);
      assert.deepEqual([container.conf.memory, container.host.appliedMemoryMiB], [1536, 1536]);
      assert.equal(container.host.initLog().match(/twin-init: starting/g)!.length, before + 1, "bpg rebooted the host to apply the memory");
      const alive = await homelab.ssh("vaultwarden", "systemctl is-active vaultwarden.service twin-listen-8080.service");
      assert.equal(alive.stdout.trim(), "active\nactive", "the host booted its generation's units again");
    });

    it("an IP: the container's NIC, the host's own config and the hosts that name it (DNS, proxy) are redeployed; the host answers at the new address only", async () => {
      const steps = await deployEdit(() => {
        app("homepage").ip = "192.168.99.26";
        app("homepage").interface.proxy.upstream = "192.168.99.26:8082";
      });
      for (const expected of ["update homepage-container", "update homepage-config", "update homepage-rebuild", "update dns-config", "update dns-rebuild", "update caddy-config", "update caddy-rebuild"]) {
        assert.ok(steps.includes(expected), `${expected} missing from ${steps.join(", ")}`);
      }
      assert.match(String(homelab.twin.cluster.node("pve").container(916).conf.net0), /,ip=192\.168\.99\.26\/24,/);
      assert.equal((await homelab.ssh("homepage", "hostname")).stdout.trim(), "homepage");
      assert.equal((await homelab.command(["dig", "+short", "@192.168.99.13", "homepage.nixmox.lan"])).stdout.trim(), "192.168.99.26");
      assert.match((await homelab.ssh("caddy", "cat /run/current-system/etc/Caddyfile")).stdout, /reverse_proxy 192\.168\.99\.26:8082/);
      const old = await homelab.command(["bash", "-c", "exec 3<>/dev/tcp/192.168.99.16/22"], { allowFailure: true });
      assert.notEqual(old.status, 0, "nothing answers at the old address");
    });

    it("a route domain: the proxy, DNS, the app and its SSO client follow; the new name is served through the proxy", async () => {
      const steps = await deployEdit(() => {
        app("vaultwarden").interface.proxy.domain = "vw.nixmox.lan";
      });
      for (const expected of ["update caddy-rebuild", "update dns-rebuild", "update vaultwarden-rebuild", "update sso-vaultwarden"]) {
        assert.ok(steps.includes(expected), `${expected} missing from ${steps.join(", ")}`);
      }
      assert.equal((await homelab.command(["dig", "+short", "@192.168.99.13", "vw.nixmox.lan"])).stdout.trim(), "192.168.99.10");
      assert.equal((await homelab.command(["dig", "+short", "@192.168.99.13", "vault.nixmox.lan"])).stdout.trim(), "");
      const ca = path.join(homelab.work, "root-ca.pem");
      const curl = await homelab.command(["curl", "-sS", "--cacert", ca, "--resolve", "vw.nixmox.lan:443:192.168.99.10", "https://vw.nixmox.lan/alive"]);
      assert.match(curl.stdout, /^twin listener on port 8080: GET \/alive/);
      const provider = [...homelab.twin.authentik(912)!.oauth2Providers.values()].find((entry) => entry.name === "nixmox-vaultwarden")!;
      assert.ok(provider.redirect_uris.every((uri: { url: string }) => uri.url.startsWith("https://vw.nixmox.lan/")), JSON.stringify(provider.redirect_uris));
    });

    it("a secret: only the hosts that receive it get it, the consumers restart, and the database takes the new password", async () => {
      const password = "twin-rotated-db-password-7a1f";
      const steps = await deployEdit(() => homelab.configure({}, { "nixmox:secrets.vaultwarden.db_password": password }));
      assert.ok(steps.includes("update vaultwarden-secrets") && steps.includes("update postgresql-secrets"), steps.join(", "));
      assert.ok(!steps.some((step) => step.endsWith("-rebuild")), `no host is rebuilt for a secret: ${steps.join(", ")}`);
      const login = (secret: string) => homelab.ssh("vaultwarden", `PGCONNECT_TIMEOUT=5 PGPASSWORD='${secret}' psql -h 192.168.99.11 -U vaultwarden -d vaultwarden -Atc 'select current_user'`);
      assert.equal((await login(password)).stdout.trim(), "vaultwarden");
      assert.equal(readFileSync(path.join(homelab.rootfs(914), "var/lib/nixmox/secrets/vaultwarden/db_password"), "utf8").trim(), password);
    });

    it("a new service: its container, host key, config, rebuild and gate are created after what it depends on; it is healthy", async () => {
      writeFileSync(path.join(path.dirname(homelab.manifest), "modules", "whoami.nix"), "# Recorded by the twin, never built.\n{ ... }: { }\n");
      const steps = await deployEdit(() => {
        homelab.data.services.whoami = {
          ip: "192.168.99.17", vmid: 917, depends_on: ["caddy"], nixos_modules: ["modules/whoami.nix"], ports: [8090],
          interface: { proxy: { domain: "who.nixmox.lan", upstream: "192.168.99.17:8090" }, health: { checks: [{ type: "http", url: "http://192.168.99.17:8090/", from: "host" }] } },
        };
      });
      for (const expected of ["create whoami", "create whoami-container", "create whoami-ssh", "create whoami-config", "create whoami-rebuild", "create whoami-health", "update caddy-rebuild", "update dns-rebuild"]) {
        assert.ok(steps.includes(expected), `${expected} missing from ${steps.join(", ")}`);
      }
      assert.equal(homelab.twin.cluster.node("pve").container(917).host.running, true);
      assert.equal((await homelab.outputs()).services.whoami.healthy, true);
    });

    it("a removed service: its container and resources are deleted and the proxy and DNS forget it", async () => {
      const steps = await deployEdit(() => {
        delete homelab.data.services.whoami;
      });
      for (const expected of ["delete whoami", "delete whoami-container", "delete whoami-health", "update caddy-rebuild", "update dns-rebuild"]) {
        assert.ok(steps.includes(expected), `${expected} missing from ${steps.join(", ")}`);
      }
      assert.equal(homelab.twin.cluster.node("pve").containers.has(917), false);
      assert.equal((await homelab.command(["dig", "+short", "@192.168.99.13", "who.nixmox.lan"])).stdout.trim(), "");
    });

    it("a removed stateful service: protect refuses it and nothing changes, until it is unprotected; its container is then kept in Proxmox (retainOnDelete)", async () => {
      await deployEdit(() => {
        homelab.data.services.notes = { ip: "192.168.99.18", vmid: 918, depends_on: ["caddy"], nixos_modules: ["modules/whoami.nix"], ports: [8091], stateful: true };
      });
      delete homelab.data.services.notes;
      homelab.writeManifest();
      const refused = await homelab.up([], { allowFailure: true });
      assert.notEqual(refused.run.status, 0);
      assert.match(refused.run.stdout, /notes-container.*protected|protected.*notes-container/s);
      assert.equal(homelab.twin.cluster.node("pve").container(918).host.running, true);
      assert.ok((await homelab.resources()).some((resource) => resource.urn.endsWith("::notes-container")), "still in the state");
      const urn = (await homelab.resources()).find((resource) => resource.urn.endsWith("::notes-container"))!.urn;
      await homelab.pulumi(["state", "unprotect", "--yes", "--stack", homelab.stack, urn]);
      const steps = await deployEdit(() => undefined);
      assert.ok(steps.includes("delete notes-container"), steps.join(", "));
      assert.ok(!(await homelab.resources()).some((resource) => resource.urn.includes("::notes")), "gone from the state");
      assert.equal(homelab.twin.cluster.node("pve").containers.has(918), true, "retainOnDelete: the container and its data stay in Proxmox");
    });
  });

  describe("scenario 3: drift that refresh finds and the next up repairs", () => {
    const node = () => homelab.twin.cluster.node("pve");
    const until = async (what: string, done: () => boolean) => {
      for (let waited = 0; !done(); waited += 100) {
        if (waited > 30_000) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    const resource = async (name: string) => (await homelab.resources()).find((entry) => entry.urn.endsWith(`::${name}`));

    it("a container stopped in the twin: refresh records it stopped and unhealthy; up starts it and gates it again", async () => {
      await homelab.proxmox("POST", "/nodes/pve/lxc/915/status/stop");
      await until("CT 915 to stop", () => !node().container(915).host.running);
      const refreshed = await homelab.refresh();
      assert.deepEqual(named(refreshed.steps), ["update guacamole-container", "update guacamole-health"]);
      assert.equal((await resource("guacamole-container"))!.outputs.started, false);
      assert.equal((await resource("guacamole-health"))!.outputs.healthy, false);
      const repaired = await homelab.up();
      assert.deepEqual(named(repaired.steps), ["update guacamole-container", "update guacamole-health"]);
      assert.equal(node().container(915).host.running, true);
      assert.equal((await homelab.ssh("guacamole", "systemctl is-active tomcat.service")).stdout.trim(), "active");
      assert.equal((await resource("guacamole-health"))!.outputs.healthy, true);
    });

    it("a file changed on a host (and switched to by hand): refresh finds the changed configuration and the other generation; up pushes it again and returns the host to the deployed generation", async () => {
      const deployed = (await resource("caddy-health"))!.outputs.expectedGeneration;
      const tamper = await homelab.ssh("caddy", "sed -i 's/192.168.99.14:8080/192.168.99.14:9999/' /etc/nixmox/host.json && nixos-rebuild switch --flake /etc/nixmox#caddy >/dev/null 2>&1 && readlink -f /run/current-system && grep -c 9999 /run/current-system/etc/Caddyfile");
      const [tampered, count] = tamper.stdout.trim().split("\n");
      assert.notEqual(tampered, deployed, tamper.stderr);
      assert.equal(count, "1");
      const refreshed = await homelab.refresh();
      assert.deepEqual(named(refreshed.steps), ["update caddy-config", "update caddy-health"]);
      assert.match(String((await resource("caddy-config"))!.outputs.drift), /^service "caddy": \/etc\/nixmox on the host differs from the configuration NixMox pushed/);
      assert.match(String((await resource("caddy-health"))!.outputs.drift), /runs another NixOS generation/);
      const repaired = await homelab.up();
      assert.deepEqual(named(repaired.steps), ["update caddy-config", "update caddy-health"]);
      const after = await homelab.ssh("caddy", "readlink -f /run/current-system; grep -c 9999 /run/current-system/etc/Caddyfile || true");
      assert.deepEqual(after.stdout.trim().split("\n"), [deployed, "0"]);
      assert.equal((await resource("caddy-config"))!.outputs.drift, null);
      assert.deepEqual(named((await homelab.refresh()).steps), [], "a second refresh finds nothing");
    });

    it("an SSO object deleted in the fake Authentik: refresh drops it from the state; up creates it again", async () => {
      const authentik = homelab.twin.authentik(912)!;
      const provider = [...authentik.oauth2Providers.values()].find((entry) => entry.name === "nixmox-guacamole")!;
      const deleted = await homelab.authentikApi("DELETE", `/api/v3/providers/oauth2/${provider.pk}/`);
      assert.equal(deleted.status, 204, deleted.body);
      const refreshed = await homelab.refresh();
      assert.deepEqual(named(refreshed.steps), ["delete sso-guacamole"]);
      assert.equal(await resource("sso-guacamole"), undefined, "refresh found it gone");
      const repaired = await homelab.up();
      assert.deepEqual(named(repaired.steps), ["create sso-guacamole"]);
      const recreated = [...authentik.oauth2Providers.values()].find((entry) => entry.name === "nixmox-guacamole");
      assert.ok(recreated && recreated.pk !== provider.pk);
      assert.equal(authentik.applications.get("guacamole")!.provider, recreated.pk, "the application points at the new provider");
    });
  });

  describe("scenario 5: failure and rollback", () => {
    const generation = (name: string) => homelab.ssh(name, "readlink -f /run/current-system").then((run) => run.stdout.trim());
    const deployedHash = (name: string) => /config_hash=(\S+)/.exec(readFileSync(path.join(homelab.rootfs(homelab.service(name).vmid), "var/lib/nixmox", name, "deployed"), "utf8"))![1];
    let previous: Record<string, { generation: string; hash: string }>;
    let failed: Awaited<ReturnType<Homelab["nixmox"]>>;

    before(async () => {
      previous = {};
      for (const name of services) previous[name] = { generation: await generation(name), hash: deployedHash(name) };
      // An edit every host's configuration has (another admin key), while postgresql's switch fails (its activation
      // ends with a failed unit) and caddy's startup check fails (the twin leaves caddy.service out of the system).
      homelab.data.network.ssh_keys.root = [...homelab.data.network.ssh_keys.root, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHR3aW4tc2NlbmFyaW8tNS1hZG1pbi1rZXktMDAwMDAw twin@scenario5"];
      homelab.writeManifest();
      homelab.twin.failNext(911, "activation");
      homelab.twin.failNext(910, "check:systemd:caddy.service");
      failed = await homelab.nixmox(["up", "--yes"], { allowFailure: true });
    });

    it("a switch that fails is rolled back: postgresql runs its previous generation, and the deploy fails", async () => {
      assert.equal(failed.status, 1, failed.stdout);
      assert.equal(await generation("postgresql"), previous.postgresql!.generation);
      assert.equal(deployedHash("postgresql"), previous.postgresql!.hash);
      assert.equal((await homelab.ssh("postgresql", "pg_isready -q -h 127.0.0.1 -p 5432 && echo ready")).stdout.trim(), "ready", "its daemons run again");
    });

    it("a startup check that fails is rolled back: caddy runs its previous generation and serves again", async () => {
      assert.equal(await generation("caddy"), previous.caddy!.generation);
      assert.equal((await homelab.ssh("caddy", "systemctl is-active caddy")).stdout.trim(), "active");
    });

    it("the dependents of the failed hosts are not deployed; the hosts that depend on neither are", async () => {
      for (const name of ["authentik", "vaultwarden", "guacamole", "homepage"]) {
        assert.equal(await generation(name), previous[name]!.generation, `${name} was activated`);
        assert.equal(deployedHash(name), previous[name]!.hash, name);
      }
      assert.notEqual(await generation("dns"), previous.dns!.generation, "dns depends on neither and was deployed");
    });

    it("the summary names both failures: where, at which step, and why", () => {
      const summary = failed.stdout.slice(failed.stdout.lastIndexOf("up: "));
      assert.match(summary, /failed: postgresql \(192\.168\.99\.11\) at rebuild: .*failed units: twin-activation-knob\.service; rolled back to the previous generation/s);
      // The wrapper probes caddy's startup checks in name order: "startup" (systemctl is-active --quiet caddy) comes first.
      assert.match(summary, /failed: caddy \(192\.168\.99\.10\) at rebuild: .*startup check "startup" \(command\) failed after 3 probe\(s\).*rolled back to the previous generation/s);
      assert.match(summary, /^up: 7 services: 1 ready, 2 failed, /, "dns deployed; the rest failed or waited");
    });

    it("the next up, the causes gone, deploys every host", async () => {
      const next = await homelab.up();
      assert.equal(next.run.status, 0);
      for (const name of services) {
        assert.notEqual(await generation(name), previous[name]!.generation, name);
        const keys = await homelab.ssh(name, "cat /etc/ssh/authorized_keys.d/root");
        assert.match(keys.stdout, /twin@scenario5/, name);
      }
    });
  });

  describe("scenario 6: --only X --with-dependents touches exactly those services", () => {
    const generation = (name: string) => homelab.ssh(name, "readlink -f /run/current-system").then((run) => run.stdout.trim());

    it("deploys caddy and what depends on it, and leaves every other host and resource as it was", async () => {
      const plan = await loadPlan(homelab.manifest);
      const selected = selectServices(plan, { only: ["caddy"], withDependencies: false, withDependents: true });
      assert.deepEqual(selected, ["caddy", "guacamole", "homepage", "vaultwarden"]);
      const previous: Record<string, string> = {};
      for (const name of services) previous[name] = await generation(name);
      // An edit of every host's configuration: without --only, all seven would be redeployed.
      homelab.data.network.ssh_keys.root = [...homelab.data.network.ssh_keys.root, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHR3aW4tc2NlbmFyaW8tNi1hZG1pbi1rZXktMDAwMDAw twin@scenario6"];
      homelab.writeManifest();
      const run = await homelab.nixmox(["up", "--yes", "--json", "--only", "caddy", "--with-dependents"]);
      const touched = stepsOfEvents(run.stdout).steps.map((step) => step.urn.split("::").pop()!);
      const owner = (resource: string) => services.find((name) => resource === name || resource.startsWith(`${name}-`) || resource.startsWith(`sso-${name}`)) ?? resource;
      assert.ok(touched.length > 0);
      assert.deepEqual([...new Set(touched.map(owner))].sort(), selected, `touched: ${touched.join(", ")}`);
      for (const name of services) {
        const now = await generation(name);
        if (selected.includes(name)) assert.notEqual(now, previous[name], `${name} was not redeployed`);
        else assert.equal(now, previous[name], `${name} was redeployed`);
      }
      assert.doesNotMatch((await homelab.ssh("dns", "cat /etc/nixmox/host.json")).stdout, /twin@scenario6/, "not even the config of an unselected host was pushed");
      const rest = await homelab.up();
      assert.deepEqual([...new Set(rest.steps.map((step) => owner(step.urn.split("::").pop()!)))].sort(), ["authentik", "dns", "postgresql"], "a full up then deploys the rest");
    });
  });

  describe("scenario 9: a network.domain edit (review B2; the outcome README.md documents)", () => {
    it("is refused while the root CA may vouch only for the old domain: the error gives the rotation steps, and nothing in the twin or the state changes", async () => {
      const rename = (value: unknown): unknown =>
        typeof value === "string" ? value.split("nixmox.lan").join("lab.example")
          : Array.isArray(value) ? value.map(rename)
            : value !== null && typeof value === "object" ? Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, rename(entry)])) : value;
      Object.assign(homelab.data, rename(homelab.data));
      homelab.writeManifest();
      // What the engine keeps of each resource (its bookkeeping, such as the `modified` time, aside).
      // Secrets decrypted: each write of the state encrypts them again with a new nonce.
      const kept = async () => ((JSON.parse((await homelab.pulumi(["stack", "export", "--show-secrets", "--stack", homelab.stack])).stdout).deployment.resources ?? []) as Array<Record<string, unknown>>)
        .map((entry) => JSON.stringify([entry.urn, entry.inputs, entry.outputs, entry.protect])).sort();
      const before = await kept();
      const refused = await homelab.up([], { allowFailure: true });
      assert.notEqual(refused.run.status, 0);
      assert.match(refused.run.stdout, /the homelab's root CA may vouch only for nixmox\.lan; the manifest now needs lab\.example[^"]*pulumi config set nixmox:rotateRootCa true/);
      assert.deepEqual(named(refused.steps).filter((step) => !step.startsWith("same ")), [], "no step ran");
      assert.deepEqual(await kept(), before, "the state is unchanged");
      for (const name of services) assert.equal(homelab.twin.cluster.node("pve").container(homelab.service(name).vmid).conf.searchdomain, "nixmox.lan", name);
    });

    it("with nixmox:rotateRootCa: a new root and intermediate, every host redeployed and restarted under the new domain, the new names served with certificates of the new root (the old root no longer verifies them), the SSO clients moved; then the flag is removed and nothing changes", async () => {
      const rootBefore = (await homelab.resources()).find((entry) => entry.urn.endsWith("::nixmox-ca-root"))!;
      await homelab.configure({ "nixmox:rotateRootCa": "true" });
      const planned = named(await homelab.preview());
      assert.ok(planned.includes("replace nixmox-ca-root"), planned.join(", "));
      for (const name of services) assert.ok(planned.includes(`update ${name}-container`) && planned.includes(`update ${name}-rebuild`), `${name}: ${planned.join(", ")}`);
      const ran = await homelab.up();
      // A preview shows a replacement as one `replace` step; the update runs it as create-replacement, replace, delete-replaced.
      assert.deepEqual(named(ran.steps).filter((step) => !/^(create-replacement|delete-replaced) /.test(step)), planned, "the up ran exactly what its preview showed");
      const rootAfter = (await homelab.resources()).find((entry) => entry.urn.endsWith("::nixmox-ca-root"))!;
      assert.notEqual(rootAfter.outputs.certificatePem, rootBefore.outputs.certificatePem);
      for (const name of services) {
        const container = homelab.twin.cluster.node("pve").container(homelab.service(name).vmid);
        assert.equal(container.conf.searchdomain, "lab.example", name);
        assert.equal(container.host.initLog().match(/twin-init: starting/g)!.length >= 2, true, `${name} was restarted for its DNS settings`);
      }
      assert.equal((await homelab.command(["dig", "+short", "@192.168.99.13", "guac.lab.example"])).stdout.trim(), "192.168.99.10");
      // The old domain is no longer a local zone of the resolver (it would be forwarded upstream, which the twin has none of).
      assert.equal((await homelab.ssh("dns", "grep -c nixmox.lan /run/current-system/etc/unbound.conf || true")).stdout.trim(), "0");
      const newRoot = path.join(homelab.work, "root-ca-new.pem");
      const oldRoot = path.join(homelab.work, "root-ca-old.pem");
      writeFileSync(newRoot, rootAfter.outputs.certificatePem);
      writeFileSync(oldRoot, rootBefore.outputs.certificatePem);
      const fetch = (ca: string) => homelab.command(["curl", "-sS", "--cacert", ca, "--resolve", "guac.lab.example:443:192.168.99.10", "https://guac.lab.example/guacamole/"], { allowFailure: true });
      assert.match((await fetch(newRoot)).stdout, /^twin listener on port 8280: GET \/guacamole\//, "caddy serves the new name with a certificate of the new root");
      assert.notEqual((await fetch(oldRoot)).status, 0, "the old root does not verify the new certificates");
      const provider = [...homelab.twin.authentik(912)!.oauth2Providers.values()].find((entry) => entry.name === "nixmox-guacamole")!;
      assert.deepEqual(provider.redirect_uris.map((uri: { url: string }) => uri.url), ["https://guac.lab.example/guacamole/"]);
      await homelab.pulumi(["config", "rm", "--stack", homelab.stack, "nixmox:rotateRootCa"]);
      // The flag is recorded on the root (protected again) without a replacement; after that, nothing changes.
      assert.deepEqual(named((await homelab.up()).steps), ["update nixmox-ca-root"], "with the flag removed, the root is protected again, nothing else");
      assert.deepEqual(named((await homelab.up()).steps), [], "then the next up changes nothing");
    });
  });

  describe("scenario 4: the engine killed (kill -9) in the middle of a deploy", () => {
    it("the next nixmox up repairs what Pulumi leaves (a stale lock; pending operations: the half-made container is destroyed and made again, never adopted, never two) and converges; no host is left half-switched", async () => {
      writeFileSync(path.join(path.dirname(homelab.manifest), "modules", "whoami.nix"), "# Recorded by the twin, never built.\n{ ... }: { }\n");
      const domain = String(homelab.data.network.domain);
      homelab.data.services.whoami2 = {
        ip: "192.168.99.19", vmid: 919, depends_on: ["caddy"], nixos_modules: ["modules/whoami.nix"], ports: [8090],
        interface: { proxy: { domain: `who2.${domain}`, upstream: "192.168.99.19:8090" } },
      };
      homelab.writeManifest();
      // The DNS host's build takes 15 s and Proxmox takes 15 s to create the new container, so both are under way
      // when the engine dies.
      homelab.twin.failNext(913, "slow:15");
      const node = homelab.twin.cluster.node("pve");
      node.slowCreates.set(919, 15);
      const dnsBefore = (await homelab.ssh("dns", "readlink -f /run/current-system")).stdout.trim();
      const attempts = path.join(homelab.rootfs(913), "var/lib/nixmox/dns/attempts");
      const started = Date.now();
      const dnsSwitching = () => readdirSync(attempts).some((hash) => existsSync(path.join(attempts, hash, "previous")) && statSync(path.join(attempts, hash, "previous")).mtimeMs > started && !existsSync(path.join(attempts, hash, "result")));
      let pid = 0;
      const killer = setInterval(() => {
        if (pid !== 0 && node.containers.has(919) && dnsSwitching()) {
          clearInterval(killer);
          process.kill(pid, "SIGKILL");
        }
      }, 20);
      const killed = await homelab.up([], { allowFailure: true, detached: true, onSpawn: (child) => (pid = child) });
      clearInterval(killer);
      assert.equal(killed.run.signal, "SIGKILL");
      // What else of the killed engine still runs (its plugins) dies with the machine it ran on.
      await node.tasks.idle();
      try {
        process.kill(-pid, "SIGKILL");
      } catch {
        // Already gone.
      }
      const exported = JSON.parse((await homelab.pulumi(["stack", "export", "--stack", homelab.stack])).stdout).deployment;
      const pending = (exported.pending_operations ?? []).map((op: { type: string; resource: { urn: string } }) => `${op.type} ${op.resource.urn.split("::").pop()}`).sort();
      assert.ok(pending.includes("creating whoami2-container"), pending.join(", "));
      assert.ok(pending.includes("updating dns-rebuild"), pending.join(", "));
      const creates = homelab.twin.api.calls.filter((call) => call.method === "POST" && call.route === "/nodes/{node}/lxc").length;
      const callsAtKill = homelab.twin.api.calls.length;

      // On the DNS host the activation goes on without the engine: switched and waiting for a confirmation that only
      // a controller can give; nobody half-switched it (its current system is the new one or the old one, whole).
      const midway = (await homelab.ssh("dns", "readlink -f /run/current-system; readlink -f /nix/var/nix/profiles/system")).stdout.trim().split("\n");
      assert.equal(midway[0], midway[1], "the running system is the profile's");

      const next = await homelab.nixmox(["up", "--yes"], { allowFailure: true });
      assert.equal(next.status, 0, `${next.stdout}\n${next.stderr}`);
      assert.match(next.stderr, /removing its lock \(pulumi cancel\)/);
      assert.match(next.stderr, /whoami2-container: Proxmox had container 919, half made by the interrupted deploy \(this stack's token created it\); it was destroyed and this deploy creates it again/);
      const after = JSON.parse((await homelab.pulumi(["stack", "export", "--stack", homelab.stack])).stdout).deployment;
      assert.deepEqual(after.pending_operations ?? [], []);
      // The half-made container was destroyed before the new one was asked for: never two, and never an adoption
      // (a create refused with "already exists", which bpg would take as done).
      const calls919 = homelab.twin.api.calls.slice(callsAtKill).filter((call) => (call.method === "DELETE" && call.path.endsWith("/lxc/919")) || (call.method === "POST" && call.route === "/nodes/{node}/lxc")).map((call) => `${call.method} ${call.route} ${call.status}`);
      assert.deepEqual(calls919, ["DELETE /nodes/{node}/lxc/{vmid} 200", "POST /nodes/{node}/lxc 200"]);
      assert.ok(creates >= 1);
      assert.ok(node.containers.has(919));
      assert.equal((await homelab.outputs()).services.whoami2.healthy, true);
      const dnsAfter = (await homelab.ssh("dns", "readlink -f /run/current-system; readlink -f /nix/var/nix/profiles/system")).stdout.trim().split("\n");
      assert.notEqual(dnsAfter[0], dnsBefore, "the DNS host runs the new configuration");
      assert.equal(dnsAfter[0], dnsAfter[1]);
      assert.equal((await homelab.command(["dig", "+short", "@192.168.99.13", `who2.${domain}`])).stdout.trim(), "192.168.99.10");
      assert.deepEqual(named((await homelab.up()).steps), [], "converged: a second up changes nothing");
    });
  });

  describe("scenario 8: the deploy key rotated (review B1)", () => {
    let rotated: { privateKeyFile: string; publicKey: string };

    it("a rotated deploy key reaches every host, and the Authentik objects record the new tunnel", async () => {
      rotated = sshKeyPair(homelab.work, "deploy-rotated");
      // As README.md's rotation goes: the new key is listed in the manifest first, deployed with the old key …
      homelab.data.network.ssh_keys.root = [...homelab.data.network.ssh_keys.root, rotated.publicKey];
      homelab.writeManifest();
      await homelab.up();
      // … then the stack's key is the new one.
      await homelab.configure({}, { "nixmox:sshPrivateKey": readFileSync(rotated.privateKeyFile, "utf8") });
      const planned = named(await homelab.preview());
      for (const object of ["sso-vaultwarden", "sso-guacamole", "sso-homepage-home-lab-example", "sso-authentik-outpost"]) {
        assert.ok(planned.includes(`update ${object}`), `${object} must record the new tunnel: ${planned.join(", ")}`);
      }
      const ran = await homelab.up();
      assert.deepEqual(named(ran.steps), planned);
      // The authentik host's own host key, pinned: the old deploy key is refused by that host, not by a host-key mismatch.
      const authentikHost = homelab.service("authentik");
      const pinned = path.join(homelab.work, "known_hosts_authentik");
      writeFileSync(pinned, `${authentikHost.ip} ${readFileSync(path.join(homelab.rootfs(authentikHost.vmid), "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ")}\n`);
      const login = (key: string) => homelab.command(["ssh", "-F", "/dev/null", "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${pinned}`, "-o", "ConnectTimeout=5", `root@${authentikHost.ip}`, "true"], { allowFailure: true });
      assert.equal((await login(rotated.privateKeyFile)).status, 0, "the new deploy key opens the authentik host");
      const keysOnHost = () => ["root/.ssh/authorized_keys", "etc/ssh/authorized_keys.d/root"].map((file) => {
        const full = path.join(homelab.rootfs(authentikHost.vmid), file);
        return `${file}: ${existsSync(full) ? readFileSync(full, "utf8").trim() : "(none)"}`;
      }).join("\n");
      assert.notEqual((await login(homelab.deployKey.privateKeyFile)).status, 0, `the old deploy key no longer opens the authentik host:\n${keysOnHost()}`);
    });

    it("refresh still reads the SSO objects (through the tunnel with the new key)", async () => {
      const refreshed = await homelab.refresh();
      assert.equal(refreshed.run.status, 0);
      assert.deepEqual(named(refreshed.steps).filter((step) => step.includes("sso-")), []);
    });

    it("removing an SSO client deletes its Authentik objects through the new tunnel", async () => {
      delete homelab.data.services.guacamole.interface.auth;
      homelab.writeManifest();
      const ran = await homelab.up();
      assert.ok(named(ran.steps).includes("delete sso-guacamole"), named(ran.steps).join(", "));
      const authentik = homelab.twin.authentik(912)!;
      assert.equal([...authentik.oauth2Providers.values()].some((provider) => provider.name === "nixmox-guacamole"), false);
      assert.equal(authentik.applications.has("guacamole"), false);
    });
  });

  describe("scenario 7: destroy, then up; a second stack on the same node", () => {
    const node = () => homelab.twin.cluster.node("pve");

    it("destroy stops at the protected (stateful) containers and names them; with --remove-protected it removes the rest and every SSO object, and Proxmox keeps the stateful containers (retainOnDelete)", async () => {
      const stopped = await homelab.nixmox(["destroy", "--yes"], { allowFailure: true });
      assert.equal(stopped.status, 2);
      assert.match(stopped.stderr, /destroy stops at 3 protected resources:\n  - nixmox-ca-root \(RootCa\): the homelab's root CA[^\n]*\n  - postgresql-container \(ContainerLegacy, vmid 911\): stateful[^\n]*\n  - vaultwarden-container \(ContainerLegacy, vmid 914\): stateful/);
      const destroyed = await homelab.nixmox(["destroy", "--yes", "--remove-protected"], { allowFailure: true });
      assert.equal(destroyed.status, 0, `${destroyed.stdout}\n${destroyed.stderr}`);
      assert.deepEqual(await homelab.resources(), []);
      assert.deepEqual([...node().containers.keys()].sort(), [911, 914, 918], "the stateful containers stay in Proxmox (and notes' from scenario 2)");
      assert.equal(node().containers.has(912), false, "the authentik host is gone");
      // Its objects live on, as in Authentik's database; the destroy deleted NixMox's through the tunnel first.
      const authentik = homelab.twin.authentik(912)!;
      assert.deepEqual([authentik.oauth2Providers.size, authentik.proxyProviders.size, authentik.applications.size], [0, 0, 0]);
      assert.ok(authentik.requests.some((request) => request.method === "DELETE"), "deleted through the API");
    });

    it("up refuses to create a container over a vmid the stack does not manage, naming the service, the vmid, the node and the fix; with the leftovers removed it deploys again and adopts the template it left", async () => {
      const downloads = node().tasks.all().filter((task) => task.type === "download").length;
      const refused = await homelab.up([], { allowFailure: true });
      assert.notEqual(refused.run.status, 0);
      const errors = refused.run.stdout.split("\n").flatMap((line) => {
        try {
          const event = JSON.parse(line) as { diagnosticEvent?: { severity: string; message: string } };
          return event.diagnosticEvent?.severity === "error" ? [event.diagnosticEvent.message] : [];
        } catch {
          return [];
        }
      });
      // The engine stops starting steps at the first failure, so one guard or both report (both guests are retained).
      const refusals = ([["postgresql", 911], ["vaultwarden", 914]] as const).filter(([service, vmid]) =>
        errors.some((message) => message.includes(`service "${service}": vmid ${vmid} is already used on the Proxmox cluster of node "pve" by a guest this stack does not manage`) && message.includes(`pct destroy ${vmid}`)));
      assert.ok(refusals.length > 0, `${errors.join("\n")}\n${refused.run.stderr.slice(-2000)}`);
      assert.equal(node().container(914).conf.hostname, "vaultwarden", "the guest was not taken over");
      assert.equal(node().container(911).conf.hostname, "postgresql", "the guest was not taken over");
      for (const vmid of [911, 914, 918]) {
        await homelab.proxmox("POST", `/nodes/pve/lxc/${vmid}/status/stop`);
        await node().tasks.idle();
        await homelab.proxmox("DELETE", `/nodes/pve/lxc/${vmid}`);
        await node().tasks.idle();
      }
      const again = await homelab.up();
      assert.equal(again.run.status, 0);
      const outputs = await homelab.outputs();
      for (const name of services) assert.equal(outputs.services[name].healthy, true, name);
      const template = (await homelab.resources()).find((entry) => entry.urn.endsWith("::nixos-template-pve"))!;
      assert.equal(template.outputs.adopted, true, "the template the destroy left on the node is adopted (review A1)");
      assert.equal(node().tasks.all().filter((task) => task.type === "download").length, downloads, "nothing downloaded again");
    });

    it("a second stack on the same node: a vmid the first stack uses is refused (and its container left alone), distinct ones deploy beside it", async () => {
      const second = structuredClone({
        network: { domain: "second.lab", dns_server: "192.168.98.13", gateway: "192.168.98.1", network_cidr: "192.168.98.0/24", vlan_tag: 98, ssh_keys: homelab.data.network.ssh_keys },
        core_services: {
          dns: { ip: "192.168.98.13", vmid: 913, resources: { cores: 1, memory: 512, disk_gb: 4 }, ports: [53], interface: { health: { checks: [{ type: "tcp", port: 53 }] } } },
          caddy: { ip: "192.168.98.10", vmid: 940, ports: [80, 443], interface: { health: { startup: "systemctl is-active --quiet caddy" } } },
        },
        services: {
          homepage: { ip: "192.168.98.16", vmid: 941, depends_on: ["caddy"], nixos_modules: ["modules/homepage.nix"], ports: [8082], interface: { proxy: { domain: "home.second.lab", upstream: "192.168.98.16:8082" } } },
        },
      });
      const file = path.join(path.dirname(homelab.manifest), "second.json");
      writeFileSync(file, JSON.stringify(second));
      await homelab.initStack("second", file);
      const firstDns = { ...node().container(913).conf };
      const refused = await homelab.pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "--stack", "second"], { allowFailure: true });
      assert.notEqual(refused.status, 0);
      assert.match(refused.stdout, /service "dns": vmid 913 is already used on the Proxmox cluster of node "pve" by a guest this stack does not manage/);
      assert.deepEqual(node().container(913).conf, firstDns, "the first stack's DNS container is untouched");
      second.core_services.dns.vmid = 942;
      writeFileSync(file, JSON.stringify(second));
      const deployed = await homelab.pulumi(["up", "--yes", "--skip-preview", "--non-interactive", "--stack", "second"]);
      assert.equal(deployed.status, 0);
      for (const vmid of [940, 941, 942]) assert.equal(node().container(vmid).host.running, true, String(vmid));
      assert.equal((await homelab.command(["dig", "+short", "@192.168.98.13", "home.second.lab"])).stdout.trim(), "192.168.98.10");
      assert.deepEqual(named((await homelab.up()).steps), [], "the first stack sees no change");
      // The second stack's root CA is protected as the first one's is: nixmox destroy names it, --remove-protected lifts it.
      const destroyed = await homelab.command([process.execPath, path.join(repoDir, "bin", "nixmox.js"), "destroy", "--yes", "--remove-protected", "--project-dir", homelab.projectDir, "--stack", "second"], { allowFailure: true, env: { NIXMOX_FROM_SOURCE: "1" } });
      assert.equal(destroyed.status, 0, `${destroyed.stdout}\n${destroyed.stderr}`);
      assert.equal(node().container(913).host.running, true, "destroying the second stack leaves the first's containers");
    });
  });
});
