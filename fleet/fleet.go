package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"maps"
	"runtime"
	"sort"
	"strings"
	"sync"

	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

// Revision is one side of a fleet preview.
type Revision struct {
	// Name is what the user asked for (a ref or commit).
	Name string
	// Commit is the commit hash.
	Commit string
	// Files is the revision's snapshot.
	Files fs.FS
}

// Options tune Plan. The zero value is ready to use.
type Options struct {
	// Schema are the loader's options.
	Schema schema.Options
	// Expand are the expansion options every device shares.
	Expand preview.ExpandOptions
	// Workers is how many devices are evaluated at once; zero means
	// GOMAXPROCS.
	Workers int
}

// Report is a fleet preview: the devices grouped by the effect the change
// has on them.
type Report struct {
	Base preview.RevisionInfo `json:"base"`
	Head preview.RevisionInfo `json:"head"`
	// Devices is how many devices the inventory lists.
	Devices int `json:"devices"`
	// Affected is how many devices would change.
	Affected int `json:"affected"`
	// Failed is how many devices the head revision fails on.
	Failed int `json:"failed"`
	// Unchanged is how many devices would not change.
	Unchanged int `json:"unchanged"`
	// Totals are pods over all devices.
	Totals preview.Counts `json:"totals"`
	// Evaluations is how many times a revision was loaded and validated
	// (devices with identical inputs share one).
	Evaluations int `json:"evaluations"`
	// Groups are the devices grouped by identical effect: failures
	// first, then changes by number of devices, then the unchanged.
	Groups []Group `json:"groups"`
	// Waves are the devices by wave of the head revision's rollout
	// policy, in rollout order; none without a policy.
	Waves []Wave `json:"waves,omitempty"`
	// PolicyProblems are the head's rollout policy's problems, one per
	// line as ./berth-rollout.yaml:line:col: field: message.
	PolicyProblems []string `json:"policyProblems,omitempty"`
	// Secrets say which devices can read each SOPS-encrypted Secret of
	// the head, and what waits for it on the others.
	Secrets []SecretReaders `json:"secrets,omitempty"`
}

// Group is a set of devices on which the change has the same effect.
type Group struct {
	// Devices are the device names, in inventory order.
	Devices []string `json:"devices"`
	// Labels are the labels every device of the group has.
	Labels map[string]string `json:"labels,omitempty"`
	// Failed is set when the head revision fails on these devices.
	Failed bool `json:"failed,omitempty"`
	// Counts are the pods per device (unchanged pods may differ between
	// the devices of a group; the count is the first device's).
	Counts preview.Counts `json:"counts"`
	// Plan is the first device's preview without its unchanged pods; pod
	// names of workloads (a DaemonSet's, say) are that device's.
	Plan *preview.Plan `json:"plan"`
}

// HasChanges reports whether the change touches any device.
func (r *Report) HasChanges() bool { return r.Affected > 0 }

// ExitCode is berth plan's exit code: 1 when the head fails on any device,
// 2 when it changes any, 0 otherwise.
func (r *Report) ExitCode() int {
	switch {
	case r.Failed > 0 || len(r.PolicyProblems) > 0:
		return 1
	case r.Affected > 0:
		return 2
	}
	return 0
}

// loads evaluates each revision once per distinct loader input.
type loads struct {
	mu      sync.Mutex
	entries map[string]*loadEntry
	count   int
}

type loadEntry struct {
	once   sync.Once
	loaded *preview.Loaded
}

func (l *loads) get(rev Revision, key string, opts schema.Options) *preview.Loaded {
	l.mu.Lock()
	e := l.entries[rev.Commit+"\x00"+key]
	if e == nil {
		e = &loadEntry{}
		l.entries[rev.Commit+"\x00"+key] = e
		l.count++
	}
	l.mu.Unlock()
	e.once.Do(func() { e.loaded = preview.Load(rev.Files, rev.Commit, opts) })
	return e.loaded
}

// result is one device's preview, reduced to what grouping needs.
type result struct {
	key  string
	plan *preview.Plan
	// secrets are the head's encrypted Secrets and whether the device
	// reads each.
	secrets map[string]secretSeen
}

