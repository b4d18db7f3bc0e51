#!/usr/bin/env bash
# nixmox-activate: safe NixOS activation for one NixMox service, run on the host.
#
#   nixmox-activate.sh run     --service S --config-hash H (--flake REF | --system STORE-PATH --trusted-keys K1,K2)
#                              [--confirm-timeout N] [--activation-timeout N] [--rollback 1|0] [--kernel-modules m1,m2] [paths]
#   nixmox-activate.sh confirm --service S --config-hash H [--wait-timeout N] [paths]
#   nixmox-activate.sh recover --service S --config-hash H [paths]   (at boot: roll back what the shutdown interrupted)
#   (internal) nixmox-activate.sh unit ...same as run...
#   paths: [--state-dir DIR] [--profile PATH] [--current-system PATH] [--root-authorized-keys PATH] [--kernel-root DIR]
#
# Why each step (field-notes.md §3):
# - The switch runs in a transient systemd unit (systemd-run), so a dropped SSH session cannot kill it
#   (clan; nix-community/nixos-cli#133). `run` only starts the unit and waits for its result file; a re-run
#   after a drop attaches to the running attempt or reports the finished one.
# - The previous generation is recorded *before* the switch and the rollback returns to exactly that one
#   (`nix-env --switch-generation`), never "one back" (`--rollback` goes too far when the build failed before a
#   new generation existed: serokell/deploy-rs#154).
# - After the switch /run/current-system must equal the profile (clan's post-switch check), then the startup
#   checks run here, on the host; failure or no confirmation in time rolls back (colmena#38, deploy-rs#183).
# - An activation that dies (the unit is stopped, SIGTERMed, OOM-killed, or the host restarts) never leaves the host
#   on an unchecked generation: the unit traps TERM/INT/HUP and rolls back; an attempt whose unit is gone without
#   a result is "abandoned" and the next run or confirm rolls it back under the lock, records that outcome, and
#   a later run with the same configuration hash starts over instead of reporting the dead attempt forever.
# - Each attempt runs its own copy of this file (`<attempt>/nixmox-activate.sh`, written under the lock), so a
#   concurrent run that installs another configuration's checks cannot change what a running unit checks.
# - A rollback never exits 0 (deploy-rs#214). Exit codes: 0 switched/unchanged/awaiting-confirmation,
#   1 failed or rolled back, 2 bad usage, 3 rollback itself failed (host state unknown).
# - `--system` (build once, copy closures: components/build): the system was built elsewhere and copied here; the
#   host evaluates nothing. Before anything switches, `nix store verify` checks that every path of its closure is
#   here and signed by one of --trusted-keys; then the unit does what nixos-rebuild does after its build
#   (nixos-rebuild.sh: `nix-env -p PROFILE --set PATH`, then `PATH/bin/switch-to-configuration switch`), and the
#   rest of the protocol (checks, confirmation, rollback, recovery) is the same as with --flake.
# The last line on stdout is always `NIXMOX_RESULT {json}` with sorted keys.
# Startup checks are embedded at the end of this file as `#nixmox-*` comment lines (base64 fields), so no
# check text (and no secret) is ever part of a command line.
set -euo pipefail
umask 077

die() { local code=$1; shift; printf 'nixmox-activate: %s\n' "$*" >&2; exit "$code"; }

json_string() {
  local s=$1
  s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}
  s=$(printf '%s' "$s" | tr -d '\000-\010\013\014\016-\037')
  printf '"%s"' "$s"
}
json_or_null() { if [ -n "$1" ]; then json_string "$1"; else printf null; fi; }

