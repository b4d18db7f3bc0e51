// Real processes: real Nix (Debian's nix-bin) builds a per-host stand-in system (tests/support/standin-system.ts,
// the attribute nixos-rebuild builds, without nixpkgs) on a builder host, signs it with a key NixMox generated, and
// `nix copy` sends it over real OpenSSH to hosts, each with a Nix store of its own (a private mount namespace, as
// a container has). The activation wrapper then switches to it on the host with the stub systemd-run/systemctl of
// tests/support/stub-bin and the real nix-env. What this does not prove: a NixOS evaluation with nixpkgs, NixOS's
// own switch-to-configuration, systemd's transient units.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseActivationResult, renderActivationCommand, type ActivationOptions } from "../components/activation";
import { closureCopyProvider, type ClosureCopyInputs } from "../components/build/closure-copy";
import { hostBuildProvider, type HostBuildInputs } from "../components/build/host-build";
import { generateNixSigningKey, parseCopyResult, trustedKeys } from "../components/build/nix-commands";
import { connectSsh } from "../components/ssh";
import type { SshTarget } from "../components/ssh/remote-command";
import { defaultStubBinDir, fakeNixosPaths, seedFakeNixos, startSshd, type TestSshd } from "./support/sshd";
import { serializeProviders, startDynamicProviderHost } from "./support/dynamic-provider-host";
import { standInSystemFiles, testNixConf } from "./support/standin-system";

const hasNix = (() => {
  try {
    execFileSync("nix", ["--version"], { stdio: "ignore" });
    return process.getuid?.() === 0;
  } catch {
    return false;
  }
})();

async function run(host: TestSshd, command: string, stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
  try {
    return await session.exec(command, { stdin, timeoutMs: 120_000 });
  } finally {
    session.close();
  }
}

const target = (host: TestSshd): SshTarget => ({ host: host.host, port: host.port, user: "root", privateKey: host.clientPrivateKey, hostKey: host.hostKey });
const hostJson = (service: string, revision: number) => `${JSON.stringify({ host: { name: service }, revision })}\n`;

