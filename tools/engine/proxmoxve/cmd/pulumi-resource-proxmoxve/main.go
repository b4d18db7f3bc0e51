// pulumi-resource-proxmoxve is the resource plugin the engine starts for @muhlba91/pulumi-proxmoxve resources.
package main

import (
	"context"

	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"

	"nixmox.local/engine/proxmoxve/mapping"
)

func main() {
	pfbridge.MainWithMuxer(context.Background(), "proxmoxve", mapping.Provider(), mapping.Schema)
}
