/**
 * First contact with a new container: may its SSH host key be trusted on first use? (security review M9)
 *
 * Trust on first use pins whatever key answers on the container's IP. NixMox narrows it to the moment right after
 * this stack created that container: Proxmox's task list must show a successful `vzcreate` of that vmid on that
 * node, run by this stack's API token, that ended at most `windowSeconds` ago. Otherwise (an adopted container, a
 * host-key record deleted from state, a retry long after the creation) the key must be pinned out of band, with
 * `nixmox:hostKeys.<service>` read on the node (`pct exec <vmid> -- cat /etc/ssh/ssh_host_ed25519_key.pub`).
 *
 * The task list is pve-manager's `GET /nodes/{node}/tasks` (PVE/API2/Tasks.pm, `node_tasks`): filters `vmid`,
 * `typefilter`, `source`, newest first; a task run by an API token reports `user` (user@realm) and `tokenid`
 * separately. Proxmox's API schema: `upid, node, pid, pstart, starttime, type, id, user, endtime?, status?`.
 *
 * What remains (README, "First contact"): a host on the LAN that answers on the container's IP within that window
 * (ARP or a rogue bridge peer) still gets its key pinned. The NixOS LXC template has no /etc/ssh, so Proxmox does
 * not generate the host keys (pve-container `rewrite_ssh_host_keys` returns early) and its creation log carries no
 * fingerprint to compare with.
 *
 * Node modules are required inside the functions, so the dynamic provider that imports this stays small.
 */

import { proxmoxGet, taskSucceeded } from "../proxmox-api";

export interface FirstContactProxmox {
  /** `https://<host>:8006/` (the stack's `nixmox:proxmoxEndpoint`). */
  endpoint: string;
  /** `user@realm!tokenid=<uuid>` (secret: never in a message). */
  apiToken: string;
  /** Skip TLS verification (`nixmox:proxmoxInsecure`). */
  insecure: boolean;
  node: string;
  vmid: number;
  /** How long after its creation task ended a container's key may still be trusted on first use. */
  windowSeconds: number;
}

/** Default for `windowSeconds`: SshHostKey waits up to 300 s for SSH, and a failed `up` may be retried soon after. */
export const defaultFirstContactWindowSeconds = 900;

/** The fields of one `GET /nodes/{node}/tasks` entry that the check reads. */
export interface ProxmoxTask {
  upid?: string;
  type?: string;
  id?: string;
  user?: string;
  tokenid?: string;
  starttime?: number;
  endtime?: number;
  status?: string;
}

/** `user@realm!tokenid=<secret>` → `{ user, tokenid }` (the secret half is dropped). */
export function tokenIdentity(apiToken: string): { user: string; tokenid: string } {
  const match = /^([^!=\s]+@[^!=\s]+)!([^=\s]+)=/.exec(apiToken);
  if (!match) throw new Error("the Proxmox API token is not of the form user@realm!tokenid=<uuid>");
  return { user: match[1]!, tokenid: match[2]! };
}

/**
 * Why the newest `vzcreate` task of the vmid does not allow trust on first use, or null when it does.
 * `tasks` is the API's list for that vmid and type, newest first; `nowSeconds` is the controller's clock.
 */
export function firstContactRefusal(tasks: ProxmoxTask[], identity: { user: string; tokenid: string }, nowSeconds: number, windowSeconds: number): string | null {
  const task = tasks.find((entry) => entry.type === undefined || entry.type === "vzcreate");
  if (task === undefined) return "Proxmox has no creation task (vzcreate) for it: it was not created by this stack, or its task log was rotated";
  // Archived tasks report a token's task as `user` + `tokenid`; the active list (a task not yet archived, e.g. when
  // the container was not started) keeps `user@realm!tokenid` in `user` (Tasks.pm `$convert_token_task`, review C1).
  const [user, tokenid] = task.tokenid ? [task.user, task.tokenid] : (task.user ?? "").includes("!") ? (task.user ?? "").split("!", 2) : [task.user, undefined];
  const by = tokenid ? `${user ?? "?"}!${tokenid}` : user ?? "?";
  if (user !== identity.user || tokenid !== identity.tokenid) return `it was created by ${by}, not by this stack's API token (${identity.user}!${identity.tokenid})`;
  // Tasks.pm reports a finished task's exit status; "WARNINGS: n" is a success with warnings (review C1).
  if (task.status === undefined || task.status === "RUNNING" || !taskSucceeded(task.status)) return `its creation task has not finished successfully (status ${task.status ?? "running"})`;
  const ended = task.endtime ?? task.starttime;
  if (typeof ended !== "number") return "its creation task has no time";
  const age = Math.round(nowSeconds - ended);
  if (age > windowSeconds) return `it was created ${age} s ago, more than the ${windowSeconds} s in which a new container's key is trusted on first use`;
  return null;
}

/** The error for a refused first contact: names the service and the container, and how to pin the key by hand. */
export function firstContactError(service: string, node: string, vmid: number, reason: string): Error {
  return new Error(
    `service "${service}": the SSH host key of container ${vmid} on node ${node} is not trusted on first use: ${reason}. ` +
      `Read its key on the node with \`pct exec ${vmid} -- cat /etc/ssh/ssh_host_ed25519_key.pub\` and pin it with ` +
      `\`pulumi config set --path 'nixmox:hostKeys.${service}' 'ssh-ed25519 AAAA…'\``,
  );
}

/** Resolves when the container may be trusted on first use; rejects with `firstContactError` otherwise. */
export async function checkFirstContact(service: string, proxmox: FirstContactProxmox): Promise<void> {
  const identity = tokenIdentity(proxmox.apiToken);
  const query = new URLSearchParams({ vmid: String(proxmox.vmid), typefilter: "vzcreate", source: "all", limit: "1" });
  let data: unknown;
  try {
    data = await proxmoxGet(proxmox, `nodes/${encodeURIComponent(proxmox.node)}/tasks?${query.toString()}`);
  } catch (error) {
    throw firstContactError(service, proxmox.node, proxmox.vmid, `its creation could not be checked (${(error as Error).message})`);
  }
  const tasks = Array.isArray(data) ? (data as ProxmoxTask[]) : [];
  const reason = firstContactRefusal(tasks, identity, Date.now() / 1000, proxmox.windowSeconds);
  if (reason !== null) throw firstContactError(service, proxmox.node, proxmox.vmid, reason);
}
