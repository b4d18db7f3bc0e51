/**
 * Worker tasks: UPIDs, logs, exit statuses and the node's task lists, as Proxmox VE keeps them.
 *
 * - `fork` is pve-common src/PVE/RESTEnvironment.pm `fork_worker`: the API call returns the UPID at once and the
 *   worker runs on; its log ends with `TASK OK`, `TASK WARNINGS: n` or `TASK ERROR: <message>`, and the exit status
 *   is read from that last line (src/PVE/UPID.pm `read_status`). A `warn` inside a worker is logged as `WARN: …`.
 * - The UPID is `UPID:node:PID:PSTART:STARTTIME:type:id:user:` with hex fields (src/PVE/UPID.pm `encode`); a token's
 *   tasks carry `user@realm!tokenid` as the user.
 * - Lists (pve-manager PVE/API2/Tasks.pm `node_tasks`): a finished task is archived as soon as its worker ends
 *   (RESTEnvironment.pm `$log_task_result` calls `active_workers`), so `source=archive` (the default) lists finished
 *   tasks, with a token's id split into `user` and `tokenid` (`$convert_token_task`), and `source=active` lists
 *   running ones with `status: "RUNNING"` and the raw `user@realm!tokenid` (active entries are not converted).
 */
import { parameterError } from "./errors";

export interface TaskRecord {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  /** `user@realm` or `user@realm!tokenid`, as in the UPID. */
  user: string;
  lines: string[];
  /** Set when the worker ended: `OK`, `WARNINGS: n` or the error message. */
  exitstatus?: string;
  endtime?: number;
  /** Position in the node's task archive (`/var/log/pve/tasks/index` is appended to as tasks end). */
  archived?: number;
}

export interface WorkerLog {
  print(line: string): void;
  warn(line: string): void;
}

export type Worker = (log: WorkerLog) => Promise<void>;

/** One node's tasks. */
export class TaskList {
  private readonly tasks: TaskRecord[] = [];
  private nextPid = 0x1a2b0;
  private archiveLength = 0;
  private readonly pstart = 0x00a1b2c3;
  /** Workers still running, for `idle()`. */
  private readonly running = new Map<string, Promise<void>>();

  constructor(readonly node: string) {}

  /**
   * Starts `worker` as task `type` on object `id`, returns its UPID. An API call's worker starts after the call has
   * answered; a worker forked by another worker (`nested`) starts at once, before its parent's end is visible.
   */
  fork(type: string, id: string, authid: string, worker: Worker, nested = false): string {
    const starttime = Math.floor(Date.now() / 1000);
    const pid = this.nextPid++;
    const upid = `UPID:${this.node}:${hex8(pid)}:${hex8(this.pstart)}:${hex8(starttime)}:${type}:${id}:${authid}:`;
    const task: TaskRecord = { upid, node: this.node, pid, pstart: this.pstart, starttime, type, id, user: authid, lines: [] };
    this.tasks.push(task);
    let warnings = 0;
    const log: WorkerLog = {
      print: (line) => task.lines.push(...line.replace(/\n$/, "").split("\n")),
      warn: (line) => {
        warnings++;
        task.lines.push(...line.replace(/\n$/, "").split("\n").map((text) => `WARN: ${text}`));
      },
    };
    const done = (async () => {
      if (!nested) await new Promise((resolve) => setImmediate(resolve));
      try {
        await worker(log);
        task.exitstatus = warnings ? `WARNINGS: ${warnings}` : "OK";
        task.lines.push(warnings ? `TASK WARNINGS: ${warnings}` : "TASK OK");
      } catch (error) {
        const message = (error instanceof Error ? error.message : String(error)).replace(/\n+$/, "").replace(/\n/g, " ");
        task.exitstatus = message || "unexpected status";
        task.lines.push(`TASK ERROR: ${message}`);
      }
      task.endtime = Math.floor(Date.now() / 1000);
      task.archived = this.archiveLength++;
    })();
    this.running.set(upid, done);
    void done.finally(() => this.running.delete(upid));
    return upid;
  }

  /** Resolves when no worker runs. */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()]);
  }

  find(upid: string): TaskRecord {
    const task = this.tasks.find((entry) => entry.upid === upid);
    if (!decodeUpid(upid)) throw parameterError({ upid: "unable to parse worker upid" });
    if (!task) throw parameterError({ upid: "no such task" });
    return task;
  }

  all(): readonly TaskRecord[] {
    return this.tasks;
  }
}

/** The UPID's fields (src/PVE/UPID.pm `decode`), or null. */
export function decodeUpid(upid: string): { node: string; type: string; id: string; user: string } | null {
  const match = /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/.exec(upid);
  return match ? { node: match[1]!, type: match[6]!, id: match[7]!, user: match[8]! } : null;
}

/** Tasks.pm `$convert_token_task`: `user@realm!tokenid` → user and tokenid. */
export function splitTaskUser(user: string): { user: string; tokenid?: string } {
  const bang = user.indexOf("!");
  return bang < 0 ? { user } : { user: user.slice(0, bang), tokenid: user.slice(bang + 1) };
}

/** Tasks.pm `$check_task_user`: a token sees its own tasks, a user its own and its tokens'. */
export function ownsTask(task: TaskRecord, authid: string): boolean {
  const { user } = splitTaskUser(task.user);
  return task.user === authid || user === authid;
}

/** src/PVE/UPID.pm `normalize_status_type`. */
export function normalizeStatusType(status: string | undefined): "ok" | "warning" | "error" | "unknown" {
  if (!status) return "unknown";
  if (status === "OK") return "ok";
  if (/^WARNINGS: \d+$/.test(status)) return "warning";
  if (status === "unexpected status") return "unknown";
  return "error";
}

function hex8(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, "0");
}
