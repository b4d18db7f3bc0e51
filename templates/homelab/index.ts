// This homelab's Pulumi program: NixMox's, for the stack's config (Pulumi.yaml declares every key; nixmox:manifest
// names the manifest, service-manifest.nix by default). `pulumi up` and `npx nixmox up` both run it.
import { nixmox } from "nixmox";

export = nixmox;
