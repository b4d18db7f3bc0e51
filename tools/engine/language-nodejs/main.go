// pulumi-language-nodejs, NixMox's own minimal Node.js language host.
//
// Why it exists: the Go module proxy our machines reach refuses Pulumi's language host module,
// github.com/pulumi/pulumi/sdk/nodejs/cmd/pulumi-language-nodejs/v3, at every version (403 "This module version is
// not available"), and without a language host the engine cannot run a Node.js program at all. This host
// implements only what `pulumi preview|up|refresh|destroy` ask of a language host, written for NixMox against the
// LanguageRuntime service of github.com/pulumi/pulumi/sdk/v3 (proto/language.proto):
//   - Run: starts `node <@pulumi/pulumi/cmd/run> … <entry point>` in the program's folder with the engine's config
//     (PULUMI_CONFIG, PULUMI_CONFIG_SECRET_KEYS) and the project's runtime options (typescript, tsconfig, nodeargs),
//     and reports its exit: code 32 is the SDK's "already told the user" bail;
//   - GetRequiredPackages / GetRequiredPlugins: the resource plugins that node_modules' packages declare
//     (`"pulumi": {"resource": true, "name", "version", "server"}` in their package.json);
//   - Handshake, GetPluginInfo, Cancel.
//
// What the real host does and this one does not: no monitor proxy and no synchronous-invoke pipes (the SDK's
// deprecated `invokeSync`), no debugger, no dependency installation, no `pulumi about` details, no code generation,
// packing or linking, no bun runtime. Its version says so: 3.276.0+nixmox.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/shlex"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Version is set at build time (-ldflags "-X main.Version=…", tools/engine/build.sh).
var Version = "0.0.0+nixmox"

// bailExitCode is the exit code with which @pulumi/pulumi's run script says it has already printed an actionable
// message (sdk/nodejs/cmd/run: `process.exitCode = 32`), so the engine prints nothing more.
const bailExitCode = 32

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	tracing := flag.String("tracing", "", "a Zipkin-compatible tracing endpoint, passed on to the program")
	runtimeName := flag.String("runtime", "nodejs", "only nodejs is supported")
	// Engines before the runtime options moved into ProgramInfo pass Pulumi.yaml's `runtime.options` as flags, plus
	// -root (sdk/go/common/resource/plugin/langruntime_plugin.go `buildArgsForNewPlugin` up to 3.2xx): the same
	// options, used when the request carries none.
	legacy := runtimeOptionFlags{
		typescript:     flag.Bool("typescript", true, "compile TypeScript (runtime option typescript)"),
		tsconfig:       flag.String("tsconfig", "", "the tsconfig.json to compile with (runtime option tsconfig)"),
		nodeargs:       flag.String("nodeargs", "", "extra arguments for node (runtime option nodeargs)"),
		packagemanager: flag.String("packagemanager", "", "accepted and unused: this host installs no dependencies"),
		root:           flag.String("root", "", "accepted and unused: the program's folder comes with each request"),
	}
	flag.Parse()
	if *showVersion {
		fmt.Println(Version)
		return
	}
	if *runtimeName != "nodejs" {
		cmdutil.Exit(fmt.Errorf("runtime %q is not supported by this language host; only nodejs is", *runtimeName))
	}

	engineAddress := flag.Arg(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if engineAddress != "" {
		// Exit when the engine goes away, as every plugin does.
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, cancel); err != nil {
			cmdutil.Exit(fmt.Errorf("could not start the engine health check: %w", err))
		}
	}

	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
	}()
	host := &languageHost{engineAddress: engineAddress, tracing: *tracing, running: map[*exec.Cmd]struct{}{}, legacyOptions: legacy.asOptions()}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(server *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(server, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start the language host's RPC server: %w", err))
	}
	// The engine reads the port from the first line of our standard output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("the language host's RPC server stopped: %w", err))
	}
}

type languageHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	engineAddress string
	tracing       string
	// The runtime options an older engine passed as flags, for requests that carry none.
	legacyOptions map[string]any

	mu      sync.Mutex
	running map[*exec.Cmd]struct{}
}

func (h *languageHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *languageHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

func (h *languageHost) GetRequiredPackages(
	_ context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	packages, err := resourcePackages(req.GetInfo().GetProgramDirectory())
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: packages}, nil
}

