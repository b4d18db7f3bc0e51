#!/usr/bin/env bash
# nixmox-activate: safe NixOS activation for one NixMox service, run on the host.
#
#   nixmox-activate.sh run     --service S --config-hash H --flake REF [--confirm-timeout N] [--activation-timeout N] [--rollback 1|0] [paths]
#   nixmox-activate.sh confirm --service S --config-hash H [--wait-timeout N] [paths]
#   (internal) nixmox-activate.sh unit ...same as run...
#   paths: [--state-dir DIR] [--profile PATH] [--current-system PATH]
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
# - A rollback never exits 0 (deploy-rs#214). Exit codes: 0 switched/unchanged/awaiting-confirmation,
#   1 failed or rolled back, 2 bad usage, 3 rollback itself failed (host state unknown).
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
# <state-dir>/secrets: every file's content, each of its lines and each KEY=VALUE value becomes [secret].
mask() {
  local text=$1 file value line
  [ -d "$secrets_dir" ] || { printf '%s' "$text"; return 0; }
  while IFS= read -r -d '' file; do
    value=$(cat -- "$file" 2>/dev/null) || continue
    [ ${#value} -ge 4 ] && text=${text//"$value"/[secret]}
    while IFS= read -r line; do
      [ ${#line} -ge 4 ] && text=${text//"$line"/[secret]}
      if [[ $line == *=* ]]; then line=${line#*=}; [ ${#line} -ge 4 ] && text=${text//"$line"/[secret]}; fi
    done <<<"$value"
  done < <(find "$secrets_dir" -type f ! -name '.*' -print0 2>/dev/null)
  printf '%s' "$text"
}

mode=${1:-}; shift || true
service="" config_hash="" flake="" confirm_timeout=0 activation_timeout=1800 wait_timeout="" rollback_enabled=1
state_root=/var/lib/nixmox profile=/nix/var/nix/profiles/system current_system=/run/current-system
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die 2 "option $1 needs a value"
  case "$1" in
    --service) service=$2 ;;
    --config-hash) config_hash=$2 ;;
    --flake) flake=$2 ;;
    --confirm-timeout) confirm_timeout=$2 ;;
    --activation-timeout) activation_timeout=$2 ;;
    --wait-timeout) wait_timeout=$2 ;;
    --rollback) rollback_enabled=$2 ;;
    --state-dir) state_root=$2 ;;
    --profile) profile=$2 ;;
    --current-system) current_system=$2 ;;
    *) die 2 "unknown option $1" ;;
  esac
  shift 2
