/**
 * A real HTTPS (or HTTP) server on 127.0.0.1 that answers the Proxmox VE calls NixMox makes itself, with their
 * semantics:
 * - `Authorization: PVEAPIToken=user@realm!tokenid=<secret>` or 401;
 * - `GET /nodes/{node}/tasks` (pve-manager PVE/API2/Tasks.pm `node_tasks`): filters `vmid`, `typefilter`, `limit`
 *   (default 50), newest first; a task run by an API token lists `user` (user@realm) and `tokenid` separately
 *   (`$convert_token_task`);
 * - `GET /nodes/{node}/storage/{storage}/content?content=vztmpl` (pve-storage Content.pm `index`): the `volumes`;
 * - `POST /nodes/{node}/storage/{storage}/download-url` (pve-manager Storage/Status.pm `download_url`): records the
 *   form, adds the volume unless `downloadFailure` is set, and answers a UPID whose task has already stopped;
 * - `GET /nodes/{node}/tasks/{upid}/status` and `/log` of those tasks.
 * The TLS certificate is self-signed (openssl), so clients must either skip verification or fail.
 *
 * What it does not prove: the rest of Proxmox (permissions, the archive files, clock skew between the node and here),
 * nor that a download fetches and verifies anything (the homelab twin, twin/, does that).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface FakeTask {
  node: string;
  vmid: number;
  type: string;
  /** `user@realm!tokenid` for a token, `user@realm` for a user. */
  authid: string;
  starttime: number;
  endtime?: number;
  /** "OK", an error text, or undefined while running. */
  status?: string;
}

export interface FakeProxmoxApi {
  endpoint: string;
  /** The token the server accepts. */
  token: string;
  tasks: FakeTask[];
  /** Storage content, as `<node>/<volid>` (`pve/local:vztmpl/nixos.tar.xz`). */
  volumes: Set<string>;
  /** The forms of the download-url calls, with their node and storage. */
  downloads: Array<{ node: string; storage: string; form: Record<string, string> }>;
  /** When set, a download's task ends with this exit status (and the volume is not added). */
  downloadFailure?: string;
  requests: { path: string; query: Record<string, string>; authorized: boolean }[];
  stop(): Promise<void>;
}

function selfSignedCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "nixmox-pve-tls-"));
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startFakeProxmoxApi(options: { tls?: boolean; token?: string } = {}): Promise<FakeProxmoxApi> {
  const token = options.token ?? "nixmox@pve!deploy=00000000-1111-4222-8333-444444444444";
  const api: FakeProxmoxApi = { endpoint: "", token, tasks: [], volumes: new Set(), downloads: [], requests: [], stop: async () => undefined };
  const stopped = new Map<string, { exitstatus: string; log: string[] }>();
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => respond(request, response, new URLSearchParams(Buffer.concat(chunks).toString("utf8"))));
  };
  const respond = (request: IncomingMessage, response: ServerResponse, form: URLSearchParams) => {
    const url = new URL(request.url ?? "/", "http://localhost");
    const query = Object.fromEntries(url.searchParams.entries());
    const authorized = request.headers.authorization === `PVEAPIToken=${token}`;
    api.requests.push({ path: url.pathname, query, authorized });
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { "Content-Type": "application/json" });
      response.end(JSON.stringify(body));
    };
    if (!authorized) return send(401, { data: null });
    const storage = /^\/api2\/json\/nodes\/([^/]+)\/storage\/([^/]+)\/(content|download-url)$/.exec(url.pathname);
    if (storage && storage[3] === "content" && request.method === "GET") {
      const [node, store] = [decodeURIComponent(storage[1]!), decodeURIComponent(storage[2]!)];
      const data = [...api.volumes].filter((entry) => entry.startsWith(`${node}/${store}:`)).map((entry) => ({ volid: entry.slice(node.length + 1), content: "vztmpl", format: "tzst" }));
      return send(200, { data });
    }
    if (storage && storage[3] === "download-url" && request.method === "POST") {
      const [node, store] = [decodeURIComponent(storage[1]!), decodeURIComponent(storage[2]!)];
      const fields = Object.fromEntries(form.entries());
      api.downloads.push({ node, storage: store, form: fields });
      const upid = `UPID:${node}:0000BEEF:00005678:${Math.floor(Date.now() / 1000).toString(16).toUpperCase()}:download:${fields.filename}:${token.split("=")[0]}:`;
      if (api.downloadFailure) stopped.set(upid, { exitstatus: api.downloadFailure, log: ["downloading …", api.downloadFailure, `TASK ERROR: ${api.downloadFailure}`] });
      else {
        api.volumes.add(`${node}/${store}:vztmpl/${fields.filename}`);
        stopped.set(upid, { exitstatus: "OK", log: ["downloading …", "download of '…' to '…' finished", "TASK OK"] });
      }
      return send(200, { data: upid });
    }
    const task = /^\/api2\/json\/nodes\/[^/]+\/tasks\/([^/]+)\/(status|log)$/.exec(url.pathname);
    if (task && request.method === "GET") {
      const known = stopped.get(decodeURIComponent(task[1]!));
      if (!known) return send(404, { data: null });
      if (task[2] === "status") return send(200, { data: { status: "stopped", exitstatus: known.exitstatus } });
      return send(200, { data: known.log.map((text, index) => ({ n: index + 1, t: text })) });
    }
    const match = /^\/api2\/json\/nodes\/([^/]+)\/tasks$/.exec(url.pathname);
    if (request.method !== "GET" || !match) return send(501, { data: null });
    const node = decodeURIComponent(match[1]!);
    const limit = Number(query.limit ?? 50);
    const data = api.tasks
      .filter((task) => task.node === node)
      .filter((task) => query.vmid === undefined || String(task.vmid) === query.vmid)
      .filter((task) => query.typefilter === undefined || task.type === query.typefilter)
      .sort((a, b) => b.starttime - a.starttime)
      .slice(0, limit)
      .map((task) => {
        const [user, tokenid] = task.authid.split("!");
        const upid = `UPID:${task.node}:0000ABCD:00001234:${task.starttime.toString(16).toUpperCase()}:${task.type}:${task.vmid}:${task.authid}:`;
        return { upid, node: task.node, pid: 43981, pstart: 4660, starttime: task.starttime, type: task.type, id: String(task.vmid), user, ...(tokenid ? { tokenid } : {}),
          ...(task.endtime === undefined ? {} : { endtime: task.endtime }), ...(task.status === undefined ? {} : { status: task.status }) };
      });
    send(200, { data });
  };
  const server: Server = options.tls === false ? createHttpServer(handler) : createHttpsServer(selfSignedCertificate(), handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  api.endpoint = `${options.tls === false ? "http" : "https"}://127.0.0.1:${port}/`;
  api.stop = () => new Promise((resolve) => server.close(() => resolve()));
  return api;
}

/** A finished `vzcreate` of `vmid` on `node` by `authid`, `ageSeconds` ago. */
export function creationTask(node: string, vmid: number, authid: string, ageSeconds: number, status = "OK"): FakeTask {
  const now = Math.floor(Date.now() / 1000);
  return { node, vmid, type: "vzcreate", authid, starttime: now - ageSeconds - 5, endtime: now - ageSeconds, status };
}
