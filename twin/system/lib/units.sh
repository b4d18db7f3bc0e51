# units.sh: the twin host's stand-in for systemd's unit bookkeeping, sourced by systemctl, systemd-run,
# switch-to-configuration and the boot step (twin/system). Not systemd: a unit is a process session started with
# setsid, detached from whoever started it (so it outlives an SSH session, as a unit does), whose state lives in
# /run/twin-units (a tmpfs cleared at every start of the host, as systemd's runtime state is):
#   <unit>.pid       the main process of a running unit (its session and process group)
#   <unit>.state     a finished oneshot's "active" (RemainAfterExit) or a unit's "failed"
#   <unit>.stopping  present while `systemctl stop` waits for the unit to exit ("deactivating")
#   <unit>.transient a systemd-run unit: gone once it exits (--collect), stopped with KillMode=mixed
#   <unit>.timeout   seconds `stop` waits before SIGKILL (TimeoutStopSec=)
# A unit of the running system is the file /run/current-system/units/<unit>: a bash script with `#twin-*` header
# lines (twin/system/lib/build-system.sh writes them):
#   #twin-type simple|oneshot     simple (default): the script runs the daemon in the foreground
#   #twin-ready HOST PORT         start waits until HOST:PORT accepts TCP connections (Type=notify's readiness)
#   #twin-user NAME               the unit runs as NAME (User=)
#   #twin-credential ID PATH      PATH is copied to $CREDENTIALS_DIRECTORY/ID for the unit (LoadCredential=)
# Output goes to /var/log/twin-units/<unit>.log (the journal's stand-in).

units_run=/run/twin-units
units_log=/var/log/twin-units

# A unit name as systemctl takes it: "caddy" is "caddy.service".
unit_name() {
  case "$1" in *.*) printf '%s' "$1" ;; *) printf '%s.service' "$1" ;; esac
}

unit_file() { printf '/run/current-system/units/%s' "$1"; }

unit_meta() { # unit-file key → the first value of `#twin-<key>`
  sed -n "s/^#twin-$2 //p" "$1" 2>/dev/null | head -n 1
}

