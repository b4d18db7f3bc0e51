# Pure PostgreSQL builders for nixos/services/postgresql.nix (builtins only; evaluated for real in tests).
#
# Checked against: PostgreSQL 17 docs (pg_hba.conf https://www.postgresql.org/docs/17/auth-pg-hba-conf.html,
# psql \gexec, \set with backquotes and :'var' interpolation https://www.postgresql.org/docs/17/app-psql.html).
#
# Databases come from the generated host data: [ { name, owner, clientIp, credential } ] where `credential`
# is the systemd credential id (LoadCredential=) holding the owner's password.
let
  inherit (builtins) concatStringsSep filter map sort match elem;
  # Names as the manifest allows them ("sonarr-log", "user"); always double-quoted where they are used.
  identPattern = "[a-z_][a-z0-9_-]{0,62}";
  ipv4Pattern = "(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})\\.(0|[1-9][0-9]{0,2})";
  credentialPattern = "[A-Za-z0-9_.-]+";
in
rec {
  # The databases every cluster has: an application that owned one would own the setup script's connection
  # (postgres) or put code into every database created later (template1). Never an application's (security
  # review N1; `nixmox validate` refuses them too, rule databaseNameIsNotReserved).
  systemDatabases = [ "postgres" "template0" "template1" ];

  # Identifiers are interpolated into SQL and pg_hba.conf: only lower-case names of [a-z0-9_-] are accepted (the
  # manifest schema enforces the same), the module asserts on `invalidDatabases`, and every use is double-quoted,
  # so a reserved word ("user", "order") or a '-' is a plain name. No accepted name contains a quote.
  isValidDatabase = db:
    match identPattern db.name != null
    && !(elem db.name systemDatabases)
    && match identPattern db.owner != null
    && match ipv4Pattern db.clientIp != null
    && match credentialPattern db.credential != null;
  invalidDatabases = dbs: filter (db: !(isValidDatabase db)) dbs;

  sortDatabases = dbs: sort (a: b: a.name < b.name) dbs;

  # pg_hba is first-match: the postgres superuser over the Unix socket (peer) for local administration,
  # then exactly one line per database letting its owner in from its service's address, nothing else.
  quoteIdent = name: "\"${name}\"";

  hbaLines = dbs:
    [ "local all postgres peer" ]
    ++ map (db: "host ${quoteIdent db.name} ${quoteIdent db.owner} ${db.clientIp}/32 scram-sha-256") (sortDatabases dbs);

  hba = dbs: concatStringsSep "\n" (hbaLines dbs) + "\n";

  # pgAdmin on this host (review N2): its own role logs in to any database, from loopback only and with its password,
  # which is where pgAdmin connects from (a server entry host 127.0.0.1 or localhost). The line names the role, so no
  # app role can use it, and app roles keep their one line each.
  adminHbaLines = admin:
    if admin == null then [ ]
    else [
      "host all ${quoteIdent admin.role} 127.0.0.1/32 scram-sha-256"
      "host all ${quoteIdent admin.role} ::1/128 scram-sha-256"
    ];

  hbaWith = admin: dbs: concatStringsSep "\n" ([ (builtins.head (hbaLines dbs)) ] ++ adminHbaLines admin ++ builtins.tail (hbaLines dbs)) + "\n";

  # The rights an admin tool needs without being the superuser: read and write every database's data, see and cancel
  # sessions, read the settings (pg_monitor), create databases. It cannot create or change roles (CREATEROLE would let
  # it take over the app roles) or the server; that stays with `sudo -u postgres psql` on the host. The predefined
  # roles are granted only where the server has them (pg_read_all_data/pg_write_all_data came with PostgreSQL 14), so
  # the script never fails on an older major version.
  adminRoles = [ "pg_monitor" "pg_signal_backend" "pg_read_all_data" "pg_write_all_data" ];

  adminSetup = admin:
    if admin == null then [ ]
    else [
      "SELECT 'CREATE ROLE ${quoteIdent admin.role} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '${admin.role}')\\gexec"
      "ALTER ROLE ${quoteIdent admin.role} WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;"
    ] ++ map (role: "SELECT 'GRANT ${role} TO ${quoteIdent admin.role}' WHERE EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '${role}')\\gexec") adminRoles
    ++ [
      "\\set pw `cat \"$CREDENTIALS_DIRECTORY/${admin.credential}\"`"
      "ALTER ROLE ${quoteIdent admin.role} WITH PASSWORD :'pw';"
      "\\unset pw"
    ];

  # psql script run as postgres at service start, connected to the `postgres` database, which no application can
  # own (systemDatabases). The password never appears in the script, the Nix store or a process argument: psql's
  # \set with backquotes runs `cat` on the credential file and keeps the value in psql's memory, and :'pw' sends it
  # as a quoted literal over the socket. log_statement is turned off for the session so ALTER ROLE … PASSWORD is
  # never written to the server log. In case an application owned a system database before (an older NixMox
  # allowed it; review N1): the session drops any role and search path set on the database, so a view or function
  # such an owner left in `public` is never what the superuser runs, the catalog names are qualified, and the
  # system databases go back to the superuser, without settings of their own, before anything else.
  setupScript = setupScriptWith null;

  # setupScript, plus pgAdmin's role when `admin` is not null (adminSetup).
  setupScriptWith = admin: dbs: concatStringsSep "\n" ([
    "\\set ON_ERROR_STOP on"
    "SET ROLE NONE;"
    "SET search_path = pg_catalog, pg_temp;"
    "SET log_statement TO 'none';"
  ] ++ builtins.concatMap (name: [
    "ALTER DATABASE ${quoteIdent name} OWNER TO CURRENT_USER;"
    "ALTER DATABASE ${quoteIdent name} RESET ALL;"
  ]) systemDatabases
  ++ adminSetup admin
  ++ builtins.concatLists (map (db: [
    "SELECT 'CREATE ROLE ${quoteIdent db.owner} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '${db.owner}')\\gexec"
    "SELECT 'CREATE DATABASE ${quoteIdent db.name} OWNER ${quoteIdent db.owner}' WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = '${db.name}')\\gexec"
    "ALTER DATABASE ${quoteIdent db.name} OWNER TO ${quoteIdent db.owner};"
    "\\set pw `cat \"$CREDENTIALS_DIRECTORY/${db.credential}\"`"
    "ALTER ROLE ${quoteIdent db.owner} WITH LOGIN PASSWORD :'pw';"
    "\\unset pw"
  ]) (sortDatabases dbs))) + "\n";

  # The setup unit's credentials, id → file (systemd.exec(5) LoadCredential=): every owner's password and pgAdmin's.
  # nixos/services/postgresql.nix hands exactly these over; the twin's stand-in does too.
  credentialsWith = admin: dbs:
    builtins.listToAttrs (map (db: { name = db.credential; value = db.passwordFile; }) dbs
      ++ (if admin == null then [ ] else [ { name = admin.credential; value = admin.passwordFile; } ]));
  credentials = data: credentialsWith (data.postgresql.admin or null) data.postgresql.databases;

  # `nixmox render --configs`: the daemon files of a PostgreSQL host, from its host.json. pg_hba.conf is what
  # services.postgresql.authentication (mkForce, nixos/services/postgresql.nix) writes; setup.sql is the script
  # the nixmox-postgresql-passwords unit runs with psql (credentials in $CREDENTIALS_DIRECTORY).
  configFiles = data: {
    "pg_hba.conf" = hbaWith (data.postgresql.admin or null) data.postgresql.databases;
    "setup.sql" = setupScriptWith (data.postgresql.admin or null) data.postgresql.databases;
  };
}