// Plan previews applying head where base runs, on every device of inv.
func Plan(ctx context.Context, base, head Revision, inv *Inventory, opts Options) (*Report, error) {
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ld := &loads{entries: map[string]*loadEntry{}}
	baseNames, headNames := tagNames(base.Files), tagNames(head.Files)
	results := make([]result, len(inv.Devices))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d := inv.Devices[i]
				sopts, eopts := deviceOptions(d, loaderOptions(d, opts.Schema), opts.Expand)
				b := ld.get(base, loadKey(d, baseNames), sopts).Expand(d.Node(), eopts)
				h := ld.get(head, loadKey(d, headNames), sopts).Expand(d.Node(), eopts)
				p := preview.Compare(b, h, base.Name, head.Name)
				results[i] = result{key: effectKey(p), plan: p, secrets: secretKeys(h.Objects, d)}
			}
		}()
	}
	var err error
feed:
	for i := range inv.Devices {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	r := &Report{
		Base:        preview.RevisionInfo{Name: base.Name, Commit: base.Commit},
		Head:        preview.RevisionInfo{Name: head.Name, Commit: head.Commit},
		Devices:     len(inv.Devices),
		Evaluations: ld.count,
	}
	groups := map[string]*Group{}
	var order []string
	for i, res := range results {
		d := inv.Devices[i]
		p := res.plan
		switch {
		case p.Failed():
			r.Failed++
		case p.HasChanges():
			r.Affected++
		default:
			r.Unchanged++
		}
		r.Totals.Create += p.Counts.Create
		r.Totals.Replace += p.Counts.Replace
		r.Totals.Delete += p.Counts.Delete
		r.Totals.Unchanged += p.Counts.Unchanged
		g := groups[res.key]
		if g == nil {
			g = &Group{Failed: p.Failed(), Counts: p.Counts, Plan: withoutUnchanged(p), Labels: maps.Clone(d.Labels)}
			groups[res.key] = g
			order = append(order, res.key)
		} else {
			for k, v := range g.Labels {
				if d.Labels[k] != v {
					delete(g.Labels, k)
				}
			}
		}
		g.Devices = append(g.Devices, d.Name)
	}
	r.Secrets = secretReaders(inv, results)
	for _, k := range order {
		g := groups[k]
		if len(g.Labels) == 0 {
			g.Labels = nil
		}
		r.Groups = append(r.Groups, *g)
	}
	pol, problems := policyProblems(head)
	r.PolicyProblems = problems
	if pol != nil {
		r.Waves = waves(pol, inv, results, groups)
	}
	sort.SliceStable(r.Groups, func(i, j int) bool {
		a, b := &r.Groups[i], &r.Groups[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		return len(a.Devices) > len(b.Devices)
	})
	return r, nil
}

// rank orders groups: failures, changes, no changes.
func rank(g *Group) int {
	switch {
	case g.Failed:
		return 0
	case g.Counts.Changed() > 0:
		return 1
	}
	return 2
}

// withoutUnchanged returns p without its unchanged pods, so a group's
// plan stays small.
func withoutUnchanged(p *preview.Plan) *preview.Plan {
	cp := *p
	cp.Changes = make([]preview.PodChange, 0, len(p.Changes))
	for _, c := range p.Changes {
		if c.Action != reconcile.ActionKeep {
			cp.Changes = append(cp.Changes, c)
		}
	}
	return &cp
}

// effectKey identifies what a plan does, independent of the device:
// its failure, or each change's action, owner and field diff. Pods of a
// Pod object are named by their owner; pods of a workload, whose names
// may depend on the node (a DaemonSet's), count by owner and diff.
func effectKey(p *preview.Plan) string {
	if p.Failed() {
		var b strings.Builder
		b.WriteString("failed\x00")
		b.WriteString(p.Error)
		for _, d := range p.Diagnostics {
			b.WriteString("\x00" + d.String())
		}
		return b.String()
	}
	var entries []string
	for _, c := range p.Changes {
		if c.Action == reconcile.ActionKeep {
			continue
		}
		diff, _ := json.Marshal(c.Diff)
		entries = append(entries, string(c.Action)+"\x00"+c.Owner+"\x00"+c.Reason+"\x00"+c.Refused+"\x00"+string(diff))
	}
	for _, w := range p.Workloads {
		diff, _ := json.Marshal(w.Diff)
		entries = append(entries, "workload\x00"+w.Owner+"\x00"+w.Summary+"\x00"+string(diff))
	}
	if p.BaseError != "" {
		entries = append(entries, "base\x00"+p.BaseError)
	}
	for _, w := range p.Waiting {
		entries = append(entries, "waiting\x00"+w.String())
	}
	sort.Strings(entries)
	h := sha256.New()
	for _, e := range entries {
		h.Write([]byte(e))
		h.Write([]byte{0xff})
	}
	return "changes\x00" + hex.EncodeToString(h.Sum(nil))
}
