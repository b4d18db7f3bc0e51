"use strict";
/**
 * The twin's stand-in for building a NixOS system from the flake NixMox pushed (`nixos-rebuild` calls it inside a
 * twin host, with the node the twin mounts at /.twin/bin/node). It builds nothing of NixOS. From the pushed flake
 * directory alone it makes a "system": a store path holding
 *   flake/        a copy of the flake directory (what was deployed), and flake-ref
 *   etc/          the daemon files NixMox's own builders give for this host: every `configFiles` of the flake's
 *                 nixos/lib/*.nix (the functions `nixmox render --configs` evaluates), applied to its host.json with
 *                 the real nix-instantiate; each file is a store object of its own (/nix/store/<hash>-<name>)
 *   units/        the host's services as twin units (lib/units.sh): Debian's caddy, unbound and postgresql run on
 *                 those files, the fake Authentik API's relay runs on an authentik host, and a small listener
 *                 (lib/listen.js) or a placeholder stands for every other port and unit the host's checks probe
 *   bin/switch-to-configuration, sw/bin/ (the stand-in commands)
 * The store path is named after the hash of its content, so the same flake (and checks) gives the same path, as
 * Nix does. Prints the store path.
 *
 *   node build-system.js FLAKE_DIR NAME FLAKE_REF [--omit-check NAME]
 *   node build-system.js --initial          the template's own system (no flake, no services): generation 1
 *   node build-system.js --derivation       the builder of a system built on a builder service (twin/system/nixpkgs:
 *                                           the stand-in nixpkgs' toplevel derivation): the host's data and its
 *                                           config files (store paths the evaluation made) come from the environment
 *                                           (hostJson, configsJson, credentialsJson, stateVersion) and the tree is
 *                                           written to $out. It knows no startup checks (they are the host's, as a
 *                                           NixOS build does not know them): listeners for the host's own ports, and
 *                                           a placeholder for each unit the NixOS modules of the host's kind define
 *                                           and no twin daemon provides (/.twin/system/kind-units.json, written by
 *                                           the twin from manifest/kinds.ts; a custom module's units are unknown).
 *
 * Every system has etc/nix.conf, what nixos/core.nix's nix.settings make of the host's data (the stack's signing key
 * and the manifest's caches as trusted keys and substituters, signatures required), which switch-to-configuration
 * installs as /etc/nix/nix.conf; a builder's system also adds the stand-in nixpkgs source to its store (the twin has
 * no GitHub), and every host keeps its own store in its own /nix.
 *
 * `--omit-check` (the twin's "check:<name>" knob) leaves out the unit or listener that check probes, so the check
 * fails after the switch.
 */
const { execFileSync } = require("node:child_process");
const { createHash } = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

// Store objects are readable by everyone, whatever umask the caller has (the activation wrapper's is 077), as Nix
// makes them (0444 files, 0555 directories).
process.umask(0o022);

const systemLib = "/.twin/system/lib";
const node = "/.twin/bin/node";
const store = "/nix/store";

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

const initial = process.argv[2] === "--initial";
const derivation = process.argv[2] === "--derivation";
const [flakeDir, name, flakeRef, ...rest] = initial ? [null, "nixos", null] : derivation ? [null, null, null] : process.argv.slice(2);
const omitCheck = rest[0] === "--omit-check" ? rest[1] : null;
if (!initial && !derivation && (!flakeDir || !name || !flakeRef)) fail("usage: build-system.js FLAKE_DIR NAME FLAKE_REF [--omit-check NAME] | --initial | --derivation");
if (derivation && !(process.env.out && process.env.hostJson && process.env.configsJson)) fail("build-system.js --derivation runs as a derivation's builder: $out, $hostJson and $configsJson must be set");

if (!initial && !derivation) {
  const flakeNix = readText(path.join(flakeDir, "flake.nix"), `path '${flakeDir}' does not contain a 'flake.nix'`);
  if (!flakeNix.includes(`nixosConfigurations.${JSON.stringify(name)}`)) fail(`flake '${flakeRef.split("#")[0]}' does not provide attribute 'nixosConfigurations.${name}'`);
}
const hostJson = initial || derivation ? null : path.join(flakeDir, "host.json");
const data = initial ? { host: { hostName: "nixos", kind: null, ports: [] } } : derivation ? JSON.parse(process.env.hostJson) : JSON.parse(readText(hostJson, `the flake has no host.json (not a NixMox host directory: ${flakeDir})`));
const host = data.host;

function readText(file, missing) {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fail(missing);
  }
}

