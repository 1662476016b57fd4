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
	"strings"
	"time"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
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
	fs.IntVar(&c.workers, "workers", 4, "pods created or removed at once")
	fs.BoolVar(&c.allowDeleteAll, "allow-delete-all", false, "allow a revision that deletes every pod berth runs")
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
	objs, err := c.validate(rev)
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

// validate loads the revision's files and prints every problem.
func (c *cli) validate(rev *source.Revision) ([]reconcile.Object, error) {
	res, err := schema.Load(rev.Files, c.schemaOptions())
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
		Policy:      reconcile.WithClaimDirs(c.policy.value(), c.stateDir),
		Registry:    c.registry.value(),
		RawLogs:     c.containerLogs.raw,
	})
}

// plan loads the revision and plans it against what runs.
func (c *cli) plan(ctx context.Context) (*revision, *reconcile.Plan, *ctrd.Runtime, error) {
	if err := checkOutput(c.output); err != nil {
		return nil, nil, nil, err
	}
	rev, err := c.load(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	records, err := reconcile.NewRecordStore(c.stateDir).Load()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read records: %w", err)
	}
	desired, err := reconcile.Expand(rev.objects, rev.src.Commit, reconcile.ExpandOptions{
		Node: c.node(), StateDir: c.stateDir, Records: records, Now: time.Now(),
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("revision %s: %w", rev.commit(), err)
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	observed, err := rt.List(ctx)
	if err != nil {
		rt.Close()
		return nil, nil, nil, fmt.Errorf("list pods: %w", err)
	}
	p := reconcile.MakePlan(rev.src.Commit, desired, observed)
	p.HoldBack(rev.objects)
	return rev, p, rt, nil
}

func runApply(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	rev, p, rt, err := c.plan(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	if n := p.Count(reconcile.ActionDelete); n > 0 && n == len(p.Changes) && !c.allowDeleteAll {
		return fmt.Errorf("revision %s would delete all %d pods berth runs here; refusing without --allow-delete-all", rev.commit(), n)
	}
	log := c.log.With("revision", rev.commit())
	log.Info("applying", "plan", p.Summary())
	start := time.Now()
	res := reconcile.Apply(ctx, rt, p, reconcile.ApplyOptions{Workers: c.workers, Logger: log.Named("apply")})
	if c.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Revision string             `json:"revision"`
			Results  []reconcile.Result `json:"results"`
			Waiting  []secrets.Waiting  `json:"waiting,omitempty"`
		}{p.Revision, res.Results, rev.waiting}); err != nil {
			return err
		}
	} else {
		if err := p.WriteText(c.stdout); err != nil {
			return err
		}
		wr := c.waitingReport(rev.src.Commit, rev.waiting)
		writeWaiting(c.stdout, &wr)
	}
	if err := c.recordWaiting(rev.src.Commit, rev.waiting); err != nil {
		return fmt.Errorf("record waiting objects: %w", err)
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("revision %s: %w", rev.commit(), err)
	}
	if err := record.Write(c.stateDir, record.LastApplied, record.Revision{
		Commit: rev.src.Commit, Ref: c.ref, URL: rev.src.URL, Path: c.path, Time: time.Now().UTC(),
	}); err != nil {
		return fmt.Errorf("record applied revision: %w", err)
	}
	log.Info("applied", "duration", time.Since(start).Round(time.Millisecond))
	return nil
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