done
case "$mode" in run|unit|confirm) ;; *) die 2 "usage: nixmox-activate.sh run|confirm --service NAME --config-hash HEX [...]" ;; esac
[[ $rollback_enabled =~ ^[01]$ ]] || die 2 "--rollback must be 1 or 0, got '$rollback_enabled'"
[[ $service =~ ^[a-z][a-z0-9-]{0,62}$ ]] || die 2 "--service must match [a-z][a-z0-9-]*, got '$service'"
[[ $config_hash =~ ^[0-9a-f]{8,128}$ ]] || die 2 "--config-hash must be lowercase hex, got '$config_hash'"
for pair in "confirm-timeout:$confirm_timeout" "activation-timeout:$activation_timeout" "wait-timeout:${wait_timeout:-0}"; do
  [[ ${pair#*:} =~ ^[0-9]{1,6}$ ]] || die 2 "--${pair%%:*} must be a whole number of seconds, got '${pair#*:}'"
done
for pair in "state-dir:$state_root" "profile:$profile" "current-system:$current_system"; do
  [[ ${pair#*:} =~ ^/[A-Za-z0-9/._-]*$ ]] || die 2 "--${pair%%:*} must be an absolute path, got '${pair#*:}'"
done
if [ "$mode" != confirm ]; then
  [[ $flake =~ ^/[A-Za-z0-9/._-]*#[A-Za-z0-9._-]+$ ]] || die 2 "--flake must look like /etc/nixmox#<service>, got '$flake'"
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

# ---------------------------------------------------------------- unit mode (inside systemd-run)
if [ "$mode" = unit ]; then
  exec >>"$attempt/log" 2>&1
  log() { printf '[nixmox] %s\n' "$*"; }
  read -r prev_gen prev_path < "$attempt/previous"
  finish() { # status reason generation
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
    # enable_rollback = false in the manifest: keep the failed generation for inspection, and still fail the deploy.
    if [ "$rollback_enabled" = 0 ]; then
      log "not rolling back (rollback is off): $reason"
      finish failed "$reason; not rolled back (enable_rollback = false): the host stays on the new generation" "$(readlink -f "$current_system")"
    fi
    log "rolling back to generation $prev_gen ($prev_path): $reason"
    if [ "$(readlink "$profile")" != "$(basename "$profile")-$prev_gen-link" ]; then
      nix-env -p "$profile" --switch-generation "$prev_gen" || finish rollback-failed "$reason; rollback failed: nix-env could not switch back to generation $prev_gen" ""
    fi
    if [ "$(readlink -f "$current_system")" != "$prev_path" ]; then
      "$prev_path/bin/switch-to-configuration" switch || log "re-activating $prev_path reported a failure"
    fi
    local now; now=$(readlink -f "$current_system")
    [ "$now" = "$prev_path" ] || finish rollback-failed "$reason; rollback failed: the host runs $now, not $prev_path" "$now"
    finish rolled-back "$reason; rolled back to the previous generation $prev_path" "$prev_path"
  }

  log "switching $service to $flake (config $config_hash)"
  set +e
  timeout --kill-after=30 "$activation_timeout" nixos-rebuild switch --flake "$flake"
  rc=$?
  set -e
  if [ "$rc" = 124 ]; then rollback "nixos-rebuild switch timed out after ${activation_timeout}s"; fi
  if [ "$rc" != 0 ]; then rollback "nixos-rebuild switch failed with exit code $rc"; fi
  new_path=$(readlink -f "$current_system")
  profile_path=$(readlink -f "$profile")
  if [ "$new_path" != "$profile_path" ]; then rollback "after the switch $current_system is $new_path, not the new profile $profile_path"; fi

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
  decode() { if [ "$1" = - ]; then printf ''; else printf '%s' "$1" | base64 -d; fi; }
  started=$SECONDS
  while read -r _ name_b64 kind a_b64 b_b64; do
    name=$(decode "$name_b64"); a=$(decode "$a_b64"); b=$(decode "$b_b64")
    failures=0 attempts=0
    while :; do
      attempts=$((attempts + 1))
      set +e; output=$(probe "$kind" "$a" "$b" 2>&1); code=$?; set -e
      if [ "$code" = 0 ]; then log "startup check \"$name\" passed after $attempts probe(s)"; break; fi
      if [ $((SECONDS - started)) -ge "$start_period" ]; then failures=$((failures + 1)); fi
      if [ "$failures" -ge "$retries" ]; then
        rollback "startup check \"$name\" ($kind) failed after $attempts probe(s): exit code $code, last output: $(mask "$(printf '%s' "$output" | tail -n 5)")"
      fi
      sleep "$interval"
    done
  done < <(grep '^#nixmox-check ' "$self" || true)

  if [ "$confirm_timeout" -gt 0 ]; then
    # deploy-rs's canary: the controller deletes it over a *new* SSH connection, proving it can still reach us.
    : > "$attempt/canary"
    echo awaiting-confirmation > "$attempt/status"
    log "waiting ${confirm_timeout}s for the controller to confirm"
    deadline=$((SECONDS + confirm_timeout))
    while [ -e "$attempt/canary" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if [ -e "$attempt/canary" ]; then rm -f "$attempt/canary"; rollback "no confirmation from the controller within ${confirm_timeout}s"; fi
    log "confirmed"
  fi
  finish switched "" "$new_path"
fi

# ---------------------------------------------------------------- controller-facing modes
mkdir -p "$service_dir/attempts"

report_and_exit() { # waits for the attempt's result (or awaiting-confirmation when allowed), prints it
  local allow_awaiting=$1 deadline=$((SECONDS + wait_timeout))
  while [ ! -e "$attempt/result" ]; do
    if [ "$allow_awaiting" = 1 ] && [ "$(cat "$attempt/status" 2>/dev/null)" = awaiting-confirmation ]; then
      { mask "$(cat "$attempt/log" 2>/dev/null)"; echo; } >&2 || true
      print_result "$(make_result awaiting-confirmation "waiting for the controller to confirm" "$(readlink -f "$current_system")" "$(cut -d' ' -f2 "$attempt/previous")")"
      exit 0
    fi
    if ! systemctl is-active --quiet "$unit.service" && [ ! -e "$attempt/result" ]; then
      sleep 1
      if [ ! -e "$attempt/result" ]; then
        print_result "$(make_result failed "activation unit $unit.service ended without a result; see journalctl -u $unit" "" "")"
        exit 1
      fi
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

if [ "$mode" = confirm ]; then
  [ -d "$attempt" ] || die 1 "no activation of $service with config $config_hash to confirm"
  rm -f "$attempt/canary"
  report_and_exit 0
fi

# run: one decision at a time per service (the lock is released before waiting, so `confirm` never blocks).
exec 9>"$service_dir/lock"
flock -w 30 9 || die 1 "another nixmox-activate for $service holds $service_dir/lock"
# Idempotent when this configuration is deployed and running.
running=$(readlink -f "$current_system" || true)
if [ -e "$service_dir/deployed" ]; then
  deployed_hash=$(sed -n 's/^config_hash=//p' "$service_dir/deployed")
  deployed_gen=$(sed -n 's/^generation=//p' "$service_dir/deployed")
  if [ "$deployed_hash" = "$config_hash" ] && [ "$deployed_gen" = "$running" ]; then
    print_result "$(make_result unchanged "" "$running" "")"
    exit 0
  fi
fi
for other in "$service_dir"/attempts/*; do
  [ -d "$other" ] && [ "$other" != "$attempt" ] || continue
  if [ ! -e "$other/result" ] && systemctl is-active --quiet "nixmox-activate-$service-$(basename "$other" | cut -c1-12).service"; then
    die 1 "another activation of $service (config $(basename "$other")) is still running; re-run when it has finished"
  fi
done
if [ -d "$attempt" ]; then
  # A re-run after a dropped SSH session: attach to the attempt or report its unreported outcome.
  if [ ! -e "$attempt/result" ] || [ ! -e "$attempt/reported" ]; then flock -u 9; report_and_exit 1; fi
fi
# The previous attempt's unit may still be exiting after writing its result; the unit name must be free.
for _ in $(seq 50); do systemctl is-active --quiet "$unit.service" || break; sleep 0.2; done
rm -rf "$attempt"
mkdir -p "$attempt"
prev_link=$(readlink "$profile") || die 1 "cannot read the system profile $profile"
prev_gen=${prev_link%-link}; prev_gen=${prev_gen##*-}
[[ $prev_gen =~ ^[0-9]+$ ]] || die 1 "cannot tell the current generation from $profile -> $prev_link"
printf '%s %s\n' "$prev_gen" "$(readlink -f "$profile")" > "$attempt/previous"
echo running > "$attempt/status"
systemd-run --unit="$unit" --description="NixMox activation of $service" --collect --quiet \
  --property=KillMode=mixed -- \
  bash "$self" unit --service "$service" --config-hash "$config_hash" --flake "$flake" \
  --confirm-timeout "$confirm_timeout" --activation-timeout "$activation_timeout" --rollback "$rollback_enabled" \
  --state-dir "$state_root" --profile "$profile" --current-system "$current_system" 9>&- \
  || { rm -rf "$attempt"; print_result "$(make_result failed "systemd-run could not start the activation unit $unit" "" "")"; exit 1; }
flock -u 9
report_and_exit 1
