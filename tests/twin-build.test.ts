// Issue 18 in the homelab twin: NixMox's own index.ts under the real engine (tools/engine, bpg) deploys the example
// homelab plus a builder service into the twin. The builder builds itself (the twin's stand-in nixos-rebuild), then
// real Nix on it evaluates and builds every other host's system from the host's rendered flake, whose nixpkgs is the
// twin's stand-in (twin/system/nixpkgs: lib.nixosSystem only, no nixpkgs anywhere) pinned by the stack's
// nixmox:nixpkgsRev/NarHash/LastModified; it signs each closure with the stack's key and `nix copy`s it over the
// containers' real sshd with the pinned host key into each container's own store; the activation wrapper's --system
// mode switches the hosts, whose switch-to-configuration starts their real daemons (caddy, unbound, postgresql) and
// listeners, which the health gates probe.
// `target` mode is covered by tests/twin-homelab.test.ts (every host there builds itself); not repeated here.
// What this does not prove: a NixOS evaluation with the real nixpkgs, NixOS's own switch-to-configuration, systemd.
// The manifest variant's homepage check is a tcp check on its port: its systemd unit comes from a custom NixOS module,
// which the stand-in nixpkgs cannot evaluate (twin/system/nixpkgs).
import { strict as assert } from "node:assert";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { renderCopyCommand } from "../components/build/nix-commands";
import { standInNixpkgsConfig } from "../twin/system";
import { engineEvents, named, startHomelab, type Homelab } from "./support/twin-homelab";
import { builderManifest, exampleHosts } from "./support/twin-build";

const hosts = exampleHosts;

/** The engine's error and warning diagnostics of a `--json` run, one per line. */
function diagnostics(stdout: string): string {
  return engineEvents(stdout)
    .flatMap(({ diagnosticEvent: event }) => (event && event.severity !== "info" && event.severity !== "debug" ? [`${event.urn ?? ""} ${event.message}`] : []))
    .join("\n");
}

