/**
 * API tokens and privileges, as pve-access-control defines them.
 *
 * - Authentication: the header `Authorization: PVEAPIToken=USER@REALM!TOKENID=SECRET`
 *   (pve-manager PVE/HTTPServer.pm `auth_handler`; pve-access-control src/PVE/AccessControl.pm `verify_token`).
 *   Any failure is `401 Authentication failed!`, whatever the cause, as auth_handler reports it.
 * - Authorization: `check(authid, path, privs)` needs every privilege, `checkAny` one of them
 *   (src/PVE/RPCEnvironment.pm `check`, `check_any`); a failure is `403 Permission check failed (PATH, PRIV)`
 *   (pve-common src/PVE/Exception.pm `raise_perm_exc`).
 * - An ACL entry holds on its path and, when it propagates (pveum's default), below it; the deepest entry that
 *   applies wins (AccessControl.pm `roles`: a deeper ACL replaces the inherited roles of the same user).
 *   A token without privilege separation (`--privsep 0`, as the README creates it) has its user's ACLs.
 *   `root@pam` has every privilege.
 */
import { PveError } from "./errors";

/** Every privilege name of Proxmox VE 9 (pve-access-control src/PVE/AccessControl.pm `$privgroups` and friends). */
export const knownPrivileges = [
  "Datastore.Allocate", "Datastore.AllocateSpace", "Datastore.AllocateTemplate", "Datastore.Audit",
  "Group.Allocate", "Mapping.Audit", "Mapping.Modify", "Mapping.Use", "Permissions.Modify", "Pool.Allocate", "Pool.Audit",
  "Realm.Allocate", "Realm.AllocateUser", "SDN.Allocate", "SDN.Audit", "SDN.Use",
  "Sys.AccessNetwork", "Sys.Audit", "Sys.Console", "Sys.Incoming", "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog",
  "User.Modify", "VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM", "VM.Config.CPU",
  "VM.Config.Cloudinit", "VM.Config.Disk", "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
  "VM.Config.Options", "VM.Console", "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileSystemMgmt",
  "VM.GuestAgent.FileWrite", "VM.GuestAgent.Unrestricted", "VM.Migrate", "VM.PowerMgmt", "VM.Replicate",
  "VM.Snapshot", "VM.Snapshot.Rollback",
] as const;

export interface AclEntry {
  /** `/`, `/vms`, `/storage/local`, `/sdn/zones/localnetwork/vmbr0`, … */
  path: string;
  privileges: string[];
  /** @default true (pveum acl modify propagates unless `--propagate 0`) */
  propagate?: boolean;
}

export interface ApiToken {
  /** `user@realm!tokenid` */
  authid: string;
  secret: string;
  /** The user's ACL (the token has no privilege separation). */
  acl: AclEntry[];
}

/** The tokens the twin accepts. */
export class AccessControl {
  private readonly tokens = new Map<string, ApiToken>();

  constructor(tokens: ApiToken[]) {
    for (const token of tokens) {
      if (!/^[^!=\s@]+@[^!=\s@]+![A-Za-z][A-Za-z0-9._-]*$/.test(token.authid)) throw new Error(`twin: the token id ${token.authid} is not user@realm!tokenid`);
      for (const entry of token.acl) {
        const unknown = entry.privileges.filter((privilege) => !(knownPrivileges as readonly string[]).includes(privilege));
        if (unknown.length) throw new Error(`twin: unknown Proxmox privilege(s) ${unknown.join(", ")} for ${token.authid} on ${entry.path}`);
      }
      this.tokens.set(token.authid, { ...token, acl: token.acl.map((entry) => ({ ...entry, privileges: [...entry.privileges] })) });
    }
  }

  /** The authid of the request's token, or a 401. */
  authenticate(header: string | undefined): string {
    const match = /^PVEAPIToken=([^=\s]+)=(\S+)$/.exec(header ?? "");
    const token = match ? this.tokens.get(match[1]!) : undefined;
    if (!match || !token || token.secret !== match[2]) throw new PveError(401, header?.startsWith("PVEAPIToken=") ? "Authentication failed!" : "No ticket");
    return token.authid;
  }

  /** The privileges `authid` holds on `path`. */
  privileges(authid: string, path: string): Set<string> {
    if (authid === "root@pam") return new Set(knownPrivileges);
    const token = this.tokens.get(authid);
    if (!token) return new Set();
    const components = path.split("/").filter(Boolean);
    let held = new Set<string>();
    for (let depth = 0; depth <= components.length; depth++) {
      const prefix = `/${components.slice(0, depth).join("/")}`;
      const exact = depth === components.length;
      for (const entry of token.acl) {
        if (normalize(entry.path) !== prefix) continue;
        if (!exact && entry.propagate === false) continue;
        held = new Set(entry.privileges);
      }
    }
    return held;
  }

  has(authid: string, path: string, privileges: string[]): boolean {
    const held = this.privileges(authid, path);
    return privileges.every((privilege) => held.has(privilege));
  }

  /** RPCEnvironment::check: every privilege, or 403 naming the first one missing. */
  check(authid: string, path: string, privileges: string[]): void {
    const held = this.privileges(authid, path);
    for (const privilege of privileges) {
      if (!held.has(privilege)) throw permissionDenied(`${path}, ${privilege}`);
    }
  }

  /** RPCEnvironment::check_any: one of the privileges, or 403 naming them all. */
  checkAny(authid: string, path: string, privileges: string[]): void {
    const held = this.privileges(authid, path);
    if (!privileges.some((privilege) => held.has(privilege))) throw permissionDenied(`${path}, ${privileges.join("|")}`);
  }
}

/** pve-common PVE/Exception.pm `raise_perm_exc`. */
export function permissionDenied(what?: string): PveError {
  return new PveError(403, `Permission check failed${what ? ` (${what})` : ""}`);
}

function normalize(path: string): string {
  const trimmed = `/${path.split("/").filter(Boolean).join("/")}`;
  return trimmed;
}
