/**
 * This repository's Pulumi program (Pulumi.yaml `main`): NixMox's program, exactly as a homelab project made by
 * `nixmox init` exports it from the package (`import { nixmox } from "nixmox"`). The pipeline is program.ts.
 */
import { nixmox } from "./program";

export = nixmox;
