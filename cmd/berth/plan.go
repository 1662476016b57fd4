package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	"berth.dev/berth/source"
)

// previewFlags are plan's flags beyond --repo, --ref and --path.
type previewFlags struct {
	base, head, against string
	inventory           string
	color               string
}

func planFlags(fs *flag.FlagSet, c *cli) {
	repoFlags(fs, c)
	safetyFlags(fs, c)
	fs.Lookup("o").Usage = "output format: text, json or markdown"
	fs.StringVar(&c.preview.base, "base", "", "compare with this revision (branch, tag or commit) instead of this host, e.g. a pull request's target branch")
	fs.StringVar(&c.preview.head, "head", "", "the revision to preview (default: --ref, or the remote's HEAD)")
	fs.StringVar(&c.preview.against, "against", "live", `compare with "live" (the pods on this host) or a revision (as --base)`)
	fs.StringVar(&c.preview.inventory, "inventory", "", "YAML file listing devices (name, labels): preview the change on each (needs --base)")
	fs.StringVar(&c.preview.color, "color", "auto", "colour text output: auto (when standard output is a terminal and NO_COLOR is unset), always or never")
}

// runPlan previews a revision: against this host (the default, what apply
// would do now), against another revision (--base, for pull requests),
// or against another revision on every device of an inventory.
func runPlan(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
	}
	switch c.output {
	case "text", "json", "markdown":
	default:
		return fmt.Errorf("-o %q: want text, json or markdown", c.output)
	}
	switch c.preview.color {
	case "auto", "always", "never":
	default:
		return fmt.Errorf("--color %q: want auto, always or never", c.preview.color)
	}
	pf := c.preview
	base := pf.base
	if pf.against != "" && pf.against != "live" {
		if base != "" && base != pf.against {
			return fmt.Errorf("--base %q and --against %q name different revisions", base, pf.against)
		}
		base = pf.against
	}
	headRef := pf.head
	if headRef == "" {
		headRef = c.ref
	} else if c.ref != "" && c.ref != headRef {
		return fmt.Errorf("--ref %q and --head %q name different revisions", c.ref, headRef)
	}
	if pf.inventory != "" && base == "" {
		return errors.New("--inventory compares two revisions on every device: give --base REF")
	}
	if c.repo == "" {
		return errors.New("--repo is required (a Git URL or a local directory)")
	}
	src, err := source.Open(source.Options{
		URL:      c.repo,
		Ref:      headRef,
		Path:     c.path,
		CacheDir: filepath.Join(c.stateDir, "git", urlKey(c.repo)),
		Logger:   c.log.Named("source"),
	})
	if err != nil {
		return err
	}
	headRev, _, err := src.Fetch(ctx)
	if err != nil {
		return err
	}
	headName := headRef
	if headName == "" {
		headName = shortRef(headRev.Ref)
	}
	if base == "" {
		return c.planLive(ctx, src, headRev, headName)
	}
	baseRev, err := src.Revision(ctx, base)
	if err != nil {
		return fmt.Errorf("base revision: %w", err)
	}
	if pf.inventory != "" {
		return c.planFleet(ctx, baseRev, headRev, base, headName)
	}
	node, sopts, pol := c.node(), c.schemaOptions(), c.nodePolicy()
	eopts := preview.ExpandOptions{StateDir: c.stateDir, Policy: &pol, Prepare: c.previewPrepare}
	p := preview.Compare(
		preview.Evaluate(baseRev.Files, baseRev.Commit, node, sopts, eopts),
		preview.Evaluate(headRev.Files, headRev.Commit, node, sopts, eopts),
		base, headName)
	return c.writePreview(p)
}

// planLive previews head against the pods on this host, as apply would
// carry it out now.
func (c *cli) planLive(ctx context.Context, src *source.Source, headRev *source.Revision, headName string) error {
	store := manager.NewRecordStore(c.stateDir)
	records, err := store.Load()
	if err != nil {
		return fmt.Errorf("read records: %w", err)
	}
	node, sopts, pol := c.node(), c.schemaOptions(), c.nodePolicy()
	eopts := preview.ExpandOptions{StateDir: c.stateDir, Records: records, Now: time.Now(), Policy: &pol, Prepare: c.prepare}
	keep := c.keptValidation()
	head := preview.Evaluate(headRev.Files, headRev.Commit, node, sopts, eopts)
	keep()
	if head.Failed() != nil {
		// Nothing would change; the host need not be asked.
		return c.writePreview(preview.CompareLive(head, headName, preview.Live{}))
	}
	rt, err := c.runtime(ctx)
	if err != nil {
		return err
	}
	defer rt.Close()
	observed, err := rt.List(ctx)
	if err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	revision := func(commit string) *preview.Evaluation {
		if commit == headRev.Commit {
			return head
		}
		if src.Kind() == source.KindDir {
			return nil
		}
		r, err := src.Revision(ctx, commit)
		if err != nil {
			c.log.Debug("revision not at hand", "commit", source.ShortCommit(commit), "error", err)
			return nil
		}
		return preview.Evaluate(r.Files, r.Commit, node, sopts, eopts)
	}
	// The host's own admission, as apply asks it before any change.
	for i := range head.Pods {
		if err := rt.Admit(&head.Pods[i]); err != nil {
			if head.Refused == nil {
				head.Refused = map[reconcile.PodID]string{}
			}
			if _, ok := head.Refused[head.Pods[i].ID]; !ok {
				head.Refused[head.Pods[i].ID] = strings.ReplaceAll(err.Error(), "\n", "; ")
			}
		}
	}
	deploys, _ := store.Deployments()
	live := preview.Live{Observed: observed, Revision: revision, Now: time.Now(), Deployments: deploys}
	var applied record.Revision
	if ok, _ := record.Read(c.stateDir, record.LastApplied, &applied); ok && applied.Commit != "" {
		live.Applied = revision(applied.Commit)
	}
	p := preview.CompareLive(head, headName, live)
	// The deletion-safety rule apply and the agent apply.
	if err := reconcile.CheckRemovals(head.Commit, head.Objects, observed, c.safety); err != nil && p.Error == "" {
		p.Error = err.Error()
	}
	return c.writePreview(p)
}

// writePreview prints p in the chosen format and turns its outcome into
// plan's exit code: 0 no changes, 2 changes, 1 errors.
func (c *cli) writePreview(p *preview.Plan) error {
	var err error
	switch c.output {
	case "json":
		err = preview.WriteJSON(c.stdout, p)
	case "markdown":
		err = preview.WriteMarkdown(c.stdout, p, preview.MarkdownOptions{})
	default:
		err = preview.WriteText(c.stdout, p, preview.TextOptions{Color: c.colorOutput(), Unchanged: true})
	}
	if err != nil {
		return err
	}
	return exitFor(p.ExitCode())
}

func exitFor(code int) error {
	switch code {
	case 0:
		return nil
	case exitChanges:
		return &exitCodeError{code: exitChanges}
	}
	return errReported
}

// colorOutput reports whether text output gets colours.
func (c *cli) colorOutput() bool {
	switch c.preview.color {
	case "always":
		return true
	case "never":
		return false
	}
	if _, set := os.LookupEnv("NO_COLOR"); set || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := c.stdout.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// shortRef turns refs/heads/main into main and refs/tags/v1 into v1.
func shortRef(ref string) string {
	for _, p := range []string{"refs/heads/", "refs/tags/", "refs/remotes/origin/"} {
		if s, ok := strings.CutPrefix(ref, p); ok {
			return s
		}
	}
	return ref
}