/** A store object of its own (/nix/store/<hash>-<name>), as a Nix `writeText` would make it; in a derivation, a file of $out. */
function storeText(fileName, text, mode = 0o444) {
  if (derivation) {
    const file = path.join(process.env.out, "etc", fileName);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text, { mode });
    return file;
  }
  const digest = createHash("sha256").update(`${fileName}\0${text}`).digest("hex").slice(0, 32);
  const target = path.join(store, `${digest}-${fileName}`);
  if (!fs.existsSync(target)) {
    fs.mkdirSync(store, { recursive: true });
    const temporary = `${target}.tmp-${process.pid}`;
    fs.writeFileSync(temporary, text, { mode });
    fs.renameSync(temporary, target);
  }
  return target;
}

/** Every builder of the flake (nixos/lib/*.nix) with `configFiles` / `credentials`, applied to host.json. */
function evaluateBuilders() {
  if (initial) return {};
  if (derivation) {
    // Evaluated already, by real Nix on the builder (twin/system/nixpkgs): file name → store path.
    const configs = JSON.parse(process.env.configsJson);
    const credentials = JSON.parse(process.env.credentialsJson || "{}");
    const results = { "(evaluated)": { paths: configs, credentials: {} } };
    for (const [file, ids] of Object.entries(credentials)) results[file] = { files: {}, credentials: ids };
    return results;
  }
  const libDir = path.join(flakeDir, "nixos", "lib");
  const builders = fs.existsSync(libDir) ? fs.readdirSync(libDir).filter((file) => file.endsWith(".nix")).sort() : [];
  const results = {};
  for (const file of builders) {
    const lib = path.join(libDir, file);
    const expression = `let l = import ${lib}; d = builtins.fromJSON (builtins.readFile ${hostJson}); in ` +
      "{ files = if l ? configFiles then l.configFiles d else { }; credentials = if l ? credentials then l.credentials d else { }; }";
    try {
      results[file] = JSON.parse(execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "--expr", expression], {
        encoding: "utf8",
        env: { ...process.env, NIX_CONFIG: "build-users-group =" },
        stdio: ["ignore", "pipe", "pipe"],
        timeout: 60_000,
      }));
    } catch (error) {
      fail(`evaluating nixos/lib/${file} failed: ${String(error.stderr || error.message).trim()}`);
    }
  }
  return results;
}

/** The startup checks the host was given: the `#nixmox-check` lines of the service's activation wrapper. */
function hostChecks() {
  if (initial || derivation) return [];
  const wrapper = `/var/lib/nixmox/${name}/nixmox-activate.sh`;
  if (!fs.existsSync(wrapper)) return [];
  const decode = (field) => (field === "-" ? "" : Buffer.from(field, "base64").toString("utf8"));
  return fs.readFileSync(wrapper, "utf8").split("\n").filter((line) => line.startsWith("#nixmox-check ")).map((line) => {
    const [, nameField, kind, a, b] = line.split(" ");
    return { name: decode(nameField), kind, a: decode(a), b: decode(b) };
  });
}

const shellQuote = (value) => `'${String(value).replace(/'/g, "'\\''")}'`;

const builders = evaluateBuilders();
const configs = {};
const credentialsOf = {};
for (const [file, result] of Object.entries(builders)) {
  for (const [fileName, text] of Object.entries(result.files ?? {})) configs[fileName] = storeText(fileName, text);
  Object.assign(configs, result.paths ?? {});
  credentialsOf[file] = result.credentials;
}

/** unit name → { script, ports (served), type, ready, user, order, credentials } */
const units = {};
function unit(unitName, spec) {
  units[unitName] = { ports: [], type: "simple", ready: null, user: null, order: 50, credentials: {}, ...spec };
}

const postgresBin = (() => {
  const versions = fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql").filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : [];
  return versions.length ? `/usr/lib/postgresql/${versions[0]}/bin` : null;
})();

