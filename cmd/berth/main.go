// Command berth keeps a container host equal to a Git repository of
// Kubernetes-style Pod definitions, driving containerd.
//
// This package is the command line and the wiring only; the work is done in
// source, schema, reconcile and runtime/containerd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2 // plan: changes present
)

// exitCodeError carries an exit code through the command functions.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e *exitCodeError) Unwrap() error { return e.err }

// reported marks an error whose details were already printed.
var errReported = errors.New("reported")

type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, env *cli, args []string) error
	flags   func(fs *flag.FlagSet, env *cli)
}

func commands() []command {
	return []command{
		{name: "vet", args: "[DIR]", summary: "validate a checkout; print every problem as file:line:col", run: runVet, flags: vetFlags},
		{name: "plan", args: "--repo SRC [--base REF] [--inventory FILE]", summary: "show what apply would change here, or what a change does to another revision or a fleet (exit 2 when something would change)", run: runPlan, flags: planFlags},
		{name: "apply", args: "--repo SRC", summary: "reconcile the host with the repository once and exit", run: runApply, flags: applyFlags},
		{name: "status", args: "", summary: "show the pods berth runs on this host", run: runStatus, flags: statusFlags},
		agentCommand(),
		controlCommand("suspend"), controlCommand("resume"), controlCommand("pin"), controlCommand("unpin"),
		logsCommand(),
		execCommand(),
		imageCommand(),
		debugCommand(),
		fleetCommand(),
		keygenCommand(),
		{name: "version", args: "", summary: "print the version", run: runVersion},
	}
}

func main() {
	if code, ok := serveSandbox(); ok {
		os.Exit(code)
	}
	sandboxed = true
	if len(os.Args) > 1 {
		oneShotGC(os.Args[1])
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// oneShotGC lets the garbage collector of a command that validates a
// revision and exits run a quarter as often (GOGC=400), unless GOGC is
// set: such a command's live heap is small and short-lived, and at 200
// pods a no-change apply spent a fifth of its time collecting (50 MB
// peak RSS before, 57 MB after). The agent, which lives on, keeps the
// default.
func oneShotGC(cmd string) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	switch cmd {
	case "apply", "plan", "vet":
		debug.SetGCPercent(400)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return exitOK
	}
	var cmd *command
	for _, c := range commands() {
		if c.name == args[0] {
			c := c
			cmd = &c
		}
	}
	if cmd == nil {
		fmt.Fprintf(stderr, "berth: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitError
	}
	env := &cli{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("berth "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	env.commonFlags(fs)
	if cmd.flags != nil {
		cmd.flags(fs, env)
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: berth %s [flags] %s\n\n%s.\n\nflags (each also read from the BERTH_* variable shown):\n", cmd.name, cmd.args, cmd.summary)
		printFlags(stderr, fs)
	}
	if err := applyEnv(fs); err != nil {
		fmt.Fprintf(stderr, "berth %s: %v\n", cmd.name, err)
		return exitError
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	log, err := env.newLogger()
	if err != nil {
		fmt.Fprintf(stderr, "berth %s: %v\n", cmd.name, err)
		return exitError
	}
	env.log = log

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if exclusive[cmd.name] {
		lock, err := env.lockState(ctx, cmd.name)
		if err != nil {
			fmt.Fprintf(stderr, "berth %s: %v\n", cmd.name, err)
			return exitError
		}
		defer lock.Release()
	}
	err = cmd.run(ctx, env, fs.Args())
	var ec *exitCodeError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ec):
		if ec.err != nil && !errors.Is(ec.err, errReported) {
			fmt.Fprintf(stderr, "berth %s: %v\n", cmd.name, ec.err)
		}
		return ec.code
	case errors.Is(err, errReported):
		return exitError
	default:
		fmt.Fprintf(stderr, "berth %s: %v\n", cmd.name, err)
		return exitError
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "berth keeps this host's containers equal to a Git repository of Kubernetes Pods.\n\nusage: berth COMMAND [flags]\n\ncommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'berth COMMAND -h' for the flags of a command.\n")
}

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return "BERTH_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnv sets every flag whose BERTH_* variable is set; flags on the
// command line, parsed afterwards, win.
func applyEnv(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || err != nil {
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, e)
		}
	})
	return err
}

func printFlags(w io.Writer, fs *flag.FlagSet) {
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		// A usage that says its default itself (a flag whose zero value
		// stands for it) is not given a second one.
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && !strings.Contains(f.Usage, "(default ") {
			def = fmt.Sprintf(" (default %q)", f.DefValue)
		}
		lines = append(lines, fmt.Sprintf("  --%-22s %s%s [%s]", f.Name, f.Usage, def, envName(f.Name)))
	})
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}

// cli holds the shared flags and the outputs of one invocation.
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader // standard input (nil: os.Stdin)
	log            hclog.Logger

	containerdAddress string
	namespace         string
	stateDir          string
	nodeName          string
	containerLogs     containerLogFlags
	policy            policyFlags
	registry          registryFlags
	nodeLabels        labelsFlag
	strict            bool
	ageIdentity       string
	logLevel          string
	logFormat         string

	cniConfDir  string
	networkName string
	bridge      string
	podSubnet   string

	repo, ref, path string
	output          string
	safety          reconcile.Safety
	timeout         time.Duration

	maxReplicas int32Flag    // schema.Options.MaxReplicas
	maxPods     int          // schema.Options.MaxPods
	preview     previewFlags // plan
	mqtt        mqttFlags    // agent: the fleet's status channel
}

func (c *cli) commonFlags(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	fs.StringVar(&c.containerdAddress, "containerd-address", "/run/containerd/containerd.sock", "containerd socket")
	fs.StringVar(&c.namespace, "namespace", "berth", "containerd namespace berth manages")
	fs.StringVar(&c.stateDir, "state-dir", "/var/lib/berth", "directory for the Git cache, volumes, logs and records")
	fs.StringVar(&c.nodeName, "node-name", host, "this host's node name")
	c.containerLogs.register(fs)
	c.policy.register(fs)
	c.registry.register(fs)
	fs.Var(&c.nodeLabels, "node-label", "a label of this node, key=value (repeatable; the variable takes a comma-separated list)")
	fs.Var(&labelsFileFlag{labels: &c.nodeLabels}, "node-labels-file", "file of this node's labels, one key=value a line")
	fs.StringVar(&c.cniConfDir, "cni-conf-dir", "", "use the first CNI network configuration in this directory instead of berth's bridge")
	fs.StringVar(&c.networkName, "network", "berth", "name of berth's CNI bridge network")
	fs.StringVar(&c.bridge, "bridge", "berth0", "Linux bridge of berth's network")
	fs.StringVar(&c.podSubnet, "pod-subnet", "10.87.0.0/16", "subnet pod addresses come from")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	c.secretFlags(fs)
	fs.Var(&c.maxReplicas, "max-replicas", "the most pods one workload may ask for (replicas, a Job's parallelism); more is refused at vet (default 1000)")
	fs.IntVar(&c.maxPods, "max-pods", schema.DefaultMaxPods, "the most pods a revision may run on this node at once; more is refused at vet")
}

func (c *cli) newLogger() (hclog.Logger, error) {
	lvl := hclog.LevelFromString(c.logLevel)
	if lvl == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", c.logLevel)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "berth",
		Level:      lvl,
		Output:     c.stderr,
		JSONFormat: c.logFormat == "json",
	}), nil
}

func runVersion(ctx context.Context, env *cli, args []string) error {
	fmt.Fprintf(env.stdout, "berth %s\n", version)
	return nil
}
