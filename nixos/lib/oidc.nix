# Pure OpenID Connect helpers shared by the application modules (builtins only; evaluated for real in tests).
#
# Checked against: OpenID Connect Discovery 1.0, section 4 (the configuration document lives at
# "<issuer>/.well-known/openid-configuration", with exactly one "/" between the issuer and ".well-known").
let
  inherit (builtins) stringLength substring match;
  endsWithSlash = s: stringLength s > 0 && substring (stringLength s - 1) 1 s == "/";
in
{
  # The discovery document URL of an issuer, whether or not the issuer ends with "/" (authentik's does).
  discoveryUrl = issuer: (if endsWithSlash issuer then issuer else issuer + "/") + ".well-known/openid-configuration";

  # Names that reach URLs, CLI flags and config keys (provider names, client ids) keep to a safe alphabet,
  # so that no module has to quote them differently for each consumer.
  isPlainName = s: match "[A-Za-z0-9][A-Za-z0-9._-]*" s != null;
}
