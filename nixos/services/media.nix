# NixMox media module: Jellyfin, Sonarr, Radarr, Prowlarr and Transmission on one host, each on its
# `nixmox.media.apps.<app>.listen` (the route named after it, else the kind's default port, manifest/kinds.ts).
#
# Databases: Sonarr, Radarr and Prowlarr keep their data in PostgreSQL when the manifest gives them one
# (interface.dbs.<app>): the entry's name is the main database and its first additional database the log
# database. They read these settings from <APP>__POSTGRES__* environment variables (nixpkgs'
# services.<app>.settings, nixos/lib/media.nix); the password alone goes through a root-only environment file
# composed from the secret file when the app starts (core option nixmox.environmentFiles), never the store.
# Without an entry the app keeps SQLite. Jellyfin and Transmission have no PostgreSQL support.
#
# Login: routes with forward_auth need nothing here (the proxy asks the SSO provider first); the *arr apps keep
# their own login behind it. Jellyfin's OIDC login needs the SSO plugin (9p4/jellyfin-plugin-sso), which nixpkgs
# does not package and which is configured at runtime through Jellyfin's dashboard or API; this module cannot
# wire it, and warns with the values to enter (client id, issuer, redirect URI and the path of the client
# secret on this host, never the secret itself).
#
# Ports: Jellyfin's HTTP port lives in its own network.xml (Dashboard → Networking), not in NixOS options, so
# this module requires Jellyfin's default 8096. Jellyfin's client discovery (UDP 7359) and Transmission's
# BitTorrent peer port (51413, TCP and UDP) still listen; the firewall keeps them closed (ports can open the
# TCP peer port; incoming UDP peers stay out).
# Transmission's RPC IP allow-list is off (the proxy's address is not known here; the firewall decides who
# reaches the port) and its Host-header guard allows the route's domain. Its RPC asks for no password (the
# manifest has no secret for one): its route gets forward auth by default (manifest/resolve.ts routeAuth), and the
# firewall lets only the proxy reach its port (manifest/firewall.ts), unless the manifest lists it in public_ports.
#
# Checked against NixOS 25.11: nixos/modules/services/misc/jellyfin.nix (services.jellyfin.enable; no port
# option), nixos/modules/services/misc/servarr/{sonarr,radarr,prowlarr}.nix (services.<app>.{enable,settings,
# environmentFiles}; units sonarr/radarr/prowlarr.service), servarr/settings-options.nix, and
# nixos/modules/services/torrent/transmission.nix (services.transmission.{enable,package,settings}; its default
# package is still transmission_3, so transmission_4 is chosen explicitly).
{ config, lib, pkgs, ... }:
let
  inherit (lib) optional;
  cfg = config.nixmox.media;
  host = config.nixmox.host;
  build = import ../lib/media.nix;
  apps = cfg.apps;
  jellyfinOidc = apps.jellyfin.oidc;
  withDatabase = builtins.filter (app: cfg.databases ? ${app}) build.arrApps;
  jellyfinDefaultPort = 8096;

  arrService = app: {
    enable = true;
    settings = build.arrSettings cfg app;
    environmentFiles = optional (cfg.databases ? ${app}) config.nixmox.environmentFiles.${app}.path;
  };
in
{
  options.nixmox.media = import ./app-options.nix lib;

  config = {
    assertions = map (app: {
      assertion = builtins.elem apps.${app}.listen.port host.ports;
      message = "nixmox media: service \"${host.name}\" routes to ${app} on port ${toString apps.${app}.listen.port} but ports does not list it; add it to ports.";
    }) (builtins.filter (app: apps.${app}.publicUrl != null) (builtins.attrNames apps))
    ++ [
      {
        assertion = apps.jellyfin.listen.port == jellyfinDefaultPort;
        message = "nixmox media: service \"${host.name}\": Jellyfin listens on ${toString jellyfinDefaultPort} (its port is set in Jellyfin's network.xml, not by NixOS), but its route sends to port ${toString apps.jellyfin.listen.port}; use ${toString jellyfinDefaultPort} in interface.proxy.jellyfin.upstream.";
      }
    ]
    ++ map (app: {
      assertion = false;
      message = "nixmox media: service \"${host.name}\": ${app} also needs a log database; set interface.dbs.${app}.additionaldbs = [ \"${app}-log\" ].";
    }) (build.missingLogDatabases cfg);

    # A database no app here uses is still created on the PostgreSQL host (its role, password and pg_hba line), for a
    # module of the author's own: `nixmox validate` warns, and so does the rebuild.
    warnings = map (key:
      "nixmox media: service \"${host.name}\": interface.${if key == "db" then "db" else "dbs.${key}"} is used by no app on this host (${lib.concatStringsSep ", " build.arrApps} use interface.dbs.<app>); its database exists for a module of your own."
    ) (build.unknownDatabases cfg)
    ++ optional (jellyfinOidc != null)
      "nixmox media: service \"${host.name}\": Jellyfin's OIDC login is not configured by NixOS (the SSO plugin is not in nixpkgs). Install jellyfin-plugin-sso from Jellyfin's plugin catalog and add provider \"${jellyfinOidc.provider}\" with client id ${jellyfinOidc.clientId}, OpenID endpoint ${jellyfinOidc.issuer} and redirect ${lib.concatStringsSep " " jellyfinOidc.redirectUris}${if jellyfinOidc.clientSecretFile == null then " (a public client: no secret)" else "; the client secret is in ${jellyfinOidc.clientSecretFile} on this host"}.";

    services.jellyfin.enable = true;

    services.sonarr = arrService "sonarr";
    services.radarr = arrService "radarr";
    services.prowlarr = arrService "prowlarr";

    nixmox.environmentFiles = builtins.listToAttrs (map (app: {
      name = app;
      value = {
        consumers = [ "${app}.service" ];
        variables.${build.passwordVariable app}.file = cfg.databases.${app}.passwordFile;
      };
    }) withDatabase);

    # The apps bind the host's address, which exists once networkd has configured it (core.nix,
    # RequiredForOnline=routable). Jellyfin binds every address.
    systemd.services = lib.genAttrs [ "sonarr" "radarr" "prowlarr" "transmission" ] (_: {
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
    });

    services.transmission = {
      enable = true;
      package = pkgs.transmission_4;
      settings = build.transmissionSettings cfg;
    };
  };
}
