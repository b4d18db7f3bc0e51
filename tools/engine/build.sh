#!/usr/bin/env bash
# Builds the real Pulumi engine NixMox's tests run, from the Go module proxy only, into a cache folder git ignores:
#   pulumi                          the Pulumi CLI (github.com/pulumi/pulumi/pkg/v3, the version of @pulumi/pulumi)
#   pulumi-language-nodejs          our own minimal Node.js language host (tools/engine/language-nodejs/main.go says why)
#   pulumi-resource-pulumi-nodejs   the dynamic-provider plugin script, from the github.com/pulumi/pulumi/sdk/v3 module
#   pulumi-resource-proxmoxve       bpg's Terraform provider through Pulumi's bridge (tools/engine/proxmoxve)
# Idempotent: a binary is rebuilt only when its wrapper module's files, its version or the Go version changed.
# `build.sh old-cli` builds instead only the Pulumi CLI 3.206.0 (tools/engine/pulumi-old), the release before the
# minimum NixMox asks for, into its own folder, which it prints: the test that shows NixMox refusing it uses it.
# Progress goes to standard error; the last line on standard output is the absolute folder holding the binaries,
# so `export PATH="$(npm run -s engine:bin):$PATH"` gives a shell the same engine. The plugins are ambient
# (found on PATH); set PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true so the engine never reaches for GitHub.
set -euo pipefail

engine_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$engine_dir/../.." && pwd)"
cache="${NIXMOX_ENGINE_CACHE:-$repo/.cache/engine}"
bin="$cache/bin"
stamps="$cache/stamps"
mkdir -p "$bin" "$stamps"

# The versions the npm SDKs declare (tests/engine-build.test.ts checks these against package.json and node_modules).
pulumi_version="3.276.0"
proxmoxve_version="8.6.0"

export GOFLAGS="${GOFLAGS:-} -mod=readonly -trimpath"
export GOTOOLCHAIN=local
command -v go >/dev/null || { echo "tools/engine/build.sh: go is not on PATH (Go 1.26.6 or newer builds the engine)" >&2; exit 1; }

log() { printf '%s\n' "engine: $*" >&2; }

# stamp NAME VERSION PATH…: a digest of what a binary is built from (paths relative to tools/engine, so a clone
# elsewhere, or another worktree sharing NIXMOX_ENGINE_CACHE, computes the same stamp).
stamp() {
  local name="$1" version="$2"; shift 2
  { echo "$name $version $(go env GOVERSION)"; (cd "$engine_dir" && find "$@" -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -print0 \
      | sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-64
}

# fresh NAME STAMP: true when bin/NAME was built from exactly this stamp.
fresh() { [ -x "$bin/$1" ] && [ "$(cat "$stamps/$1" 2>/dev/null)" = "$2" ]; }

# build NAME STAMP MODULE_DIR PACKAGE LDFLAGS
build() {
  local name="$1" digest="$2" dir="$3" package="$4" ldflags="$5" started=$SECONDS
  log "building $name …"
  (cd "$dir" && go build -o "$bin/$name.tmp" -ldflags "$ldflags" "$package")
  mv "$bin/$name.tmp" "$bin/$name"
  echo "$digest" > "$stamps/$name"
  log "built $name in $((SECONDS - started)) s"
}

total_started=$SECONDS

if [ "${1:-}" = "old-cli" ]; then
  old_version="3.206.0"
  bin="$cache/old-cli"
  stamps="$cache/old-cli-stamps"
  mkdir -p "$bin" "$stamps"
  digest="$(stamp pulumi "$old_version" pulumi-old)"
  if fresh pulumi "$digest"; then log "pulumi v$old_version (old-cli) is up to date"; else
    build pulumi "$digest" "$engine_dir/pulumi-old" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
      "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$old_version"
  fi
  echo "$bin"
  exit 0
fi

# 1. The Pulumi CLI.
digest="$(stamp pulumi "$pulumi_version" pulumi)"
if fresh pulumi "$digest"; then log "pulumi v$pulumi_version is up to date"; else
  build pulumi "$digest" "$engine_dir/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$pulumi_version"
fi

# 2. The language host.
digest="$(stamp pulumi-language-nodejs "$pulumi_version" language-nodejs)"
if fresh pulumi-language-nodejs "$digest"; then log "pulumi-language-nodejs is up to date"; else
  build pulumi-language-nodejs "$digest" "$engine_dir/language-nodejs" . "-X main.Version=$pulumi_version+nixmox"
fi

# 3. The dynamic-provider plugin: a script shipped in the sdk/v3 module (sdk/nodejs/dist), which runs
#    @pulumi/pulumi/cmd/dynamic-provider with the node on PATH.
sdk_dir="$(cd "$engine_dir/pulumi" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
if [ -z "$sdk_dir" ] || [ ! -d "$sdk_dir" ]; then
  (cd "$engine_dir/pulumi" && go mod download github.com/pulumi/pulumi/sdk/v3)
  sdk_dir="$(cd "$engine_dir/pulumi" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
fi
install -m 0755 "$sdk_dir/nodejs/dist/pulumi-resource-pulumi-nodejs" "$bin/pulumi-resource-pulumi-nodejs"

# 4. proxmoxve: generate the package schema and bridge metadata with our tfgen, then build the plugin that embeds
#    them. The generated JSON lives beside mapping.go (git ignores it); placeholders let tfgen itself compile.
proxmoxve="$engine_dir/proxmoxve"
for generated in schema-embed.json bridge-metadata.json; do
  [ -s "$proxmoxve/mapping/$generated" ] || echo '{}' > "$proxmoxve/mapping/$generated"
done
digest="$(stamp pulumi-resource-proxmoxve "$proxmoxve_version" proxmoxve/mapping proxmoxve/cmd proxmoxve/version proxmoxve/go.mod proxmoxve/go.sum)"
# The stamp excludes the generated JSON (it is derived from the same sources).
if fresh pulumi-resource-proxmoxve "$digest" && [ "$(cat "$proxmoxve/mapping/bridge-metadata.json")" != "{}" ]; then
  log "pulumi-resource-proxmoxve v$proxmoxve_version is up to date"
else
  ldflags="-X nixmox.local/engine/proxmoxve/version.Version=$proxmoxve_version"
  tfgen="$cache/build/pulumi-tfgen-proxmoxve"
  mkdir -p "$cache/build"
  started=$SECONDS
  log "building pulumi-tfgen-proxmoxve …"
  (cd "$proxmoxve" && go build -o "$tfgen" -ldflags "$ldflags" ./cmd/pulumi-tfgen-proxmoxve)
  log "built pulumi-tfgen-proxmoxve in $((SECONDS - started)) s; generating the schema"
  out="$(mktemp -d)"
  # tfgen also tries to fetch the upstream docs (go mod download in a ../provider folder), which fails here and
  # only costs the descriptions; its output is kept for the log.
  if ! (cd "$out" && "$tfgen" schema --out "$out" > "$out/tfgen.log" 2>&1) || [ ! -s "$out/schema.json" ]; then
    cat "$out/tfgen.log" >&2
    echo "tools/engine/build.sh: pulumi-tfgen-proxmoxve did not write a schema" >&2
    exit 1
  fi
  cp "$out/schema.json" "$proxmoxve/mapping/schema-embed.json"
  cp "$out/bridge-metadata.json" "$proxmoxve/mapping/bridge-metadata.json"
  rm -rf "$out"
  build pulumi-resource-proxmoxve "$digest" "$proxmoxve" ./cmd/pulumi-resource-proxmoxve "$ldflags"
fi

log "ready in $((SECONDS - total_started)) s: $bin"
echo "$bin"
