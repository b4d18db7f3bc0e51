/**
 * A deploy whose engine was killed (kill -9, a lost machine, a closed laptop) leaves two things behind, which the next
 * `nixmox up|refresh|destroy` repairs the way Pulumi documents it ("Recovering from an interrupted update",
 * https://www.pulumi.com/docs/iac/operations/troubleshooting/interrupted-updates/), before it runs:
 *
 * - the stack's lock. A lock held by a `pulumi` process of this machine that no longer runs is stale with certainty:
 *   it is removed (`pulumi cancel`), and said so. Any other lock (another machine, a live process, Pulumi Cloud's
 *   "update in progress") is left alone: the message says to wait, or to run `pulumi cancel` once no deploy runs.
 * - pending operations in the state: the resources whose operation had started. As the docs say, each is checked with
 *   its provider, then `pulumi refresh` repairs the state:
 *   - a container whose creation was pending is looked up in Proxmox (its vmid). Missing: the up creates it. There:
 *     nothing of NixMox ran in it yet (every later step waits for its creation), so it is destroyed and the up makes it
 *     again, but only when Proxmox's task list shows that this stack's API token created it within the first-contact
 *     window (components/ssh/first-contact.ts); any other guest with that vmid stops the repair with the reason.
 *     (Pulumi's own way, `refresh --import-pending-creates URN ID`, leaves no resource in the state in Pulumi 3.276:
 *     the refresh drops the pending import; and letting the up create it again would rely on bpg taking an existing
 *     vmid as created, the very adoption components/container-guard.ts refuses.);
 *   - every other pending create is dropped (`--clear-pending-creates`): NixMox's own resources are made to be created
 *     again safely (a push or an activation of the same configuration attaches to or repeats what ran, an Authentik
 *     object is found by name, a template is adopted);
 *   - pending updates and deletes are cleared by the refresh itself, and the up runs them again.
 * The activation on the hosts needs no repair: it ran in a transient unit that outlived the engine, and either
 * switched and was confirmed, or rolled back by itself (components/activation/nixmox-activate.sh).
 */
import { hostname } from "node:os";
import type { Stack } from "@pulumi/pulumi/automation";

const containerType = "proxmoxve:index/containerLegacy:ContainerLegacy";

interface PendingOperation {
  type: string;
  resource: { urn: string; type: string; inputs?: Record<string, unknown> };
}

/** The holder a lock error names (`created by USER@HOST (pid N)`, pulumi's diy backend lock.go), if any. */
export function lockHolder(message: string): { host: string; pid: number } | null {
  const match = /currently locked by .*?created by [^@\s]+@(\S+) \(pid (\d+)\)/s.exec(message);
  return match ? { host: match[1]!, pid: Number(match[2]) } : null;
}

