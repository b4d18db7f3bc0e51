#!/usr/bin/env bash
# NixMox secret delivery: runs on a host as root, sent inline by `deliveryCommand` (components/secrets/delivery.ts).
#
#   deliver ROOT [PATH OWNER GROUP MODE UNITS REQUIRED]...   values arrive on stdin (see below)
#   apply-pending ROOT                                         after activation: chown files whose owner was missing
#
# The command line carries only non-secret metadata. Values come on stdin, framed so that a truncated stream is
# detected before anything is written:
#   nixmox-secrets-payload v1
#   <service>/<name> <base64 of the value>      (one line per file; base64 keeps newlines and quotes byte-exact)
#   end
# Per file: an empty temp file is created in the target directory under umask 077, its owner/group/mode are set
# BEFORE the content is written (colmena's keys do the same), then it is renamed over the target (rename(2) is
# atomic, so a concurrent reader sees the old or the new file, never a partial one). Units listed for a file are
# restarted only when its content changed (sha256 of old and new). All files are staged before the first rename,
# and the units to restart are journaled in ROOT/.nixmox-pending-restarts (unit names only) until they were
# restarted: a delivery cut short after a rename is completed by the next one, which restarts the journaled units
# even though their files now compare equal (security review M3). SIGPIPE/SIGHUP are ignored, so a dropped
# connection does not stop a delivery halfway. Files under ROOT that the declaration list does not name are removed. Values never reach an argument, the environment, stdout or stderr: base64 text goes
# from a shell variable through the `printf` builtin into `base64 -d`, whose output is the temp file.
#
# An owner or group that does not exist yet (its NixOS module creates the user during the first activation,
# colmena#23, nixops#445) leaves the file root-owned with its final mode and is recorded in
# ROOT/.nixmox-pending-ownership ("<service>/<name> <owner> <group> <units>", no values); `apply-pending`, run
# by the activation wrapper right after the switch, chowns those files, restarts their units, and fails if an
# owner is still missing (which rolls the activation back).
set -euo pipefail
umask 077
export LC_ALL=C

die() {
  printf 'nixmox-secrets: %s\n' "$*" >&2
  exit 1
}
# A dropped connection must not stop a delivery halfway: ignore SIGPIPE/SIGHUP and let output fail quietly.
trap '' PIPE HUP
say() { printf 'nixmox-secrets: %s\n' "$*" 2>/dev/null || true; }

