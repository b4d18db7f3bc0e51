# NixMox forgejo module: Forgejo on the manifest's address and port, PostgreSQL from interface.db, and an OIDC
# login source for the manifest's SSO provider.
#
# Database: nixpkgs' module hands the password file to Forgejo itself (services.forgejo.database.passwordFile →
# its `secrets` wrapper → LoadCredential= + environment-to-ini), so no environment file is composed here. The
# database lives on the manifest's PostgreSQL host, so createDatabase is off (the postgresql module creates it).
#
# Login source: nixpkgs cannot declare an OAuth2 source, and Forgejo's CLI takes the client secret only as
# `--secret <value>`, an argument every local user can read in the process list; no flag or variable reads it
# from a file (cmd/admin_auth_oauth.go). So the source is created or updated with every other flag
# (`forgejo admin auth add-oauth` / `update-oauth --id`), and the secret is then written into the source's
# stored JSON (login_source.cfg, key ClientSecret) by psql, which reads the credential file itself
# (../lib/forgejo.nix). This runs in forgejo.service's preStart, after the module's own preStart wrote app.ini and
# ran `forgejo migrate`, and before the web server starts: Forgejo registers its login sources when it starts, and
# the CLI needs that app.ini. (The brief asked for a separate oneshot unit; it could run neither before app.ini
# exists nor after the web server has loaded the sources.) The step is never fatal: the CLI fetches the provider's
# discovery document, which fails until NixMox has created the provider's application (it does so after this
# host's rebuild); Forgejo then starts without SSO (local accounts work) and logs why, and a timer
# (nixmox-forgejo-sso-retry, every 10 s while a source is pending) restarts it once the discovery document answers.
# A restart is what it takes: Forgejo registers its OAuth2 login sources with its OAuth2 library when it starts
# (services/auth/source/oauth2 init, called from the web routes' setup), and a source written to the database by
# another process (the CLI) is not seen by a running server. The kind's health check asks Forgejo itself whether a
# login reaches the provider (../lib/forgejo.nix ssoCheckScript). Known limit: if the UPDATE fails,
# PostgreSQL logs the statement, secret literal included, in the database host's journal (the postgresql module's
# passwords share this limit).
#
# Checked against NixOS 25.11: nixos/modules/services/misc/forgejo.nix (services.forgejo.{enable,package,stateDir,
# database.{type,host,port,name,user,passwordFile,createDatabase},settings.{server.{HTTP_ADDR,HTTP_PORT,DOMAIN,
# ROOT_URL,SSH_DOMAIN,SSH_PORT},session.COOKIE_SECURE,service,oauth2_client}}; unit forgejo.service with preStart,
# its LoadCredential list, FORGEJO_WORK_DIR/FORGEJO_CUSTOM), Forgejo's config cheat sheet
# (https://forgejo.org/docs/latest/admin/config-cheat-sheet/: [service] DISABLE_REGISTRATION,
# ALLOW_ONLY_EXTERNAL_REGISTRATION, [oauth2_client] ENABLE_AUTO_REGISTRATION, USERNAME, ACCOUNT_LINKING),
# pkgs.postgresql (psql client), pkgs.curl, systemd.timer(5) OnCalendar= and systemd.unit(5) ConditionPathExists=.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkIf mkAfter optionalAttrs;
  cfg = config.nixmox.forgejo;
  host = config.nixmox.host;
  db = cfg.database;
  oidc = cfg.oidc;
  forgejoLib = import ../lib/forgejo.nix;
  oidcLib = import ../lib/oidc.nix;
  hasSecret = oidc != null && oidc.clientSecretFile != null;
  # The source is named after the provider: its callback is /user/oauth2/<provider>/callback (manifest/kinds.ts).
  sourceName = if oidc == null then "" else oidc.provider;
  usernameSource = if oidc == null then null else forgejoLib.usernameSource oidc.usernameClaim;
  urlParts = if cfg.publicUrl == null then null else builtins.match "(https?)://([^/:]+)(:[0-9]+)?(/.*)?" cfg.publicUrl;
  # Written by the preStart while the login source could not be set up; cleared once it was.
  pendingFile = "${config.services.forgejo.stateDir}/nixmox-oidc-source-pending";
  secretSql = pkgs.writeText "nixmox-forgejo-oidc-secret.sql" (forgejoLib.secretSql { name = sourceName; credential = "nixmox_oidc_client_secret"; });
