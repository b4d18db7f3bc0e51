// Pure tests (and, for the agent, real OpenSSH): the values of components/build: the controller's Nix check, the
// signing key's format, the copy's store URL and the commands' refusals of anything that could reach a shell, and the
// deploy key's agent with each key type OpenSSH's `ssh` signs with.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deployKeyAgent } from "../components/build/agent";
import { controllerNixProblems } from "../components/build/controller";
import { generateNixSigningKey, hostStoreUrl, parseBuildResult, parseCopyResult, renderBuildCommand, renderCopyCommand } from "../components/build/nix-commands";
import { nixPublicKeyOf } from "../components/build/signing-key";
import { connectSsh } from "../components/ssh";
import { startSshd } from "./support/sshd";

const caches = { substituters: ["https://cache.nixos.org"], trustedPublicKeys: ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="] };

describe("build once, copy closures: commands and values", () => {
  it("accepts a controller Nix that builds x86_64-linux (natively or as an extra platform) with flakes", () => {
    assert.deepEqual(controllerNixProblems({ version: "2.8.0", system: "x86_64-linux", extraPlatforms: [] }), []);
    assert.deepEqual(controllerNixProblems({ version: "2.24.1", system: "aarch64-darwin", extraPlatforms: ["x86_64-linux"] }), []);
  });

  it("fails a controller without Nix, with an old Nix, or one that cannot build Linux, naming what to do instead", () => {
    const instead = 'add a service of kind builder to the manifest (build.on = "builder"), or build on each host (build.on = "target")';
    assert.deepEqual(controllerNixProblems(null), [`build.on = "controller", but this machine has no \`nix\` on PATH; install Nix, or ${instead}`]);
    assert.deepEqual(controllerNixProblems({ version: "2.3.16", system: "x86_64-linux", extraPlatforms: [] }), [
      `build.on = "controller", but this machine's Nix is 2.3.16; flakes need Nix 2.4 or later: upgrade it, or ${instead}`,
    ]);
    assert.deepEqual(controllerNixProblems({ version: "2.24.1", system: "aarch64-darwin", extraPlatforms: [] }), [
      `build.on = "controller", but this machine's Nix builds aarch64-darwin and not x86_64-linux (extra-platforms: none); configure a Linux remote builder for it (nix.conf builders), or ${instead}`,
    ]);
  });

  it("generates keys in Nix's format, and derives the public half of a given secret key", () => {
    const key = generateNixSigningKey("nixmox-dev-1");
    assert.match(key.secretKey, /^nixmox-dev-1:[A-Za-z0-9+/]{86}==$/);
    assert.match(key.publicKey, /^nixmox-dev-1:[A-Za-z0-9+/]{43}=$/);
    assert.equal(nixPublicKeyOf(key.secretKey), key.publicKey);
    // The same as Nix's own: nix-store --generate-binary-cache-key writes both files.
    const dir = mkdtempSync(join(tmpdir(), "nixmox-key-"));
    try {
      execFileSync("nix-store", ["--generate-binary-cache-key", "made-by-nix-1", join(dir, "secret"), join(dir, "public")], { stdio: "ignore" });
      assert.equal(nixPublicKeyOf(readFileSync(join(dir, "secret"), "utf8")), readFileSync(join(dir, "public"), "utf8").trim());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.throws(() => nixPublicKeyOf("nixmox-dev-1:AAAA"), /^Error: nixmox:buildSigningKey must be a Nix secret key "name:base64"/);
  });

  it("starts the host's daemon requiring the trusted keys' signatures, URL-encoded in the store URL", () => {
    const url = hostStoreUrl("dns", "192.168.99.13", ["nixmox-dev-1:AAAA=", "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]);
    assert.equal(
      decodeURIComponent(url.split("remote-program=")[1]),
      "nix-daemon --option require-sigs true --option trusted-public-keys 'nixmox-dev-1:AAAA= cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY='",
    );
    assert.ok(url.startsWith("ssh-ng://root@192.168.99.13?remote-program=nix-daemon%20--option%20require-sigs%20true"));
  });

  it("fails any value that could reach a shell or a store URL unchecked", () => {
    assert.throws(() => hostStoreUrl("dns", "dns.lan;rm", ["a:AAAA"]), /^Error: service "dns": the copy needs the host's IPv4 address, got "dns.lan;rm"$/);
    assert.throws(() => hostStoreUrl("dns", "10.0.0.1", ["a:AA AA"]), /^Error: service "dns": trusted public keys must look like "name:base64"/);
    assert.throws(() => renderCopyCommand({ service: "dns", storePath: "/nix/store/x; reboot", host: "10.0.0.1", port: 22, trustedPublicKeys: ["a:AAAA"] }), /^Error: service "dns": the system must be a Nix store path/);
    assert.throws(() => renderBuildCommand({ service: "Dns", contentHash: "a".repeat(64), caches, signingPublicKey: "k:AAAA" }), /^Error: service "Dns": name must match/);
    assert.throws(() => renderBuildCommand({ service: "dns", contentHash: "a".repeat(64), caches: { ...caches, substituters: ["https://x $(id)"] }, signingPublicKey: "k:AAAA" }), /substituters must be binary cache URLs/);
    assert.throws(() => renderBuildCommand({ service: "dns", contentHash: "a".repeat(64), workDir: "/tmp/a b", caches, signingPublicKey: "k:AAAA" }), /work directory must be an absolute path/);
  });

  it("reads the build's and the copy's result lines, and nothing else", () => {
    assert.deepEqual(parseBuildResult('noise\nNIXMOX_BUILD {"path":"/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-dns","service":"dns"}\n'), {
      path: "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos-system-dns",
      service: "dns",
    });
    assert.equal(parseBuildResult('NIXMOX_BUILD {"path":"/etc/passwd","service":"dns"}\n'), null);
    assert.deepEqual(parseCopyResult('NIXMOX_COPY {"bytes":120,"paths":1}\n'), { bytes: 120, paths: 1 });
    assert.equal(parseCopyResult("copying 1 paths...\n"), null);
  });

  describe("the deploy key's agent, forwarded to OpenSSH's ssh (real sshd)", function () {
    this.timeout(60_000);
    for (const type of ["ed25519", "ecdsa", "rsa"]) {
      it(`lets ssh log in to a host with a forwarded ${type} deploy key`, async () => {
        const [jump, target] = await Promise.all([startSshd({ host: "127.0.0.71" }), startSshd({ host: "127.0.0.72" })]);
        const dir = mkdtempSync(join(tmpdir(), "nixmox-agent-"));
        try {
          execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-f", join(dir, "key")]);
          const privateKey = readFileSync(join(dir, "key"), "utf8");
          writeFileSync(join(target.dir, "authorized_keys"), readFileSync(join(dir, "key.pub")));
          writeFileSync(join(jump.dir, "known"), `[${target.host}]:${target.port} ${target.hostKey}\n`);
          const session = await connectSsh({ host: jump.host, port: jump.port, privateKey: jump.clientPrivateKey, hostKeys: [jump.hostKey], forwardAgent: deployKeyAgent(privateKey) });
          try {
            const result = await session.exec(
              `ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${join(jump.dir, "known")} -o GlobalKnownHostsFile=/dev/null -p ${target.port} root@${target.host} echo reached`,
              { timeoutMs: 20_000 },
            );
            assert.equal(result.stdout.trim(), "reached", result.stderr);
            // Nothing of the key is on the jump host: only the agent socket.
            assert.equal((await session.exec("grep -rl 'PRIVATE KEY' /tmp/ssh-* 2>/dev/null || true")).stdout, "");
          } finally {
            session.close();
          }
        } finally {
          rmSync(dir, { recursive: true, force: true });
          await Promise.all([jump.stop(), target.stop()]);
        }
      });
    }
  });
});
