package preview

import (
	"fmt"
	"strings"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
	"berth.dev/berth/secrets"
	"berth.dev/berth/source"
)

// RevisionInfo names one side of a preview.
type RevisionInfo struct {
	// Name is what the user asked for: a ref, a commit, or "live".
	Name string `json:"name"`
	// Commit is the commit evaluated ("" when unknown, for instance the
	// live side of a host that never applied anything).
	Commit string `json:"commit,omitempty"`
}

// String formats r as "name (short commit)".
func (r RevisionInfo) String() string {
	c := source.ShortCommit(r.Commit)
	switch {
	case r.Name == "" && c == "":
		return "(none)"
	case r.Name == "" || r.Name == r.Commit || r.Name == c:
		return c
	case c == "":
		return r.Name
	}
	return r.Name + " (" + c + ")"
}

// PodChange is what happens to one pod, and why.
type PodChange struct {
	Action reconcile.Action `json:"action"`
	Pod    reconcile.PodID  `json:"pod"`
	// Owner is the object declaring the pod, "Kind/namespace/name".
	Owner string `json:"owner,omitempty"`
	// Source is where the owner is declared, file:line:col (head's for
	// a create, replace or keep; base's for a delete).
	Source string `json:"source,omitempty"`
	// Reason says why, as a sentence fragment.
	Reason string `json:"reason"`
	// Drift marks a change caused by something done outside berth (a pod
	// removed or changed by hand), found when previewing against the
	// live host.
	Drift bool `json:"drift,omitempty"`
	// Images are the images of the pod's containers (for a create).
	Images []string `json:"images,omitempty"`
	// Diff is the field-level difference, for a replace whose old spec is
	// known.
	Diff []reconcile.FieldChange `json:"diff,omitempty"`
	// Refused says why the node's policy refuses the pod: apply would
	// fail to create it.
	Refused string `json:"refused,omitempty"`
	// FromHash and ToHash are the old and new spec hashes.
	FromHash string `json:"fromHash,omitempty"`
	ToHash   string `json:"toHash,omitempty"`
	// Step orders a rollout's changes (1: now); After says what a later
	// step waits for. As reconcile.Change.
	Step  int    `json:"step,omitempty"`
	After string `json:"after,omitempty"`
}

// Counts are how many pods each action touches.
type Counts struct {
	Create    int `json:"create"`
	Replace   int `json:"replace"`
	Delete    int `json:"delete"`
	Unchanged int `json:"unchanged"`
}

// Add counts a.
func (c *Counts) Add(a reconcile.Action) {
	switch a {
	case reconcile.ActionCreate:
		c.Create++
	case reconcile.ActionReplace:
		c.Replace++
	case reconcile.ActionDelete:
		c.Delete++
	default:
		c.Unchanged++
	}
}

// Changed is the number of pods created, replaced or deleted.
func (c Counts) Changed() int { return c.Create + c.Replace + c.Delete }

// String formats c as apply's summary line does.
func (c Counts) String() string {
	return fmt.Sprintf("%d to create, %d to replace, %d to delete, %d unchanged", c.Create, c.Replace, c.Delete, c.Unchanged)
}

// Plan is a preview: what applying Head where Base runs would do.
type Plan struct {
	Base RevisionInfo `json:"base"`
	Head RevisionInfo `json:"head"`
	// Node is the node both sides were evaluated for.
	Node reconcile.Node `json:"node"`
	// Diagnostics are the head revision's validation problems; when it
	// has errors, nothing would change.
	Diagnostics []schema.Diagnostic `json:"diagnostics,omitempty"`
	// Error is any other failure of the head (expansion, unreadable
	// files).
	Error string `json:"error,omitempty"`
	// BaseError says why the base revision could not be evaluated (on
	// this node); the head is then compared with an empty revision.
	BaseError string `json:"baseError,omitempty"`
	// NotForNode lists the head's objects whose pods do not run on Node,
	// and why.
	NotForNode []reconcile.NotForNode `json:"notForNode,omitempty"`
	// Workloads sums up the effect on each workload with changed pods.
	Workloads []WorkloadChange `json:"workloads,omitempty"`
	// Changes has one entry per pod, sorted by pod.
	Changes []PodChange `json:"changes"`
	Counts  Counts      `json:"counts"`
	// Waiting are the head's objects whose pods the node does not start,
	// for want of Secrets it cannot decrypt.
	Waiting []secrets.Waiting `json:"waiting,omitempty"`
}

// Failed reports whether the head revision could not be evaluated, or
// has a pod to create or replace that the node's policy refuses.
func (p *Plan) Failed() bool {
	if p.Error != "" {
		return true
	}
	for _, c := range p.Changes {
		if c.Refused != "" && c.Action != reconcile.ActionDelete {
			return true
		}
	}
	for _, d := range p.Diagnostics {
		if d.Severity == schema.SeverityError {
			return true
		}
	}
	return false
}

// HasChanges reports whether applying head would change anything.
func (p *Plan) HasChanges() bool { return p.Counts.Changed() > 0 }

// ExitCode is berth plan's exit code for p: 1 when the head revision
// fails, 2 when it would change something, 0 otherwise.
func (p *Plan) ExitCode() int {
	switch {
	case p.Failed():
		return 1
	case p.HasChanges():
		return 2
	}
	return 0
}