in
{
  options.nixmox.forgejo = import ./app-options.nix lib;

  config = {
    assertions = [
      {
        assertion = builtins.elem cfg.listen.port host.ports;
        message = "nixmox forgejo: service \"${host.name}\" listens on ${toString cfg.listen.port} but ports does not list it; add it to ports.";
      }
      {
        assertion = db != null;
        message = "nixmox forgejo: service \"${host.name}\" needs a PostgreSQL database; set interface.db.host to the postgresql service.";
      }
      {
        assertion = oidc == null || hasSecret;
        message = "nixmox forgejo: service \"${host.name}\" needs a confidential OIDC client (Forgejo sends a client secret); set interface.auth.oidc.client_type = \"confidential\".";
      }
      {
        assertion = oidc == null || oidcLib.isPlainName sourceName;
        message = "nixmox forgejo: service \"${host.name}\": the SSO provider name ${builtins.toJSON sourceName} names Forgejo's login source and its callback path; use letters, digits, '.', '_' or '-'.";
      }
      {
        assertion = oidc == null || usernameSource != null;
        message = "nixmox forgejo: service \"${host.name}\": Forgejo takes user names only from the claims preferred_username, sub or email, not ${builtins.toJSON (if oidc == null then "" else oidc.usernameClaim)}; set interface.auth.oidc.username_claim to one of them.";
      }
      {
        assertion = cfg.publicUrl == null || urlParts != null;
        message = "nixmox forgejo: service \"${host.name}\": public URL ${builtins.toJSON cfg.publicUrl} is not an http(s) URL.";
      }
    ];

    services.forgejo = {
      enable = true;
      # Forgejo encrypts two-factor secrets and stored credentials in its database with SECRET_KEY. nixpkgs generates
      # it into the state directory at the first start (services.forgejo.secrets, no mkDefault, hence mkForce); the
      # stack secret `secret_key` takes its place, so a restore of the database to a new container can read them (D2).
      secrets.security.SECRET_KEY = lib.mkIf (config.nixmox.secrets ? secret_key) (lib.mkForce config.nixmox.secrets.secret_key);
      database = mkIf (db != null) {
        type = "postgres";
        host = db.host;
        port = db.port;
        name = db.name;
        user = db.owner;
        passwordFile = db.passwordFile;
        createDatabase = false;
      };
      settings = {
        server = {
          HTTP_ADDR = cfg.listen.address;
          HTTP_PORT = cfg.listen.port;
          # Clone over SSH reaches this container's own sshd, not the reverse proxy the public URL points at.
          SSH_DOMAIN = "${host.hostName}.${host.domain}";
          SSH_PORT = host.sshPort;
        } // optionalAttrs (urlParts != null) {
          DOMAIN = builtins.elemAt urlParts 1;
          ROOT_URL = "${lib.removeSuffix "/" cfg.publicUrl}/";
        };
        session.COOKIE_SECURE = urlParts != null && builtins.head urlParts == "https";
        # Without SSO nobody signs up; with it, accounts come only from the provider.
        service = if oidc == null then { DISABLE_REGISTRATION = true; } else { ALLOW_ONLY_EXTERNAL_REGISTRATION = true; };
      } // optionalAttrs (oidc != null) {
        oauth2_client = {
          ENABLE_AUTO_REGISTRATION = true;
          USERNAME = usernameSource;
          ACCOUNT_LINKING = "login";
        };
      };
    };

    systemd.services.forgejo = mkIf (oidc != null && hasSecret && db != null) {
      # mkAfter: after the nixpkgs preStart (app.ini, `forgejo migrate`), which the CLI needs.
      preStart = mkAfter (forgejoLib.sourceScript {
        forgejo = lib.getExe config.services.forgejo.package;
        awk = "${pkgs.gawk}/bin/awk";
        # The client only; this host runs no PostgreSQL server.
        psql = "${pkgs.postgresql}/bin/psql";
        name = sourceName;
        inherit oidc db;
        sqlFile = secretSql;
        dbCredential = "nixmox_db_password";
        inherit pendingFile;
      });
      # Appended to the module's list; ids prefixed so they cannot collide with its FORGEJO__… credentials.
      serviceConfig.LoadCredential = [
        "nixmox_oidc_client_secret:${oidc.clientSecretFile}"
        "nixmox_db_password:${db.passwordFile}"
      ];
    };

    # While the login source is pending, restart Forgejo as soon as the provider's discovery document answers
    # (at most every 5 minutes, and never while it does not, so an unreachable provider causes no restart loop).
    systemd.services.nixmox-forgejo-sso-retry = mkIf (oidc != null && hasSecret && db != null) {
      description = "NixMox: restart Forgejo once its SSO provider answers, to create the pending login source";
      unitConfig.ConditionPathExists = pendingFile;
      serviceConfig.Type = "oneshot";
      script = ''
        if ${pkgs.curl}/bin/curl --silent --fail --max-time 10 --output /dev/null ${lib.escapeShellArg (oidcLib.discoveryUrl oidc.issuer)}; then
          systemctl try-restart forgejo.service
        fi
      '';
    };
    systemd.timers.nixmox-forgejo-sso-retry = mkIf (oidc != null && hasSecret && db != null) {
      wantedBy = [ "timers.target" ];
      # Calendar-based: OnUnitActiveSec= would not re-arm after a run skipped by its condition. Every 10 s, so the
      # deploy's health gate (which waits for the SSO application NixMox creates) sees logins work within its
      # retries; a run costs a stat() while nothing is pending and one curl while it is.
      timerConfig.OnCalendar = "*:*:0/10";
    };

    # The kind's "can log in" health check (manifest/kinds.ts, ../lib/forgejo.nix ssoCheckScript).
    environment.systemPackages = [
      (pkgs.writeShellScriptBin "nixmox-forgejo-sso-check" (if oidc == null || !hasSecret then ''
        echo "nixmox forgejo: no SSO client in the manifest; nothing to check"
      '' else forgejoLib.ssoCheckScript { curl = "${pkgs.curl}/bin/curl"; listen = cfg.listen; name = sourceName; inherit oidc; }))
    ];
  };
}