unit_pid_alive() { # unit → 0 when its main process runs
  local pid
  pid=$(cat "$units_run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# active | activating | deactivating | inactive | failed, as `systemctl is-active` prints it.
unit_state() {
  local unit=$1
  if unit_pid_alive "$unit"; then
    if [ -e "$units_run/$unit.stopping" ]; then echo deactivating
    elif [ -e "$units_run/$unit.starting" ]; then echo activating
    else echo active; fi
    return
  fi
  if [ -e "$units_run/$unit.pid" ]; then
    # The main process is gone without a stop: a transient unit is collected, a service failed.
    rm -f "$units_run/$unit.pid"
    if [ -e "$units_run/$unit.transient" ]; then rm -f "$units_run/$unit".*
    else echo failed > "$units_run/$unit.state"; fi
  fi
  cat "$units_run/$unit.state" 2>/dev/null || echo inactive
}

# Copies the unit's credentials into a private directory, as LoadCredential= does; prints it (empty: none).
unit_credentials() { # unit file user
  local unit=$1 file=$2 user=$3 dir="/run/credentials/$1" id path
  grep -q '^#twin-credential ' "$file" || return 0
  rm -rf "$dir" && mkdir -p "$dir" && chmod 0700 "$dir"
  while read -r _ id path; do
    cp -- "$path" "$dir/$id" 2>/dev/null || { echo "twin: $unit: cannot read credential $id from $path" >&2; return 1; }
    chmod 0400 "$dir/$id"
  done < <(grep '^#twin-credential ' "$file")
  [ -z "$user" ] || chown -R "$user:" "$dir"
  printf '%s' "$dir"
}

# Runs the unit's script (as its user, with its credentials) in the current process: exec'd by start.
unit_exec() { # unit file
  local unit=$1 file=$2 user credentials
  umask 022 # systemd's default UMask= for services, whoever started the unit
  user=$(unit_meta "$file" user)
  credentials=$(unit_credentials "$unit" "$file" "$user") || exit 1
  [ -z "$credentials" ] || export CREDENTIALS_DIRECTORY=$credentials
  if [ -n "$user" ]; then exec setpriv --reuid="$user" --regid="$user" --init-groups -- bash "$file"; fi
  exec bash "$file"
}

# Starts a unit of the running system; returns 1 (and marks it failed) when it exits or is not ready in time.
unit_start() { # unit
  local unit=$1 file type ready host port waited=0
  file=$(unit_file "$unit")
  [ -f "$file" ] || { echo "Failed to start $unit: Unit $unit not found." >&2; return 5; }
  mkdir -p "$units_run" "$units_log"
  case "$(unit_state "$unit")" in active|activating) return 0 ;; esac
  rm -f "$units_run/$unit.state"
  type=$(unit_meta "$file" type)
  printf '%s twin: starting %s\n' "$(date -u +%FT%TZ)" "$unit" >> "$units_log/$unit.log"
  if [ "$type" = oneshot ]; then
    if (unit_exec "$unit" "$file") </dev/null >>"$units_log/$unit.log" 2>&1; then echo active > "$units_run/$unit.state"; return 0; fi
    echo failed > "$units_run/$unit.state"
    return 1
  fi
  : > "$units_run/$unit.starting"
  setsid bash -c "$(declare -f unit_exec unit_meta unit_credentials); unit_exec \"\$1\" \"\$2\"" twin-unit "$unit" "$file" </dev/null >>"$units_log/$unit.log" 2>&1 &
  echo $! > "$units_run/$unit.pid"
  ready=$(unit_meta "$file" ready)
  if [ -n "$ready" ]; then
    read -r host port <<<"$ready"
    until bash -c 'exec 3<>"/dev/tcp/$1/$2"' twin-ready "$host" "$port" 2>/dev/null; do
      unit_pid_alive "$unit" && [ "$waited" -lt 300 ] || break
      sleep 0.1; waited=$((waited + 1))
    done
  else
    sleep 0.2
  fi
  rm -f "$units_run/$unit.starting"
  if ! unit_pid_alive "$unit" || { [ -n "$ready" ] && [ "$waited" -ge 300 ]; }; then
    unit_stop "$unit" >/dev/null 2>&1
    echo failed > "$units_run/$unit.state"
    return 1
  fi
}

# Stops a unit: SIGTERM to its process group (to the main process only for a transient unit, KillMode=mixed),
# SIGKILL to the group after its stop timeout.
unit_stop() { # unit
  local unit=$1 pid timeout waited=0
  if ! unit_pid_alive "$unit"; then
    rm -f "$units_run/$unit.pid" "$units_run/$unit.stopping"
    [ ! -e "$units_run/$unit.transient" ] || rm -f "$units_run/$unit".*
    [ "$(cat "$units_run/$unit.state" 2>/dev/null)" != active ] || rm -f "$units_run/$unit.state"
    return 0
  fi
  pid=$(cat "$units_run/$unit.pid")
  timeout=$(cat "$units_run/$unit.timeout" 2>/dev/null || echo 10)
  : > "$units_run/$unit.stopping"
  if [ -e "$units_run/$unit.transient" ]; then kill -TERM "$pid" 2>/dev/null; else kill -TERM -- "-$pid" 2>/dev/null; fi
  while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt $((timeout * 10)) ]; do sleep 0.1; waited=$((waited + 1)); done
  kill -KILL -- "-$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$units_run/$unit.pid" "$units_run/$unit.stopping" "$units_run/$unit.state"
  [ ! -e "$units_run/$unit.transient" ] || rm -f "$units_run/$unit".*
}

# The units of a system (a generation's store path) in start order: by `#twin-order` (default 50), then by name.
system_units() { # system
  local system=$1 file order
  [ -d "$system/units" ] || return 0
  for file in "$system/units"/*; do
    [ -f "$file" ] || continue
    order=$(unit_meta "$file" order)
    printf '%s %s\n' "${order:-50}" "$(basename "$file")"
  done | sort -k1,1n -k2,2 | cut -d' ' -f2
}