// Compare previews applying head on a host that runs base, both evaluated
// for the same node. It is pure: base's pods stand in for the observed
// ones, and reconcile.MakePlan decides.
func Compare(base, head *Evaluation, baseName, headName string) *Plan {
	p := &Plan{
		Base: RevisionInfo{Name: baseName, Commit: base.Commit},
		Head: RevisionInfo{Name: headName, Commit: head.Commit},
		Node: head.Node,
	}
	if failHead(p, head) {
		return p
	}
	if err := base.Failed(); err != nil {
		// A head that fixes a base broken on this node is worth a
		// preview: compare it with nothing.
		p.BaseError = fmt.Sprintf("base revision %s cannot be evaluated, so the head is compared with an empty revision: %s", p.Base, oneLineErr(err))
		base = &Evaluation{Loaded: &Loaded{Commit: base.Commit, Objects: []reconcile.Object{}}, Node: base.Node}
	}
	basePods := map[reconcile.PodID]*reconcile.DesiredPod{}
	for i := range base.Pods {
		basePods[base.Pods[i].ID] = &base.Pods[i]
	}
	rp := reconcile.MakePlan(reconcile.Input{
		Revision: head.Commit, Objects: head.Objects, Pods: head.Pods, Observed: asObserved(base), Node: head.Node,
	})
	headName = p.Head.String()
	for _, c := range rp.Changes {
		pc := fromChange(c)
		switch c.Action {
		case reconcile.ActionCreate:
			pc.Reason = "new in " + headName
		case reconcile.ActionDelete:
			pc.Reason = "not in " + headName
			if b := basePods[c.Pod]; b != nil {
				pc.Source = b.Source.String()
			}
			if why := head.waitingReason(c.Owner); why != "" {
				pc.Reason = why
			}
		case reconcile.ActionReplace:
			pc.Diff = diffPods(basePods[c.Pod], c.Desired)
			pc.Reason = changedReason(pc.Diff)
		}
		pc.Refused = head.Refused[c.Pod]
		p.add(pc)
	}
	p.Workloads = workloadChanges(base, head, p.Changes)
	p.Waiting = head.Waiting
	return p
}

// failHead records why head cannot be evaluated and reports whether it
// cannot.
func failHead(p *Plan, head *Evaluation) bool {
	switch {
	case head.Err != nil:
		p.Error = fmt.Sprintf("head revision %s cannot be read: %s", p.Head, oneLineErr(head.Err))
	case head.Invalid():
		p.Diagnostics = head.Diagnostics
	case head.ExpandErr != nil:
		p.Error = oneLineErr(head.ExpandErr)
	default:
		p.Diagnostics = head.Warnings
		p.NotForNode = head.NotForNode
		return false
	}
	p.Changes = []PodChange{}
	return true
}

func oneLineErr(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func (p *Plan) add(c PodChange) {
	p.Changes = append(p.Changes, c)
	p.Counts.Add(c.Action)
}

func fromChange(c reconcile.Change) PodChange {
	pc := PodChange{
		Action: c.Action, Pod: c.Pod, Owner: c.Owner, Source: c.Source, Reason: c.Reason,
		FromHash: c.FromHash, ToHash: c.ToHash, Step: c.Step, After: c.After,
	}
	if c.Action == reconcile.ActionCreate && c.Desired != nil {
		pc.Images = images(c.Desired)
	}
	return pc
}

func images(p *reconcile.DesiredPod) []string {
	var out []string
	for _, cs := range [][]reconcile.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, c := range cs {
			out = append(out, c.Name+"="+c.Image)
		}
	}
	return out
}

// changedReason names the fields that changed, at most three.
func changedReason(diff []reconcile.FieldChange) string {
	if len(diff) == 0 {
		return "spec changed"
	}
	var names []string
	seen := map[string]bool{}
	for _, c := range diff {
		n := reasonPath(c.Path)
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) > 3 {
		return fmt.Sprintf("changed %s and %d more", strings.Join(names[:3], ", "), len(names)-3)
	}
	return "changed " + strings.Join(names, ", ")
}

// reasonPath shortens a field path for a reason to its first two
// segments: "containers[web].env" for "spec.containers[web].env[A].value",
// the config object for config.
func reasonPath(p string) string {
	for _, prefix := range []string{"configMap[", "secret["} {
		if strings.HasPrefix(p, prefix) {
			if i := strings.Index(p, "]"); i > 0 {
				return p[:i+1]
			}
		}
	}
	p = strings.TrimPrefix(p, "spec.")
	inBracket, segs := false, 0
	for i, r := range p {
		switch {
		case r == '[':
			if segs == 1 && !inBracket {
				return p[:i]
			}
			inBracket = true
		case r == ']':
			inBracket = false
		case r == '.' && !inBracket:
			segs++
			if segs == 2 {
				return p[:i]
			}
		}
	}
	return p
}

// asObserved presents base's pods as if they ran, complete, on the host.
func asObserved(base *Evaluation) []reconcile.ObservedPod {
	out := make([]reconcile.ObservedPod, 0, len(base.Pods))
	for i := range base.Pods {
		d := &base.Pods[i]
		o := reconcile.ObservedPod{ID: d.ID, Hash: d.Hash, Revision: d.Revision, Owner: d.Owner, GracePeriod: d.GracePeriod(), SandboxReady: true}
		for _, c := range d.Spec.InitContainers {
			o.Containers = append(o.Containers, reconcile.ObservedContainer{Name: c.Name, Kind: reconcile.InitContainer, Image: c.Image, State: reconcile.StateExited})
		}
		for _, c := range d.Spec.Containers {
			o.Containers = append(o.Containers, reconcile.ObservedContainer{Name: c.Name, Kind: reconcile.AppContainer, Image: c.Image, State: reconcile.StateRunning})
		}
		out = append(out, o)
	}
	return out
}
