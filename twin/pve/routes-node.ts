/**
 * The node, cluster, task and storage endpoints bpg calls (bpg proxmox/version, proxmox/cluster `GetNextID`,
 * proxmox/nodes/tasks, proxmox/nodes `GetQueryURLMetadata`, proxmox/nodes/storage) and NixMox's first-contact check
 * reads (`GET /nodes/{node}/tasks`), following pve-manager and pve-storage.
 */
import { statSync } from "node:fs";
import { flag, type ApiCall, type Route } from "./api";
import { dieError, parameterError } from "./errors";
import { normalizeStatusType, ownsTask, splitTaskUser, type TaskRecord } from "./tasks";
import { parseVolumeId, volnameContent } from "./storage";

/** The Proxmox VE release the twin answers as (pve-manager's debian/changelog at the commit read: 9.2.11). */
export const twinPveVersion = { version: "9.2.11", release: "9.2", repoid: "14a22df3" };

export function nodeRoutes(): Route[] {
  return [
    {
      method: "GET",
      path: "/version",
      source: "pve-manager PVE/API2.pm version",
      parameters: {},
      handle: () => ({ ...twinPveVersion }),
    },
    {
      method: "GET",
      path: "/cluster/nextid",
      source: "pve-manager PVE/API2/Cluster.pm nextid",
      parameters: { vmid: { type: "integer", optional: true, minimum: 100 } },
      handle: ({ cluster, params }) => {
        if (params.vmid !== undefined) {
          if (!cluster.owner(Number(params.vmid))) return Number(params.vmid);
          throw parameterError({ vmid: `VM ${params.vmid} already exists` });
        }
        return cluster.nextFreeVmid();
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/tasks",
      source: "pve-manager PVE/API2/Tasks.pm node_tasks",
      parameters: {
        start: { type: "integer", optional: true, minimum: 0 },
        limit: { type: "integer", optional: true, minimum: 0 },
        userfilter: { type: "string", optional: true },
        typefilter: { type: "string", optional: true },
        vmid: { type: "integer", optional: true, minimum: 100 },
        errors: { type: "boolean", optional: true },
        source: { type: "string", optional: true, enum: ["archive", "active", "all"] },
        since: { type: "integer", optional: true },
        until: { type: "integer", optional: true },
        statusfilter: { type: "string", optional: true },
      },
      handle: listTasks,
    },
    {
      method: "GET",
      path: "/nodes/{node}/tasks/{upid}/status",
      source: "pve-manager PVE/API2/Tasks.pm read_task_status",
      parameters: {},
      handle: (call) => {
        const task = ownedTask(call, "Sys.Audit");
        const { user, tokenid } = splitTaskUser(task.user);
        return {
          upid: task.upid, node: task.node, pid: task.pid, pstart: task.pstart, starttime: task.starttime, type: task.type, id: task.id,
          user, ...(tokenid ? { tokenid } : {}),
          status: task.exitstatus === undefined ? "running" : "stopped",
          ...(task.exitstatus === undefined ? {} : { exitstatus: task.exitstatus }),
        };
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/tasks/{upid}/log",
      source: "pve-manager PVE/API2/Tasks.pm read_task_log",
      parameters: { start: { type: "integer", optional: true, minimum: 0 }, limit: { type: "integer", optional: true, minimum: 0 }, download: { type: "boolean", optional: true } },
      handle: (call) => {
        const task = ownedTask(call, "Sys.Audit");
        if (flag(call.params.download)) throw dieError("the twin does not offer task log downloads");
        const start = Number(call.params.start ?? 0);
        const limit = Number(call.params.limit ?? 50);
        return task.lines.slice(start, start + limit).map((t, index) => ({ n: start + index + 1, t }));
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/tasks/{upid}",
      source: "pve-manager PVE/API2/Tasks.pm stop_task",
      parameters: {},
      handle: (call) => {
        ownedTask(call, "Sys.Modify");
        // The twin's workers cannot be interrupted; a finished task is left as it is, as Proxmox does.
        return null;
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/query-url-metadata",
      source: "pve-manager PVE/API2/Nodes.pm query_url_metadata",
      parameters: { url: { type: "string", pattern: /^https?:\/\/.*/ }, "verify-certificates": { type: "boolean", optional: true } },
      check: checkNetworkAccess,
      handle: (call) => {
        call.cluster.node(call.path.node!);
        const url = call.params.url!;
        const file = call.cluster.internet[url];
        if (!file) throw dieError("invalid server response: '404 Not Found'");
        const filename = /^[^?]+\/([^?/]*)(?:\?.*)?$/.exec(url)?.[1];
        return { ...(filename ? { filename } : {}), size: statSync(file.path).size, mimetype: file.mimetype ?? "application/octet-stream" };
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/storage/{storage}/download-url",
      source: "pve-storage src/PVE/API2/Storage/Status.pm download_url",
      parameters: {
        url: { type: "string", pattern: /^https?:\/\/.*/ },
        content: { type: "string", enum: ["iso", "vztmpl", "import"] },
        filename: { type: "string" },
        checksum: { type: "string", optional: true },
        compression: { type: "string", optional: true },
        "checksum-algorithm": { type: "string", optional: true, enum: ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"] },
        "verify-certificates": { type: "boolean", optional: true },
      },
      check: (call) => {
        call.access.check(call.authid, `/storage/${call.path.storage}`, ["Datastore.AllocateTemplate"]);
        checkNetworkAccess(call);
      },
      handle: (call) => {
        const { params } = call;
        const node = call.cluster.node(call.path.node!);
        const storage = node.storage(call.path.storage!);
        if (storage.spec.type !== "dir") throw dieError(`can't upload to storage type '${storage.spec.type}', not a file based storage!`);
        const content = params.content as "iso" | "vztmpl" | "import";
        if (!storage.supports(content)) throw dieError(`storage '${storage.id}' is not configured for content-type '${content}'`);
        if ((params.checksum === undefined) !== (params["checksum-algorithm"] === undefined)) {
          throw parameterError(params.checksum === undefined ? { checksum: "property is missing and it is not optional" } : { "checksum-algorithm": "property is missing and it is not optional" });
        }
        // PVE::Storage `normalize_content_filename` and the extension each content type needs.
        const filename = params.filename!.replace(/[^a-zA-Z0-9_.-]/g, "_");
        if (content === "vztmpl" && !/[^/]+\.tar\.(gz|xz|zst|bz2)$/.test(filename)) throw parameterError({ filename: "wrong file extension" });
        if (content === "iso" && !/[^/]+\.(iso|img)$/i.test(filename)) throw parameterError({ filename: "wrong file extension" });
        if (params.compression !== undefined && content !== "iso") throw dieError(`decompression not supported for ${content}`);
        const checksum = params.checksum === undefined ? null : { algorithm: params["checksum-algorithm"]!, value: params.checksum };
        return node.tasks.fork("download", filename, call.authid, node.downloadWorker(storage, content, filename, params.url!, checksum));
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/storage/{storage}/content",
      source: "pve-storage src/PVE/API2/Storage/Content.pm index",
      parameters: { content: { type: "string", optional: true }, vmid: { type: "integer", optional: true, minimum: 100 } },
      check: (call) => call.access.checkAny(call.authid, `/storage/${call.path.storage}`, ["Datastore.Audit", "Datastore.AllocateSpace"]),
      handle: (call) => {
        const storage = call.cluster.node(call.path.node!).storage(call.path.storage!);
        const volumes = storage.list(call.params.content, call.params.vmid === undefined ? undefined : Number(call.params.vmid));
        return volumes.map((volume) => ({ volid: volume.volid, content: volume.content, format: volume.format, size: volume.size, ctime: volume.ctime, ...(volume.vmid === undefined ? {} : { vmid: volume.vmid }) }));
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/storage/{storage}/content/{volume}",
      source: "pve-storage src/PVE/API2/Storage/Content.pm info",
      parameters: {},
      handle: (call) => {
        const { volid, storage } = contentVolume(call);
        const volume = storage.list().find((entry) => entry.volid === volid);
        if (!volume) throw dieError(`volume_size_info on '${volid}' failed - no format`);
        return { path: volume.path, size: volume.size, used: volume.size, format: volume.format };
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/storage/{storage}/content/{volume}",
      source: "pve-storage src/PVE/API2/Storage/Content.pm delete",
      parameters: { delay: { type: "integer", optional: true, minimum: 1 } },
      handle: (call) => {
        const { volid, storage, node } = contentVolume(call);
        // Not a backup: Datastore.Allocate on the storage.
        call.access.check(call.authid, `/storage/${storage.id}`, ["Datastore.Allocate"]);
        return node.tasks.fork("imgdel", storage.id, call.authid, async (log) => {
          if (!storage.list().some((entry) => entry.volid === volid)) {
            // PVE::Storage::Plugin `free_image`: a missing file is a warning, not an error.
            log.warn(`disk image '${volid}' does not exist`);
            storage.volumes.delete(volid);
            return;
          }
          storage.free(volid);
          log.print(`Removed volume '${volid}'`);
        });
      },
    },
  ];
}

/**
 * Nodes.pm `query_url_metadata` and Status.pm `download_url`: `Sys.Audit` and `Sys.Modify` on `/`, or
 * `Sys.AccessNetwork` on the node ("or" of two checks: the 403 names the first).
 */
function checkNetworkAccess(call: ApiCall): void {
  if (call.access.has(call.authid, "/", ["Sys.Audit", "Sys.Modify"])) return;
  if (call.access.has(call.authid, `/nodes/${call.path.node}`, ["Sys.AccessNetwork"])) return;
  call.access.check(call.authid, "/", ["Sys.Audit", "Sys.Modify"]);
}

/** A task the caller owns, or one it may see with `privilege` on the node (Tasks.pm `$check_task_user`). */
function ownedTask(call: ApiCall, privilege: string): TaskRecord {
  const task = call.cluster.node(call.path.node!).tasks.find(call.path.upid!);
  if (!ownsTask(task, call.authid)) call.access.check(call.authid, `/nodes/${call.path.node}`, [privilege]);
  return task;
}

/** Content.pm `$real_volume_id`: `{volume}` is `STORAGE:VOLNAME` or a volume name of `{storage}`. */
function contentVolume(call: ApiCall) {
  const node = call.cluster.node(call.path.node!);
  const raw = call.path.volume!;
  const parsed = parseVolumeId(raw);
  if (parsed && parsed.storage !== call.path.storage) throw dieError(`storage ID mismatch (${parsed.storage} != ${call.path.storage})`);
  const volid = parsed ? raw : `${call.path.storage}:${raw}`;
  if (!volnameContent(parseVolumeId(volid)!.volname)) throw parameterError({ volume: `unable to parse volume name '${raw}'` });
  return { node, storage: node.storage(call.path.storage!), volid };
}

/** Tasks.pm `node_tasks`: archived (finished) tasks newest first, and with `source=active|all` the running ones. */
function listTasks(call: ApiCall): unknown[] {
  const { params } = call;
  const node = call.cluster.node(call.path.node!);
  const auditor = call.access.has(call.authid, `/nodes/${node.name}`, ["Sys.Audit"]);
  const source = params.source ?? "archive";
  let start = Number(params.start ?? 0);
  let limit = Number(params.limit ?? 50);
  const statuses = params.statusfilter !== undefined && !flag(params.errors)
    ? new Set(params.statusfilter.split(/[,;\s]+/).map((status) => status.toLowerCase()))
    : new Set(flag(params.errors) ? ["warning", "error", "unknown"] : ["ok", "warning", "error", "unknown"]);
  const visible = (task: TaskRecord, status: string | undefined): boolean => {
    if (params.userfilter && !task.user.toLowerCase().includes(params.userfilter.toLowerCase())) return false;
    if (!auditor && !ownsTask(task, call.authid)) return false;
    if (params.typefilter && task.type !== params.typefilter) return false;
    if (params.vmid && task.id !== params.vmid) return false;
    if (params.since !== undefined && task.starttime < Number(params.since)) return false;
    if (params.until !== undefined && task.starttime > Number(params.until)) return false;
    if (!statuses.has(normalizeStatusType(status))) return false;
    if (start > 0) {
      start--;
      return false;
    }
    return limit-- > 0;
  };
  const result: unknown[] = [];
  const tasks = [...node.tasks.all()];
  if (source === "active" || source === "all") {
    for (const task of tasks.filter((entry) => entry.exitstatus === undefined)) {
      // Active entries keep the raw user (no `$convert_token_task`) and read RUNNING.
      if (visible(task, undefined)) result.push({ upid: task.upid, node: task.node, pid: task.pid, pstart: task.pstart, starttime: task.starttime, type: task.type, id: task.id, user: task.user, status: "RUNNING" });
    }
  }
  if (source !== "active") {
    // The archive is read backwards: the task that ended last comes first.
    const archived = tasks.filter((entry) => entry.archived !== undefined).sort((a, b) => b.archived! - a.archived!);
    for (const task of archived) {
      if (!visible(task, task.exitstatus)) continue;
      const { user, tokenid } = splitTaskUser(task.user);
      result.push({ upid: task.upid, node: task.node, pid: task.pid, pstart: task.pstart, starttime: task.starttime, type: task.type, id: task.id, user, ...(tokenid ? { tokenid } : {}), endtime: task.endtime, status: task.exitstatus });
    }
  }
  return result;
}
