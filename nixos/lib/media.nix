# Pure builders for nixos/services/media.nix (builtins only, so tests evaluate them with a bare
# `nix-instantiate --eval`, no nixpkgs needed). Input: the host's `nixmox.media` data (render/host-data.ts
# `AppData`: apps.<app>.{listen,publicUrl}, databases.<app>.{host,port,name,owner,passwordFile,additional}).
#
# Checked against: the Servarr environment variables (https://wiki.servarr.com/radarr/environment-variables,
# the same namespaces for Sonarr and Prowlarr: <APP>__SERVER__{PORT,BINDADDRESS}, <APP>__POSTGRES__{HOST,PORT,
# USER,PASSWORD,MAINDB,LOGDB}; each app binds its PostgresOptions {Host, Port, User, Password, MainDb, LogDb}
# from the "<App>:Postgres" section of its environment configuration: src/NzbDrone.Core/Datastore/
# PostgresOptions.cs of Sonarr and Prowlarr, Radarr's Bootstrap.cs `GetSection("Radarr:Postgres")`), NixOS
# 25.11 nixos/modules/services/misc/servarr/settings-options.nix (mkServarrSettingsEnvVars turns
# `settings.<section>.<key>` into <APP>__<SECTION>__<KEY>, upper-cased) and Transmission's settings.json keys (rpc-bind-address, rpc-port,
# rpc-host-whitelist, rpc-host-whitelist-enabled, rpc-whitelist-enabled;
# https://github.com/transmission/transmission/blob/main/docs/Editing-Configuration-Files.md).
let
  inherit (builtins) attrNames filter elem head length match elemAt replaceStrings;
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
in
rec {
  # The apps that keep their data in PostgreSQL when the manifest gives them a database (interface.dbs.<app>).
  arrApps = [ "prowlarr" "radarr" "sonarr" ];

  toUpper = replaceStrings lower upper;

  # `services.<app>.settings` of the nixpkgs module (every key becomes <APP>__<SECTION>__<KEY> in the unit's
  # environment, so only non-secret values go here). The main database is the entry's name, the log database
  # its first additional database.
  arrSettings = cfg: app:
    let
      listen = cfg.apps.${app}.listen;
      db = cfg.databases.${app} or null;
    in
    {
      server = {
        port = listen.port;
        bindaddress = listen.address;
      };
    }
    // (if db == null then { } else {
      postgres = {
        host = db.host;
        port = db.port;
        user = db.owner;
        maindb = db.name;
      } // (if db.additional == [ ] then { } else { logdb = head db.additional; });
    });

  # The one secret variable, composed into a root-only environment file (core option nixmox.environmentFiles).
  passwordVariable = app: "${toUpper app}__POSTGRES__PASSWORD";

  # Databases of the service that belong to no *arr app (a typo in interface.dbs, or an app that has none).
  unknownDatabases = cfg: filter (key: !(elem key arrApps)) (attrNames cfg.databases);

  # *arr apps with a database but no log database (the app would use "<app>-log", which nobody created). The plan
  # gives every *arr entry "<name>-log" when the manifest lists no additionaldbs, so this guards hand-written data.
  missingLogDatabases = cfg: filter (app: cfg.databases ? ${app} && length cfg.databases.${app}.additional < 1) arrApps;

  # "https://transmission.lan/x" → "transmission.lan"; null without a URL.
  urlHost = url:
    if url == null then null
    else
      let m = match "https?://([^/:]+).*" url;
      in if m == null then throw "nixmox media: ${url} is not an http(s) URL" else elemAt m 0;

  # Transmission answers RPC only for Host headers it knows (its DNS-rebinding guard): the route's domain.
  # The IP allow-list is off: requests come through the proxy, whose address this host does not know, and
  # the firewall (ports) decides who reaches the port.
  transmissionSettings = cfg:
    let app = cfg.apps.transmission; domain = urlHost app.publicUrl;
    in
    {
      rpc-bind-address = app.listen.address;
      rpc-port = app.listen.port;
      rpc-whitelist-enabled = false;
      rpc-host-whitelist-enabled = domain != null;
      rpc-host-whitelist = if domain == null then "" else domain;
    };
}