(hasNix ? describe : describe.skip)("build once, copy closures: real Nix on a builder and two hosts", function () {
  this.timeout(180_000);
  const key = generateNixSigningKey("nixmox-test-1");
  const caches = { substituters: [], trustedPublicKeys: [] };
  let builder: TestSshd;
  let web: TestSshd;
  let db: TestSshd;

  let stubs: string;

  before(async () => {
    // The hosts run the stub systemd-run and systemctl, and the real nix-env (its --set is what the wrapper runs).
    stubs = mkdtempSync(join(tmpdir(), "nixmox-stubs-"));
    for (const name of ["systemd-run", "systemctl", "sync"]) symlinkSync(join(defaultStubBinDir, name), join(stubs, name));
    builder = await startSshd({ host: "127.0.0.61", privateNix: { nixConf: testNixConf } });
    web = await startSshd({ host: "127.0.0.62", stubBinDir: stubs, privateNix: { nixConf: testNixConf } });
    db = await startSshd({ host: "127.0.0.63", stubBinDir: stubs, privateNix: { nixConf: testNixConf } });
    for (const host of [web, db]) seedFakeNixos(host.dir);
  });
  after(async () => {
    await Promise.all([builder, web, db].map((host) => host?.stop()));
    rmSync(stubs, { recursive: true, force: true });
  });

  const buildInputs = (service: string, host: TestSshd, files: Record<string, string>, overrides: Partial<HostBuildInputs> = {}): HostBuildInputs => ({
    service,
    buildOn: "builder",
    builderName: "builder",
    builder: target(builder),
    slots: 2,
    host: target(host),
    files,
    contentHash: require("node:crypto").createHash("sha256").update(JSON.stringify(files)).digest("hex"),
    caches,
    signingPublicKey: key.publicKey,
    signingSecretKey: key.secretKey,
    timeoutSeconds: 120,
    stateVersionFile: join(host.dir, "state-version"),
    ...overrides,
  });
  const copyInputs = (service: string, host: TestSshd, storePath: string, overrides: Partial<ClosureCopyInputs> = {}): ClosureCopyInputs => ({
    service,
    buildOn: "builder",
    builderName: "builder",
    builder: target(builder),
    host: target(host),
    storePath,
    trustedPublicKeys: trustedKeys(service, caches, key.publicKey),
    timeoutSeconds: 120,
    ...overrides,
  });
  const activation = (service: string, host: TestSshd, system: string, configHash: string): ActivationOptions => {
    const paths = fakeNixosPaths(host.dir);
    return {
      service,
      configHash,
      system,
      trustedPublicKeys: trustedKeys(service, caches, key.publicKey),
      checks: [],
      timing: { intervalSeconds: 1, timeoutSeconds: 2, retries: 1, startPeriodSeconds: 0 },
      paths: { stateDir: paths.stateDir, profile: paths.profile, currentSystem: paths.currentSystem, rootAuthorizedKeys: join(paths.root, "root/.ssh/authorized_keys") },
    };
  };
  const activate = async (host: TestSshd, options: ActivationOptions) => {
    const { command, stdin } = renderActivationCommand(options);
    return run(host, command, stdin);
  };
  /** Store paths valid in a host's own store (its nix-store over SSH, in its mount namespace). */
  const valid = async (host: TestSshd, path: string) => (await run(host, `nix-store --check-validity ${path}`)).code === 0;
  const storeEntries = (host: TestSshd) => (existsSync(join(host.dir, "nix", "store")) ? readdirSync(join(host.dir, "nix", "store")) : []).filter((entry) => !entry.startsWith("."));

  let webPath = "";
  let dbPath = "";

  it("builds each host's system on the builder, signed with the stack's key, from the host's installed state-version", async () => {
    writeFileSync(join(web.dir, "state-version"), "24.11\n");
    const [webBuild, dbBuild] = await Promise.all([
      hostBuildProvider.create(buildInputs("web", web, standInSystemFiles("web", hostJson("web", 1)))),
      hostBuildProvider.create(buildInputs("db", db, standInSystemFiles("db", hostJson("db", 1)))),
    ]);
    webPath = webBuild.outs.storePath;
    dbPath = dbBuild.outs.storePath;
    assert.match(webPath, /^\/nix\/store\/[0-9a-z]{32}-nixos-system-web-standin$/);
    assert.match(dbPath, /^\/nix\/store\/[0-9a-z]{32}-nixos-system-db-standin$/);
    // Built on the builder: in its store, not in the hosts' (nor this machine's).
    assert.ok(existsSync(join(builder.dir, webPath)), "the builder's own store holds the system");
    assert.ok(!existsSync(join(web.dir, webPath)) && !existsSync(webPath));
    // The host's kept release wins over the rendered one (the config push carries it, nixos/core.nix reads it).
    assert.equal(readFileSync(join(builder.dir, webPath, "state-version"), "utf8"), "24.11\n");
    assert.equal(readFileSync(join(builder.dir, dbPath, "state-version"), "utf8"), "25.11\n");
    const sigs = await run(builder, `nix path-info --sigs --recursive ${webPath}`);
    const lines = sigs.stdout.trim().split("\n");
    assert.equal(lines.length, 2, sigs.stdout); // the system and the shared path
    for (const line of lines) assert.match(line, / nixmox-test-1:[A-Za-z0-9+/=]+/, line);
  });

  it("copies a closure to its host over the pinned connection, only what the host lacks, and the wrapper switches to it", async () => {
    const copy = await closureCopyProvider.create(copyInputs("web", web, webPath));
    assert.equal(copy.outs.copiedPaths, 2);
    assert.ok(copy.outs.copiedBytes > 65536, `NAR bytes of the system and the shared path, got ${copy.outs.copiedBytes}`);
    assert.ok(await valid(web, webPath));
    assert.ok(!(await valid(db, webPath)), "the other host received nothing");

    const result = await activate(web, activation("web", web, webPath, "0123456789abcdef"));
    assert.equal(result.code, 0, result.stderr);
    const parsed = parseActivationResult(result.stdout);
    assert.equal(parsed?.status, "switched", result.stdout);
    assert.equal(parsed?.generation, webPath);
    const paths = fakeNixosPaths(web.dir);
    assert.equal(readlinkSync(paths.currentSystem), webPath);
    assert.equal(readlinkSync(readlinkSync(paths.profile).startsWith("/") ? readlinkSync(paths.profile) : join(paths.root, "nix/var/nix/profiles", readlinkSync(paths.profile))), webPath);
    assert.deepEqual(web.calls().filter((line) => line.startsWith("switch-to-configuration") || line.startsWith("nixos-rebuild")), [`switch-to-configuration switch (web ${webPath})`]);
  });

  it("a second deploy copies nothing: the copy does not re-run, and a forced one sends 0 paths; the activation is unchanged", async () => {
    const files = standInSystemFiles("web", hostJson("web", 1));
    const build = await hostBuildProvider.diff("web-build", { service: "web", buildOn: "builder", builderName: "builder", contentHash: buildInputs("web", web, files).contentHash, caches, signingPublicKey: key.publicKey, storePath: webPath }, buildInputs("web", web, files));
    assert.equal(build.changes, false);
    const copyDiff = await closureCopyProvider.diff("web-copy", { service: "web", storePath: webPath, copiedPaths: 2, copiedBytes: 1 }, copyInputs("web", web, webPath));
    assert.equal(copyDiff.changes, false);
    const again = await closureCopyProvider.create(copyInputs("web", web, webPath));
    assert.deepEqual([again.outs.copiedPaths, again.outs.copiedBytes], [0, 0]);
    const result = await activate(web, activation("web", web, webPath, "0123456789abcdef"));
    assert.equal(parseActivationResult(result.stdout)?.status, "unchanged");
  });

  it("an edit of one host builds and copies that host's new path only", async () => {
    const before = storeEntries(web);
    const edited = buildInputs("web", web, standInSystemFiles("web", hostJson("web", 2)));
    const diff = await hostBuildProvider.diff("web-build", { service: "web", buildOn: "builder", builderName: "builder", contentHash: "0".repeat(64), caches, signingPublicKey: key.publicKey, storePath: webPath }, edited);
    assert.equal(diff.changes, true);
    const rebuilt = await hostBuildProvider.update("web-build", {} as never, edited);
    assert.notEqual(rebuilt.outs.storePath, webPath);
    const copy = await closureCopyProvider.update("web-copy", {} as never, copyInputs("web", web, rebuilt.outs.storePath));
    assert.equal(copy.outs.copiedPaths, 1, "the shared path is there already");
    assert.ok(copy.outs.copiedBytes < 65536, `only the small system path, got ${copy.outs.copiedBytes}`);
    const added = storeEntries(web).filter((entry) => !before.includes(entry));
    assert.deepEqual(added.filter((entry) => !entry.endsWith(".lock")), [rebuilt.outs.storePath.slice("/nix/store/".length)]);
    assert.ok(!(await valid(db, rebuilt.outs.storePath)));
    const result = await activate(web, activation("web", web, rebuilt.outs.storePath, "1123456789abcdef"));
    assert.equal(parseActivationResult(result.stdout)?.status, "switched", result.stdout);
    assert.equal(parseActivationResult(result.stdout)?.previousGeneration, webPath);
    webPath = rebuilt.outs.storePath;
  });

  it("fails a failing switch-to-configuration and rolls the host back to the previous store path", async () => {
    const edited = buildInputs("web", web, standInSystemFiles("web", hostJson("web", 3)));
    const built = await hostBuildProvider.create(edited);
    await closureCopyProvider.create(copyInputs("web", web, built.outs.storePath));
    writeFileSync(join(web.dir, "control", "switch-fail"), "");
    try {
      const result = await activate(web, activation("web", web, built.outs.storePath, "2123456789abcdef"));
      assert.equal(result.code, 1);
      const parsed = parseActivationResult(result.stdout);
      assert.equal(parsed?.status, "rolled-back", result.stdout);
      assert.equal(parsed?.reason, `switch-to-configuration switch failed with exit code 4; rolled back to the previous generation ${webPath}`);
      assert.equal(readlinkSync(fakeNixosPaths(web.dir).currentSystem), webPath);
    } finally {
      execFileSync("rm", ["-f", join(web.dir, "control", "switch-fail")]);
    }
  });

  it("an unsigned path is refused by the host: the copy fails and nothing arrives", async () => {
    // Built on the builder by hand, without the stack's signature.
    const built = await run(builder, "nix build --no-link --json --expr 'derivation { name = \"unsigned-system\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo unsigned > $out\" ]; }' --impure");
    assert.equal(built.code, 0, built.stderr);
    const unsigned = /"out":"([^"]+)"/.exec(built.stdout)![1];
    await assert.rejects(closureCopyProvider.create(copyInputs("db", db, unsigned)), (error: Error) => {
      assert.match(error.message, /^service "db": the copy of \/nix\/store\/\S+-unsigned-system to 127\.0\.0\.63 on the builder "builder" \(127\.0\.0\.61\) exited with 1/);
      assert.match(error.message, /lacks a valid signature/);
      return true;
    });
    assert.ok(!(await valid(db, unsigned)));
    // Signed by another key: refused the same way.
    const other = generateNixSigningKey("someone-else-1");
    const signed = await run(builder, `nix store sign --key-file /dev/stdin ${unsigned}`, other.secretKey);
    assert.equal(signed.code, 0, signed.stderr);
    await assert.rejects(closureCopyProvider.create(copyInputs("db", db, unsigned)), /lacks a valid signature/);
  });

  it("the wrapper refuses a system that reached the host's store unsigned, before anything switches", async () => {
    const built = await run(db, "nix build --no-link --json --expr 'derivation { name = \"local-system\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"/usr/bin/mkdir -p $out/bin && printf \\\"#!/bin/sh\\\\nexit 0\\\\n\\\" > $out/bin/switch-to-configuration && /usr/bin/chmod +x $out/bin/switch-to-configuration\" ]; }' --impure");
    assert.equal(built.code, 0, built.stderr);
    const local = /"out":"([^"]+)"/.exec(built.stdout)![1];
    const before = readlinkSync(fakeNixosPaths(db.dir).currentSystem);
    const result = await activate(db, activation("db", db, local, "3123456789abcdef"));
    assert.equal(result.code, 1);
    const parsed = parseActivationResult(result.stdout);
    assert.equal(parsed?.status, "failed");
    assert.match(parsed?.reason ?? "", new RegExp(`^not switched: the closure of ${local} is not signed by a trusted key \\(nixmox-test-1:`));
    assert.equal(readlinkSync(fakeNixosPaths(db.dir).currentSystem), before);
    assert.deepEqual(db.calls().filter((line) => line.startsWith("systemd-run") || line.startsWith("switch-to-configuration")), []);
  });

  it("a copy broken midway fails, registers nothing, and leaves the host on its old system; the next run completes it", async () => {
    const big = buildInputs("db", db, standInSystemFiles("db", hostJson("db", 2), { ownBytes: 400 * 1024 * 1024 }));
    const built = await hostBuildProvider.create(big);
    const bigPath = built.outs.storePath;
    const running = readlinkSync(fakeNixosPaths(db.dir).currentSystem);
    const copying = closureCopyProvider.create(copyInputs("db", db, bigPath));
    // Cut the host's SSH sessions once its nix-daemon is receiving.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const daemons = spawnSync("pgrep", ["-f", "nix-daemon --option require-sigs"], { encoding: "utf8" }).stdout.trim();
      if (daemons !== "" || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.ok(db.dropConnections() > 0, "there was a session to cut");
    await assert.rejects(copying, /the copy of .* to 127\.0\.0\.63 .* exited with 1/);
    assert.ok(!(await valid(db, bigPath)), "a path that did not arrive whole is not registered");
    assert.equal(readlinkSync(fakeNixosPaths(db.dir).currentSystem), running);
    const again = await closureCopyProvider.create(copyInputs("db", db, bigPath));
    assert.ok(again.outs.copiedBytes > 400 * 1024 * 1024);
    assert.ok(await valid(db, bigPath));
  });

  it("runs the same as the engine runs it: the signing key, the build and the copy serialized and hosted by the SDK's dynamic-provider plugin", async () => {
    const specs = {
      key: "components/build/signing-key.ts#buildSigningKeyProvider",
      build: "components/build/host-build.ts#hostBuildProvider",
      copy: "components/build/closure-copy.ts#closureCopyProvider",
    };
    const [serialized, engine] = await Promise.all([serializeProviders(Object.values(specs)), startDynamicProviderHost()]);
    try {
      const hosted = (name: keyof typeof specs) => engine.provider(serialized[specs[name]].text, name);
      const signing = await hosted("key").create({ name: "nixmox-hosted-1", given: "" });
      assert.match(String(signing.outs.publicKey), /^nixmox-hosted-1:[A-Za-z0-9+/]{43}=$/);
      assert.deepEqual(await hosted("key").diff(signing.id, signing.outs, { name: "nixmox-hosted-1", given: "" }), { changes: "none", replaces: [], deleteBeforeReplace: false });
      const given = generateNixSigningKey("mine-1");
      const mine = await hosted("key").create({ name: "nixmox-hosted-1", given: given.secretKey });
      assert.equal(mine.outs.publicKey, given.publicKey);
      const inputs = buildInputs("db", db, standInSystemFiles("db", hostJson("db", 42)), { signingPublicKey: String(signing.outs.publicKey), signingSecretKey: String(signing.outs.secretKey) });
      const built = await hosted("build").create(inputs as unknown as Record<string, unknown>);
      const storePath = String(built.outs.storePath);
      assert.match(storePath, /-nixos-system-db-standin$/);
      assert.equal((await hosted("build").diff(built.id, built.outs, inputs as unknown as Record<string, unknown>)).changes, "none");
      const copied = await hosted("copy").create({ ...copyInputs("db", db, storePath), trustedPublicKeys: trustedKeys("db", caches, String(signing.outs.publicKey)) } as unknown as Record<string, unknown>);
      assert.ok(Number(copied.outs.copiedPaths) >= 1);
      assert.ok(await valid(db, storePath));
    } finally {
      await engine.stop();
    }
  });

  it("builds on the controller and copies from it with the deploy key's agent on a private socket", async () => {
    // This machine's store, with the test hosts' nix.conf (no build users here) and a cache dir of its own.
    const home = mkdtempSync(join(tmpdir(), "nixmox-controller-"));
    mkdirSync(join(home, "conf"));
    writeFileSync(join(home, "conf", "nix.conf"), `${testNixConf.join("\n")}\n`);
    const saved = { conf: process.env.NIX_CONF_DIR, cache: process.env.XDG_CACHE_HOME };
    process.env.NIX_CONF_DIR = join(home, "conf");
    process.env.XDG_CACHE_HOME = join(home, "cache");
    after(() => {
      for (const [name, value] of [["NIX_CONF_DIR", saved.conf], ["XDG_CACHE_HOME", saved.cache]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      rmSync(home, { recursive: true, force: true });
    });
    const files = standInSystemFiles("db", hostJson("db", 9));
    const built = await hostBuildProvider.create(buildInputs("db", db, files, { buildOn: "controller", builder: null, builderName: "" }));
    assert.ok(existsSync(built.outs.storePath), "built in this machine's store");
    const copy = await closureCopyProvider.create(copyInputs("db", db, built.outs.storePath, { buildOn: "controller", builder: null, builderName: "" }));
    assert.ok(copy.outs.copiedPaths >= 1);
    assert.ok(await valid(db, built.outs.storePath));
    assert.ok(parseCopyResult(`NIXMOX_COPY {"bytes":${copy.outs.copiedBytes},"paths":${copy.outs.copiedPaths}}`));
  });
});
