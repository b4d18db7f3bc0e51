# Pure Guacamole builders for nixos/services/guacamole.nix (builtins only; evaluated for real in tests).
# Checked against: Apache Guacamole 1.6.0 (release tarballs and manual, postgresql-auth), PostgreSQL 17 psql docs.
#
# Extensions: nixpkgs packages the Guacamole web app (guacamole-client) but not its JDBC and SSO extensions,
# which Apache publishes per release as guacamole-auth-jdbc-<v>.tar.gz and guacamole-auth-sso-<v>.tar.gz
# (https://guacamole.apache.org/releases/<v>/). Their hashes are pinned here per version; the module fetches the
# tarballs of the guacamole-client version the host's nixpkgs ships, and asserts when that version has no pin.
# Hash provenance (not downloaded where NixMox is developed, only npm and Debian are reachable there):
#   1.6.0 jdbc: two independent public Nix expressions that hard-code 1.6.0 (one as nix32, same digest);
#   1.6.0 sso: one public Nix expression whose nixpkgs pin had guacamole-client 1.6.0.
# A wrong hash cannot let other content through: the fetch fails, printing the hash it got.
#
# Tarball layout (apache/guacamole-client guacamole-auth-{jdbc,sso}-dist/src/main/assembly/dist.xml):
#   guacamole-auth-jdbc-<v>/postgresql/guacamole-auth-jdbc-postgresql-<v>.jar
#   guacamole-auth-jdbc-<v>/postgresql/schema/001-create-schema.sql   (002-create-admin-user.sql creates the
#     well-known guacadmin/guacadmin account, so it is never loaded)
#   guacamole-auth-sso-<v>/openid/guacamole-auth-sso-openid-<v>.jar
#
# Schema: guacamole-auth-jdbc does not create its tables. `schemaScript` is a psql script run as the database's
# owner: it loads 001-create-schema.sql only when the schema's first table is missing, inside the single
# transaction of `psql --single-transaction`, so a failed load leaves nothing behind and the next start retries.
# psql's \gset / \if / \i: https://www.postgresql.org/docs/17/app-psql.html.
let
  inherit (builtins) concatStringsSep match;
in
rec {
  releases = {
    "1.6.0" = {
      jdbc = "sha256-l7xf09Z9JcDpikddHf0wigN4WfVJ+sRxcccjt6cDk2Y=";
      sso = "sha256-6VeYRHGsUKh/Ry9Rrsm/fjeK5nziUC/5OAMAEaZw3K4=";
    };
  };

  # mirror://apache lists archive.apache.org too, so a release that left the main mirrors still downloads.
  tarballUrl = part: version: "mirror://apache/guacamole/${version}/binary/guacamole-auth-${part}-${version}.tar.gz";

  # Paths inside the unpacked tarballs.
  jdbcJar = version: "guacamole-auth-jdbc-${version}/postgresql/guacamole-auth-jdbc-postgresql-${version}.jar";
  schemaFile = version: "guacamole-auth-jdbc-${version}/postgresql/schema/001-create-schema.sql";
  openidJar = version: "guacamole-auth-sso-${version}/openid/guacamole-auth-sso-openid-${version}.jar";

  # Jar file names of extensions given by hand (nixmox.guacamole.extensionJars) that stand for each part.
  isJdbcJar = name: match "guacamole-auth-jdbc-postgresql-.*\\.jar" name != null;
  isOpenidJar = name: match "guacamole-auth-(sso-)?openid-.*\\.jar" name != null;

  # The schema is loaded when its first table (guacamole_entity, since Guacamole 1.0) is missing.
  schemaScript = schema: concatStringsSep "\n" [
    "\\set ON_ERROR_STOP on"
    "SELECT to_regclass('guacamole_entity') IS NULL AS nixmox_schema_missing \\gset"
    "\\if :nixmox_schema_missing"
    "\\echo 'nixmox: creating the Guacamole schema'"
    "\\i '${schema}'"
    "\\else"
    "\\echo 'nixmox: the Guacamole schema is already there'"
    "\\endif"
  ] + "\n";

  # The unit's script: psql as the owner over TCP, the password read from the unit's credential into psql's
  # environment (never an argument, never the store). `psql` and `host`/`port` are parameters so tests run it
  # with Debian's psql through a relay.
  schemaCommand = { psql, host, port, user, database, credential, script }: ''
    PGPASSWORD="$(< "$CREDENTIALS_DIRECTORY/${credential}")"
    export PGPASSWORD
    exec ${psql} --no-psqlrc --single-transaction --host='${host}' --port=${toString port} --username='${user}' --dbname='${database}' --file='${script}'
  '';
}
