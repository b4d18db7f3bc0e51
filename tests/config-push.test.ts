import { strict as assert } from "node:assert";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { checkRelativePath, renderConfigCheck, renderConfigPayload, renderConfigPushCommand } from "../components/config-push";
import { contentHash } from "../render/host";
import { connectSsh, type SshSession } from "../components/ssh";
import { startSshd, type TestSshd } from "./support/sshd";

const hashA = "a".repeat(64);
const hashB = "b".repeat(64);
const hashC = "c".repeat(64);

describe("config push", () => {
  it("encodes each file as one '<base64 path> <base64 content>' line, sorted by path", () => {
    assert.equal(renderConfigPayload("dns", { "nixos/core.nix": "{ }\n", "flake.nix": "x" }), "Zmxha2Uubml4 eA==\nbml4b3MvY29yZS5uaXg= eyB9Cg==\n");
  });

  it("fails on a path that could leave the directory", () => {
    for (const bad of ["../etc/passwd", "/etc/passwd", "nixos/../x", "a//b", "a b"]) {
      assert.throws(() => checkRelativePath("dns", bad), {
        message: `service "dns": rendered file path ${JSON.stringify(bad)} must be relative, of [A-Za-z0-9._+-] segments, without . or ..`,
      });
    }
  });

  it("fails on a content hash that is not lowercase hex", () => {
    assert.throws(() => renderConfigPushCommand("dns", "ABC; rm -rf /"), {
      message: 'service "dns": content hash must be 16-128 lowercase hex characters, got "ABC; rm -rf /"',
    });
  });

  describe("on a loopback sshd", function () {
    this.timeout(30_000);
    let host: TestSshd;
    let session: SshSession;
    let paths: { link: string; store: string };

    before(async () => {
      host = await startSshd();
      session = await connectSsh({ host: host.host, port: host.port, privateKey: host.clientPrivateKey, hostKeys: [host.hostKey] });
      paths = { link: join(host.dir, "etc", "nixmox"), store: join(host.dir, "etc", "nixmox.d") };
    });
    after(async () => {
      session?.close();
      await host?.stop();
    });

    const push = (hash: string, files: Record<string, string>) =>
      session.exec(renderConfigPushCommand("dns", hash, paths), { stdin: renderConfigPayload("dns", files) });

    it("installs the files atomically behind the /etc/nixmox symlink, keeping only the previous version", async () => {
      mkdirSync(paths.link, { recursive: true });
      writeFileSync(join(paths.link, "configuration.nix"), "hand-made\n");
      const first = await push(hashA, { "flake.nix": "A\n", "nixos/services/dns.nix": "{ }\n", "empty.json": "" });
      assert.equal(first.code, 0, first.stderr);
      assert.equal(first.stdout, `nixmox: config ${hashA} installed (3 files)\n`);
      assert.equal(readlinkSync(paths.link), join(paths.store, hashA));
      assert.equal(readFileSync(join(paths.link, "nixos/services/dns.nix"), "utf8"), "{ }\n");
      assert.equal(readFileSync(join(paths.link, "empty.json"), "utf8"), "");
      assert.equal(readFileSync(`${paths.link}.pre-nixmox/configuration.nix`, "utf8"), "hand-made\n");

      assert.equal((await push(hashB, { "flake.nix": "B\n" })).code, 0);
      assert.equal((await push(hashC, { "flake.nix": "C\n" })).code, 0);
      assert.equal(readFileSync(join(paths.link, "flake.nix"), "utf8"), "C\n");
      assert.ok(lstatSync(paths.link).isSymbolicLink());
      assert.deepEqual(readdirSync(paths.store).sort(), [hashB, hashC]);
    });

    it("fails without installing anything when the payload has no flake.nix or a path escaping the directory", async () => {
      const before = readlinkSync(paths.link);
      const noFlake = await push(hashA, { "host.json": "{}\n" });
      assert.equal(noFlake.code, 2);
      assert.equal(noFlake.stderr, "nixmox: the pushed config has no flake.nix (1 files)\n");
      const escaping = await session.exec(renderConfigPushCommand("dns", hashA, paths), {
        stdin: `${Buffer.from("../../escape").toString("base64")} ${Buffer.from("x").toString("base64")}\n`,
      });
      assert.equal(escaping.code, 2);
      assert.equal(escaping.stderr, "nixmox: refusing file path '../../escape'\n");
      assert.equal(existsSync(join(host.dir, "etc", "escape")), false);
      assert.deepEqual(readdirSync(paths.store).sort(), [hashB, hashC]);
      assert.equal(readlinkSync(paths.link), before);
    });
    it("keeps the state-version of the host's first install across later pushes (a new default must not move the host)", async () => {
      const hashD = "d".repeat(64);
      const hashE = "e".repeat(64);
      assert.equal((await push(hashD, { "flake.nix": "D\n", "state-version": "25.11\n" })).code, 0);
      // Pushed before this file existed: the first push that has one installs it.
      assert.equal(readFileSync(join(paths.link, "state-version"), "utf8"), "25.11\n");
      const next = await push(hashE, { "flake.nix": "E\n", "state-version": "26.05\n" });
      assert.equal(next.code, 0, next.stderr);
      assert.equal(readFileSync(join(paths.link, "flake.nix"), "utf8"), "E\n");
      assert.equal(readFileSync(join(paths.link, "state-version"), "utf8"), "25.11\n");
      // The same configuration pushed again (its directory replaced in place) keeps it too.
      assert.equal((await push(hashE, { "flake.nix": "E\n", "state-version": "26.05\n" })).code, 0);
      assert.equal(readFileSync(join(paths.link, "state-version"), "utf8"), "25.11\n");
    });

    it("its refresh check prints the content hash of exactly the pushed files (state-version aside), and another one once a file is edited, added or removed", async () => {
      const files = { "flake.nix": "F\n", "host.json": "{\"a\":1}\n", "nixos/lib/x.nix": "{ }\n", "state-version": "26.05\n" };
      const check = renderConfigCheck("dns", files, paths);
      assert.equal(check.expect, contentHash({ "flake.nix": "F\n", "host.json": "{\"a\":1}\n", "nixos/lib/x.nix": "{ }\n" }));
      assert.equal((await push("f".repeat(64), files)).code, 0);
      const found = async () => (await session.exec(check.command)).stdout.trim();
      assert.equal(await found(), check.expect, "the carried-over state-version (25.11) is not compared");
      for (const [change, undo] of [
        [() => writeFileSync(join(paths.link, "host.json"), "{\"a\":2}\n"), () => writeFileSync(join(paths.link, "host.json"), "{\"a\":1}\n")],
        [() => writeFileSync(join(paths.link, "extra.nix"), ""), () => rmSync(join(paths.link, "extra.nix"))],
        [() => rmSync(join(paths.link, "nixos/lib/x.nix")), () => writeFileSync(join(paths.link, "nixos/lib/x.nix"), "{ }\n")],
      ] as const) {
        change();
        assert.notEqual(await found(), check.expect);
        undo();
        assert.equal(await found(), check.expect);
      }
    });
  });
});
