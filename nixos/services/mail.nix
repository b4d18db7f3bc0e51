# NixMox mail module: Postfix as the homelab's mail server, SMTP on 25 and submission on 587 (the kind's ports in
# manifest/kinds.ts), relaying for the homelab network so that its services can send mail. No OIDC: SMTP has no
# browser login.
#
# Basics only: no TLS certificate and no SASL users are in the manifest, so submission (587) accepts mail from the
# homelab network only (permit_mynetworks) instead of nixpkgs' default (TLS required, SASL login), which could not
# work here; mail leaves by direct MX delivery (no relay host is in the manifest). Add TLS, SASL, a relay host or
# mailboxes with a custom module.
#
# Checked against NixOS 25.11: nixos/modules/services/mail/postfix.nix (services.postfix.{enable,
# settings.main.{myhostname,mydomain,mydestination,mynetworks}}, settings.main being the freeform main.cf since
# 25.11 (was services.postfix.config); unit postfix.service) and, for services.postfix.{enableSubmission,
# submissionOptions}, the module before that rename (they were not renamed: 25.11 configurations use
# enableSubmission next to settings.main); postconf(5) for the parameter names.
{ config, lib, ... }:
let
  host = config.nixmox.host;
  fqdn = "${host.hostName}.${host.domain}";
in
{
  options.nixmox.mail = import ./app-options.nix lib;

  config = {
    assertions = map (port: {
      assertion = builtins.elem port host.ports;
      message = "nixmox mail: service \"${host.name}\" runs Postfix on ${toString port} but ports does not list it; add it to ports.";
    }) [ 25 587 ];

    services.postfix = {
      enable = true;
      settings.main = {
        myhostname = fqdn;
        mydomain = host.domain;
        mydestination = [ fqdn "localhost.${host.domain}" "localhost" ];
        # The homelab's services may relay through this host; nobody else may.
        mynetworks = [ "127.0.0.0/8" host.networkCidr ];
      };
      enableSubmission = true;
      submissionOptions = {
        smtpd_client_restrictions = "permit_mynetworks,reject";
        smtpd_relay_restrictions = "permit_mynetworks,reject";
      };
    };
  };
}
