# Pure Caddyfile builders for nixos/services/caddy.nix (builtins only, so tests evaluate them with a bare
# `nix-instantiate --eval`, no nixpkgs needed).
#
# Checked against: Caddy 2.10 Caddyfile docs (https://caddyserver.com/docs/caddyfile/directives/handle,
# .../forward_auth, .../tls, .../reverse_proxy) and authentik's Caddy forward-auth guide
# (https://docs.goauthentik.io/add-secure-apps/providers/proxy/server_caddy/).
#
# Routes come from the generated host data (render/host-data.ts): { name, service, domain, path, upstream,
# tls, forwardAuthUpstream, extraConfig }. All routes of one domain share one site block, because Caddy
# rejects two site blocks with the same address.
let
  inherit (builtins) concatStringsSep filter map sort stringLength substring length head elem attrNames
    listToAttrs replaceStrings;

  # Headers authentik's outpost returns to the proxy; copied to the upstream request (authentik docs above).
  authentikHeaders = [
    "X-Authentik-Username"
    "X-Authentik-Groups"
    "X-Authentik-Entitlements"
    "X-Authentik-Email"
    "X-Authentik-Name"
    "X-Authentik-Uid"
    "X-Authentik-Jwt"
    "X-Authentik-Meta-Jwks"
    "X-Authentik-Meta-Outpost"
    "X-Authentik-Meta-Provider"
    "X-Authentik-Meta-App"
    "X-Authentik-Meta-Version"
  ];

  endsWith = suffix: s:
    let
      ls = stringLength s;
      lx = stringLength suffix;
    in
    ls >= lx && substring (ls - lx) lx s == suffix;

  stripTrailingSlash = p: if p != "/" && endsWith "/" p then substring 0 (stringLength p - 1) p else p;

  indentLines = prefix: text:
    concatStringsSep "\n" (map (line: if line == "" then "" else prefix + line)
      (filter builtins.isString (builtins.split "\n" text)));

  uniq = list: builtins.foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] list;