# Check and rebuild output can echo a secret (a check that prints its config, a failing unit's log), and it
# reaches the controller's logs and errors. The wrapper knows no values, but the host holds them all under
# <state-dir>/secrets: every file's content, each of its lines and each KEY=VALUE value becomes [secret], and so
# do their base64 and URL-encoded forms (a connection URL or an Authorization header carries them encoded).
urlencode() { # text hex-format → RFC 3986 percent-encoding of every byte outside the unreserved set
  local LC_ALL=C s=$1 format=$2 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in [A-Za-z0-9._~-]) out+=$c ;; *) printf -v c "$format" "'$c"; out+=$c ;; esac
  done
  printf '%s' "$out"
}
mask_value() { # value → replaces it and its encodings in $masked (in place: the text may be a long log)
  local value=$1 form format
  [ ${#value} -ge 4 ] || return 0
  masked=${masked//"$value"/[secret]}
  form=$(printf '%s' "$value" | base64 -w0); masked=${masked//"$form"/[secret]}
  form=${form%%=*}; [ ${#form} -lt 4 ] || masked=${masked//"$form"/[secret]}
  for format in '%%%02X' '%%%02x'; do
    form=$(urlencode "$value" "$format"); [ "$form" = "$value" ] || masked=${masked//"$form"/[secret]}
  done
}
mask() {
  local file value line
  masked=$1
  [ -d "$secrets_dir" ] || { printf '%s' "$masked"; return 0; }
  while IFS= read -r -d '' file; do
    value=$(cat -- "$file" 2>/dev/null) || continue
    mask_value "$value"
    while IFS= read -r line; do
      mask_value "$line"
      if [[ $line == *=* ]]; then mask_value "${line#*=}"; fi
    done <<<"$value"
  done < <(find "$secrets_dir" -type f ! -name '.*' -print0 2>/dev/null)
  printf '%s' "$masked"
}

mode=${1:-}; shift || true
service="" config_hash="" flake="" system="" trusted_keys="" confirm_timeout=0 activation_timeout=1800 wait_timeout="" rollback_enabled=1
state_root=/var/lib/nixmox profile=/nix/var/nix/profiles/system current_system=/run/current-system
root_keys=/root/.ssh/authorized_keys kernel_modules="" kernel_root=/
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die 2 "option $1 needs a value"
  case "$1" in
    --service) service=$2 ;;
    --config-hash) config_hash=$2 ;;
    --flake) flake=$2 ;;
    --system) system=$2 ;;
    --trusted-keys) trusted_keys=$2 ;;
    --confirm-timeout) confirm_timeout=$2 ;;
    --activation-timeout) activation_timeout=$2 ;;
    --wait-timeout) wait_timeout=$2 ;;
    --rollback) rollback_enabled=$2 ;;
    --state-dir) state_root=$2 ;;
    --profile) profile=$2 ;;
    --current-system) current_system=$2 ;;
    --root-authorized-keys) root_keys=$2 ;;
    --kernel-modules) kernel_modules=$2 ;;
    --kernel-root) kernel_root=$2 ;;
    *) die 2 "unknown option $1" ;;
  esac
  shift 2
