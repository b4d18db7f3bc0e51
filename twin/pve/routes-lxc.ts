/**
 * The container endpoints bpg's `proxmox_virtual_environment_container` calls (bpg proxmox/nodes/containers),
 * following pve-container's API handlers: privileges first, then Proxmox's checks in Proxmox's order.
 */
import { createHash } from "node:crypto";
import { ContainerHost } from "../hosts/container-host";
import { permissionDenied, type AccessControl } from "./access";
import { flag, type ApiCall, type ParameterSpec, type Route } from "./api";
import { featuresOf, type Container, type PveNode } from "./cluster";
import { dieError, parameterError } from "./errors";
import { configFromParameters, configType, mountpointFormat, netFormat, normalizeConfig, rootfsFormat, type ContainerConfig } from "./lxc-config";
import { Mutex } from "./mutex";
import { parsePropertyString } from "./property-string";
import { parseVolumeId, volnameContent } from "./storage";

const vmid: ParameterSpec = { type: "integer", minimum: 100 };
/** Any key of a container's configuration (`PVE::LXC::Config->json_config_properties`). */
const configParameter = (name: string): ParameterSpec | undefined => {
  const type = configType(name);
  return type && !/^unused\d+$/.test(name) ? { type, optional: true } : undefined;
};

export function lxcRoutes(): Route[] {
  return [
    {
      method: "POST",
      path: "/nodes/{node}/lxc",
      source: "pve-container src/PVE/API2/LXC.pm create_vm",
      parameters: {
        vmid,
        ostemplate: { type: "string" },
        password: { type: "string", optional: true },
        storage: { type: "string", optional: true },
        force: { type: "boolean", optional: true },
        restore: { type: "boolean", optional: true },
        unique: { type: "boolean", optional: true },
        pool: { type: "string", optional: true },
        "ignore-unpack-errors": { type: "boolean", optional: true },
        "ssh-public-keys": { type: "string", optional: true },
        bwlimit: { type: "number", optional: true },
        start: { type: "boolean", optional: true },
        "ha-managed": { type: "boolean", optional: true },
      },
      extraParameter: configParameter,
      handle: createContainer,
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/config",
      source: "pve-container src/PVE/API2/LXC/Config.pm vm_config",
      parameters: { current: { type: "boolean", optional: true }, snapshot: { type: "string", optional: true } },
      check: vmPermission(["VM.Audit"]),
      handle: (call) => {
        const container = containerOf(call);
        if (call.params.snapshot) throw dieError(`snapshot '${call.params.snapshot}' does not exist`);
        const conf: ContainerConfig = { ...container.conf };
        if (!flag(call.params.current)) {
          Object.assign(conf, container.pending);
          for (const key of container.pendingDelete) delete conf[key];
        }
        return { ...conf, digest: digestOf(container) };
      },
    },
    {
      method: "PUT",
      path: "/nodes/{node}/lxc/{vmid}/config",
      source: "pve-container src/PVE/API2/LXC/Config.pm update_vm",
      parameters: { delete: { type: "string", optional: true }, revert: { type: "string", optional: true }, digest: { type: "string", optional: true } },
      extraParameter: configParameter,
      check: vmPermission(["VM.Config.Disk", "VM.Config.CPU", "VM.Config.Memory", "VM.Config.Network", "VM.Config.Options"], true),
      handle: updateConfig,
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/status/current",
      source: "pve-container src/PVE/API2/LXC/Status.pm vm_status (LXC.pm vmstatus)",
      parameters: {},
      check: vmPermission(["VM.Audit"]),
      handle: (call) => {
        const container = containerOf(call);
        const conf = container.conf;
        return {
          vmid: container.vmid,
          type: "lxc",
          status: container.host.running ? "running" : "stopped",
          name: String(conf.hostname ?? `CT${container.vmid}`).replace(/\s/g, ""),
          cpus: Number(conf.cores ?? conf.cpulimit ?? 1),
          maxmem: Number(conf.memory ?? 512) * 1024 * 1024,
          maxswap: Number(conf.swap ?? 0) * 1024 * 1024,
          maxdisk: 4 * 1024 ** 3,
          uptime: 0,
          ...(conf.tags === undefined ? {} : { tags: conf.tags }),
          ...(conf.lock === undefined ? {} : { lock: conf.lock }),
          ...(conf.template ? { template: 1 } : {}),
          ha: { managed: 0 },
        };
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/lxc/{vmid}/status/start",
      source: "pve-container src/PVE/API2/LXC/Status.pm vm_start",
      parameters: { skiplock: { type: "boolean", optional: true }, debug: { type: "boolean", optional: true } },
      check: vmPermission(["VM.PowerMgmt"]),
      handle: (call) => {
        const container = containerOf(call);
        if (call.params.skiplock && flag(call.params.skiplock) && call.authid !== "root@pam") throw parameterError({ skiplock: "Only root may use this option." });
        if (container.host.running) throw dieError(`CT ${container.vmid} already running`);
        return nodeOf(call).tasks.fork("vzstart", String(container.vmid), call.authid, (log) => container.mutex.run(() => nodeOf(call).start(container, log)));
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/lxc/{vmid}/status/shutdown",
      source: "pve-container src/PVE/API2/LXC/Status.pm vm_shutdown",
      parameters: { timeout: { type: "integer", optional: true, minimum: 0 }, forceStop: { type: "boolean", optional: true } },
      check: vmPermission(["VM.PowerMgmt"]),
      handle: (call) => {
        const container = containerOf(call);
        if (!container.host.running) throw dieError(`CT ${container.vmid} not running`);
        const timeout = Number(call.params.timeout ?? 60);
        return nodeOf(call).tasks.fork("vzshutdown", String(container.vmid), call.authid, (log) =>
          container.mutex.run(async () => {
            log.print(`shutting down CT ${container.vmid} (timeout ${timeout} s${flag(call.params.forceStop) ? ", then force stop" : ""})`);
            await nodeOf(call).stop(container, timeout);
          }));
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/lxc/{vmid}/status/stop",
      source: "pve-container src/PVE/API2/LXC/Status.pm vm_stop",
      parameters: { skiplock: { type: "boolean", optional: true }, "overrule-shutdown": { type: "boolean", optional: true } },
      check: vmPermission(["VM.PowerMgmt"]),
      handle: (call) => {
        const container = containerOf(call);
        if (!container.host.running) throw dieError(`CT ${container.vmid} not running`);
        return nodeOf(call).tasks.fork("vzstop", String(container.vmid), call.authid, (log) =>
          container.mutex.run(async () => {
            log.print(`stopping CT ${container.vmid}`);
            await nodeOf(call).stop(container, 0);
          }));
      },
    },
    {
      method: "POST",
      path: "/nodes/{node}/lxc/{vmid}/status/reboot",
      source: "pve-container src/PVE/API2/LXC/Status.pm vm_reboot (LXC.pm vm_reboot: stop, then start)",
      parameters: { timeout: { type: "integer", optional: true, minimum: 0 } },
      check: vmPermission(["VM.PowerMgmt"]),
      handle: (call) => {
        const container = containerOf(call);
        if (!container.host.running) throw dieError(`VM ${container.vmid} not running`);
        const timeout = Number(call.params.timeout ?? 60);
        return nodeOf(call).tasks.fork("vzreboot", String(container.vmid), call.authid, (log) =>
          container.mutex.run(async () => {
            if (!container.host.running) return;
            log.print(`rebooting CT ${container.vmid}`);
            await nodeOf(call).stop(container, timeout);
            await nodeOf(call).start(container, log);
          }));
      },
    },
    {
      method: "DELETE",
      path: "/nodes/{node}/lxc/{vmid}",
      source: "pve-container src/PVE/API2/LXC.pm destroy_vm",
      parameters: { force: { type: "boolean", optional: true }, purge: { type: "boolean", optional: true }, "destroy-unreferenced-disks": { type: "boolean", optional: true } },
      check: vmPermission(["VM.Allocate"]),
      handle: (call) => {
        const container = containerOf(call);
        if (container.conf.protection) throw dieError(`can't remove CT ${container.vmid} - protection mode enabled`);
        if (container.conf.lock) throw dieError(`CT is locked (${container.conf.lock})`);
        const force = flag(call.params.force);
        if (!force && container.host.running) throw dieError(`unable to destroy CT ${container.vmid} - container is running`);
        return nodeOf(call).tasks.fork("vzdestroy", String(container.vmid), call.authid, (log) =>
          container.mutex.run(async () => {
            if (container.host.running) {
              if (!force) throw new Error(`unable to destroy CT ${container.vmid} - container is running`);
              log.warn(`forced to stop CT ${container.vmid} before destroying!`);
              await nodeOf(call).stop(container, 0);
            }
            await nodeOf(call).destroy(container, log);
          }));
      },
    },
    {
      method: "GET",
      path: "/nodes/{node}/lxc/{vmid}/interfaces",
      source: "pve-container src/PVE/API2/LXC.pm ip (LXC.pm get_interfaces)",
      parameters: {},
      check: vmPermission(["VM.Audit"]),
      handle: async (call) => {
        const container = containerOf(call);
        if (!container.host.running) throw dieError(`CT ${container.vmid} is not running`);
        return container.host.interfaces();
      },
    },
    {
      method: "PUT",
      path: "/nodes/{node}/lxc/{vmid}/resize",
      source: "pve-container src/PVE/API2/LXC.pm resize_vm",
      parameters: { disk: { type: "string", enum: ["rootfs", ...Array.from({ length: 256 }, (_, index) => `mp${index}`)] }, size: { type: "string", pattern: /^\+?\d+(\.\d+)?[KMGT]?$/ }, digest: { type: "string", optional: true } },
      check: vmPermission(["VM.Config.Disk"], true),
      handle: (call) => {
        const container = containerOf(call);
        if (container.conf.lock) throw dieError(`CT is locked (${container.conf.lock})`);
        const disk = call.params.disk!;
        if (container.conf[disk] === undefined) throw dieError(`disk '${disk}' does not exist`);
        const volume = parsePropertyString(String(container.conf[disk]), mountpointFormat).volume ?? "";
        call.access.check(call.authid, `/storage/${parseVolumeId(volume)?.storage ?? ""}`, ["Datastore.AllocateSpace"]);
        return nodeOf(call).tasks.fork("resize", String(container.vmid), call.authid, (log) => container.mutex.run(() => nodeOf(call).resizeWorker(container, disk, call.params.size!)(log)));
      },
    },
  ];
}

function nodeOf(call: ApiCall): PveNode {
  return call.cluster.node(call.path.node!);
}

/** The route's `permissions => { check => ['perm', '/vms/{vmid}', […], any => 1?] }`. */
function vmPermission(privileges: string[], any = false): (call: ApiCall) => void {
  return (call) => {
    const path = `/vms/${call.path.vmid}`;
    if (any) call.access.checkAny(call.authid, path, privileges);
    else call.access.check(call.authid, path, privileges);
  };
}

/** AbstractConfig.pm `load_config` of the path's container. */
function containerOf(call: ApiCall): Container {
  return nodeOf(call).container(Number(call.path.vmid));
}

/** create_vm, up to the fork of its `vzcreate` worker. */
function createContainer(call: ApiCall): string {
  const { cluster, access, authid, params } = call;
  const node = nodeOf(call);
  const id = Number(params.vmid);
  const unprivileged = params.unprivileged === undefined ? true : flag(params.unprivileged);
  if (flag(params.restore)) throw dieError("the twin does not restore backups (restore=1)");
  if (!unprivileged) access.check(authid, "/", ["Sys.Modify"]);
  if (flag(params["ha-managed"])) access.check(authid, "/", ["Sys.Console"]);
  const owner = cluster.owner(id);
  if (owner) throw dieError(`CT ${id} already exists on node '${owner.name}'`);
  const sshKeys = params["ssh-public-keys"];
  if (sshKeys !== undefined) validateSshKeys(sshKeys);
  if (params.pool !== undefined) throw dieError(`pool '${params.pool}' does not exist`);
  if (!access.has(authid, `/vms/${id}`, ["VM.Allocate"])) throw permissionDenied();
  const config = configFromParameters(params, Object.keys(params).filter((key) => !createOnlyParameters.has(key)));
  checkModifyConfigPermissions(access, authid, id, undefined, config, [], unprivileged);
  const ostemplate = params.ostemplate!;
  checkVolumeAccess(access, authid, ostemplate, "vztmpl");
  // The root disk: `rootfs` (a bare number is GiB on the default storage), else 4 GiB on `storage`.
  const storageId = params.storage ?? "local";
  const rootfs = params.rootfs === undefined ? `${storageId}:4` : /^\d+(\.\d+)?$/.test(params.rootfs) ? `${storageId}:${params.rootfs}` : params.rootfs;
  const storage = node.storage(parseVolumeId(parsePropertyString(rootfs, rootfsFormat).volume ?? "")?.storage ?? storageId);
  if (!storage.supports("rootdir")) throw parameterError({ storage: `storage '${storage.id}' does not support container directories` });
  access.check(authid, `/storage/${storage.id}`, ["Datastore.AllocateSpace"]);
  delete config.rootfs;
  // update_pct_config on the new, stopped container applies every value at once (`vmconfig_apply_pending`):
  // a NIC gets its MAC address here.
  const errors = { ...bridgeProblems(node, config), ...normalizeConfig(config, () => cluster.newMac()) };
  if (Object.keys(errors).length) throw parameterError(errors);
  const container: Container = {
    vmid: id,
    node: node.name,
    conf: { ...config, ...(unprivileged ? { unprivileged: 1 } : {}), lock: "create" },
    pending: {},
    pendingDelete: new Set(),
    host: new ContainerHost(cluster.world, id, "", cluster.system),
    mutex: new Mutex(),
  };
  node.containers.set(id, container);
  return node.tasks.fork("vzcreate", String(id), authid, node.createWorker(container, ostemplate, rootfs, sshKeys, flag(params.start), authid));
}

/** create_vm's parameters that are not configuration keys (`extract_param`). */
const createOnlyParameters = new Set(["vmid", "ostemplate", "password", "storage", "force", "restore", "unique", "pool", "ignore-unpack-errors", "ssh-public-keys", "bwlimit", "start", "ha-managed", "unprivileged"]);

/** A NIC on a bridge the node does not have (Proxmox fails its start; the twin refuses it up front). */
function bridgeProblems(node: PveNode, config: ContainerConfig): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const key of Object.keys(config).filter((entry) => /^net\d+$/.test(entry))) {
    try {
      const nic = parsePropertyString(String(config[key]), netFormat);
      if (nic.bridge && !node.cluster.world.bridge(nic.bridge)) errors[key] = `bridge '${nic.bridge}' does not exist`;
    } catch (error) {
      errors[key] = (error as Error).message;
    }
  }
  return errors;
}

/** update_vm: privileges (`any` of the config privileges, then per option), Proxmox's checks, the update itself. */
async function updateConfig(call: ApiCall): Promise<null> {
  const { access, authid, params } = call;
  const container = containerOf(call);
  const keys = Object.keys(params).filter((key) => !["delete", "revert", "digest"].includes(key));
  if (!keys.length && params.delete === undefined && params.revert === undefined) throw dieError("no options specified");
  return container.mutex.run(async () => {
    if (container.conf.lock) throw dieError(`CT is locked (${container.conf.lock})`);
    if (params.digest !== undefined && params.digest !== digestOf(container)) throw dieError("detected modified configuration - file changed by other user? Try again.");
    const deletes = (params.delete ?? "").split(/[,;\s]+/).filter(Boolean);
    const reverts = (params.revert ?? "").split(/[,;\s]+/).filter(Boolean);
    const unprivileged = Boolean(container.conf.unprivileged);
    checkModifyConfigPermissions(access, authid, container.vmid, container.conf, {}, deletes, unprivileged);
    checkModifyConfigPermissions(access, authid, container.vmid, container.conf, {}, reverts, unprivileged);
    const errors: Record<string, string> = {};
    for (const key of reverts) {
      if (!configType(key)) errors.revert = `unknown option '${key}'`;
      delete container.pending[key];
      container.pendingDelete.delete(key);
    }
    for (const key of deletes) {
      if (!configType(key)) errors.delete = `unknown option '${key}'`;
      else if (params[key] !== undefined) errors.delete = `you can't use '-${key}' and -delete ${key}' at the same time`;
    }
    if (Object.keys(errors).length) throw parameterError(errors);
    const values = configFromParameters(params, keys);
    checkModifyConfigPermissions(access, authid, container.vmid, container.conf, values, [], unprivileged);
    const bridgeErrors = bridgeProblems(nodeOf(call), values);
    if (Object.keys(bridgeErrors).length) throw parameterError(bridgeErrors);
    await nodeOf(call).updateConfig(container, values, deletes);
    return null;
  });
}

/**
 * pve-container src/PVE/LXC.pm `check_ct_modify_config_perm`: the privilege each option needs on /vms/{vmid}
 * (VM.Config.CPU, .Disk, .Memory, .Network, .Options), `SDN.Use` on a NIC's bridge (pve-guest-common
 * GuestHelpers.pm `check_vnet_access`), `VM.Allocate` for a nesting change and root@pam for any other feature flag,
 * `VM.Config.Options` for tags (GuestHelpers.pm `assert_tag_permissions`), root@pam for devices and hook scripts.
 */
export function checkModifyConfigPermissions(access: AccessControl, authid: string, vmid: number, oldConf: ContainerConfig | undefined, newConf: ContainerConfig, deletes: string[], unprivileged: boolean): void {
  if (authid === "root@pam") return;
  const vm = `/vms/${vmid}`;
  const check = (key: string, deleting: boolean) => {
    if (key === "cores" || key === "cpuunits" || key === "cpulimit") access.check(authid, vm, ["VM.Config.CPU"]);
    else if (key === "rootfs" || /^mp\d+$/.test(key)) {
      access.check(authid, vm, ["VM.Config.Disk"]);
      if (deleting) return;
      const volume = parsePropertyString(String(newConf[key]), mountpointFormat).volume ?? "";
      const newDisk = /^([^:\s]+):(\d+(\.\d+)?)$/.exec(volume);
      if (newDisk) access.check(authid, `/storage/${newDisk[1]}`, ["Datastore.AllocateSpace"]);
      else checkVolumeAccess(access, authid, volume, "rootdir", vmid);
    } else if (key === "memory" || key === "swap") access.check(authid, vm, ["VM.Config.Memory"]);
    else if (/^net\d+$/.test(key)) {
      access.check(authid, vm, ["VM.Config.Network"]);
      for (const raw of [oldConf?.[key], deleting ? undefined : newConf[key]]) {
        if (raw === undefined) continue;
        const nic = parsePropertyString(String(raw), netFormat);
        if (!nic.bridge) continue;
        if (nic.tag) access.check(authid, `/sdn/zones/localnetwork/${nic.bridge}/${nic.tag}`, ["SDN.Use"]);
        else access.check(authid, `/sdn/zones/localnetwork/${nic.bridge}`, ["SDN.Use"]);
      }
    } else if (/^dev\d+$/.test(key)) throw permissionDenied("configuring device passthrough is only allowed for root@pam");
    else if (key === "nameserver" || key === "searchdomain" || key === "hostname") access.check(authid, vm, ["VM.Config.Network"]);
    else if (key === "features") {
      if (!unprivileged) throw permissionDenied("changing feature flags for privileged container is only allowed for root@pam");
      const before = featuresOf(oldConf?.features);
      const after = deleting ? {} : featuresOf(newConf.features);
      const changed = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter((feature) => (before[feature] ?? "") !== (after[feature] ?? ""));
      if (changed.some((feature) => feature !== "nesting")) throw permissionDenied("changing feature flags (except nesting) is only allowed for root@pam");
      if (changed.includes("nesting")) access.check(authid, vm, ["VM.Allocate"]);
    } else if (key === "hookscript") throw permissionDenied("changing the hookscript is only allowed for root@pam");
    else if (key === "tags") access.check(authid, vm, ["VM.Config.Options"]);
    else access.check(authid, vm, ["VM.Config.Options"]);
  };
  for (const key of Object.keys(newConf)) check(key, false);
  for (const key of deletes) check(key, true);
}

/**
 * pve-storage src/PVE/Storage.pm `check_volume_access`: the content type must match; `Datastore.Allocate` on the
 * storage is enough, a template needs `Datastore.AllocateSpace` or `Datastore.Audit`.
 */
export function checkVolumeAccess(access: AccessControl, authid: string, volid: string, type: string, ownerVmid?: number): void {
  const parsed = parseVolumeId(volid);
  if (!parsed) {
    if (authid !== "root@pam") throw dieError("Only root can pass arbitrary filesystem paths.");
    return;
  }
  const content = volnameContent(parsed.volname);
  if (content !== type && !(type === "rootdir" && content === "images")) throw dieError(`unable to use volume ${volid} - content type needs to be '${type}'`);
  if (access.has(authid, `/storage/${parsed.storage}`, ["Datastore.Allocate"])) return;
  if (content === "vztmpl" || content === "iso" || content === "import") access.checkAny(authid, `/storage/${parsed.storage}`, ["Datastore.AllocateSpace", "Datastore.Audit"]);
  else if (ownerVmid !== undefined && new RegExp(`^(vm|subvol)-${ownerVmid}-`).test(parsed.volname)) return;
  else throw dieError(`missing privileges to access ${volid}`);
}

/** pve-common src/PVE/Tools.pm `validate_ssh_public_keys`. */
function validateSshKeys(keys: string): void {
  for (const line of keys.split("\n")) {
    if (!line.trim() || line.startsWith("#")) continue;
    if (!/^(?:\S+\s+)?(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-\S+)\s+[A-Za-z0-9+/]+=*(\s.*)?$/.test(line.trim())) throw dieError("unable to parse ssh public key");
  }
}

/** The configuration's digest (Proxmox: SHA-1 of the config file; here of its sorted JSON). */
function digestOf(container: Container): string {
  const sorted = (config: ContainerConfig) => Object.fromEntries(Object.entries(config).sort(([a], [b]) => a.localeCompare(b)));
  return createHash("sha1").update(JSON.stringify([sorted(container.conf), sorted(container.pending), [...container.pendingDelete].sort()])).digest("hex");
}