if (configs["nftables.conf"]) {
  // NixOS's nftables.service: the ruleset replaces whatever was loaded (flush, then the new tables).
  unit("nftables.service", { type: "oneshot", order: 10, script: `nft flush ruleset && exec nft -f ${configs["nftables.conf"]}` });
}
if (configs.Caddyfile) {
  const port = host.ports.includes(443) ? 443 : 80;
  unit("caddy.service", {
    ports: host.ports.filter((p) => p === 80 || p === 443),
    ready: `127.0.0.1 ${port}`,
    credentials: credentialsOf["caddy.nix"] ?? {},
    script: [
      "export HOME=/var/lib/caddy XDG_DATA_HOME=/var/lib/caddy XDG_CONFIG_HOME=/var/lib/caddy/config",
      "mkdir -p /var/lib/caddy/config",
      `exec caddy run --adapter caddyfile --config ${configs.Caddyfile}`,
    ].join("\n"),
  });
}
if (configs["unbound.conf"]) {
  // What NixOS's unbound module adds to the settings (nixpkgs nixos/modules/services/networking/unbound.nix: the state
  // directory, the unbound user, no chroot, no pid file, no daemon, logging to stderr for the journal).
  const conf = storeText("unbound-twin.conf", [
    "server:",
    '  directory: "/var/lib/unbound"',
    '  username: "unbound"',
    '  chroot: ""',
    '  pidfile: ""',
    "  do-daemonize: no",
    "  use-syslog: no",
    `include: "${configs["unbound.conf"]}"`,
    "",
  ].join("\n"));
  unit("unbound.service", {
    ports: [53],
    ready: "127.0.0.1 53",
    script: ["install -d -o unbound -g unbound -m 0755 /var/lib/unbound", `exec unbound -d -c ${conf}`].join("\n"),
  });
}
if (configs["pg_hba.conf"] && postgresBin) {
  const port = data.postgresql.port;
  const dataDir = `/var/lib/postgresql/${path.basename(path.dirname(postgresBin))}`;
  unit("postgresql.service", {
    ports: [port],
    ready: `127.0.0.1 ${port}`,
    script: [
      "install -d -o postgres -g postgres -m 0755 /run/postgresql",
      `install -d -o postgres -g postgres -m 0700 ${dataDir}`,
      `as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }`,
      `[ -s ${dataDir}/PG_VERSION ] || as_postgres ${postgresBin}/initdb -D ${dataDir} -U postgres --auth=peer --no-instructions`,
      // NixOS's services.postgresql with enableTCPIP, the port and the generated pg_hba (authentication, mkForce).
      `exec setpriv --reuid=postgres --regid=postgres --init-groups -- ${postgresBin}/postgres -D ${dataDir} -c hba_file=${configs["pg_hba.conf"]} ` +
        `-c listen_addresses='*' -c port=${port} -c unix_socket_directories=/run/postgresql -c password_encryption=scram-sha-256`,
    ].join("\n"),
  });
  if (configs["setup.sql"]) {
    unit("nixmox-postgresql-passwords.service", {
      type: "oneshot",
      order: 60,
      user: "postgres",
      credentials: credentialsOf["postgresql.nix"] ?? {},
      script: `exec ${postgresBin}/psql --no-psqlrc --host=/run/postgresql --port=${port} --dbname=postgres --file=${configs["setup.sql"]}`,
    });
  }
}
if (host.kind === "authentik" && data.authentik) {
  // The fake Authentik API lives in the twin (its objects outlast the container, as Authentik's database does on
  // another host); this relay is its listener on the host, and it hands the twin the bootstrap token it read.
  const listen = Object.values(data.authentik.apps ?? {})[0]?.listen ?? { address: host.ip, port: 9000 };
  const tokenFile = data.secrets?.bootstrap_token; // nixos/services/authentik.nix: AUTHENTIK_BOOTSTRAP_TOKEN
  const database = `${data.authentik.database.host}/${data.authentik.database.name}`;
  unit("authentik.service", {
    ports: [listen.port],
    ready: `127.0.0.1 ${listen.port}`,
    script: [
      // The token is read from its file by node itself, so it never is a word of a command line.
      `${node} -e 'const fs = require("fs"); const [file, database] = process.argv.slice(1); ` +
        `const token = file && fs.existsSync(file) ? fs.readFileSync(file, "utf8").trim() : null; ` +
        `fs.writeFileSync("/.twin/run/authentik.json", JSON.stringify({ token, database }), { mode: 0o600 })' ${shellQuote(tokenFile ?? "")} ${shellQuote(database)}`,
      `exec ${node} ${systemLib}/listen.js relay ${listen.port} /.twin/run/authentik.sock`,
    ].join("\n"),
  });
}

if (host.kind === "builder") {
  // What the builder's first build would download from GitHub: the twin's stand-in nixpkgs, added to this host's own
  // store as the source Nix fetches for a locked github input (a fixed-output path named "source", by its narHash).
  unit("twin-nixpkgs-source.service", {
    type: "oneshot",
    order: 5,
    script: "exec nix --extra-experimental-features nix-command store add-path --name source /.twin/system/nixpkgs/source",
  });
}

