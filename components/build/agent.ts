/**
 * An SSH agent inside this process that holds the deploy key, so `nix copy` can reach a host as root without the
 * key ever being written anywhere:
 *
 * - `deployKeyAgent(key)`: an ssh2 agent to forward over the controller's connection to a builder
 *   (`agentForward`); `ssh` on the builder then signs with it through `SSH_AUTH_SOCK` while that one connection
 *   lasts, and the builder never holds the key.
 * - `listenDeployKeyAgent(key)`: the same agent on a Unix socket in a fresh 0700 directory, for a copy that runs on
 *   the controller itself; `close()` removes it.
 *
 * The agent answers the agent protocol (draft-miller-ssh-agent) with exactly one identity and signs only with it; it
 * adds and removes nothing. Node modules are required inside the functions: dynamic
 * providers that use them are serialized (STYLE.md §15).
 */
import type { BaseAgent } from "ssh2";

/**
 * Answers one agent-protocol stream (a forwarded channel or a socket connection) with the key: request-identities
 * (11) gets the one key (12), sign-request (13) for that key gets its signature (14), anything else (OpenSSH 8.9+
 * first sends the session-bind extension, 27) gets SSH_AGENT_FAILURE (5). Written here because ssh2's
 * `AgentProtocol` misreads the message after one of a type it does not know (it skips only the type byte), so
 * OpenSSH's `ssh` saw "agent refused operation".
 */
function serveAgentStream(privateKey: string): import("node:stream").Duplex {
  const { Duplex } = require("node:stream") as typeof import("node:stream");
  const { utils } = require("ssh2") as typeof import("ssh2");
  const parsed = utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || key === undefined) throw new Error("the deploy key cannot be read as an unencrypted OpenSSH or PEM private key");
  const publicBlob = key.getPublicSSH();
  const u32 = (value: number) => {
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(value);
    return buffer;
  };
  const string = (value: Buffer) => Buffer.concat([u32(value.length), value]);
  const message = (type: number, body: Buffer) => Buffer.concat([u32(body.length + 1), Buffer.from([type]), body]);
  const failure = message(5, Buffer.alloc(0));
  /** An mpint (RFC 4251) of a DER INTEGER's bytes. */
  const mpint = (bytes: Buffer) => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0 && (bytes[start + 1] & 0x80) === 0) start += 1;
    return string(bytes.subarray(start));
  };
  /** ECDSA: ssh2 signs in DER; the SSH signature blob is mpint r ‖ mpint s (RFC 5656 §3.1.2). */
  const ecdsaBlob = (der: Buffer) => {
    let offset = 2 + (der[1] & 0x80 ? der[1] & 0x7f : 0);
    const rLength = der[offset + 1];
    const r = der.subarray(offset + 2, offset + 2 + rLength);
    offset += 2 + rLength;
    const s = der.subarray(offset + 2, offset + 2 + der[offset + 1]);
    return Buffer.concat([mpint(r), mpint(s)]);
  };
  const answer = (request: Buffer): Buffer => {
    const type = request[0];
    if (type === 11) return message(12, Buffer.concat([u32(1), string(publicBlob), string(Buffer.from("nixmox deploy key"))]));
    if (type !== 13) return failure;
    let offset = 1;
    const blobLength = request.readUInt32BE(offset);
    const blob = request.subarray(offset + 4, offset + 4 + blobLength);
    offset += 4 + blobLength;
    const dataLength = request.readUInt32BE(offset);
    const data = request.subarray(offset + 4, offset + 4 + dataLength);
    offset += 4 + dataLength;
    const flags = request.readUInt32BE(offset);
    if (!blob.equals(publicBlob)) return failure;
    let algorithm = key.type;
    let hash: string | undefined;
    if (key.type === "ssh-rsa" && flags & 4) [algorithm, hash] = ["rsa-sha2-512", "sha512"];
    else if (key.type === "ssh-rsa" && flags & 2) [algorithm, hash] = ["rsa-sha2-256", "sha256"];
    const signature = (key as unknown as { sign(data: Buffer, hash?: string): Buffer | Error }).sign(data, hash);
    if (signature instanceof Error) return failure;
    const sigBlob = key.type.startsWith("ecdsa-") ? ecdsaBlob(signature) : signature;
    return message(14, string(Buffer.concat([string(Buffer.from(algorithm)), string(sigBlob)])));
  };
  let pending = Buffer.alloc(0);
  const stream: import("node:stream").Duplex = new Duplex({
    read() {
      return;
    },
    write(chunk: Buffer, _encoding, callback) {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        const length = pending.readUInt32BE(0);
        const request = pending.subarray(4, 4 + length);
        pending = pending.subarray(4 + length);
        let reply: Buffer;
        try {
          reply = length === 0 ? failure : answer(request);
        } catch {
          reply = failure;
        }
        stream.push(reply);
      }
      callback();
    },
    final(callback) {
      stream.push(null);
      callback();
    },
  });
  return stream;
}

/** An ssh2 agent holding only the deploy key: pass it as `agent` with `agentForward: true`. */
export function deployKeyAgent(privateKey: string): BaseAgent {
  const { BaseAgent: Base, utils } = require("ssh2") as typeof import("ssh2");
  const parsed = utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error) throw new Error(`the deploy key cannot be read: ${key.message}`);
  // ssh2 calls getIdentities/sign when it authenticates with the agent, and getStream for each forwarded channel.
  class DeployKeyAgent extends Base {
    override getIdentities(callback: (error: Error | undefined, keys?: import("ssh2").ParsedKey[]) => void): void {
      callback(undefined, [key as import("ssh2").ParsedKey]);
    }
    override sign(_publicKey: unknown, data: Buffer, options: unknown, callback?: (error?: Error, signature?: Buffer) => void): void {
      const done = (typeof options === "function" ? options : callback) as (error?: Error, signature?: Buffer) => void;
      const hash = typeof options === "object" && options !== null ? (options as { hash?: string }).hash : undefined;
      const signature = (key as { sign(data: Buffer, hash?: string): Buffer | Error }).sign(data, hash);
      if (signature instanceof Error) done(signature);
      else done(undefined, signature);
    }
    override getStream(callback: (error: Error | undefined, stream?: import("node:stream").Duplex) => void): void {
      try {
        callback(undefined, serveAgentStream(privateKey));
      } catch (error) {
        callback(error as Error);
      }
    }
  }
  return new DeployKeyAgent() as unknown as BaseAgent;
}

export interface ListeningAgent {
  /** The agent's socket: set it as SSH_AUTH_SOCK. */
  socketPath: string;
  /** Stops listening and removes the socket and its directory. */
  close(): Promise<void>;
}

/** The deploy key's agent on a Unix socket in a fresh private directory (for a copy run on this machine). */
export async function listenDeployKeyAgent(privateKey: string): Promise<ListeningAgent> {
  const { createServer } = require("node:net") as typeof import("node:net");
  const { mkdtempSync, rmSync } = require("node:fs") as typeof import("node:fs");
  const { tmpdir } = require("node:os") as typeof import("node:os");
  const { join } = require("node:path") as typeof import("node:path");
  serveAgentStream(privateKey).destroy(); // fails here, not per connection, on a bad key
  const dir = mkdtempSync(join(tmpdir(), "nixmox-agent-"));
  const socketPath = join(dir, "agent.sock");
  const server = createServer((socket) => {
    const protocol = serveAgentStream(privateKey);
    socket.on("error", () => protocol.destroy());
    socket.pipe(protocol).pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
