// Package mapping maps bpg's Terraform Proxmox provider to the Pulumi package that @muhlba91/pulumi-proxmoxve's
// SDK speaks: package "proxmoxve", one token per Terraform resource and data source.
//
// Written for NixMox from the rules the SDK's tokens follow (tests/engine-plugins.test.ts checks every token and
// input property of the resources NixMox uses against the installed SDK):
//   - `proxmox_virtual_environment_<a>_<b>` is the legacy generation: `proxmoxve:<a>/<b>Legacy:<B>Legacy`;
//   - `proxmox_<a>_<b>` is the current one: `proxmoxve:<a>/<b>:<B>`;
//   - a single word lives in module `index` (`proxmox_virtual_environment_container` →
//     `proxmoxve:index/containerLegacy:ContainerLegacy`), several words before the last form the module path;
//   - data sources take a `get` prefix.
//
// A resource whose Terraform schema has an `id` attribute of its own gets it as `resourceId`, since `id` is the
// engine's (the SDK's `vmLegacy` and friends have `resourceId` inputs).
package mapping

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"unicode"

	"github.com/bpg/terraform-provider-proxmox/fwprovider"
	sdkprovider "github.com/bpg/terraform-provider-proxmox/proxmoxtf/provider"
	pfbridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"nixmox.local/engine/proxmoxve/version"
)

// Schema is the Pulumi package schema that pulumi-tfgen-proxmoxve generated from Provider (build.sh writes it here
// before the plugin is compiled). The plugin serves it and the bridge's muxer reads which sub-provider owns a token.
//
//go:embed schema-embed.json
var Schema []byte

// metadata is the bridge's metadata (the mux table among it), generated beside the schema.
//
//go:embed bridge-metadata.json
var metadata []byte

const pkg = "proxmoxve"

// Provider is the bridge's description of bpg's provider: its SDKv2 half and its plugin-framework half, muxed.
func Provider() tfbridge.ProviderInfo {
	ctx := context.Background()
	sdkHalf := shimv2.NewProvider(sdkprovider.ProxmoxVirtualEnvironment())
	muxed := pfbridge.MuxShimWithPF(ctx, sdkHalf, fwprovider.New(version.Version)())

	info := tfbridge.ProviderInfo{
		P:                 muxed,
		Name:              "proxmox",
		DisplayName:       "Proxmox Virtual Environment",
		Description:       "bpg's Terraform Proxmox provider, bridged for NixMox's engine tests.",
		License:           "Apache-2.0",
		GitHubOrg:         "bpg",
		Version:           version.Version,
		PluginDownloadURL: "github://api.github.com/muhlba91/pulumi-proxmoxve",
		Config:            map[string]*tfbridge.SchemaInfo{},
		Resources:         ownIDsAsResourceID(muxed),
		DataSources:       map[string]*tfbridge.DataSourceInfo{},
		JavaScript:        &tfbridge.JavaScriptInfo{PackageName: "@muhlba91/pulumi-proxmoxve"},
		MetadataInfo:      tfbridge.NewProviderMetadata(metadata),
	}
	info.MustComputeTokens(tfbridge.Strategy{
		Resource: func(tfToken string, r *tfbridge.ResourceInfo) error {
			if r.Tok == "" {
				module, name := tokenParts(tfToken)
				r.Tok = tfbridge.MakeResource(pkg, module, name)
			}
			return nil
		},
		DataSource: func(tfToken string, d *tfbridge.DataSourceInfo) error {
			if d.Tok == "" {
				module, name := tokenParts(tfToken)
				d.Tok = tfbridge.MakeDataSource(pkg, module, "get"+name)
			}
			return nil
		},
	})
	info.SetAutonaming(255, "-")
	return info
}

// tokenParts turns a Terraform type name into the module and PascalCase member name of its Pulumi token.
func tokenParts(tfToken string) (module string, name string) {
	legacy := strings.HasPrefix(tfToken, "proxmox_virtual_environment_")
	rest := strings.TrimPrefix(strings.TrimPrefix(tfToken, "proxmox_virtual_environment_"), "proxmox_")
	words := strings.Split(rest, "_")
	last := words[len(words)-1]
	module = "index"
	if len(words) > 1 {
		module = strings.Join(words[:len(words)-1], "/")
	}
	if unicode.IsDigit(rune(module[0])) || unicode.IsDigit(rune(last[0])) {
		panic(fmt.Sprintf("%s: a Pulumi token part cannot start with a digit", tfToken))
	}
	name = pascal(last)
	if legacy {
		name += "Legacy"
	}
	return module, name
}

func pascal(word string) string {
	return strings.ToUpper(word[:1]) + word[1:]
}

// ownIDsAsResourceID renames a resource's own `id` attribute to `resourceId`, and takes the resource's id from it.
func ownIDsAsResourceID(p shim.Provider) map[string]*tfbridge.ResourceInfo {
	resources := map[string]*tfbridge.ResourceInfo{}
	p.ResourcesMap().Range(func(tfToken string, r shim.Resource) bool {
		id, ok := r.Schema().GetOk("id")
		if !ok || (id.Computed() && !id.Optional() && !id.Required()) {
			return true
		}
		resources[tfToken] = &tfbridge.ResourceInfo{
			Fields: map[string]*tfbridge.SchemaInfo{"id": {Name: "resourceId", Type: "string"}},
			ComputeID: func(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
				value := state["resourceId"]
				switch {
				case value.IsString():
					return resource.ID(value.StringValue()), nil
				case value.IsNumber():
					return resource.ID(fmt.Sprintf("%d", int64(value.NumberValue()))), nil
				}
				return "", fmt.Errorf("%s: resourceId is %v, not a string or number", tfToken, value)
			},
		}
		return true
	})
	return resources
}

