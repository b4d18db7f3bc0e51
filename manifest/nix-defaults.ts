/** Nix's own defaults (nix.conf(5) substituters, trusted-public-keys): what a host uses when the manifest sets none. */
export const defaultSubstituters = ["https://cache.nixos.org"] as const;
export const defaultTrustedPublicKeys = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="] as const;
