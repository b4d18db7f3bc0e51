/**
 * The few Proxmox VE API calls NixMox makes itself (the containers are bpg's provider's): the task list for first
 * contact (components/ssh/first-contact.ts) and the template on each node (components/template.ts). API-token auth
 * (`Authorization: PVEAPIToken=user@realm!tokenid=<secret>`), JSON answers under `data`, form-encoded bodies, as
 * pve-manager's HTTP server takes them (PVE/APIServer/AnyEvent.pm, PVE/HTTPServer.pm).
 *
 * Node modules are required inside the functions, so the dynamic providers that import this stay small. A message
 * names the method and the endpoint, never the token.
 */

/** Where the API is and how to reach it: `https://<host>:8006/`, the token (secret), TLS verification off or on. */
export interface ProxmoxApiOptions {
  endpoint: string;
  /** `user@realm!tokenid=<uuid>` (secret: never in a message). */
  apiToken: string;
  insecure: boolean;
  /** @default 15000 */
  timeoutMs?: number;
}

/**
 * One API call: `GET` (query in `path`) or `POST`/`PUT`/`DELETE` with `form` as the body. Resolves with the answer's
 * `data`; rejects naming the method and endpoint, with Proxmox's own message (`errors` or the status line) when it
 * sent one.
 */
export async function proxmoxRequest(options: ProxmoxApiOptions, method: "GET" | "POST" | "PUT" | "DELETE", path: string, form?: Record<string, string>): Promise<unknown> {
  const url = new URL(`api2/json/${path}`, options.endpoint.endsWith("/") ? options.endpoint : `${options.endpoint}/`);
  const client = (url.protocol === "http:" ? require("node:http") : require("node:https")) as typeof import("node:https");
  const shown = `${method} ${url.origin}${url.pathname}`;
  const body = form === undefined ? undefined : new URLSearchParams(form).toString();
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const request = client.request(url, {
      method,
      headers: {
        Authorization: `PVEAPIToken=${options.apiToken}`,
        Accept: "application/json",
        ...(body === undefined ? {} : { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) }),
      },
      rejectUnauthorized: !options.insecure,
      timeout: timeoutMs,
    }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        type Answer = { data?: unknown; errors?: Record<string, string>; message?: string };
        const parse = (): Answer | null => {
          try {
            return JSON.parse(text) as Answer;
          } catch {
            return null;
          }
        };
        const parsed = parse();
        if (response.statusCode !== 200) {
          const detail = parsed?.errors ? Object.entries(parsed.errors).map(([field, why]) => `${field}: ${String(why).trim()}`).join("; ") : parsed?.message ?? "";
          reject(new Error(`the Proxmox API answered ${response.statusCode} ${response.statusMessage ?? ""} for ${shown}${detail === "" ? "" : ` (${detail})`}`.replace(/ +\(/, " (").trimEnd()));
          return;
        }
        if (parsed === null) {
          reject(new Error(`the Proxmox API sent no JSON for ${shown}`));
          return;
        }
        resolve(parsed.data);
      });
      response.on("error", (error: Error) => reject(new Error(`reading ${shown} failed: ${error.message}`)));
    });
    request.on("timeout", () => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    request.on("error", (error: NodeJS.ErrnoException) => reject(new Error(`cannot reach the Proxmox API for ${shown}: ${error.code ?? error.message}`)));
    request.end(body);
  });
}

/** `GET path`, the common case. */
export function proxmoxGet(options: ProxmoxApiOptions, path: string): Promise<unknown> {
  return proxmoxRequest(options, "GET", path);
}

/** The node a UPID belongs to (`UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`, PVE/Tools.pm). */
export function upidNode(upid: string): string {
  const node = /^UPID:([^:]+):/.exec(upid)?.[1];
  if (!node) throw new Error(`not a Proxmox task id: ${JSON.stringify(upid)}`);
  return node;
}

/**
 * Waits for a task to stop (`GET /nodes/{node}/tasks/{upid}/status`, PVE/API2/Tasks.pm `read_task_status`) and
 * resolves with its exit status ("OK", "WARNINGS: n" or the error) and the last lines of its log
 * (`GET …/log`, `read_task_log`).
 */
export async function waitForTask(options: ProxmoxApiOptions, upid: string, timeoutSeconds: number, pollMs = 1000): Promise<{ exitstatus: string; log: string[] }> {
  const base = `nodes/${encodeURIComponent(upidNode(upid))}/tasks/${encodeURIComponent(upid)}`;
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const status = (await proxmoxGet(options, `${base}/status`)) as { status?: string; exitstatus?: string };
    if (status.status === "stopped") {
      const lines = (await proxmoxGet(options, `${base}/log?start=0&limit=500`)) as Array<{ n: number; t: string }>;
      return { exitstatus: status.exitstatus ?? "unknown", log: (Array.isArray(lines) ? lines : []).map((line) => line.t).slice(-20) };
    }
    if (Date.now() >= deadline) throw new Error(`the Proxmox task ${upid} did not finish within ${timeoutSeconds} s`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** True when a task's exit status is a success (pve-common `upid_status_is_error`: only "OK" and "WARNINGS: n" are not errors). */
export function taskSucceeded(exitstatus: string): boolean {
  return exitstatus === "OK" || /^WARNINGS: \d+$/.test(exitstatus);
}

/**
 * Whether guest `vmid` exists anywhere on the cluster: `GET /cluster/nextid?vmid=N` (pve-manager PVE/API2/Cluster.pm
 * `nextid`) answers N when it is free and fails with "VM N already exists" otherwise; it needs no privilege.
 */
export async function vmidInUse(options: ProxmoxApiOptions, vmid: number): Promise<boolean> {
  try {
    await proxmoxGet(options, `cluster/nextid?vmid=${encodeURIComponent(String(vmid))}`);
    return false;
  } catch (error) {
    if (/already exists/.test((error as Error).message)) return true;
    throw error;
  }
}

/**
 * Stops container `vmid` on `node` when it runs and destroys it (pve-container PVE/API2/LXC/Status.pm `vm_stop`, then
 * PVE/API2/LXC.pm `destroy_vm`), waiting for both tasks; rejects with the failing task's status and log. Needs
 * `VM.PowerMgmt` and `VM.Allocate` on the guest.
 */
export async function destroyContainer(options: ProxmoxApiOptions, node: string, vmid: number): Promise<void> {
  const base = `nodes/${encodeURIComponent(node)}/lxc/${encodeURIComponent(String(vmid))}`;
  const finish = async (what: string, upid: unknown) => {
    const task = await waitForTask(options, String(upid), 300);
    if (!taskSucceeded(task.exitstatus)) throw new Error(`${what} of container ${vmid} on node ${node} ended with "${task.exitstatus}": ${task.log.slice(-5).join(" | ")}`);
  };
  const status = (await proxmoxGet(options, `${base}/status/current`)) as { status?: string };
  if (status.status === "running") await finish("the stop", await proxmoxRequest(options, "POST", `${base}/status/stop`, {}));
  await finish("the destruction", await proxmoxRequest(options, "DELETE", base));
}