in
rec {
  inherit authentikHeaders;

  # The site address: plain HTTP routes are prefixed with http:// so Caddy does not redirect them to HTTPS.
  siteAddress = domain: tls: if tls == "off" then "http://${domain}" else domain;

  # Caddy path matcher tokens for a route path: "/" matches everything (null), "/x*" is used as written,
  # "/x" matches "/x" and everything below it (not "/xy").
  pathMatcher = path:
    if path == "/" then null
    else if endsWith "*" path then [ path ]
    else
      let p = stripTrailingSlash path; in [ p "${p}/*" ];

  # Matcher names must be unique inside a site block; route names are unique per service.
  matcherName = route: "nixmox_" + replaceStrings [ "-" "." ] [ "_" "_" ] "${route.service}_${route.name}";

  # No `trusted_proxies`: Caddy is the edge, so the X-Forwarded-* headers it sends to the outpost must be the
  # ones it derives from the real request, never a client's (Caddy 2.5 release notes: incoming X-Forwarded-*
  # are only kept from trusted proxies; "private_ranges" would trust every LAN client).
  forwardAuthBlock = upstream: concatStringsSep "\n" [
    "forward_auth ${upstream} {"
    "\turi /outpost.goauthentik.io/auth/caddy"
    "\tcopy_headers ${concatStringsSep " " authentikHeaders}"
    "}"
  ];

  # The Caddyfile parser rejects a token after "{" on the same line ("Unexpected next token after '{' on same
  # line"), so a one-line block from the manifest such as `header { -Server }` is opened up onto lines.
  # Placeholders (`{http.request.host}`) have no blank after "{" or before "}" and are left alone.
  expandBlocks = text:
    let
      sub = regex: replacement: t: builtins.concatStringsSep "" (map (x: if builtins.isList x then replacement else x) (builtins.split regex t));
    in
    sub "[ \t]+}" "\n}" (sub "\\{[ \t]+" "{\n" text);

  # Paths of the route the proxy refuses with 403 (render/host-data.ts blockedPaths: Loki's push endpoints), as a
  # matcher scoped to the route's handle block. `respond` sorts before `reverse_proxy` in Caddy's directive order
  # (https://caddyserver.com/docs/caddyfile/directives#directive-order), so these requests never reach the upstream.
  blockedBlock = route:
    let paths = route.blockedPaths or [ ]; in
    if paths == [ ] then ""
    else "@${matcherName route}_blocked path ${concatStringsSep " " paths}\nrespond @${matcherName route}_blocked 403";

  # The body of one route: forward auth first (it must run before the proxy), then the refused paths and the
  # user's directives, then the proxy itself.
  routeBody = route: concatStringsSep "\n" (filter (s: s != "") [
    (if route.forwardAuthUpstream != null then forwardAuthBlock route.forwardAuthUpstream else "")
    (blockedBlock route)
    (expandBlocks route.extraConfig)
    "reverse_proxy ${route.upstream}"
  ]);

  # One `handle` per route; the most specific paths first and the catch-all last, because Caddy keeps
  # named-matcher `handle` blocks in the order written and runs the first one that matches.
  routeHandle = route:
    let m = pathMatcher route.path; in
    if m == null then "handle {\n${indentLines "\t" (routeBody route)}\n}"
    else
      "@${matcherName route} path ${concatStringsSep " " m}\n"
      + "handle @${matcherName route} {\n${indentLines "\t" (routeBody route)}\n}";

  sortRoutes = routes: sort
    (a: b:
      let
        la = if a.path == "/" then -1 else stringLength a.path;
        lb = if b.path == "/" then -1 else stringLength b.path;
      in
      if la != lb then la > lb else a.path < b.path)
    routes;

  # Outposts a domain's forward-auth routes ask; more than one per domain is rejected by the module.
  outpostsOf = routes: uniq (filter (u: u != null) (map (r: r.forwardAuthUpstream) routes));

  # The site block of one domain. The outpost's own endpoints (/outpost.goauthentik.io/*) are proxied to the
  # outpost when any route of the domain uses forward auth, as authentik's Caddy guide requires. That proxy
  # is a `handle` written first: a bare top-level `reverse_proxy` would sort after every `handle` in Caddy's
  # directive order (https://caddyserver.com/docs/caddyfile/directives#directive-order) and the catch-all
  # route would swallow the outpost's callback.
  siteBlockWith = ca: domain: routes:
    let
      tls = (head routes).tls;
      outposts = outpostsOf routes;
      outpostHandle = u: "@nixmox_outpost path /outpost.goauthentik.io/*\nhandle @nixmox_outpost {\n\treverse_proxy ${u}\n}";
      lines = filter (s: s != "") (
        [ (if tls == "internal" then internalTls ca else "") ]
        ++ (if outposts == [ ] then [ ] else [ (outpostHandle (head outposts)) ])
        ++ map routeHandle (sortRoutes routes)
      );
    in
    "${siteAddress domain tls} {\n${indentLines "\t" (concatStringsSep "\n" lines)}\n}\n";

  siteBlock = siteBlockWith null;

  # `tls = "internal"`: Caddy's own CA (generated in its data directory, trusted by nobody), or with a managed
  # CA the `nixmox` CA of the pki block below (https://caddyserver.com/docs/caddyfile/directives/tls, issuer
  # internal { ca <id> }).
  internalTls = ca: if ca == null then "tls internal" else "tls {\n\tissuer internal {\n\t\tca ${caId}\n\t}\n}";

  caId = "nixmox";

  # The managed CA's root certificate and its intermediate's certificate and key, handed to the caddy unit with
  # LoadCredential= under these ids (nixos/services/caddy.nix); {$CREDENTIALS_DIRECTORY} is replaced from caddy's
  # environment when the Caddyfile is read (https://caddyserver.com/docs/caddyfile/concepts#environment-variables).
  caCredentials = { cert = "nixmox_ca_cert"; intermediateCert = "nixmox_ca_intermediate_cert"; intermediateKey = "nixmox_ca_intermediate_key"; };

  # The caddy unit's credentials, id → file (systemd.exec(5) LoadCredential=): the managed CA's root certificate and
  # its intermediate's certificate and key, none with Caddy's own CA. nixos/services/caddy.nix hands exactly these
  # over; the twin's stand-in does too.
  credentialsWith = ca: if ca == null then { } else {
    ${caCredentials.cert} = ca.certFile;
    ${caCredentials.intermediateCert} = ca.intermediateCertFile;
    ${caCredentials.intermediateKey} = ca.intermediateKeyFile;
  };
  credentials = data: credentialsWith (data.caddy.ca or null);

  # Global `pki` block (https://caddyserver.com/docs/caddyfile/options#pki): Caddy signs every site with the given
  # intermediate and builds the chain up to the given root. The root's key never reaches this host, but Caddy's
  # Caddyfile wants a key in `root` and loads it at start: the intermediate's key stands there, unused while an
  # intermediate is given (caddyserver/caddy#6290, caddyserver/website#562; checked live with Debian's caddy in
  # tests/daemon-caddy.test.ts). Caddy does not renew an intermediate it is given: NixMox does (components/managed-ca.ts).
  pkiBlock = concatStringsSep "\n" [
    "pki {"
    "\tca ${caId} {"
    "\t\tname \"NixMox\""
    "\t\troot {"
    "\t\t\tcert {$CREDENTIALS_DIRECTORY}/${caCredentials.cert}"
    "\t\t\tkey {$CREDENTIALS_DIRECTORY}/${caCredentials.intermediateKey}"
    "\t\t}"
    "\t\tintermediate {"
    "\t\t\tcert {$CREDENTIALS_DIRECTORY}/${caCredentials.intermediateCert}"
    "\t\t\tkey {$CREDENTIALS_DIRECTORY}/${caCredentials.intermediateKey}"
    "\t\t}"
    "\t}"
    "}"
  ];

  # { "<domain>" = [ routes ]; } in domain order.
  routesByDomain = routes:
    let domains = sort builtins.lessThan (uniq (map (r: r.domain) routes)); in
    listToAttrs (map (d: { name = d; value = filter (r: r.domain == d) routes; }) domains);

  # Domains whose forward-auth routes name different outposts (one site block can proxy only one).
  conflictingOutposts = routes:
    let byDomain = routesByDomain routes; in
    filter (d: length (outpostsOf byDomain.${d}) > 1) (attrNames byDomain);

  # Domains whose routes disagree on TLS (they would need two site blocks with the same address).
  conflictingTls = routes:
    let byDomain = routesByDomain routes; in
    filter (d: length (uniq (map (r: r.tls) byDomain.${d})) > 1) (attrNames byDomain);

  # The whole Caddyfile body (site blocks only), deterministic: domains sorted, routes by specificity.
  # `ca`: null (Caddy's own internal CA) or the managed CA's { certFile, intermediateCertFile, intermediateKeyFile } (see pkiBlock).
  caddyfileWith = ca: routes:
    let byDomain = routesByDomain routes; in
    concatStringsSep "\n" (map (d: siteBlockWith ca d byDomain.${d}) (attrNames byDomain));

  caddyfile = caddyfileWith null;

  # Lines of the global options block the module sets through services.caddy.globalConfig.
  # skip_install_trust: Caddy would otherwise try (and, unprivileged, fail) to add its root to the host's
  # trust store at every start (https://caddyserver.com/docs/caddyfile/options#skip-install-trust).
  globalConfigWith = ca: "skip_install_trust" + (if ca == null then "" else "\n${pkiBlock}");

  globalConfig = globalConfigWith null;

  # The Caddyfile the NixOS module writes to /etc/caddy/caddy_config, rebuilt from the same values:
  # nixos/modules/services/web-servers/caddy/default.nix (nixos-25.11) puts `email`, then the
  # `log { level ERROR }` default of services.caddy.logFormat and the globalConfig lines inside one global
  # block, then extraConfig (virtualHosts are not used). Caddy then `caddy fmt`s it; formatting only.
  nixosCaddyfile = { email, routes, ca ? null }:
    "{\n"
    + (if email == null then "" else "\temail ${email}\n")
    + "${indentLines "\t" (globalConfigWith ca)}\n\tlog {\n\t\tlevel ERROR\n\t}\n}\n\n"
    + caddyfileWith ca routes;

  # `nixmox render --configs`: the daemon files of a proxy host, from its host.json (the `nixmox` option tree).
  configFiles = data: {
    Caddyfile = nixosCaddyfile { email = data.caddy.acmeEmail or null; routes = data.caddy.routes; ca = data.caddy.ca or null; };
  };
}
