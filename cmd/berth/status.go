package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	"berth.dev/berth/source"
)

func statusFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.output, "o", "text", "output format: text or json")
}

// labelsFlag is a repeatable key=value flag; a comma-separated list is
// accepted too, for the environment variable.
type labelsFlag map[string]string

func (l *labelsFlag) String() string {
	if l == nil || len(*l) == 0 {
		return ""
	}
	var kv []string
	for k, v := range *l {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (l *labelsFlag) Set(s string) error {
	if *l == nil {
		*l = labelsFlag{}
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return fmt.Errorf("%q: want key=value", part)
		}
		(*l)[k] = v
	}
	return nil
}

// node is this host as objects see it: the labels kubelet would set, then
// the user's.
func (c *cli) node() reconcile.Node {
	return reconcile.HostNode(c.nodeName, c.nodeLabels)
}

// statusReport is what `berth status -o json` prints.
type statusReport struct {
	// Agent is what a running `berth agent` on this host reports through
	// its local API; absent when no agent answers.
	Agent       *agent.Status              `json:"agent,omitempty"`
	LastApplied *record.Revision           `json:"lastApplied,omitempty"`
	Pods        []reconcile.PodStatus      `json:"pods"`
	Workloads   []reconcile.WorkloadStatus `json:"workloads"`
	// Observed is what the runtime reports, container by container (IDs,
	// PIDs, states), from containerd's labels.
	Observed []reconcile.ObservedPod `json:"observed"`
	// Waiting says which objects of the last loaded revision this device
	// does not start: they need Secrets it cannot decrypt.
	Waiting *waitingRecord `json:"waiting,omitempty"`
}

func runStatus(ctx context.Context, c *cli, args []string) error {
	if err := checkOutput(c.output); err != nil {
		return err
	}
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q", args)
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
	store := manager.NewRecordStore(c.stateDir)
	recs, err := store.Pods()
	if err != nil {
		return fmt.Errorf("read pod records: %w", err)
	}
	rep := statusReport{Pods: []reconcile.PodStatus{}, Observed: observed}
	if rep.Observed == nil {
		rep.Observed = []reconcile.ObservedPod{}
	}
	for i := range observed {
		rep.Pods = append(rep.Pods, reconcile.ObservePod(&observed[i], recs[observed[i].ID], nil))
	}
	sort.Slice(rep.Pods, func(i, j int) bool { return rep.Pods[i].ID.String() < rep.Pods[j].ID.String() })
	ws, ok, err := store.Workloads()
	if err != nil {
		return fmt.Errorf("read workload status: %w", err)
	}
	if !ok {
		ws = reconcile.WorkloadsFromPods(rep.Pods)
	}
	rep.Workloads = ws
	if rep.Workloads == nil {
		rep.Workloads = []reconcile.WorkloadStatus{}
	}
	var applied record.Revision
	if has, _ := record.Read(c.stateDir, record.LastApplied, &applied); has {
		rep.LastApplied = &applied
	}
	rep.Agent = agentStatus(ctx, c)
	rep.Waiting = c.readWaiting()
	if c.output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return writeStatus(c.stdout, &rep, time.Now())
}

// writeStatus prints kubectl-like tables: pods, then workloads.
func writeStatus(w io.Writer, rep *statusReport, now time.Time) error {
	if a := rep.Agent; a != nil {
		writeAgentStatus(w, a)
	} else if rep.LastApplied != nil {
		a := rep.LastApplied
		fmt.Fprintf(w, "last applied: %s (%s) at %s\n\n", source.ShortCommit(a.Commit), a.URL, a.Time.Format(time.RFC3339))
	}
	if rep.Waiting != nil {
		writeWaiting(w, rep.Waiting)
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tREADY\tSTATUS\tRESTARTS\tAGE\tIP\tREVISION")
	for _, p := range rep.Pods {
		ready, total := p.ReadyCount()
		age := "-"
		if !p.CreatedAt.IsZero() {
			age = humanAge(now.Sub(p.CreatedAt))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%d\t%s\t%s\t%s\n", p.ID.Namespace, p.ID.Name, ready, total,
			p.Display(), p.Restarts(), age, orDash(p.IP), orDash(source.ShortCommit(p.Revision)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Workloads) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tWORKLOAD\tDESIRED\tREADY\tUP-TO-DATE\tAVAILABLE\tCONDITION")
	for _, wl := range rep.Workloads {
		cond := wl.Condition
		switch {
		case wl.Kind == "Job" && cond == "":
			cond = fmt.Sprintf("%d/%d succeeded", wl.Succeeded, wl.Desired)
		case wl.Kind == "CronJob" && !wl.LastSchedule.IsZero():
			cond = "last schedule " + humanAge(now.Sub(wl.LastSchedule)) + " ago"
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%d\t%d\t%d\t%d\t%s\n", wl.Namespace, strings.ToLower(wl.Kind), wl.Name,
			wl.Desired, wl.Ready, wl.UpToDate, wl.Available, orDash(cond))
	}
	return tw.Flush()
}

// writeAgentStatus prints the running agent's view: source, revisions,
// modes, the last problem and the bad revisions.
func writeAgentStatus(w io.Writer, a *agent.Status) {
	rev := func(r *record.Revision) string {
		if r == nil {
			return "-"
		}
		return source.ShortCommit(r.Commit)
	}
	fmt.Fprintf(w, "agent: %s\n", a.Source)
	fmt.Fprintf(w, "  fetched %s, applied %s, last good %s\n", rev(a.Fetched), rev(a.Applied), rev(a.LastGood))
	var modes []string
	if a.Suspended {
		modes = append(modes, "suspended")
	}
	if a.Pin != "" {
		modes = append(modes, "pinned to "+source.ShortCommit(a.Pin))
	}
	if a.Offline {
		modes = append(modes, "offline (running the last good revision, pruning nothing)")
	}
	if a.Checking != nil {
		modes = append(modes, "checking the health of a new revision")
	}
	if len(modes) > 0 {
		fmt.Fprintf(w, "  %s\n", strings.Join(modes, ", "))
	}
	if r := a.Rollout; r != nil {
		fmt.Fprintf(w, "  %s\n", rolloutLine(r))
	}
	for _, m := range a.NotForNode {
		fmt.Fprintf(w, "  skip %s\n", m)
	}
	for _, p := range []*agent.Problem{a.FetchError, a.LastError} {
		if p == nil {
			continue
		}
		fmt.Fprintf(w, "  %s error", p.Kind)
		if p.Commit != "" {
			fmt.Fprintf(w, " at %s", source.ShortCommit(p.Commit))
		}
		fmt.Fprintf(w, ": %s\n", p.Reason)
		for _, l := range p.Problems {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	for _, b := range a.BadRevisions {
		fmt.Fprintf(w, "  bad revision %s: %s\n", source.ShortCommit(b.Commit), b.Reason)
	}
	fmt.Fprintln(w)
}
