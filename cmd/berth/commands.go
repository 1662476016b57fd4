package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	ctrd "berth.dev/berth/runtime/containerd"
	"berth.dev/berth/schema"
	"berth.dev/berth/secrets"
	"berth.dev/berth/source"
)

func repoFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.repo, "repo", "", "Git URL or local directory holding the definitions")
	fs.StringVar(&c.ref, "ref", "", "branch, tag or commit (default: the remote's HEAD)")
	fs.StringVar(&c.path, "path", "", "subdirectory of the repository to use")
	fs.StringVar(&c.output, "o", "text", "output format: text or json")
}

func applyFlags(fs *flag.FlagSet, c *cli) {
	repoFlags(fs, c)
	safetyFlags(fs, c)
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "give up (exit 1, naming what is pending) when the host has not converged by then")
}

// safetyFlags are the deletion-safety rule's flags, shared by apply and
// the agent (and plan, which shows what they would refuse).
func safetyFlags(fs *flag.FlagSet, c *cli) {
	c.safety.Threshold = reconcile.DefaultRemoveThreshold
	fs.BoolVar(&c.safety.AllowMassDelete, "allow-mass-delete", false, "apply a revision that removes every workload running here, or more than --delete-threshold of them")
	fs.BoolVar(&c.safety.AllowMassDelete, "allow-delete-all", false, "the same as --allow-mass-delete")
	fs.Func("delete-threshold", fmt.Sprintf("share (0..1) of the running workloads a revision may remove without --allow-mass-delete (default %g)", reconcile.DefaultRemoveThreshold), func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Errorf("%q is not a share between 0 and 1", v)
		}
		c.safety.Threshold = f
		return nil
	})
}

func checkOutput(o string) error {
	if o != "text" && o != "json" {
		return fmt.Errorf("-o %q: want text or json", o)
	}
	return nil
}

// revision is a fetched, validated revision of the repository.
type revision struct {
	src     *source.Revision
	objects []reconcile.Object
	// waiting are the objects held back for Secrets this device cannot
	// decrypt.
	waiting []secrets.Waiting
}

// commit is the revision's short name for messages.
func (r *revision) commit() string { return source.ShortCommit(r.src.Commit) }

// load fetches SRC at REF and validates it. Validation problems are
// printed, one per line, and reported as errReported.
func (c *cli) load(ctx context.Context) (*revision, error) {
	if c.repo == "" {
		return nil, errors.New("--repo is required (a Git URL or a local directory)")
	}
	src, err := source.Open(source.Options{
		URL:      c.repo,
		Ref:      c.ref,
		Path:     c.path,
		CacheDir: filepath.Join(c.stateDir, "git", urlKey(c.repo)),
		Logger:   c.log.Named("source"),
	})
	if err != nil {
		return nil, err
	}
	rev, _, err := src.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	objs, err := c.validate(ctx, rev)
	if err != nil {
		return nil, err
	}
	objs, waiting, err := c.prepare(objs)
	if err != nil {
		return nil, err
	}
	return &revision{src: rev, objects: objs, waiting: waiting}, nil
}

// urlKey names the Git cache of a repository: a hash of its URL without
// credentials, local paths made absolute, so spellings of one repository
// share a cache and no secret ends up in a path.
func urlKey(u string) string {
	if !strings.Contains(u, "://") && !strings.Contains(u, "@") {
		if abs, err := filepath.Abs(u); err == nil {
			u = abs
		}
	}
	sum := sha256.Sum256([]byte(source.DisplayURL(u)))
	return hex.EncodeToString(sum[:8])
}

// validate loads the revision's files and prints every problem; it
// returns at once when ctx ends (SIGTERM), as vet does.
func (c *cli) validate(ctx context.Context, rev *source.Revision) ([]reconcile.Object, error) {
	keep := c.keptValidation()
	res, err := loadContext(ctx, rev.Files, c.schemaOptions())
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	keep()
	var diags *schema.Error
	if errors.As(err, &diags) {
		fmt.Fprintf(c.stderr, "revision %s is invalid (%d problems); nothing was changed:\n", source.ShortCommit(rev.Commit), len(diags.Diagnostics))
		for _, d := range diags.Diagnostics {
			fmt.Fprintln(c.stderr, d.String())
		}
		return nil, errReported
	}
	if err != nil {
		return nil, fmt.Errorf("revision %s: %w", source.ShortCommit(rev.Commit), err)
	}
	return res.Objects, nil
}

// nodePolicy is this host's policy as apply, the agent and plan all
// apply it: the user's, plus each StatefulSet's own claim directories.
func (c *cli) nodePolicy() reconcile.NodePolicy {
	return reconcile.WithClaimDirs(c.policy.value(), c.stateDir)
}