/** True when the lock's process ran on this machine and runs no more (`kill -0` fails with ESRCH). */
export function lockIsStale(holder: { host: string; pid: number }): boolean {
  if (holder.host !== hostname()) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

export interface RecoveryIo {
  /** Runs the Pulumi CLI in the workspace (`pulumi ARGS`). */
  cli(args: string[]): Promise<{ stdout: string }>;
  /** Where NixMox says what it repairs (stderr). */
  say(text: string): void;
  /**
   * The container an interrupted deploy was creating: "absent" when Proxmox has no guest `vmid`; "removed" when it had
   * one that this stack's token created within the first-contact window, now destroyed; rejects for any other guest.
   */
  removeInterruptedContainer(service: string, node: string, vmid: number): Promise<"absent" | "removed">;
}

/** The state's pending operations (`pulumi stack export`). */
async function pendingOperations(io: RecoveryIo, stack: string): Promise<PendingOperation[]> {
  const exported = JSON.parse((await io.cli(["stack", "export", "--stack", stack])).stdout) as { deployment?: { pending_operations?: PendingOperation[] } };
  return exported.deployment?.pending_operations ?? [];
}

/**
 * Repairs the pending operations of an interrupted deploy (see the file comment); does nothing when there are none.
 * Returns what it did, one line per resource.
 */
export async function repairPendingOperations(io: RecoveryIo, stack: string): Promise<string[]> {
  const pending = await pendingOperations(io, stack);
  if (pending.length === 0) return [];
  const name = (urn: string) => urn.split("::").pop() ?? urn;
  io.say(`nixmox: the last deploy of stack "${stack}" was interrupted with ${pending.length} operation${pending.length === 1 ? "" : "s"} under way: ${pending.map((op) => `${op.type} ${name(op.resource.urn)}`).join(", ")}; repairing the state as Pulumi documents it (check with the provider, then refresh)\n`);
  // The refresh first (it takes the stack's lock, so a stale one is found before anything changes), then the checks.
  await io.cli(["refresh", "--yes", "--skip-preview", "--non-interactive", "--stack", stack, "--clear-pending-creates"]);
  const done: string[] = [];
  for (const op of pending) {
    const resource = name(op.resource.urn);
    if (op.type !== "creating") {
      done.push(`${resource}: the interrupted ${op.type.replace(/ing$/, "e")} is run again by this deploy`);
      continue;
    }
    const vmid = Number(op.resource.inputs?.vmId);
    const node = String(op.resource.inputs?.nodeName ?? "");
    if (op.resource.type === containerType && Number.isInteger(vmid) && node !== "") {
      const outcome = await io.removeInterruptedContainer(resource.replace(/-container$/, ""), node, vmid);
      done.push(outcome === "removed"
        ? `${resource}: Proxmox had container ${vmid}, half made by the interrupted deploy (this stack's token created it); it was destroyed and this deploy creates it again`
        : `${resource}: Proxmox has no container ${vmid}; this deploy creates it`);
    } else {
      done.push(`${resource}: its interrupted creation is dropped and done again by this deploy`);
    }
  }
  for (const line of done) io.say(`nixmox:   ${line}\n`);
  return done;
}

/**
 * Runs `operation` after repairing what an interrupted deploy left (pending operations), and once more after removing a
 * stale lock when the first attempt found the stack locked by a dead `pulumi` of this machine.
 */
export async function withInterruptionRecovery<T>(io: RecoveryIo, stack: string, stderrOf: (error: unknown) => string, operation: () => Promise<T>, cancel: () => Promise<void>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      await repairPendingOperations(io, stack);
      return await operation();
    } catch (error) {
      const holder = lockHolder(stderrOf(error));
      if (attempt > 0 || holder === null || !lockIsStale(holder)) throw error;
      io.say(`nixmox: stack "${stack}" is locked by pulumi (pid ${holder.pid}) on this machine, which no longer runs (it was killed during a deploy): removing its lock (pulumi cancel)\n`);
      await cancel();
    }
  }
}

/** The RecoveryIo of a stack: its CLI, and its Proxmox API (the stack's endpoint and token) for the container checks. */
export function stackRecoveryIo(stack: Stack, run: (args: string[]) => Promise<{ stdout: string }>, say: (text: string) => void): RecoveryIo {
  return {
    cli: run,
    say,
    removeInterruptedContainer: async (service, node, vmid) => {
      const api = require("../components/proxmox-api") as typeof import("../components/proxmox-api");
      const { checkFirstContact, defaultFirstContactWindowSeconds } = require("../components/ssh/first-contact") as typeof import("../components/ssh/first-contact");
      const value = async (key: string) => (await stack.getConfig(key).catch(() => ({ value: "" }))).value;
      const [endpoint, apiToken, insecure, window] = await Promise.all(["proxmoxEndpoint", "proxmoxApiToken", "proxmoxInsecure", "firstContactWindowSeconds"].map((key) => value(`nixmox:${key}`)));
      const proxmox = { endpoint: endpoint!, apiToken: apiToken!, insecure: insecure === "true" };
      if (!(await api.vmidInUse(proxmox, vmid))) return "absent";
      // Throws, naming the reason, unless this stack's token created the guest within the window.
      await checkFirstContact(service, { ...proxmox, node, vmid, windowSeconds: Number(window) || defaultFirstContactWindowSeconds });
      await api.destroyContainer(proxmox, node, vmid);
      return "removed";
    },
  };
}
