#!/bin/bash
# /.twin/init: process 1 of a twin container (boot.sh starts it after pivot_root into the container's root).
# - Makes the SSH host key at the first start, as the NixOS template does (it ships without host keys, so Proxmox
#   generates none: pve-container's `rewrite_ssh_host_keys` skips it).
# - Runs /.twin/boot.d/* (the stand-in system's boot activation, if any), then sshd.
# - On SIGTERM (the twin's shutdown, or the runtime's parent dying) stops every process of the container and exits;
#   the kernel ends whatever is left when process 1 of the PID namespace exits.
set -uo pipefail
mkdir -p /var/log
echo "twin-init: up"
exec >>/var/log/twin-init.log 2>&1 </dev/null
log() { printf '%s twin-init: %s\n' "$(date -u +%FT%TZ)" "$*"; }

shutdown() {
  trap '' TERM INT
  log "shutting down"
  # What `systemctl is-system-running` says while a host shuts down (the activation wrapper asks).
  echo stopping > /run/twin-system-state 2>/dev/null
  kill -TERM -1 2>/dev/null
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    # Only this shell left? (The glob is expanded by bash itself: no process of its own is counted.)
    set -- /proc/[0-9]*
    [ $# -le 1 ] && break
    sleep 0.2
  done
  kill -KILL -1 2>/dev/null
  log "stopped"
  exit 0
}
trap shutdown TERM INT

log "starting ($(hostname))"
mkdir -p /run/sshd && chmod 0755 /run/sshd
if [ ! -s /etc/ssh/ssh_host_ed25519_key ]; then
  ssh-keygen -q -t ed25519 -N '' -C "root@$(hostname)" -f /etc/ssh/ssh_host_ed25519_key
  log "generated the SSH host key $(ssh-keygen -l -f /etc/ssh/ssh_host_ed25519_key.pub)"
fi
if [ -d /.twin/boot.d ]; then
  for step in /.twin/boot.d/*; do
    [ -x "$step" ] || continue
    log "boot step $step"
    "$step" || log "boot step $step failed with exit code $?"
  done
fi
/usr/sbin/sshd -D -e -f /etc/ssh/sshd_config &
log "sshd started (pid $!)"
while :; do
  sleep 3600 &
  wait $! 2>/dev/null
done