done
case "$mode" in run|unit|confirm|recover) ;; *) die 2 "usage: nixmox-activate.sh run|confirm|recover --service NAME --config-hash HEX [...]" ;; esac
[[ $rollback_enabled =~ ^[01]$ ]] || die 2 "--rollback must be 1 or 0, got '$rollback_enabled'"
[[ $service =~ ^[a-z][a-z0-9-]{0,62}$ ]] || die 2 "--service must match [a-z][a-z0-9-]*, got '$service'"
[[ $config_hash =~ ^[0-9a-f]{8,128}$ ]] || die 2 "--config-hash must be lowercase hex, got '$config_hash'"
for pair in "confirm-timeout:$confirm_timeout" "activation-timeout:$activation_timeout" "wait-timeout:${wait_timeout:-0}"; do
  [[ ${pair#*:} =~ ^[0-9]{1,6}$ ]] || die 2 "--${pair%%:*} must be a whole number of seconds, got '${pair#*:}'"
done
[[ $kernel_modules =~ ^([a-z0-9_]+(,[a-z0-9_]+)*)?$ ]] || die 2 "--kernel-modules must be module names separated by commas, got '$kernel_modules'"
for pair in "state-dir:$state_root" "profile:$profile" "current-system:$current_system" "root-authorized-keys:$root_keys" "kernel-root:$kernel_root"; do
  [[ ${pair#*:} =~ ^/[A-Za-z0-9/._-]*$ ]] || die 2 "--${pair%%:*} must be an absolute path, got '${pair#*:}'"
done
if [ "$mode" != confirm ] && [ "$mode" != recover ]; then
  if [ -n "$system" ]; then
    [ -z "$flake" ] || die 2 "give --flake or --system, not both"
    [[ $system =~ ^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+._?=-]+$ ]] || die 2 "--system must be a Nix store path, got '$system'"
    [[ $trusted_keys =~ ^[A-Za-z0-9._-]+:[A-Za-z0-9+/]+={0,2}(,[A-Za-z0-9._-]+:[A-Za-z0-9+/]+={0,2})*$ ]] || die 2 "--trusted-keys must be name:base64 keys separated by commas, got '$trusted_keys'"
  else
    [[ $flake =~ ^/[A-Za-z0-9/._-]*#[A-Za-z0-9._-]+$ ]] || die 2 "--flake must look like /etc/nixmox#<service>, got '$flake'"
  fi
fi

self=$(readlink -f "$0")
secrets_dir="$state_root/secrets"
service_dir="$state_root/$service"
attempt="$service_dir/attempts/$config_hash"
unit="nixmox-activate-$service-${config_hash:0:12}"
[ -n "$wait_timeout" ] && [ "$wait_timeout" != 0 ] || wait_timeout=$((activation_timeout + confirm_timeout + 900))

print_result() { printf 'NIXMOX_RESULT %s\n' "$1"; }
result_status() { sed -n 's/.*"status":"\([a-z-]*\)".*/\1/p' "$1"; }
exit_for_status() {
  case "$1" in switched|unchanged|awaiting-confirmation) exit 0 ;; rollback-failed) exit 3 ;; *) exit 1 ;; esac
}
make_result() { # status reason generation previous
  printf '{"configHash":"%s","generation":%s,"previousGeneration":%s,"reason":%s,"service":"%s","status":"%s"}' \
    "$config_hash" "$(json_or_null "$3")" "$(json_or_null "$4")" "$(json_or_null "$2")" "$service" "$1"
}

# The --kernel-modules the node has not loaded (space-separated; empty when all are there). The container sees the
# Proxmox node's kernel: a module is there when /proc/modules lists it or /sys/module has it (built in). Returns 1
# when it cannot tell (no --kernel-modules, or /proc/modules unreadable).
missing_kernel_modules() {
  local module missing=""
  [ -n "$kernel_modules" ] && [ -r "${kernel_root%/}/proc/modules" ] || return 1
  for module in ${kernel_modules//,/ }; do
    grep -q "^$module " "${kernel_root%/}/proc/modules" || [ -d "${kernel_root%/}/sys/module/$module" ] || missing="$missing${missing:+ }$module"
  done
  printf '%s' "$missing"
}

# True when the unit is gone: not active, activating, reloading or deactivating (a unit whose trap is rolling
# back after `systemctl stop` is "deactivating" and must not be taken for abandoned).
unit_gone() { # unit
  local state; state=$(systemctl is-active -- "$1" 2>/dev/null) || true
  case "$state" in inactive|failed|unknown|"") return 0 ;; *) return 1 ;; esac
}

# Returns the host to generation $1 (store path $2): the profile first (what the next boot uses), then the running
# system. Returns 0 when the host runs $2 again; otherwise sets restore_error (and restore_now).
restore_error="" restore_now=""
restore_generation() { # generation store-path
  if [ "$(readlink "$profile")" != "$(basename "$profile")-$1-link" ]; then
    nix-env -p "$profile" --switch-generation "$1" || { restore_error="nix-env could not switch back to generation $1"; restore_now=""; return 1; }
  fi
  if [ "$(readlink -f "$current_system")" != "$2" ]; then
    "$2/bin/switch-to-configuration" switch || printf '[nixmox] re-activating %s reported a failure\n' "$2"
  fi
  restore_now=$(readlink -f "$current_system")
  [ "$restore_now" = "$2" ] || { restore_error="the host runs $restore_now, not $2"; return 1; }
}

# Root's home-directory authorized_keys keeps only the deploy key (security review M7). Proxmox wrote every manifest
# key there when it created the container, and sshd reads that file besides the NixOS-managed
# /etc/ssh/authorized_keys.d/root (nixos/core.nix: authorizedKeysInHomedir), so a key removed from
# network.ssh_keys.root kept working. The manifest keys live in the NixOS configuration; the deploy key, which this
# activation came through, stays here. Run after a switch, and on a run that finds its configuration deployed: a
# rotated deploy key changes no configuration, and the old key must stop working all the same (review B1).
install_deploy_key() { # wrapper text; sets key_error on failure
  local line key
  key_error=""
  line=$(printf '%s\n' "$1" | grep -m1 '^#nixmox-deploy-key ') || return 0 # none given: nothing to keep
  key=$(printf '%s' "${line#\#nixmox-deploy-key }" | base64 -d 2>/dev/null) || key=""
  if [[ ! $key =~ ^[a-z0-9@.-]+\ [A-Za-z0-9+/]+=*$ ]]; then key_error="the embedded deploy key is malformed"; return 1; fi
  if [ "$(cat -- "$root_keys" 2>/dev/null)" = "$key" ]; then return 0; fi
  mkdir -p -m 0700 "${root_keys%/*}" &&
    printf '%s\n' "$key" > "$root_keys.nixmox-new" && chmod 0600 "$root_keys.nixmox-new" && mv -f -T "$root_keys.nixmox-new" "$root_keys" ||
    { key_error="could not rewrite it"; return 1; }
}

# ---------------------------------------------------------------- unit mode (inside systemd-run)
if [ "$mode" = unit ]; then
  exec >>"$attempt/log" 2>&1 </dev/null
  log() { printf '[nixmox] %s\n' "$*"; }
  decode() { if [ "$1" = - ]; then printf ''; else printf '%s' "$1" | base64 -d; fi; }
  read -r prev_gen prev_path < "$attempt/previous"
  # From here on a signal (systemctl stop, shutdown, a TERM from the OOM handling) rolls back instead of leaving
  # the new generation unchecked. Long steps run as background children and `wait`, because bash runs a trap only
  # after the foreground command ends. SIGKILL cannot be trapped: the next run recovers that attempt (below).
  child=""
  ignore_signals() { trap 'log "ignored a signal: finishing the rollback"' TERM INT HUP; }
  on_signal() { # signal name
    ignore_signals
    log "received SIG$1"
    if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi
    # A host that shuts down stops this unit too. Re-activating the old generation then would fight the shutdown
    # (and hold it for TimeoutStopSec); leave no result instead: the attempt counts as abandoned, and the next run
    # or confirm after the boot rolls it back under the lock.
    if [ "$(systemctl is-system-running 2>/dev/null)" = stopping ]; then
      log "the host is shutting down: the next run after the boot rolls this attempt back"
      exit 1
    fi
    rollback "activation interrupted by SIG$1"
  }
  trap 'on_signal TERM' TERM; trap 'on_signal INT' INT; trap 'on_signal HUP' HUP
  run_child() { # command... → its exit code, interruptible by the traps above
    "$@" & child=$!
    local rc=0; wait "$child" || rc=$?
    child=""; return "$rc"
  }
  # The same with the child's stdin from /dev/null and its output to FILE. The redirections belong to the child
  # alone: on the function call they would also catch whatever a trap logs while it waits.
  run_child_to() { # file command...
    local file=$1; shift
    "$@" </dev/null >"$file" 2>&1 & child=$!
    local rc=0; wait "$child" || rc=$?
    child=""; return "$rc"
  }
  finish() { # status reason generation
    ignore_signals
    make_result "$1" "$2" "$3" "$prev_path" > "$attempt/result.tmp"
    mv -f "$attempt/result.tmp" "$attempt/result"
    if [ "$1" = switched ]; then
      printf 'config_hash=%s\ngeneration=%s\n' "$config_hash" "$3" > "$service_dir/deployed.tmp"
      mv -f "$service_dir/deployed.tmp" "$service_dir/deployed"
    fi
    echo done > "$attempt/status"
    exit 0
  }
  rollback() {
    local reason=$1
    ignore_signals
    # enable_rollback = false in the manifest: keep the failed generation for inspection, and still fail the deploy.
    if [ "$rollback_enabled" = 0 ]; then
      log "not rolling back (rollback is off): $reason"
      finish failed "$reason; not rolled back (enable_rollback = false): the host stays on the new generation" "$(readlink -f "$current_system")"
    fi
    log "rolling back to generation $prev_gen ($prev_path): $reason"
    if restore_generation "$prev_gen" "$prev_path"; then
      finish rolled-back "$reason; rolled back to the previous generation $prev_path" "$prev_path"
    fi
    finish rollback-failed "$reason; rollback failed: $restore_error" "$restore_now"
  }

  # Which units the switch left failed (switch-to-configuration exits 4 then), so the reason names them; a failed
  # firewall is the usual suspect in an unprivileged container (nixos-runtime review R8).
  # The modules are checked again here: they were there before the switch, so a firewall that failed with them
  # still there failed for another reason, and the hint says so instead of sending the user to modprobe.
  failed_units_note() {
    local unit rest units="" hint="" missing
    while read -r unit rest; do
      [ -n "$unit" ] || continue
      units="$units${units:+, }$unit"
      case "$unit" in firewall.service|nftables.service)
        if missing=$(missing_kernel_modules) && [ -z "$missing" ]; then
          hint="; the Proxmox node has the firewall's kernel modules (${kernel_modules//,/, }), so $unit failed for another reason: see journalctl -u $unit on the host, or set network.firewall = \"proxmox\""
        else
          hint="; the in-container firewall needs the kernel modules ${missing:-nf_tables, nft_ct and nf_conntrack} loaded on the Proxmox node (README, Inside the hosts), or set network.firewall = \"proxmox\""
        fi ;;
      esac
    done < <(systemctl list-units --failed --no-legend --plain 2>/dev/null || true)
    [ -z "$units" ] || printf '; failed units: %s%s' "$units" "$hint"
  }

  rc=0
  if [ -n "$system" ]; then
    # What nixos-rebuild switch does once its build is done: the profile first (what the next boot runs), then the
    # running system. A failure after the profile moved rolls both back, as for --flake.
    log "switching $service to $system (config $config_hash)"
    step="nix-env --set"
    run_child timeout --kill-after=30 "$activation_timeout" nix-env -p "$profile" --set "$system" || rc=$?
    if [ "$rc" = 0 ]; then
      step="switch-to-configuration switch"
      run_child timeout --kill-after=30 "$activation_timeout" "$system/bin/switch-to-configuration" switch || rc=$?
    fi
    if [ "$rc" = 124 ]; then rollback "$step timed out after ${activation_timeout}s"; fi
    if [ "$rc" != 0 ]; then rollback "$step failed with exit code $rc$(failed_units_note)"; fi
  else
    log "switching $service to $flake (config $config_hash)"
    run_child timeout --kill-after=30 "$activation_timeout" nixos-rebuild switch --flake "$flake" || rc=$?
    if [ "$rc" = 124 ]; then rollback "nixos-rebuild switch timed out after ${activation_timeout}s"; fi
    if [ "$rc" != 0 ]; then rollback "nixos-rebuild switch failed with exit code $rc$(failed_units_note)"; fi
  fi
  new_path=$(readlink -f "$current_system")
  profile_path=$(readlink -f "$profile")
  if [ "$new_path" != "$profile_path" ]; then rollback "after the switch $current_system is $new_path, not the new profile $profile_path"; fi
  if [ -n "$system" ] && [ "$new_path" != "$system" ]; then rollback "after the switch $current_system is $new_path, not the copied system $system"; fi

  # Secret files whose owner did not exist before this generation created it (components/secrets): chown them
  # now, before the startup checks, with the copy of the delivery script that the secrets push keeps.
  if [ -s "$secrets_dir/.nixmox-pending-ownership" ]; then
    if [ -f "$state_root/nixmox-secrets.sh" ] && bash "$state_root/nixmox-secrets.sh" apply-pending "$secrets_dir"; then
      log "secret file owners applied"
    else
      rollback "secret files still wait for owners that this generation does not create (see $secrets_dir/.nixmox-pending-ownership)"
    fi
  fi

  interval=5 timeout_s=10 retries=3 start_period=0
  if line=$(grep -m1 '^#nixmox-timing ' "$self"); then read -r _ interval timeout_s retries start_period <<<"$line"; fi
  [ "$retries" -ge 1 ] || retries=1
  probe() { # kind arg1 arg2 → exit code, output on stdout/stderr
    case "$1" in
      command) timeout --kill-after=2 "$timeout_s" bash -c "$2" ;;
      systemd) timeout --kill-after=2 "$timeout_s" systemctl is-active -- "$2" ;;
      tcp) timeout --kill-after=2 "$timeout_s" bash -c 'exec 3<>"/dev/tcp/$1/$2"' nixmox-tcp-probe "$2" "$3" ;;
      http)
        local code
        code=$(timeout --kill-after=2 "$timeout_s" curl -sS -o /dev/null -w '%{http_code}' --max-time "$timeout_s" -- "$2") || return $?
        echo "HTTP $code (expected $3)"; [ "$code" = "$3" ] ;;
      *) echo "unknown check kind $1"; return 2 ;;
    esac
  }
  started=$SECONDS
  # The check list is read on descriptor 3 and every probe gets </dev/null: a check that reads stdin (cat, psql,
  # ssh) must not swallow the checks after it.
  while read -r -u 3 _ name_b64 kind a_b64 b_b64; do
    name=$(decode "$name_b64") && a=$(decode "$a_b64") && b=$(decode "$b_b64") || rollback "cannot decode a startup check line of $self"
    failures=0 attempts=0
    while :; do
      attempts=$((attempts + 1))
      code=0; run_child_to "$attempt/probe-output" probe "$kind" "$a" "$b" || code=$?
      output=$(cat "$attempt/probe-output")
      if [ "$code" = 0 ]; then log "startup check \"$name\" passed after $attempts probe(s)"; break; fi
      if [ $((SECONDS - started)) -ge "$start_period" ]; then failures=$((failures + 1)); fi
      if [ "$failures" -ge "$retries" ]; then
        rollback "startup check \"$name\" ($kind) failed after $attempts probe(s): exit code $code, last output: $(mask "$(printf '%s' "$output" | tail -n 5)")"
      fi
      run_child sleep "$interval"
    done
  done 3< <(grep '^#nixmox-check ' "$self" || true)

  if [ "$confirm_timeout" -gt 0 ]; then
    # deploy-rs's canary: the controller deletes it over a *new* SSH connection, proving it can still reach us.
    : > "$attempt/canary"
    echo awaiting-confirmation > "$attempt/status"
    log "waiting ${confirm_timeout}s for the controller to confirm"
    deadline=$((SECONDS + confirm_timeout))
    while [ -e "$attempt/canary" ] && [ "$SECONDS" -lt "$deadline" ]; do run_child sleep 0.2; done
    if [ -e "$attempt/canary" ]; then rm -f "$attempt/canary"; : > "$attempt/unconfirmed"; rollback "no confirmation from the controller within ${confirm_timeout}s"; fi
    log "confirmed"
  fi

  install_deploy_key "$(cat -- "$self")" && log "$root_keys now holds only the deploy key" || log "warning: $root_keys left as it is ($key_error)"
  finish switched "" "$new_path"
