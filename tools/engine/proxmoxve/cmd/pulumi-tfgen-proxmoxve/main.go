// pulumi-tfgen-proxmoxve writes the package schema and the bridge metadata of mapping.Provider
// (`pulumi-tfgen-proxmoxve schema --out DIR`); tools/engine/build.sh runs it before building the plugin.
package main

import (
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"nixmox.local/engine/proxmoxve/mapping"
)

func main() {
	pftfgen.MainWithMuxer("proxmoxve", mapping.Provider())
}
