#!/usr/bin/env bash
# The Debian packages only the tests need (README, "Quick start", step 2; .ci/run), installed as root, without leaving
# daemons running or enabled as system services: the tests start their own throwaway ones on loopback and in network
# namespaces, and a desktop that installs caddy, unbound or PostgreSQL for them must not find them answering on :80,
# :53 or :5432 afterwards.
#
#   openssh-server   throwaway sshd hosts on 127.0.0.x (tests/support/sshd.ts)
#   age              SOPS/age fixtures of `secrets import`
#   postgresql       a throwaway cluster runs the generated pg_hba.conf, setup.sql and the forgejo module's SQL
#   python3          pgAdmin's generated OAUTH2_CONFIG; parses the SVG of `graph --format svg`
#   caddy, unbound   the real daemons fed the configs of `nixmox render --configs`
#   bind9-dnsutils   dig, against that unbound
#   openssl          a throwaway root CA for Caddy's pki block; the recording HTTPS endpoint of the engine tests
#   iproute2, nftables   `ip` and `nft` inside the network namespaces the tests create (util-linux's unshare)
#   openssh-client, util-linux, xz-utils   the homelab twin's hosts (twin/: ssh-keygen, unshare and setpriv, the
#                    template archive)
#
# Packages already installed are left as they are. For those it installs, starts are refused during the install
# (a policy-rc.d, unless one exists) and their units are disabled afterwards, whatever the init system.
set -euo pipefail

packages=(openssh-server openssh-client age postgresql python3 caddy unbound bind9-dnsutils openssl iproute2 nftables util-linux xz-utils)
# The system units each package's postinst enables.
declare -A units=(
  [openssh-server]="ssh.service"
  [postgresql]="postgresql.service"
  [caddy]="caddy.service caddy-api.service"
  [unbound]="unbound.service unbound-resolvconf.service"
)

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "test-deps: every package is installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: run as root (sudo bash tools/test-deps.sh) to install: ${missing[*]}" >&2
  exit 2
fi

policy=${NIXMOX_POLICY_RC_D:-/usr/sbin/policy-rc.d} # the variable: for tests/test-deps.test.ts
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# tools/test-deps.sh: no service starts while it installs the test-only packages.\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  own_policy=1
fi
cleanup() {
  if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"

for package in "${missing[@]}"; do
  for unit in ${units[$package]:-}; do
    # Undo what the postinst enabled (deb-systemd-helper works with or without a running systemd).
    deb-systemd-helper disable "$unit" >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
    script=${unit%.service}
    if [ -x "/etc/init.d/$script" ]; then
      invoke-rc.d "$script" stop >/dev/null 2>&1 || true
      update-rc.d "$script" disable >/dev/null 2>&1 || true
    fi
  done
done
echo "test-deps: installed ${missing[*]}; their services are stopped and disabled"