fi

# ---------------------------------------------------------------- controller-facing modes
mkdir -p "$service_dir/attempts"

# An attempt without a result whose unit is gone was abandoned: the unit was SIGKILLed or OOM-killed, or the host
# restarted, maybe after the switch, so the host may run (and boot) the new, unchecked generation. Call this under
# the lock: it rolls back to the generation recorded before the switch and writes the outcome as the attempt's
# result, so the attempt is finished and a later run with its configuration hash starts over.
recover_abandoned() { # attempt dir
  local dir=$1 config_hash prev_gen prev_path reason status
  config_hash=$(basename "$dir")
  [ ! -e "$dir/result" ] || return 0
  unit_gone "nixmox-activate-$service-${config_hash:0:12}.service" || return 0
  [ ! -e "$dir/result" ] || return 0 # written while the unit exited
  if [ ! -s "$dir/previous" ]; then rm -rf "$dir"; return 0; fi # its unit never started
  read -r prev_gen prev_path < "$dir/previous"
  reason="activation unit nixmox-activate-$service-${config_hash:0:12}.service ended without a result (stopped, killed or the host restarted)"
  if [ "$(cat "$dir/rollback" 2>/dev/null)" = 0 ]; then # enable_rollback = false: keep it, as the unit would
    status=failed reason="$reason; not rolled back (enable_rollback = false): the host stays on the new generation"
    restore_now=$(readlink -f "$current_system")
    printf '[nixmox] %s\n' "$reason" >> "$dir/log"
  elif printf '[nixmox] %s; returning to generation %s (%s)\n' "$reason" "$prev_gen" "$prev_path" >> "$dir/log" &&
    restore_generation "$prev_gen" "$prev_path" >> "$dir/log" 2>&1; then
    status=rolled-back reason="$reason; rolled back to the previous generation $prev_path" restore_now=$prev_path
  else
    status=rollback-failed reason="$reason; rollback failed: $restore_error"
  fi
  make_result "$status" "$reason" "$restore_now" "$prev_path" > "$dir/result.tmp"
  : > "$dir/abandoned"
  mv -f "$dir/result.tmp" "$dir/result"
  echo done > "$dir/status"
}