verb=${1:-}
root=${2:-}
[ $# -ge 2 ] || die "usage: deliver|apply-pending ROOT [PATH OWNER GROUP MODE UNITS REQUIRED]..."
shift 2
[[ "$root" =~ ^/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$ ]] || die "secrets root must be an absolute path without '..' or '//': $root"
[[ "/$root/" != */../* && "/$root/" != */./* ]] || die "secrets root must not contain '.' or '..' components: $root"
pending="$root/.nixmox-pending-ownership"
journal="$root/.nixmox-pending-restarts"
name_re='^[a-z0-9][a-z0-9_.-]*/[a-z0-9][a-z0-9_.-]*$'
account_re='^[a-z_][a-z0-9_-]*$'
units_re='^(-|[A-Za-z0-9@:._-]+(,[A-Za-z0-9@:._-]+)*)$'

user_exists() { getent passwd "$1" >/dev/null 2>&1; }
group_exists() { getent group "$1" >/dev/null 2>&1; }

declare -A restart_units=()
queue_restart() {
  local list=$1 unit
  [ "$list" = - ] && return 0
  IFS=, read -r -a parts <<<"$list"
  for unit in "${parts[@]}"; do restart_units[$unit]=1; done
}

# try-restart leaves stopped units stopped (a unit that is not installed yet starts with the rebuild);
# `restart` is for apply-pending, where a consumer may have failed because it could not read its file.
restart_queued() {
  local how=$1
  [ "${#restart_units[@]}" -gt 0 ] || return 0
  local units
  mapfile -t units < <(printf '%s\n' "${!restart_units[@]}" | sort)
  if systemctl "$how" -- "${units[@]}"; then
    say "restarted ${units[*]}"
  else
    printf 'nixmox-secrets: warning: systemctl %s failed for %s; the health checks will tell whether they run\n' "$how" "${units[*]}" >&2
  fi
}

# The restart journal: one unit name a line, written before the first rename and removed after the restarts.
read_journal() {
  local unit
  [ -f "$journal" ] || return 0
  while IFS= read -r unit; do
    [[ "$unit" =~ ^[A-Za-z0-9@:._-]+$ ]] && restart_units[$unit]=1
  done <"$journal"
  return 0
}
write_journal() {
  [ "${#restart_units[@]}" -gt 0 ] || return 0
  printf '%s\n' "${!restart_units[@]}" | sort >"$journal.tmp"
  sync -- "$journal.tmp" 2>/dev/null || true
  mv -f -T -- "$journal.tmp" "$journal"
}

# Directories that hold a file owned by someone other than root need the execute bit for others (never read):
# 0711 lets that owner open its own file by path while nobody can list the tree.
declare -A traversable=()
fix_directory_modes() {
  local dir
  chmod 0700 "$root"
  while IFS= read -r -d '' dir; do
    if [ -n "${traversable[$dir]+x}" ]; then chmod 0711 "$dir"; chmod 0711 "$root"; else chmod 0700 "$dir"; fi
  done < <(find "$root" -mindepth 1 -maxdepth 1 -type d -print0)
}

write_pending() {
  local tmp="$pending.nixmox-new"
  if [ "$#" -eq 0 ]; then
    rm -f -- "$pending" "$tmp"
    return 0
  fi
  printf '%s\n' "$@" >"$tmp"
  mv -f -T -- "$tmp" "$pending"
}

deliver() {
  local header line key b64 ended=0
  declare -A value_b64=()
  IFS= read -r header || die "no payload on stdin; nothing was written"
  [ "$header" = "nixmox-secrets-payload v1" ] || die "stdin is not a NixMox secrets payload (v1); nothing was written"
  while IFS= read -r line; do
    if [ "$line" = end ]; then
      ended=1
      break
    fi
    key=${line%% *}
    b64=${line#* }
    [[ "$key" =~ $name_re && "$line" == *" "* ]] || die "malformed payload line for '${key:0:80}'; nothing was written"
    [[ "$b64" =~ ^[A-Za-z0-9+/]*=?=?$ ]] || die "payload value of $key is not base64; nothing was written"
    value_b64[$key]=$b64
  done
  [ "$ended" = 1 ] || die "payload truncated (no end line); nothing was written"

  declare -A declared=()
  local -a order=() pending_lines=()
  local path owner group mode units required rel
  # Validate the whole declaration list before touching a file.
  local -a args=("$@")
  [ $(( ${#args[@]} % 6 )) -eq 0 ] || die "declarations come in groups of 6 (PATH OWNER GROUP MODE UNITS REQUIRED)"
  local i
  for ((i = 0; i < ${#args[@]}; i += 6)); do
    path=${args[i]} owner=${args[i+1]} group=${args[i+2]} mode=${args[i+3]} units=${args[i+4]} required=${args[i+5]}
    rel=${path#"$root/"}
    [[ "$path" == "$root/"* && "$rel" =~ $name_re ]] || die "secret path must be $root/<service>/<name>: $path"
    [[ "$owner" =~ $account_re ]] || die "$rel: owner must be a user name: $owner"
    [[ "$group" =~ $account_re ]] || die "$rel: group must be a group name: $group"
    [[ "$mode" =~ ^0[0-7]{3}$ ]] || die "$rel: mode must be octal like 0400: $mode"
    [[ "$units" =~ $units_re ]] || die "$rel: units must be '-' or comma-separated unit names: $units"
    [[ "$required" =~ ^[01]$ ]] || die "$rel: required must be 0 or 1: $required"
    [ -z "${declared[$rel]+x}" ] || die "$rel is declared twice"
    if [ -z "${value_b64[$rel]+x}" ]; then
      [ "$required" = 0 ] || die "$rel is required but the payload has no value for it; nothing was written"
      continue
    fi
    declared[$rel]=$i
    order+=("$rel")
  done
  for key in "${!value_b64[@]}"; do
    [ -n "${declared[$key]+x}" ] || die "the payload holds $key, which is not declared; nothing was written"
  done

  mkdir -p -m 0700 "$root"
  # Stage every file first (owner, mode, content in a temp file next to its target), then journal the units
  # to restart, then rename. A delivery cut short after a rename (dropped connection, kill, power loss) leaves
  # the journal, and the next delivery restarts those units too, even though their files now compare equal.
  local dir base tmp old_sum new_sum changed=0
  local -a status=()
  for rel in "${order[@]}"; do
    i=${declared[$rel]}
    path=${args[i]} owner=${args[i+1]} group=${args[i+2]} mode=${args[i+3]} units=${args[i+4]}
    dir=${path%/*}
    base=${path##*/}
    mkdir -p -m 0700 "$dir"
    tmp="$dir/.$base.nixmox-new"
    rm -f -- "$tmp"
    : >"$tmp"
    if user_exists "$owner" && group_exists "$group"; then
      chown "$owner:$group" -- "$tmp"
    else
      pending_lines+=("$rel $owner $group $units")
      say "owner pending $rel ($owner:$group does not exist yet; apply-pending sets it after activation)"
    fi
    chmod "$mode" -- "$tmp"
    [ "$owner" = root ] && [ "$group" = root ] || traversable[$dir]=1
    printf '%s' "${value_b64[$rel]}" | base64 -d >"$tmp" || die "$rel: cannot decode its value"
    new_sum=$(sha256sum <"$tmp")
    old_sum=
    [ -f "$path" ] && old_sum=$(sha256sum <"$path")
    sync -- "$tmp" 2>/dev/null || true
    if [ -z "$old_sum" ]; then
      status+=("created $rel")
    elif [ "$old_sum" != "$new_sum" ]; then
      status+=("updated $rel")
    else
      status+=("unchanged $rel")
      continue
    fi
    changed=$((changed + 1))
    queue_restart "$units"
  done
  read_journal
  write_journal
  for rel in "${order[@]}"; do
    i=${declared[$rel]}
    path=${args[i]}
    mv -f -T -- "${path%/*}/.${path##*/}.nixmox-new" "$path"
  done
  for line in "${status[@]}"; do say "$line"; done

  local file removed=0
  while IFS= read -r -d '' file; do
    rel=${file#"$root/"}
    [ "$file" = "$pending" ] || [ "$file" = "$journal" ] && continue
    if [ -z "${declared[$rel]+x}" ]; then
      rm -f -- "$file"
      removed=$((removed + 1))
      say "removed ${rel//[^A-Za-z0-9_.\/-]/?}"
    fi
  done < <(find "$root" -mindepth 1 \( -type f -o -type l \) -print0 | sort -z)
  find "$root" -mindepth 1 -type d -empty -delete

  write_pending "${pending_lines[@]}"
  fix_directory_modes
  restart_queued try-restart
  rm -f -- "$journal"
  say "${#order[@]} files, $changed changed, $removed removed, ${#pending_lines[@]} owners pending"
}

apply_pending() {
  [ $# -eq 0 ] || die "apply-pending takes no declarations"
  if [ ! -f "$pending" ]; then
    say "no pending owners"
    return 0
  fi
  local rel owner group units file
  local -a still=()
  while read -r rel owner group units; do
    [[ "$rel" =~ $name_re && "$owner" =~ $account_re && "$group" =~ $account_re && "$units" =~ $units_re ]] ||
      die "malformed line in $pending"
    file="$root/$rel"
    [ -f "$file" ] || continue
    if user_exists "$owner" && group_exists "$group"; then
      chown "$owner:$group" -- "$file"
      say "owner set $rel $owner:$group"
      [ "$owner" = root ] && [ "$group" = root ] || traversable[${file%/*}]=1
      queue_restart "$units"
    else
      still+=("$rel $owner $group $units")
    fi
  done <"$pending"
  # Keep the execute bit on directories whose files were already traversable.
  while IFS= read -r -d '' file; do
    [ "$(stat -c %U:%G -- "$file")" = root:root ] || traversable[${file%/*}]=1
  done < <(find "$root" -mindepth 2 -type f -print0)
  write_pending "${still[@]}"
  fix_directory_modes
  restart_queued restart
  if [ "${#still[@]}" -gt 0 ]; then
    local entry
    for entry in "${still[@]}"; do
      read -r rel owner group _ <<<"$entry"
      printf 'nixmox-secrets: %s: owner %s:%s still does not exist after activation; create the user/group in the service NixOS module or fix secrets.<name>.owner/group in the manifest\n' "$rel" "$owner" "$group" >&2
    done
    exit 1
  fi
}

# The activation wrapper (components/activation) runs `apply-pending` right after the switch, before the startup
# checks, from this copy: the script arrives inline (`bash -c`), so `deliver` keeps its own text next to ROOT.
keep_copy() {
  [ -n "${BASH_EXECUTION_STRING:-}" ] || return 0
  local copy="${root%/*}/nixmox-secrets.sh"
  printf '%s\n' "$BASH_EXECUTION_STRING" >"$copy.tmp" && chmod 0700 -- "$copy.tmp" && mv -f -T -- "$copy.tmp" "$copy"
}

case "$verb" in
  deliver) deliver "$@"; keep_copy ;;
  apply-pending) apply_pending "$@" ;;
  *) die "unknown verb '$verb' (deliver or apply-pending)" ;;
esac