func (h *languageHost) GetRequiredPlugins(
	_ context.Context, req *pulumirpc.GetRequiredPluginsRequest,
) (*pulumirpc.GetRequiredPluginsResponse, error) {
	packages, err := resourcePackages(req.GetInfo().GetProgramDirectory())
	if err != nil {
		return nil, err
	}
	plugins := make([]*pulumirpc.PluginDependency, 0, len(packages))
	for _, p := range packages {
		plugins = append(plugins, &pulumirpc.PluginDependency{Name: p.Name, Kind: p.Kind, Version: p.Version, Server: p.Server})
	}
	return &pulumirpc.GetRequiredPluginsResponse{Plugins: plugins}, nil
}

// packageJSON is the part of an npm package's package.json that names its resource plugin.
type packageJSON struct {
	Name   string `json:"name"`
	Pulumi *struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

// resourcePackages lists the resource plugins declared by the packages in the program's node_modules (scoped
// packages included), sorted by name, one entry per name and version.
func resourcePackages(programDirectory string) ([]*pulumirpc.PackageDependency, error) {
	root, err := findNodeModules(programDirectory)
	if err != nil || root == "" {
		return nil, err
	}
	manifests, err := filepath.Glob(filepath.Join(root, "*", "package.json"))
	if err != nil {
		return nil, err
	}
	scoped, err := filepath.Glob(filepath.Join(root, "@*", "*", "package.json"))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var packages []*pulumirpc.PackageDependency
	for _, path := range append(manifests, scoped...) {
		text, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var info packageJSON
		if json.Unmarshal(text, &info) != nil || info.Pulumi == nil || !info.Pulumi.Resource {
			continue
		}
		name := info.Pulumi.Name
		if name == "" {
			name = strings.TrimPrefix(info.Name[strings.LastIndex(info.Name, "/")+1:], "pulumi-")
		}
		key := name + "@" + info.Pulumi.Version
		if seen[key] {
			continue
		}
		seen[key] = true
		packages = append(packages, &pulumirpc.PackageDependency{
			Name: name, Kind: "resource", Version: info.Pulumi.Version, Server: info.Pulumi.Server,
		})
	}
	sort.Slice(packages, func(i, j int) bool { return packages[i].Name < packages[j].Name })
	return packages, nil
}

// findNodeModules returns the nearest node_modules folder at or above dir, as Node's resolution finds it.
func findNodeModules(dir string) (string, error) {
	for dir != "" {
		candidate := filepath.Join(dir, "node_modules")
		if info, err := os.Stat(candidate); err == nil && info.IsDir() {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", nil
		}
		dir = parent
	}
	return "", nil
}

// runtimeOptionFlags are the flags an older engine sets from Pulumi.yaml's `runtime.options`.
type runtimeOptionFlags struct {
	typescript     *bool
	tsconfig       *string
	nodeargs       *string
	packagemanager *string
	root           *string
}

func (f runtimeOptionFlags) asOptions() map[string]any {
	options := map[string]any{"typescript": *f.typescript}
	if *f.tsconfig != "" {
		options["tsconfig"] = *f.tsconfig
	}
	if *f.nodeargs != "" {
		options["nodeargs"] = *f.nodeargs
	}
	return options
}

// runtimeOptions are Pulumi.yaml's `runtime.options` that change how the program starts.
type runtimeOptions struct {
	typescript   bool
	tsconfigPath string
	nodeArgs     []string
}

func parseRuntimeOptions(options map[string]any) (runtimeOptions, error) {
	parsed := runtimeOptions{typescript: true}
	if value, ok := options["typescript"]; ok {
		flag, isBool := value.(bool)
		if !isBool {
			return parsed, fmt.Errorf("runtime option typescript must be true or false, got %v", value)
		}
		parsed.typescript = flag
	}
	if value, ok := options["tsconfig"]; ok {
		path, isString := value.(string)
		if !isString {
			return parsed, fmt.Errorf("runtime option tsconfig must be a path, got %v", value)
		}
		parsed.tsconfigPath = path
	}
	if value, ok := options["nodeargs"]; ok {
		text, isString := value.(string)
		if !isString {
			return parsed, fmt.Errorf("runtime option nodeargs must be a string, got %v", value)
		}
		args, err := shlex.Split(text)
		if err != nil {
			return parsed, fmt.Errorf("runtime option nodeargs: %w", err)
		}
		parsed.nodeArgs = args
	}
	return parsed, nil
}

func (h *languageHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	if info == nil {
		return &pulumirpc.RunResponse{Error: "the engine sent no program info"}, nil
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on the PATH: " + err.Error()}, nil
	}
	given := info.GetOptions().AsMap()
	if len(given) == 0 {
		given = h.legacyOptions
	}
	options, err := parseRuntimeOptions(given)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	runScript, err := resolveModule(ctx, node, info.GetProgramDirectory(), "@pulumi/pulumi/cmd/run")
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	configJSON, err := legacyConfig(req.GetConfig())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	secretKeys, err := json.Marshal(nonNil(req.GetConfigSecretKeys()))
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := append(append([]string{}, options.nodeArgs...), runScript)
	flagArg := func(name, value string) {
		if value != "" {
			args = append(args, "--"+name, value)
		}
	}
	flagArg("monitor", req.GetMonitorAddress())
	flagArg("engine", h.engineAddress)
	flagArg("organization", req.GetOrganization())
	flagArg("project", req.GetProject())
	flagArg("root-directory", info.GetRootDirectory())
	flagArg("stack", req.GetStack())
	flagArg("pwd", info.GetProgramDirectory())
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	flagArg("parallel", strconv.Itoa(int(req.GetParallel())))
	flagArg("tracing", h.tracing)
	args = append(args, info.GetEntryPoint())
	args = append(args, req.GetArgs()...)

	env := append(os.Environ(), "PULUMI_CONFIG="+configJSON, "PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys))
	if options.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if options.tsconfigPath != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+options.tsconfigPath)
	}

	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = info.GetProgramDirectory()
	cmd.Env = env
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return &pulumirpc.RunResponse{Error: "could not start the program: " + err.Error()}, nil
	}
	h.track(cmd, true)
	err = cmd.Wait()
	h.track(cmd, false)

	var exit *exec.ExitError
	switch {
	case err == nil:
		return &pulumirpc.RunResponse{}, nil
	case errors.As(err, &exit) && exit.ExitCode() == bailExitCode:
		return &pulumirpc.RunResponse{Bail: true}, nil
	case errors.As(err, &exit):
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return &pulumirpc.RunResponse{Error: "the program was stopped by signal " + status.Signal().String()}, nil
		}
		return &pulumirpc.RunResponse{Error: fmt.Sprintf("the program exited with code %d", exit.ExitCode())}, nil
	default:
		return &pulumirpc.RunResponse{Error: "could not run the program: " + err.Error()}, nil
	}
}

