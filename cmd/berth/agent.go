package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"berth.dev/berth/agent"
	"berth.dev/berth/agent/api"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	"berth.dev/berth/schema"
	"berth.dev/berth/source"
)

// agentOptions are the flags of berth agent beyond the shared ones.
type agentOptions struct {
	config         string
	interval       time.Duration
	jitter         float64
	resync         time.Duration
	fetchTimeout   time.Duration
	socket         string
	listen         string
	webhookSecret  string
	healthDeadline time.Duration
	healthSettle   time.Duration
	verify         string
	trustedKeys    repeatedFlag
	usernameFile   string
	passwordFile   string
	tokenFile      string
	sshKey         string
	knownHosts     string
	sshUser        string
	debounce       time.Duration
	crashRestarts  int
	mirrors        repeatedFlag
	shallow        bool
}

// repeatedFlag is a repeatable string flag; the environment variable takes a
// comma-separated list.
type repeatedFlag []string

func (l *repeatedFlag) String() string { return strings.Join(*l, ",") }

func (l *repeatedFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// agentCommand is berth agent. Its flags and run share the options and
// the flag set, which the config file needs.
func agentCommand() command {
	o := &agentOptions{}
	var fs *flag.FlagSet
	return command{
		name: "agent", args: "--repo SRC",
		summary: "keep this host equal to the repository, continuously (run as a service)",
		flags: func(f *flag.FlagSet, c *cli) {
			fs = f
			agentFlags(f, c, o)
		},
		run: func(ctx context.Context, c *cli, args []string) error { return runAgent(ctx, c, o, fs, args) },
	}
}

func agentFlags(fs *flag.FlagSet, c *cli, o *agentOptions) {
	fs.StringVar(&c.repo, "repo", "", "Git URL or local directory holding the definitions")
	fs.StringVar(&c.ref, "ref", "", "branch, tag or commit (default: the remote's HEAD)")
	fs.StringVar(&c.path, "path", "", "subdirectory of the repository to use")
	fs.StringVar(&o.config, "config", "", "YAML file of flag values (flag name: value); flags and BERTH_* variables win")
	fs.DurationVar(&o.interval, "interval", agent.DefaultInterval, "time between fetches")
	fs.Float64Var(&o.jitter, "jitter", agent.DefaultJitter, "random share of the interval added to each wait")
	fs.DurationVar(&o.resync, "resync", agent.DefaultResync, "time between drift checks without a fetch (negative: off)")
	fs.DurationVar(&o.fetchTimeout, "fetch-timeout", agent.DefaultFetchTimeout, "time limit of one fetch")
	fs.StringVar(&o.socket, "socket", "", "unix socket of the local API (default <state-dir>/agent.sock)")
	fs.StringVar(&o.listen, "listen", "", "also serve the API and the webhook on this TCP address, e.g. 127.0.0.1:9090")
	fs.StringVar(&o.webhookSecret, "webhook-secret-file", "", "file holding the webhook secret (HMAC key or GitLab token); no file, no webhook")
	safetyFlags(fs, c)
	fs.DurationVar(&o.healthDeadline, "health-deadline", agent.DefaultHealthDeadline, "roll back a revision whose new pods are not healthy within this time (negative: off)")
	fs.DurationVar(&o.healthSettle, "health-settle", agent.DefaultHealthSettle, "how long a container must run to count as healthy")
	fs.StringVar(&o.verify, "verify", "none", "signatures required: none, head, tag or tag-and-head")
	fs.Var(&o.trustedKeys, "trusted-keys", "armored OpenPGP keyring or SSH allowed_signers file (repeatable)")
	fs.StringVar(&o.usernameFile, "git-username-file", "", "file holding the HTTPS username (else BERTH_GIT_USERNAME)")
	fs.StringVar(&o.passwordFile, "git-password-file", "", "file holding the HTTPS password or access token (else BERTH_GIT_PASSWORD)")
	fs.StringVar(&o.tokenFile, "git-token-file", "", "file holding an HTTPS bearer token (else BERTH_GIT_TOKEN)")
	fs.StringVar(&o.sshKey, "ssh-key", "", "SSH private key for ssh:// and scp-style URLs")
	fs.StringVar(&o.knownHosts, "ssh-known-hosts", "", "known_hosts file; host keys are always checked")
	fs.StringVar(&o.sshUser, "ssh-user", "", "SSH login (default: the URL's, else git)")
	fs.DurationVar(&o.debounce, "debounce", agent.DefaultDebounce, "quiet time after a change in a local directory before reconciling")
	fs.Var(&o.mirrors, "mirror", "fallback URL of the repository, tried in order when --repo cannot be reached (repeatable)")
	fs.BoolVar(&o.shallow, "shallow", false, "fetch only the followed branch, one commit deep (small devices)")
	fs.IntVar(&o.crashRestarts, "crash-restarts", agent.DefaultCrashRestarts, "crashes of a container of a new pod that make its revision unhealthy")
	c.mqtt.registerAgent(fs)
}

// applyConfigFile sets, from the YAML file, every flag not given on the
// command line or through its BERTH_* variable.
func applyConfigFile(fs *flag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(b, &values); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	for name, v := range values {
		f := fs.Lookup(name)
		if f == nil || name == "config" {
			return fmt.Errorf("config %s: unknown setting %q", path, name)
		}
		if _, env := os.LookupEnv(envName(name)); explicit[name] || env {
			continue
		}
		items := []any{v}
		if list, ok := v.([]any); ok {
			items = list
		}
		for _, item := range items {
			if err := fs.Set(name, fmt.Sprint(item)); err != nil {
				return fmt.Errorf("config %s: %s: %w", path, name, err)
			}
		}
	}
	return nil
}

func (o *agentOptions) socketPath(stateDir string) string {
	if o.socket != "" {
		return o.socket
	}
	return filepath.Join(stateDir, "agent.sock")
}

func runAgent(ctx context.Context, c *cli, o *agentOptions, fs *flag.FlagSet, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	if o.config != "" {
		if err := applyConfigFile(fs, o.config); err != nil {
			return err
		}
		log, err := c.newLogger()
		if err != nil {
			return err
		}
		c.log = log
	}
	if c.repo == "" {
		return errors.New("--repo is required (a Git URL or a local directory)")
	}
	log := c.log
	auth, err := source.AuthFiles{
		UsernameFile: o.usernameFile, PasswordFile: o.passwordFile, TokenFile: o.tokenFile,
		SSHKeyFile: o.sshKey, SSHKnownHostsFile: o.knownHosts, SSHUser: o.sshUser,
	}.Load()
	if err != nil {
		return err
	}
	mode, err := source.ParseVerifyMode(o.verify)
	if err != nil {
		return err
	}
	// A missing local directory is opened at the first fetch that finds
	// it; meanwhile the agent runs its last good revision.
	src, err := agent.OpenRepository(ctx, source.Options{
		URL: c.repo, Ref: c.ref, Path: c.path, Auth: auth, Mirrors: o.mirrors, Shallow: o.shallow,
		CacheDir: filepath.Join(c.stateDir, "git", urlKey(c.repo)),
		Logger:   log,
	})
	if err != nil {
		return err
	}
	var verify agent.Verifier
	if mode != source.VerifyNone {
		if src.Kind() == source.KindDir {
			return fmt.Errorf("--verify %s needs a Git repository; %s is a plain directory", mode, src.URL())
		}
		keys, err := source.LoadTrustedKeys(o.trustedKeys...)
		if err != nil {
			return err
		}
		verify = func(ctx context.Context, rev *source.Revision) error {
			who, err := src.Verify(ctx, rev, mode, keys)
			if err == nil {
				log.Info("signature verified", "commit", rev.ShortCommit(), "signer", who)
			}
			return err
		}
	}
	var secret []byte
	if o.webhookSecret != "" {
		b, err := os.ReadFile(o.webhookSecret)
		if err != nil {
			return fmt.Errorf("webhook secret: %w", err)
		}
		if secret = []byte(strings.TrimSpace(string(b))); len(secret) == 0 {
			return fmt.Errorf("webhook secret: %s is empty", o.webhookSecret)
		}
	}
	rt, err := c.agentRuntime(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()

	// The one engine: the pod manager decides and drives every pod.
	mgr := manager.New(rt, manager.Options{Node: c.node(), StateDir: c.stateDir, Logger: log, Safety: c.safety})
	fl, err := c.agentFleet(ctx)
	if err != nil {
		return err
	}
	defer fl.close()
	cfg := agent.Config{
		Source:         src,
		Load:           c.agentLoader(),
		Reconciler:     &agent.ManagerReconciler{Manager: mgr},
		PodStatuses:    mgr.Pods,
		Workloads:      mgr.Workloads,
		Interruptions:  mgr.Interruptions,
		CrashRestarts:  o.crashRestarts,
		Observer:       rt,
		Verify:         verify,
		StateDir:       c.stateDir,
		Interval:       o.interval,
		Jitter:         o.jitter,
		Resync:         o.resync,
		FetchTimeout:   o.fetchTimeout,
		HealthDeadline: o.healthDeadline,
		HealthSettle:   o.healthSettle,
		Logger:         log,
	}
	fl.configure(&cfg, rt)
	a, err := agent.New(cfg)
	if err != nil {
		return err
	}
	fl.attach(a)
	srv, err := api.New(a, api.Options{
		Socket: o.socketPath(c.stateDir), Listen: o.listen,
		Webhook: api.WebhookOptions{Secret: secret}, Logger: log, Health: rt.Check,
	})
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(ctx); err != nil {
			errc <- err
			cancel()
		}
	})
	if dir := src.LocalDir(); dir != "" {
		wg.Go(func() {
			if err := agent.Watch(ctx, dir, o.debounce, func() { a.Trigger(agent.TriggerWatch) }, log.Named("watch")); err != nil {
				log.Error("cannot watch the local repository; polling only", "error", err)
			}
		})
	}
	if gc, ok := rt.(interface{ RunGarbageCollection(context.Context) }); ok {
		// What removals leave to garbage collection (a network whose CNI
		// DEL kept failing, logs of removed pods) is collected while the
		// agent runs, not only when berth starts.
		wg.Go(func() { gc.RunGarbageCollection(ctx) })
	}
	wg.Go(func() {
		if err := mgr.Run(ctx); err != nil {
			log.Error("pod manager stopped", "error", err)
		}
	})
	log.Info("agent starting", "repo", src.URL(), "ref", c.ref, "interval", o.interval, "socket", o.socketPath(c.stateDir))
	err = a.Run(ctx)
	cancel()
	wg.Wait()
	select {
	case e := <-errc:
		return e
	default:
	}
	return err
}

