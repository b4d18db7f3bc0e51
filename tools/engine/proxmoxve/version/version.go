// Package version holds the plugin version, set at build time with
// -ldflags "-X nixmox.local/engine/proxmoxve/version.Version=8.6.0" (tools/engine/build.sh).
package version

// Version is the version the engine sees: the one @muhlba91/pulumi-proxmoxve declares as `pulumi.version`.
var Version = "0.0.0-dev"
