/**
 * The twin's container template: the stand-in for the NixOS Proxmox LXC image (Hydra job `nixos.proxmoxLXC`).
 *
 * A container's root filesystem is this archive, extracted at creation as Proxmox extracts `ostemplate`
 * (pve-container src/PVE/LXC/Create.pm `restore_archive`). It holds only the writable part of a system (`/etc`,
 * `/var`, `/root`, `/home`, `/srv`, `/nix`, `/tmp`) and the mount points; programs come from this machine's `/usr`,
 * which every container mounts read-only. So a twin host runs Debian's sshd, bash, caddy, unbound and postgresql,
 * not NixOS: what a twin run proves about the hosts is the protocol (SSH, files, activation), not the NixOS build.
 *
 * Like the NixOS template it has no SSH host keys (`/etc/ssh` holds only sshd_config): the container's init makes
 * them at its first start. Its `/etc` gets this machine's user and group databases (the daemons' system users),
 * the dynamic linker's cache and Debian's alternatives links, never a password hash (every account is `*` in
 * shadow, which allows public-key logins only) nor a key of this machine.
 */
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "./run";

/** The sshd_config every twin host starts with (the NixOS template's sshd: keys only, root by key). */
export const templateSshdConfig = [
  "Port 22",
  "HostKey /etc/ssh/ssh_host_ed25519_key",
  "PermitRootLogin prohibit-password",
  "PasswordAuthentication no",
  "KbdInteractiveAuthentication no",
  "UsePAM no",
  // NixOS reads the keys Proxmox wrote (~/.ssh/authorized_keys) and the ones its configuration manages.
  "AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys.d/%u",
  "PidFile /run/sshd.pid",
  "Subsystem sftp /usr/lib/openssh/sftp-server",
  // A NixOS system's commands are on /run/current-system/sw/bin; the twin's stand-ins live there too.
  "SetEnv PATH=/run/wrappers/bin:/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  "MaxSessions 64",
  "MaxStartups 64:30:128",
  "LogLevel INFO",
];

/** Writes the template archive (`.tar.xz`, a name Proxmox accepts for `vztmpl` content) to `file`. */
export async function buildTemplate(file: string): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "nixmox-twin-template-"));
  try {
    for (const dir of ["etc/ssh", "etc/ssh/authorized_keys.d", "var/log", "var/lib", "var/empty", "root", "home", "srv", "tmp", "nix/var/nix/profiles", "usr", "proc", "sys", "dev", "run", "mnt", "opt"]) {
      mkdirSync(join(root, dir), { recursive: true });
    }
    // The root directory itself as a system's is (mkdtemp made it 0700, which no daemon user could enter once it is the root).
    chmodSync(root, 0o755);
    chmodSync(join(root, "root"), 0o700);
    chmodSync(join(root, "tmp"), 0o1777);
    // Debian's merged /usr: the top-level program directories are links into /usr.
    for (const [link, target] of [["bin", "usr/bin"], ["sbin", "usr/sbin"], ["lib", "usr/lib"], ["lib64", "usr/lib64"]] as const) {
      symlinkSync(target, join(root, link));
    }
    for (const name of ["passwd", "group", "nsswitch.conf", "services", "protocols", "shells", "ld.so.cache", "ld.so.conf", "localtime", "profile", "bash.bashrc", "mime.types"]) {
      const source = join("/etc", name);
      if (existsSync(source) && statSync(source).isFile()) copyFileSync(source, join(root, "etc", name));
    }
    for (const dir of ["ld.so.conf.d", "alternatives", "ssl"]) {
      if (existsSync(join("/etc", dir))) cpSync(join("/etc", dir), join(root, "etc", dir), { recursive: true, verbatimSymlinks: true });
    }
    const users = readFileSync("/etc/passwd", "utf8").split("\n").filter(Boolean).map((line) => line.split(":")[0]!);
    writeFileSync(join(root, "etc/shadow"), users.map((user) => `${user}:*:19000:0:99999:7:::\n`).join(""), { mode: 0o640 });
    writeFileSync(join(root, "etc/hosts"), "127.0.0.1 localhost\n::1 localhost\n");
    writeFileSync(join(root, "etc/hostname"), "nixos\n");
    writeFileSync(join(root, "etc/resolv.conf"), "");
    writeFileSync(join(root, "etc/ssh/sshd_config"), `${templateSshdConfig.join("\n")}\n`);
    writeFileSync(join(root, "etc/os-release"), 'NAME="NixMox twin"\nID=nixmox-twin\nPRETTY_NAME="NixMox homelab twin host (Debian userland)"\n');
    await run("tar", ["--numeric-owner", "--sort=name", "-C", root, "-cJf", file, "."]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