report_and_exit() { # waits for the attempt's result (or awaiting-confirmation when allowed), prints it
  local allow_awaiting=$1 deadline=$((SECONDS + wait_timeout))
  while [ ! -e "$attempt/result" ]; do
    if [ "$allow_awaiting" = 1 ] && [ "$(cat "$attempt/status" 2>/dev/null)" = awaiting-confirmation ]; then
      { mask "$(cat "$attempt/log" 2>/dev/null)"; echo; } >&2 || true
      print_result "$(make_result awaiting-confirmation "waiting for the controller to confirm" "$(readlink -f "$current_system")" "$(cut -d' ' -f2 "$attempt/previous")")"
      exit 0
    fi
    if unit_gone "$unit.service" && [ ! -e "$attempt/result" ]; then
      exec 9>"$service_dir/lock"
      flock -w 60 9 || die 1 "another nixmox-activate for $service holds $service_dir/lock"
      recover_abandoned "$attempt"
      flock -u 9
      [ -e "$attempt/result" ] || die 1 "the activation attempt $attempt disappeared"
      break
    fi
    [ "$SECONDS" -lt "$deadline" ] || { print_result "$(make_result failed "still activating after ${wait_timeout}s (unit $unit.service keeps running; re-run to attach)" "" "")"; exit 1; }
    sleep 0.2
  done
  { mask "$(cat "$attempt/log" 2>/dev/null)"; echo; } >&2 || true
  : > "$attempt/reported"
  local result status
  result=$(cat "$attempt/result"); status=$(result_status "$attempt/result")
  print_result "$result"
  exit_for_status "$status"
}