describe("the example homelab with a builder in the twin: build once, copy signed closures, hosts only switch", function () {
  this.timeout(900_000);
  let homelab: Homelab;
  let source: string;
  const store = (name: string) => path.join(homelab.rootfs(homelab.service(name).vmid), "nix", "store");
  const storeEntries = (name: string) => (existsSync(store(name)) ? readdirSync(store(name)).filter((entry) => !entry.startsWith(".")) : []);
  const copies = async () => Object.fromEntries((await homelab.resources()).filter((r) => r.type === "pulumi-nodejs:dynamic/nixmox:ClosureCopy").map((r) => [r.outputs.service, r.outputs]));
  const builds = async () => Object.fromEntries((await homelab.resources()).filter((r) => r.type === "pulumi-nodejs:dynamic/nixmox:HostBuild").map((r) => [r.outputs.service, r.outputs]));

  before(async () => {
    source = mkdtempSync(path.join(tmpdir(), "nixmox-twin-build-"));
    homelab = await startHomelab({ manifest: await builderManifest(source), config: standInNixpkgsConfig() });
  });

  after(async () => {
    await homelab?.stop({ remove: true });
    rmSync(source, { recursive: true, force: true });
  });

  describe("the first deploy", () => {
    let up: Awaited<ReturnType<Homelab["up"]>>;
    before(async () => {
      up = await homelab.up([], { allowFailure: true });
    });

    it("succeeds and every host is healthy, its daemons running from the system built on the builder", async () => {
      assert.equal(up.run.status, 0, diagnostics(up.run.stdout) || up.run.stderr.slice(-4000));
      const outputs = await homelab.outputs();
      for (const name of [...hosts, "builder"]) assert.equal(outputs.services[name].healthy, true, name);
      const built = await builds();
      assert.deepEqual(Object.keys(built).sort(), hosts);
      for (const name of hosts) {
        const ran = await homelab.ssh(name, "readlink -f /run/current-system; readlink -f /nix/var/nix/profiles/system");
        assert.equal(ran.status, 0, ran.stderr);
        assert.deepEqual(ran.stdout.trim().split("\n"), [built[name].storePath, built[name].storePath], name);
      }
      // Real processes behind the health gates.
      for (const [name, process] of [["caddy", "caddy"], ["dns", "unbound"], ["postgresql", "postgres"]]) {
        const ran = await homelab.ssh(name, `pgrep -x ${process} >/dev/null && echo running`);
        assert.equal(ran.stdout.trim(), "running", `${name}: ${process}`);
      }
    });

    it("evaluated on the builder only, once per host; no host evaluated or built anything", async () => {
      const isNixpkgs = (entry: string) => /-source$/.test(entry) && readFileSync(path.join(store("builder"), entry, "flake.nix"), { encoding: "utf8", flag: "r" }).includes("stand-in nixpkgs");
      const nixpkgs = storeEntries("builder").filter((entry) => existsSync(path.join(store("builder"), entry, "flake.nix"))).find(isNixpkgs);
      assert.ok(nixpkgs, "the builder's store has the stand-in nixpkgs source");
      const drvs = storeEntries("builder").filter((entry) => /-nixos-system-.*\.drv$/.test(entry));
      assert.deepEqual(drvs.map((entry) => /-nixos-system-(.+)-\d+\.\d+\.drv$/.exec(entry)![1]).sort(), hosts);
      for (const name of hosts) {
        const root = homelab.rootfs(homelab.service(name).vmid);
        assert.ok(!existsSync(path.join(root, "var/log/twin-nixos-rebuild.log")), `${name} ran nixos-rebuild`);
        assert.deepEqual(storeEntries(name).filter((entry) => entry.endsWith(".drv")), [], `${name} has derivations`);
        assert.ok(!storeEntries(name).includes(nixpkgs), `${name} has the nixpkgs source`);
      }
      // The builder built itself, as build placement says.
      assert.ok(existsSync(path.join(homelab.rootfs(homelab.service("builder").vmid), "var/log/twin-nixos-rebuild.log")));
      const copied = await copies();
      for (const name of hosts) assert.ok(copied[name].copiedPaths >= 2 && copied[name].copiedBytes > 0, `${name}: ${JSON.stringify(copied[name])}`);
    });
  });

  describe("after the first deploy", () => {
    it("a second up changes nothing and copies nothing", async () => {
      const before = Object.fromEntries([...hosts, "builder"].map((name) => [name, storeEntries(name)]));
      const again = await homelab.up();
      assert.deepEqual(named(again.steps), []);
      assert.deepEqual(Object.keys(again.changes).filter((op) => op !== "same"), []);
      for (const name of [...hosts, "builder"]) assert.deepEqual(storeEntries(name), before[name], name);
    });

    it("an edit of one host's module builds, copies and switches that host only, and only its new paths travel", async () => {
      const before = Object.fromEntries(hosts.map((name) => [name, storeEntries(name)]));
      const oldBuilds = await builds();
      const module = path.join(homelab.work, "manifest", "modules", "homepage.nix");
      writeFileSync(module, `${readFileSync(module, "utf8")}# edited\n`);
      const edit = await homelab.up();
      const changed = named(edit.steps);
      assert.ok(changed.includes("update homepage-build") && changed.includes("update homepage-copy"), changed.join("\n"));
      assert.deepEqual(changed.filter((step) => /-(build|copy)$/.test(step) && !step.includes("homepage")), [], changed.join("\n"));
      const newBuilds = await builds();
      assert.notEqual(newBuilds.homepage.storePath, oldBuilds.homepage.storePath);
      const copied = (await copies()).homepage;
      const added = storeEntries("homepage").filter((entry) => !before.homepage.includes(entry) && !entry.endsWith(".lock"));
      // The new system and the flake it was built from; the configs it shares with the old system stayed.
      assert.equal(copied.copiedPaths, 2, JSON.stringify(copied));
      assert.equal(added.length, 2, added.join(" "));
      assert.ok(added.includes(newBuilds.homepage.storePath.slice("/nix/store/".length)));
      for (const name of hosts.filter((host) => host !== "homepage")) assert.deepEqual(storeEntries(name), before[name], name);
      const ran = await homelab.ssh("homepage", "readlink -f /run/current-system");
      assert.equal(ran.stdout.trim(), newBuilds.homepage.storePath);
    });

    it("a path without the stack's signature is refused by the host: the copy NixMox runs fails and nothing arrives", async () => {
      const built = await homelab.ssh("builder", "nix build --no-link --json --impure --expr 'derivation { name = \"unsigned-system\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo unsigned > $out\" ]; }'");
      assert.equal(built.status, 0, built.stderr);
      const unsigned = /"out":"([^"]+)"/.exec(built.stdout)![1]!;
      const dns = homelab.service("dns");
      const hostKey = readFileSync(path.join(homelab.rootfs(dns.vmid), "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
      const trusted = (await builds()).dns.signingPublicKey as string;
      // The very command ClosureCopy runs on the builder, with an agent holding the deploy key forwarded to it.
      const command = renderCopyCommand({ service: "dns", storePath: unsigned, host: dns.ip, port: 22, trustedPublicKeys: [trusted] });
      const agentDir = mkdtempSync(path.join(tmpdir(), "nixmox-agent-"));
      const socket = path.join(agentDir, "agent.sock");
      const agent: ChildProcess = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
      try {
        for (let i = 0; i < 50 && !existsSync(socket); i++) await new Promise((resolve) => setTimeout(resolve, 100));
        await homelab.command(["ssh-add", "-q", homelab.deployKey.privateKeyFile], { env: { SSH_AUTH_SOCK: socket } });
        const builder = homelab.service("builder");
        const builderKey = readFileSync(path.join(homelab.rootfs(builder.vmid), "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
        const knownHosts = path.join(agentDir, "known_hosts");
        writeFileSync(knownHosts, `${builder.ip} ${builderKey}\n`);
        const copy = await homelab.command(["ssh", "-F", "/dev/null", "-A", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, `root@${builder.ip}`, command], {
          input: `${dns.ip} ${hostKey}\n`,
          allowFailure: true,
          env: { SSH_AUTH_SOCK: socket },
        });
        assert.notEqual(copy.status, 0, copy.stdout);
        assert.match(copy.stderr, /lacks a valid signature/);
        assert.equal((await homelab.ssh("dns", `nix-store --check-validity ${unsigned}`)).status, 1);
      } finally {
        agent.kill();
        rmSync(agentDir, { recursive: true, force: true });
      }
    });
  });
});