func (c *cli) runtime(ctx context.Context) (*ctrd.Runtime, error) {
	return ctrd.New(ctx, ctrd.Options{
		Address:     c.containerdAddress,
		Namespace:   c.namespace,
		StateDir:    c.stateDir,
		CNIConfDir:  c.cniConfDir,
		NetworkName: c.networkName,
		Bridge:      c.bridge,
		Subnet:      c.podSubnet,
		Logger:      c.log.Named("runtime"),
		Policy:      c.nodePolicy(),
		Registry:    c.registry.value(),
		RawLogs:     c.containerLogs.raw,
		PodsPerShim: c.containerLogs.podsPerShim,
	})
}

// runApply is the one engine, once: it validates the revision, refuses
// it before any change when the deletion-safety rule or this host's
// admission says no, prints the plan, and runs the pod manager until the
// host matches the revision (rolling Deployments exactly as the agent
// does), printing each change as it is done, or --timeout passes.
func runApply(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	if err := checkOutput(c.output); err != nil {
		return err
	}
	rev, err := c.load(ctx)
	if err != nil {
		return err
	}
	store := manager.NewRecordStore(c.stateDir)
	records, err := store.Load()
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	node := c.node()
	desired, err := reconcile.Expand(rev.objects, rev.src.Commit, reconcile.ExpandOptions{
		Node: node, StateDir: c.stateDir, Records: records, Now: time.Now(),
	})
	if err != nil {
		return fmt.Errorf("revision %s: %w", rev.commit(), err)
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	observed, err := rt.ListAtStart(ctx)
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	deploys, _ := store.Deployments()
	p := reconcile.MakePlan(reconcile.Input{
		Revision: rev.src.Commit, Objects: rev.objects, Pods: desired, Observed: observed,
		Deployments: deploys, Node: node, Now: time.Now(),
	})
	skipped := reconcile.NotForNodes(rev.objects, node)
	log := c.log.With("revision", rev.commit())
	var events []manager.Event
	var mu sync.Mutex
	opts := manager.Options{
		Node: node, StateDir: c.stateDir, Logger: c.log, Safety: c.safety,
		Events: func(e manager.Event) {
			mu.Lock()
			events = append(events, e)
			mu.Unlock()
			if c.output == "text" {
				fmt.Fprintln(c.stdout, e.String())
			}
		},
	}
	if c.output == "text" {
		if err := p.WriteText(c.stdout); err != nil {
			return err
		}
		wr := c.waitingReport(rev.src.Commit, rev.waiting)
		writeWaiting(c.stdout, &wr)
		preview.WriteTextNotForNode(c.stdout, skipped, false)
	}
	if err := c.recordWaiting(rev.src.Commit, rev.waiting); err != nil {
		return fmt.Errorf("record waiting objects: %w", err)
	}
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err = manager.Converge(cctx, rt, rev.src.Commit, rev.objects, observed, opts)
	if c.output == "json" {
		mu.Lock()
		out := struct {
			*reconcile.Plan
			Done       []applied              `json:"done"`
			Pending    []string               `json:"pending,omitempty"`
			NotForNode []reconcile.NotForNode `json:"notForNode,omitempty"`
		}{Plan: p, Done: appliedOf(events), NotForNode: skipped}
		mu.Unlock()
		var pe *manager.PendingError
		if errors.As(err, &pe) {
			out.Pending = pe.Pending
		}
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(out); jerr != nil {
			return jerr
		}
	}
	if err != nil {
		return err
	}
	if err := record.Write(c.stateDir, record.LastApplied, record.Revision{
		Commit: rev.src.Commit, Ref: c.ref, URL: rev.src.URL, Path: c.path, Time: time.Now().UTC(),
	}); err != nil {
		return fmt.Errorf("record applied revision: %w", err)
	}
	log.Info("applied", "duration", time.Since(start).Round(time.Millisecond))
	if c.output == "text" {
		fmt.Fprintf(c.stdout, "converged: revision %s runs here\n", rev.commit())
	}
	return nil
}

// applied is one change apply carried out, for -o json.
type applied struct {
	Action   reconcile.Action `json:"action"`
	Pod      reconcile.PodID  `json:"pod"`
	Owner    string           `json:"owner,omitempty"`
	Error    string           `json:"error,omitempty"`
	Duration time.Duration    `json:"duration"`
}

func appliedOf(events []manager.Event) []applied {
	out := make([]applied, 0, len(events))
	for _, e := range events {
		a := applied{Action: e.Action, Pod: e.Pod, Owner: e.Owner, Duration: e.Duration}
		if e.Err != nil {
			a.Error = e.Err.Error()
		}
		out = append(out, a)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}
