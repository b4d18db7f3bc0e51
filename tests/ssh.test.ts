// Real processes: a loopback OpenSSH server per suite (tests/support/sshd.ts). Nothing is mocked.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { AddressInfo, Server, Socket, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  isHostKeyMismatch,
  connectSsh,
  fingerprint,
  formatKnownHostsLine,
  lookupKnownHost,
  parseHostKey,
  parseKnownHosts,
  scanHostKey,
  shellCommand,
  shellQuote,
} from "../components/ssh";
import { TestSshd, startSshd } from "./support/sshd";

function sshKeygenFingerprint(file: string): string {
  return execFileSync("ssh-keygen", ["-l", "-E", "sha256", "-f", file], { encoding: "utf8" }).split(" ")[1];
}

describe("ssh: pinned connections against a real sshd", function () {
  this.timeout(30_000);
  let server: TestSshd;
  let other: TestSshd;
  before(async () => {
    [server, other] = await Promise.all([startSshd({ host: "127.0.0.2" }), startSshd({ host: "127.0.0.3" })]);
  });
  after(async () => {
    await Promise.all([server?.stop(), other?.stop()]);
  });

  const options = () => ({
    host: server.host,
    port: server.port,
    privateKey: server.clientPrivateKey,
    hostKeys: [server.hostKey],
  });

  it("computes the same SHA256 fingerprint as ssh-keygen", () => {
    assert.equal(fingerprint(parseHostKey(server.hostKey)), sshKeygenFingerprint(join(server.dir, "host_ed25519.pub")));
  });

  it("runs commands over one connection with exit code, stdout, stderr and stdin", async () => {
    const session = await connectSsh(options());
    try {
      assert.equal(session.hostKey, server.hostKey);
      const first = await session.exec("echo out; echo err >&2; exit 7");
      assert.deepEqual(first, { code: 7, signal: null, stdout: "out\n", stderr: "err\n", timedOut: false, connectionLost: false });
      const second = await session.exec("tr a-z A-Z", { stdin: "secret-free text" });
      assert.equal(second.stdout, "SECRET-FREE TEXT");
      const stubs = await session.exec("command -v systemctl; echo $NIXMOX_STUB_DIR");
      assert.equal(stubs.stdout, `${join(__dirname, "support", "stub-bin", "systemctl")}\n${server.dir}\n`);
    } finally {
      session.close();
    }
  });

  it("fails a command that outlives its timeout, within the timeout", async () => {
    const session = await connectSsh(options());
    try {
      const started = Date.now();
      const result = await session.exec("sleep 30", { timeoutMs: 500 });
      assert.equal(result.timedOut, true);
      assert.equal(result.code, null);
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
      assert.equal((await session.exec("echo still usable")).stdout, "still usable\n");
    } finally {
      session.close();
    }
  });

  it("fails on a host-key mismatch, naming host and both fingerprints", async () => {
    await assert.rejects(
      connectSsh({ ...options(), hostKeys: [other.hostKey] }),
      (error: Error) => {
        assert.ok(isHostKeyMismatch(error));
        assert.equal(
          error.message,
          `host key mismatch for ${server.host}:${server.port}: expected ${fingerprint(parseHostKey(other.hostKey))}, ` +
            `the server presented ${fingerprint(parseHostKey(server.hostKey))}; refusing to connect. ` +
            "If the host was re-created on purpose, record its new key (remove the old one from state or known_hosts).",
        );
        return true;
      },
    );
  });

  it("fails without a pinned key unless trust-on-first-use is asked for, and then reports the key", async () => {
    await assert.rejects(
      connectSsh({ ...options(), hostKeys: [] }),
      new RegExp(`^SshConnectionError: no pinned host key for ${server.host}:${server.port}`.replace(/\./g, "\\.")),
    );
    const session = await connectSsh({ ...options(), hostKeys: [], trustOnFirstUse: true });
    session.close();
    assert.equal(session.hostKey, server.hostKey);
    assert.equal(await scanHostKey(server.host, server.port), server.hostKey);
  });

  it("fails authentication with a key the host does not accept, without echoing the key", async () => {
    await assert.rejects(connectSsh({ ...options(), privateKey: other.clientPrivateKey }), (error: Error) => {
      assert.equal(
        error.message,
        `SSH authentication as the deploy user failed on ${server.host}:${server.port}: the server did not accept the private key (check the authorized key on the host)`,
      );
      assert.ok(!error.message.includes("PRIVATE KEY"));
      return true;
    });
  });

  it("fails clearly when nothing listens", async () => {
    await assert.rejects(connectSsh({ ...options(), port: 1 }), {
      message: `cannot reach SSH on ${server.host}:1 (ECONNREFUSED)`,
    });
  });

  it("reports a dropped connection on the running command instead of hanging", async () => {
    const session = await connectSsh(options());
    const pending = session.exec("sleep 20", { timeoutMs: 15_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(server.dropConnections() >= 1);
    const result = await pending;
    assert.equal(result.connectionLost, true);
    assert.equal(result.code, null);
    assert.equal(session.isOpen(), false);
    assert.equal((await session.exec("true")).connectionLost, true);
  });

  it("ends a running command within the keepalive bound when the peer goes silent mid-session (security review M4)", async () => {
    // SIGSTOP freezes the session's sshd: the TCP connection stays open but nothing answers, not even keepalives.
    const session = await connectSsh({ ...options(), keepaliveIntervalMs: 500 });
    const pending = session.exec("sleep 30", { timeoutMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const daemon = Number(readFileSync(join(server.dir, "sshd.pid"), "utf8"));
    const sessions = readdirSync("/proc").filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return /^\d+$/.test(pid) && Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === daemon;
      } catch {
        return false;
      }
    }).map(Number);
    assert.ok(sessions.length >= 1);
    const started = Date.now();
    for (const pid of sessions) process.kill(pid, "SIGSTOP");
    try {
      const result = await pending;
      assert.ok(Date.now() - started < 10_000, `ended after ${Date.now() - started} ms, not the 60 s command timeout`);
      assert.equal(result.connectionLost, true);
      assert.equal(session.isOpen(), false);
    } finally {
      for (const pid of sessions) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
  });

  it("reads the pinned key back from the server's own known_hosts line", () => {
    const line = formatKnownHostsLine(server.host, server.port, parseHostKey(readFileSync(join(server.dir, "host_ed25519.pub"), "utf8")));
    assert.deepEqual(lookupKnownHost(parseKnownHosts(`${line}\n`), server.host, server.port).map((key) => key.type), ["ssh-ed25519"]);
  });
});

describe("ssh: peers that stall or hang up during the handshake (security review M4)", function () {
  this.timeout(20_000);
  // A real loopback TCP server playing a broken SSH peer: it sends a banner (or nothing), then closes or stalls.
  type Behaviour = "banner-then-close" | "banner-then-stall" | "silent";
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  after(() => {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) server.close();
  });
  const brokenPeer = async (behaviour: Behaviour): Promise<number> => {
    const server = createServer((socket) => {
      sockets.push(socket);
      socket.on("error", () => undefined);
      if (behaviour === "silent") return;
      socket.write("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
      if (behaviour === "banner-then-close") socket.once("data", () => socket.end());
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.5", resolve));
    return (server.address() as AddressInfo).port;
  };
  let clientKey = "";
  before(() => {
    const keyDir = mkdtempSync(join(tmpdir(), "nixmox-ssh-m4-"));
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(keyDir, "id")]);
    clientKey = readFileSync(join(keyDir, "id"), "utf8");
    rmSync(keyDir, { recursive: true, force: true });
  });
  const pinnedKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
  const timed = async (run: () => Promise<unknown>): Promise<{ ms: number; error: Error }> => {
    const started = Date.now();
    try {
      await run();
    } catch (error) {
      return { ms: Date.now() - started, error: error as Error };
    }
    throw new Error("expected a rejection");
  };

  for (const behaviour of ["banner-then-close", "banner-then-stall", "silent"] as const) {
    it(`fails connectSsh (pinned and first contact) and scanHostKey within the deadline when the peer is ${behaviour}`, async () => {
      const port = await brokenPeer(behaviour);
      const where = `127.0.0.5:${port}`;
      const attempts = [
        () => connectSsh({ host: "127.0.0.5", port, privateKey: clientKey, hostKeys: [pinnedKey], readyTimeoutMs: 1500 }),
        () => connectSsh({ host: "127.0.0.5", port, privateKey: clientKey, hostKeys: [], trustOnFirstUse: true, readyTimeoutMs: 1500 }),
        () => scanHostKey("127.0.0.5", port, 1500),
      ];
      const outcomes = await Promise.all(attempts.map(timed));
      for (const { ms, error } of outcomes) {
        assert.ok(ms < 4000, `settled after ${ms} ms`);
        assert.equal(error.name, "SshConnectionError", error.message);
        assert.ok(error.message.includes(where), error.message);
      }
      if (behaviour === "banner-then-close") {
        assert.equal(outcomes[0].error.message, `SSH connection to ${where} closed before the handshake finished (the server hung up)`);
        assert.equal(outcomes[2].error.message, `SSH connection to ${where} closed before the server presented its host key`);
      }
    });
  }
});

describe("ssh: known_hosts parsing", () => {
  const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4";
  const otherKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5eXl5";
  // |1|salt|hash for "web.lan" with salt "0123456789abcdefghij" (HMAC-SHA1, as ssh-keygen -H writes it).
  const hashed = "|1|MDEyMzQ1Njc4OWFiY2RlZmdoaWo=|E6leE/hOT8Pjw2rvBNlzmVuHIYM=";

  it("matches bare names, [host]:port, wildcards and hashed names; skips revoked keys and cert authorities", () => {
    const text = [
      "# comment",
      `10.0.0.5 ${key}`,
      `[10.0.0.5]:2222 ${otherKey}`,
      `*.lan ${otherKey}`,
      `${hashed} ${key}`,
      `@cert-authority *.lan ${key}`,
      `@revoked 10.0.0.9 ${otherKey}`,
      `10.0.0.9 ${otherKey}`,
      "garbage line",
    ].join("\n");
    const entries = parseKnownHosts(text);
    const lookup = (host: string, port: number) => lookupKnownHost(entries, host, port).map((k) => k.blob.toString("base64").slice(-8));
    assert.deepEqual(lookup("10.0.0.5", 22), ["eHh4eHh4"]);
    assert.deepEqual(lookup("10.0.0.5", 2222), ["eXl5eXl5"]);
    assert.deepEqual(lookup("web.lan", 22), ["eXl5eXl5", "eHh4eHh4"]);
    assert.deepEqual(lookup("10.0.0.7", 22), []);
    assert.deepEqual(lookup("10.0.0.9", 22), []);
  });

  it("applies a negated pattern as OpenSSH does: a host a line excludes gets none of its keys (security review L5)", () => {
    const dir = mkdtempSync(join(tmpdir(), "nixmox-known-hosts-"));
    try {
      const text = [`192.168.99.*,!192.168.99.14 ${key}`, `!web.lan,*.lan ${otherKey}`, `[10.0.0.5]:2222,!10.0.0.6 ${otherKey}`].join("\n");
      const file = join(dir, "known_hosts");
      writeFileSync(file, `${text}\n`);
      const entries = parseKnownHosts(text);
      const ours = (host: string, port: number) => lookupKnownHost(entries, host, port).length > 0;
      // The real counterpart: ssh-keygen -F exits 0 when a line applies to the name, 1 when none does.
      const openssh = (name: string) => spawnSync("ssh-keygen", ["-F", name, "-f", file], { encoding: "utf8" }).status === 0;
      for (const [host, port] of [["192.168.99.14", 22], ["192.168.99.13", 22], ["web.lan", 22], ["db.lan", 22], ["10.0.0.5", 2222], ["10.0.0.6", 22]] as const) {
        assert.equal(ours(host, port), openssh(port === 22 ? host : `[${host}]:${port}`), `${host}:${port}`);
      }
      assert.deepEqual([ours("192.168.99.14", 22), ours("192.168.99.13", 22), ours("web.lan", 22), ours("db.lan", 22)], [false, true, false, true]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("fails to parse a key whose type disagrees with its data", () => {
    assert.throws(() => parseHostKey(`ssh-rsa ${key.split(" ")[1]}`, "hostKey of service \"web\""), {
      message: 'hostKey of service "web" says type "ssh-rsa" but its key data is of type "ssh-ed25519"',
    });
    assert.throws(() => parseHostKey("not a key", "hostKey"), { message: 'hostKey must look like "ssh-ed25519 AAAA…", got "not a key"' });
  });

  it("quotes shell arguments so they stay literal", () => {
    assert.equal(shellQuote("web-1.lan"), "web-1.lan");
    assert.equal(shellQuote("it's $(rm -rf /)"), `'it'\\''s $(rm -rf /)'`);
    assert.equal(shellQuote(""), "''");
    assert.equal(shellCommand(["echo", "a b", "c"]), "echo 'a b' c");
    assert.equal(execFileSync("bash", ["-c", `printf %s ${shellQuote("it's $(x) `y` \"z\"")}`], { encoding: "utf8" }), "it's $(x) `y` \"z\"");
  });
});
