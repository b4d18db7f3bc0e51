import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { publicKeyOf } from "../components/deploy-key";
import { offlinePreviewPrivateKey } from "../components/offline-preview";

describe("deploy key", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "nixmox-deploy-key-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("derives the public half that ssh-keygen writes", () => {
    const file = join(dir, "id_ed25519");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", file]);
    const expected = readFileSync(`${file}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
    assert.equal(publicKeyOf(readFileSync(file, "utf8")), expected);
  });

  it("builds an offline preview key that OpenSSH itself accepts", () => {
    const file = join(dir, "offline");
    writeFileSync(file, offlinePreviewPrivateKey(), { mode: 0o600 });
    const fromOpenSsh = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" }).trim().split(" ").slice(0, 2).join(" ");
    assert.equal(publicKeyOf(offlinePreviewPrivateKey()), fromOpenSsh);
    assert.equal(offlinePreviewPrivateKey(), offlinePreviewPrivateKey());
  });

  it("fails without quoting key material when the text is not a private key", () => {
    assert.throws(() => publicKeyOf("not a key but maybe a secret"), {
      message: "nixmox:sshPrivateKey is not an unencrypted OpenSSH or PEM private key; generate one with `ssh-keygen -t ed25519 -N '' -f nixmox_ed25519`",
    });
  });
});