if (derivation) {
  // The units the NixOS modules of this kind define (authentik-worker, tomcat, …): placeholders that run until stopped.
  const kinds = JSON.parse(readText("/.twin/system/kind-units.json", "the twin wrote no /.twin/system/kind-units.json"));
  const kind = kinds[host.kind] ?? { units: [], apps: {} };
  const appUnits = Object.values(data).flatMap((section) => Object.keys((section && section.apps) || {}).map((app) => kind.apps[app]).filter(Boolean));
  for (const unitName of [...kind.units, ...appUnits]) if (!units[unitName]) unit(unitName, { script: "exec sleep infinity" });
}

// The LDAP and RADIUS outposts' units (nixos/services/authentik-outposts.nix), which the outpost token push restarts
// once Authentik has made each outpost: placeholders that run until stopped (the ports a check probes get listeners).
for (const type of ["ldap", "radius"]) {
  if (data.outposts && data.outposts[type] && !units[`authentik-${type}.service`]) unit(`authentik-${type}.service`, { script: "exec sleep infinity" });
}

const served = new Set(Object.values(units).flatMap((spec) => spec.ports));
const checks = hostChecks();
const omitted = omitCheck === null ? null : checks.find((check) => check.name === omitCheck) ?? fail(`the twin's knob names the check "${omitCheck}", which service "${name}" does not have`);

/** Listeners: every TCP port the host serves (its ports, its apps' listeners) or a check probes, that no daemon serves. */
const listeners = new Map();
const listenerStatus = (port, status) => listeners.set(port, status ?? listeners.get(port) ?? 200);
for (const port of host.ports ?? []) listenerStatus(port);
for (const section of Object.values(data)) {
  for (const app of Object.values((section && section.apps) || {})) if (app && app.listen) listenerStatus(app.listen.port);
}
for (const check of checks) {
  if (check.kind === "tcp") listenerStatus(Number(check.b));
  if (check.kind === "http") {
    const url = new URL(check.a);
    listenerStatus(Number(url.port || (url.protocol === "https:" ? 443 : 80)), Number(check.b));
  }
  // A unit a check names and no daemon provides: a placeholder that runs until it is stopped.
  if (check.kind === "systemd" && !units[check.a]) unit(check.a, { script: "exec sleep infinity" });
}
// Check helpers NixOS modules install into the system path (`nixmox-openbao-health`, `nixmox-forgejo-sso-check`, …;
// nixos/services/*.nix): the twin builds no NixOS module, so a stand-in of each probes what stands in for the app,
// the host's app listeners (a TCP connect), and says so. What the real helpers check is tested with the modules
// (tests/kinds-apps.test.ts), not here.
const appPorts = [...new Set(Object.values(data).flatMap((section) => Object.values((section && section.apps) || {}).flatMap((app) => (app && app.listen ? [app.listen.port] : []))))].sort((a, b) => a - b);
const checkHelpers = [...new Set(checks.filter((check) => check.kind === "command").flatMap((check) => [...check.a.matchAll(/\/run\/current-system\/sw\/bin\/(nixmox-[a-z0-9-]+)/g)].map((match) => match[1])))].sort();

for (const [port, status] of listeners) {
  if (served.has(port)) continue;
  unit(`twin-listen-${port}.service`, { ports: [port], ready: `127.0.0.1 ${port}`, script: `exec ${node} ${systemLib}/listen.js http ${port} ${status}` });
}
if (omitted) {
  const port = omitted.kind === "tcp" ? Number(omitted.b) : omitted.kind === "http" ? Number(new URL(omitted.a).port || 80) : null;
  const victims = Object.keys(units).filter((unitName) => (omitted.kind === "systemd" ? unitName === omitted.a : units[unitName].ports.includes(port)));
  if (victims.length === 0) fail(`the twin cannot make the ${omitted.kind} check "${omitted.name}" fail by leaving a unit out`);
  for (const victim of victims) delete units[victim];
}

/** nixos/core.nix's nix.settings for this host; `build-users-group =`: the twin has no nixbld users (NixOS has). */
function nixConf() {
  const lines = ["experimental-features = nix-command flakes", "sandbox = false", "require-sigs = true", "build-users-group ="];
  if (data.nix) lines.push(`substituters = ${data.nix.substituters.join(" ")}`, `trusted-public-keys = ${data.nix.trustedPublicKeys.join(" ")}`);
  return `${lines.join("\n")}\n`;
}

