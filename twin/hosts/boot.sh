#!/bin/bash
# boot.sh ROOTFS HOSTNAME [NODE RUNDIR]: starts one twin container; the twin runs it as
#   ip netns exec <container netns> setpriv --pdeathsig SIGKILL \
#     unshare --mount --uts --ipc --pid --fork --kill-child=SIGTERM --propagation private bash boot.sh …
# so it is process 1 of a new PID namespace, in new mount, UTS and IPC namespaces, inside the container's network
# namespace. It assembles the container's root (its own filesystem, this machine's /usr read-only, fresh /proc,
# /sys, /dev, /run) and makes it the root of its mount namespace with pivot_root, as LXC does, then drops this
# machine's root: a process that re-enters its own mount namespace (setns, as Nix does before it runs ssh) lands in
# the container's root, not this machine's (a chroot would leave the namespace's root at this machine's /). Nothing
# outside ROOTFS is reachable from the container: /usr is a read-only bind, /proc/sys and /sys are read-only, /dev
# holds only the harmless devices.
# With the stand-in system (twin/system), NODE (this machine's node binary) is mounted read-only at /.twin/bin/node
# and RUNDIR (a directory of the twin's) at /.twin/run.
# The twin waits for the line "twin-init: up" on standard output.
set -euo pipefail
root=$1 hostname=$2 node=${3:-} rundir=${4:-}
[ -d "$root/etc" ] || { echo "twin-boot: $root has no etc: not a container root filesystem" >&2; exit 1; }
for dir in usr proc sys dev run tmp; do mkdir -p "$root/$dir"; done

# The root must be a mount point of its own for pivot_root.
mount --bind "$root" "$root"

mount --bind /usr "$root/usr"
mount -o remount,bind,ro,nosuid,nodev "$root/usr"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
if [ -e "$root/proc/sysrq-trigger" ]; then mount --bind /dev/null "$root/proc/sysrq-trigger"; fi
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount -t tmpfs -o mode=0755,nosuid,size=65536k tmpfs "$root/dev"
for device in null zero full random urandom tty; do
  : > "$root/dev/$device"
  mount --bind "/dev/$device" "$root/dev/$device"
done
mkdir -p "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
# /run is a fresh tmpfs at every start, as on a booted NixOS: /run/current-system is made again by the init.
mount -t tmpfs -o mode=0755,nosuid,nodev,size=262144k tmpfs "$root/run"

if [ -n "$node" ]; then
  mkdir -p "$root/.twin/bin"
  : > "$root/.twin/bin/node"
  mount --bind "$node" "$root/.twin/bin/node"
  mount -o remount,bind,ro "$root/.twin/bin/node"
fi
if [ -n "$rundir" ]; then
  mkdir -p "$root/.twin/run"
  mount --bind "$rundir" "$root/.twin/run"
fi

hostname "$hostname"
# This machine's root goes under /run (a tmpfs of the container's), is detached, and its mount point removed.
mkdir "$root/run/.twin-oldroot"
cd "$root"
pivot_root . run/.twin-oldroot
cd /
umount -l /run/.twin-oldroot
rmdir /run/.twin-oldroot
exec /bin/bash /.twin/init