// agentLoader validates a revision and expands it into this node's pods.
func (c *cli) agentLoader() agent.Loader {
	// The process's cache (a new revision costs only the files it changed)
	// and the CUE sandbox (untrusted CUE evaluates under a deadline and a
	// memory bound), as for vet, plan and apply.
	opts := c.schemaOptions()
	return func(rev *source.Revision) (*agent.Loaded, error) {
		res, err := schema.Load(rev.Files, opts)
		var diags *schema.Error
		if errors.As(err, &diags) {
			ve := &agent.ValidationError{Commit: rev.Commit}
			for _, d := range diags.Diagnostics {
				ve.Problems = append(ve.Problems, d.String())
			}
			return nil, ve
		}
		if err != nil {
			return nil, fmt.Errorf("revision %s: %w", rev.ShortCommit(), err)
		}
		objs, waiting, err := c.prepare(res.Objects)
		if err != nil {
			return nil, fmt.Errorf("revision %s: %w", rev.ShortCommit(), err)
		}
		if err := c.recordWaiting(rev.Commit, waiting); err != nil {
			return nil, fmt.Errorf("record waiting objects: %w", err)
		}
		records, err := manager.NewRecordStore(c.stateDir).Load()
		if err != nil {
			return nil, fmt.Errorf("read records: %w", err)
		}
		pods, err := reconcile.Expand(objs, rev.Commit, reconcile.ExpandOptions{
			Node: c.node(), StateDir: c.stateDir, Records: records, Now: time.Now(),
		})
		if err != nil {
			return nil, fmt.Errorf("revision %s: %w", rev.ShortCommit(), err)
		}
		return &agent.Loaded{Objects: objs, Pods: pods, Node: c.node(), NotForNode: reconcile.NotForNodes(objs, c.node())}, nil
	}
}

// agentStatus returns the running agent's status read from its socket,
// or nil when no agent answers. berth status calls it to show the
// revisions, the last error and the bad revisions next to the pods.
func agentStatus(ctx context.Context, c *cli) *agent.Status {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := api.NewClient(filepath.Join(c.stateDir, "agent.sock")).Status(ctx)
	if err != nil {
		return nil
	}
	return st
}
