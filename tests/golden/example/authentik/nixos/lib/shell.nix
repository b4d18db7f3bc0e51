# Pure helpers for values that reach a shell or a systemd unit (builtins only; evaluated for real in tests).
#
# Checked against: POSIX Shell Command Language, 2.2.2 Single-Quotes, and systemd.exec(5) LoadCredential=
# (systemd 257, as in NixOS 25.11).
let
  inherit (builtins) replaceStrings match;
in
{
  # POSIX single-quoting: the only character that needs care inside '…' is ' itself.
  shellQuote = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] s + "'";

  # Secret files are referenced by absolute path only; restricting the characters keeps them safe in
  # LoadCredential= (where ':' separates id and path) and in generated scripts.
  isSafePath = p: match "/[A-Za-z0-9._/-]+" p != null;

  # systemd credential ids: no '/' or ':' (systemd.exec(5), LoadCredential=).
  credentialId = name: replaceStrings [ "/" ":" ] [ "_" "_" ] name;
}