func (h *languageHost) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for cmd := range h.running {
		_ = cmd.Process.Signal(os.Interrupt)
	}
	return &emptypb.Empty{}, nil
}

func (h *languageHost) track(cmd *exec.Cmd, running bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if running {
		h.running[cmd] = struct{}{}
	} else {
		delete(h.running, cmd)
	}
}

// resolveModule asks node where a module resolves from the program's folder, as the program itself would load it.
func resolveModule(ctx context.Context, node, dir, module string) (string, error) {
	cmd := exec.CommandContext(ctx, node, "-e", "process.stdout.write(require.resolve(process.argv[1]))", module)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("could not find %s from %s (is @pulumi/pulumi installed there? run npm ci): %w",
			module, dir, err)
	}
	return string(out), nil
}

// legacyConfig renders the engine's config for the SDK as JSON, keys in the `<namespace>:config:<name>` form that
// every @pulumi/pulumi version reads (newer ones read `<namespace>:<name>` too).
func legacyConfig(values map[string]string) (string, error) {
	out := make(map[string]string, len(values))
	for key, value := range values {
		parsed, err := config.ParseKey(key)
		if err != nil {
			return "", fmt.Errorf("config key %q: %w", key, err)
		}
		out[parsed.Namespace()+":config:"+parsed.Name()] = value
	}
	text, err := json.Marshal(out)
	return string(text), err
}

func nonNil(keys []string) []string {
	if keys == nil {
		return []string{}
	}
	return keys
}