# recover: run at boot by nixos/core.nix (nixmox-activation-recover) with the copy of this file an unfinished attempt
# holds. A host that restarted during an activation boots the new, unchecked generation; this rolls every such
# attempt back under the lock (their units are gone after a restart) without waiting for the controller's next run.
if [ "$mode" = recover ]; then
  exec 9>"$service_dir/lock"
  flock -w 60 9 || die 1 "another nixmox-activate for $service holds $service_dir/lock"
  for other in "$service_dir"/attempts/*; do
    [ -d "$other" ] || continue
    recover_abandoned "$other"
    [ "$other" = "$attempt" ] && [ -e "$other/result" ] && printf 'nixmox-activate: %s: %s\n' "$service" "$(result_status "$other/result")"
  done
  exit 0
fi

if [ "$mode" = confirm ]; then
  [ -d "$attempt" ] || die 1 "no activation of $service with config $config_hash to confirm"
  rm -f "$attempt/canary"
  report_and_exit 0
fi

# run: the command that installs this file gives every run its own copy (a mktemp name); keep its text and drop
# the copy, so nothing another run installs can change what this run hands to its unit.
wrapper_text=$(cat -- "$self")
case "$(basename "$self")" in .nixmox-activate.*) rm -f -- "$self" ;; esac

# One decision at a time per service. The lock is released before waiting, so `confirm` takes it only to recover
# an abandoned attempt.
exec 9>"$service_dir/lock"
flock -w 30 9 || die 1 "another nixmox-activate for $service holds $service_dir/lock"
for other in "$service_dir"/attempts/*; do
  [ -d "$other" ] || continue
  recover_abandoned "$other"
done
# This configuration's own abandoned attempt, rolled back and not yet reported (its run was lost with the SSH
# session or the host): try again at once instead of reporting the dead attempt. The same for an attempt rolled back
# because no controller confirmed it, with nobody to report that to: the controller that started it is gone (its
# engine was killed, its connection lost for good), and this run is the next deploy of the same configuration.
if [ ! -e "$attempt/reported" ] && [ "$(result_status "$attempt/result" 2>/dev/null)" = rolled-back ]; then
  if [ -e "$attempt/abandoned" ]; then
    printf 'nixmox-activate: the earlier activation of %s with config %s ended without a result; it was rolled back, trying again\n' "$service" "$config_hash" >&2
    : > "$attempt/reported"
  elif [ -e "$attempt/unconfirmed" ]; then
    printf 'nixmox-activate: the earlier activation of %s with config %s was rolled back because no controller confirmed it, and nobody was told; trying again\n' "$service" "$config_hash" >&2
    : > "$attempt/reported"
  fi
fi
# Install copies that lost their run (a connection dropped while the wrapper was sent).
find "$service_dir" -maxdepth 1 -name '.nixmox-activate.*' -mmin +60 -delete 2>/dev/null || true
# Finished and reported attempts pile up (their logs hold unmasked rebuild output): keep the newest five.
ls -1dt "$service_dir"/attempts/*/ 2>/dev/null | tail -n +6 | while IFS= read -r old; do
  old=${old%/}
  [ "$old" != "$attempt" ] && [ -e "$old/result" ] && [ -e "$old/reported" ] && rm -rf -- "$old" || true