// The system's tree: in a derivation, $out; otherwise built in a temporary directory of the store and renamed to
// its content address.
fs.mkdirSync(store, { recursive: true });
const build = derivation ? process.env.out : fs.mkdtempSync(path.join(store, ".twin-build-"));
try {
  fs.mkdirSync(build, { recursive: true });
  fs.chmodSync(build, 0o755);
  if (!initial && !derivation) {
    fs.cpSync(flakeDir, path.join(build, "flake"), { recursive: true, dereference: true });
    fs.writeFileSync(path.join(build, "flake-ref"), `${flakeRef}\n`);
  }
  if (derivation && process.env.flake) fs.symlinkSync(process.env.flake, path.join(build, "flake"));
  fs.writeFileSync(path.join(build, "nixos-version"), `${(derivation ? process.env.stateVersion : host.stateVersion) ?? "25.11"} (NixMox twin stand-in)\n`);
  fs.mkdirSync(path.join(build, "etc"), { recursive: true });
  fs.writeFileSync(path.join(build, "etc", "nix.conf"), nixConf());
  for (const [fileName, target] of Object.entries(configs)) fs.symlinkSync(target, path.join(build, "etc", fileName));
  // users.users.root.openssh.authorizedKeys.keys (nixos/core.nix): the keys sshd reads besides ~/.ssh/authorized_keys.
  fs.writeFileSync(path.join(build, "etc", "ssh-authorized-keys-root"), (host.rootSshKeys ?? []).map((key) => `${key}\n`).join(""));
  fs.mkdirSync(path.join(build, "units"));
  for (const [unitName, spec] of Object.entries(units).sort(([a], [b]) => (a < b ? -1 : 1))) {
    const header = [
      `#twin-type ${spec.type}`,
      `#twin-order ${spec.order}`,
      ...(spec.ready ? [`#twin-ready ${spec.ready}`] : []),
      ...(spec.user ? [`#twin-user ${spec.user}`] : []),
      ...Object.entries(spec.credentials).sort(([a], [b]) => (a < b ? -1 : 1)).map(([id, file]) => `#twin-credential ${id} ${file}`),
    ];
    fs.writeFileSync(path.join(build, "units", unitName), `${header.join("\n")}\n${spec.script}\n`);
  }
  fs.mkdirSync(path.join(build, "bin"));
  fs.copyFileSync(path.join(systemLib, "switch-to-configuration"), path.join(build, "bin", "switch-to-configuration"));
  fs.chmodSync(path.join(build, "bin", "switch-to-configuration"), 0o555);
  fs.mkdirSync(path.join(build, "sw", "bin"), { recursive: true });
  for (const command of fs.readdirSync("/.twin/system/bin").sort()) fs.symlinkSync(`/.twin/system/bin/${command}`, path.join(build, "sw", "bin", command));
  for (const helper of checkHelpers) {
    if (fs.existsSync(path.join(build, "sw", "bin", helper))) continue;
    const probes = appPorts.map((port) => `(exec 3<>/dev/tcp/127.0.0.1/${port}) 2>/dev/null && { echo "twin stand-in of ${helper}: port ${port} answers"; exit 0; }`);
    fs.writeFileSync(path.join(build, "sw", "bin", helper), [
      "#!/bin/bash",
      `# The twin's stand-in of ${helper}, which a NixOS module installs: it probes this host's app listeners.`,
      ...probes,
      `echo "twin stand-in of ${helper}: none of this host's app ports (${appPorts.join(", ") || "none"}) answers" >&2`,
      "exit 1",
      "",
    ].join("\n"), { mode: 0o555 });
  }
  if (derivation) process.exit(0);

  const digest = createHash("sha256");
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const file = path.join(dir, entry.name);
      const relative = path.relative(build, file);
      if (entry.isSymbolicLink()) digest.update(`l ${relative} ${fs.readlinkSync(file)}\0`);
      else if (entry.isDirectory()) walk(file);
      else digest.update(`f ${relative} `).update(fs.readFileSync(file)).update("\0");
    }
  };
  walk(build);
  const target = path.join(store, `${digest.digest("hex").slice(0, 32)}-nixos-system-${host.hostName}-${host.stateVersion ?? "25.11"}`);
  if (fs.existsSync(target)) fs.rmSync(build, { recursive: true, force: true });
  else fs.renameSync(build, target);
  process.stdout.write(`${target}\n`);
} catch (error) {
  if (!derivation) fs.rmSync(build, { recursive: true, force: true });
  fail(`building the system failed: ${error.message}`);
}