done || true
# Idempotent when this configuration is deployed and running.
running=$(readlink -f "$current_system" || true)
if [ -e "$service_dir/deployed" ]; then
  deployed_hash=$(sed -n 's/^config_hash=//p' "$service_dir/deployed")
  deployed_gen=$(sed -n 's/^generation=//p' "$service_dir/deployed")
  if [ "$deployed_hash" = "$config_hash" ] && [ "$deployed_gen" = "$running" ] && { [ -z "$system" ] || [ "$running" = "$system" ]; }; then
    install_deploy_key "$wrapper_text" || printf 'nixmox-activate: warning: %s left as it is (%s)\n' "$root_keys" "$key_error" >&2
    print_result "$(make_result unchanged "" "$running" "")"
    exit 0
  fi
fi
for other in "$service_dir"/attempts/*; do
  [ -d "$other" ] && [ "$other" != "$attempt" ] || continue
  if [ ! -e "$other/result" ] && ! unit_gone "nixmox-activate-$service-$(basename "$other" | cut -c1-12).service"; then
    die 1 "another activation of $service (config $(basename "$other")) is still running; re-run when it has finished"
  fi
done
if [ -d "$attempt" ]; then
  # A re-run after a dropped SSH session: attach to the attempt or report its unreported outcome.
  if [ ! -e "$attempt/result" ] || [ ! -e "$attempt/reported" ]; then flock -u 9; report_and_exit 1; fi
fi
# Kernel modules the new configuration needs and the container cannot load (no CAP_SYS_MODULE in an unprivileged
# LXC; the in-container firewall needs netfilter, nixos-runtime review R8). Checked before the switch, so a node
# without them fails every host the same way with nothing switched and nothing rolled back.
if missing=$(missing_kernel_modules); then
  if [ -n "$missing" ]; then
    print_result "$(make_result failed "not switched: the in-container firewall (network.firewall = \"nftables\") needs the kernel modules $missing, which the Proxmox node has not loaded and an unprivileged container cannot load; on the node run: modprobe -a $missing, and list them in /etc/modules-load.d/nixmox.conf (README, Inside the hosts); or set network.firewall = \"proxmox\"" "$running" "")"
    exit 1
  fi
fi
# A copied system is switched to only when it is all here and every path of its closure carries a signature of a
# trusted key (the copy already required them; a path that reached the store another way is caught here). Nothing
# has switched yet, so nothing rolls back.
if [ -n "$system" ]; then
  if [ ! -x "$system/bin/switch-to-configuration" ]; then
    print_result "$(make_result failed "not switched: $system is not on the host (or has no bin/switch-to-configuration); the closure copy must come first" "$running" "")"
    exit 1
  fi
  if ! verify_output=$(nix --extra-experimental-features nix-command store verify --no-contents --recursive --sigs-needed 1 \
      --option trusted-public-keys "${trusted_keys//,/ }" "$system" 2>&1); then
    print_result "$(make_result failed "not switched: the closure of $system is not signed by a trusted key (${trusted_keys//,/, }): $(printf '%s' "$verify_output" | grep -v '^warning:' | tail -n 3 | tr '\n' ' ')" "$running" "")"
    exit 1
  fi
fi
# The previous attempt's unit may still be exiting after writing its result; the unit name must be free.
for _ in $(seq 50); do unit_gone "$unit.service" && break; sleep 0.2; done
rm -rf "$attempt"
mkdir -p "$attempt"
prev_link=$(readlink "$profile") || die 1 "cannot read the system profile $profile"
prev_gen=${prev_link%-link}; prev_gen=${prev_gen##*-}
[[ $prev_gen =~ ^[0-9]+$ ]] || die 1 "cannot tell the current generation from $profile -> $prev_link"
printf '%s %s\n' "$prev_gen" "$(readlink -f "$profile")" > "$attempt/previous"
echo "$rollback_enabled" > "$attempt/rollback"
# The unit runs the attempt's own copy (with this configuration's checks); `confirm` runs the service's copy.
printf '%s\n' "$wrapper_text" > "$attempt/nixmox-activate.sh"
printf '%s\n' "$wrapper_text" > "$service_dir/nixmox-activate.sh.tmp"
mv -f "$service_dir/nixmox-activate.sh.tmp" "$service_dir/nixmox-activate.sh"
echo running > "$attempt/status"
if [ -n "$system" ]; then source_args=(--system "$system" --trusted-keys "$trusted_keys"); else source_args=(--flake "$flake"); fi
# TimeoutStopSec: on `systemctl stop` the trap needs time to roll back before systemd sends SIGKILL.
systemd-run --unit="$unit" --description="NixMox activation of $service" --collect --quiet \
  --property=KillMode=mixed --property=TimeoutStopSec=300 -- \
  bash "$attempt/nixmox-activate.sh" unit --service "$service" --config-hash "$config_hash" "${source_args[@]}" \
  --confirm-timeout "$confirm_timeout" --activation-timeout "$activation_timeout" --rollback "$rollback_enabled" \
  --state-dir "$state_root" --profile "$profile" --current-system "$current_system" --root-authorized-keys "$root_keys" \
  --kernel-modules "$kernel_modules" --kernel-root "$kernel_root" 9>&- \
  || { rm -rf "$attempt"; print_result "$(make_result failed "systemd-run could not start the activation unit $unit" "" "")"; exit 1; }
flock -u 9
report_and_exit 1
