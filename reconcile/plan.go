package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Action is what a plan does to one pod.
type Action string

// Actions, in the order apply carries them out.
const (
	ActionDelete  Action = "delete"
	ActionReplace Action = "replace"
	ActionCreate  Action = "create"
	ActionKeep    Action = "keep"
	// ActionWait: a desired pod the revision's rollout does not start
	// (a paused Deployment).
	ActionWait Action = "wait"
)

// Change is one entry of a plan: a pod, what happens to it and why.
type Change struct {
	Action Action `json:"action"`
	Pod    PodID  `json:"pod"`
	// Owner is the object that declares (or declared) the pod.
	Owner  string `json:"owner,omitempty"`
	Reason string `json:"reason"`
	// FromHash and ToHash are the observed and desired spec hashes.
	FromHash string `json:"fromHash,omitempty"`
	ToHash   string `json:"toHash,omitempty"`
	// Source is where the desired pod is declared.
	Source string `json:"source,omitempty"`
	// Step orders the changes of a rollout: 1 happens now, a later step
	// once the pods of the steps before it are ready. Keeps have none.
	Step int `json:"step,omitempty"`
	// After says what a change of a later step waits for.
	After string `json:"after,omitempty"`

	Desired  *DesiredPod  `json:"-"`
	Observed *ObservedPod `json:"-"`
}

// String formats c as one line for humans.
func (c Change) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s pod %s", c.Action, c.Pod)
	if c.Owner != "" && c.Owner != "Pod/"+c.Pod.String() {
		fmt.Fprintf(&b, " (%s)", c.Owner)
	}
	fmt.Fprintf(&b, ": %s", c.Reason)
	if c.Step > 1 {
		fmt.Fprintf(&b, " [step %d, after: %s]", c.Step, c.After)
	}
	return b.String()
}

// Plan is the difference between what a revision wants and what runs: one
// Change per pod, sorted by pod. Making a plan does no I/O.
type Plan struct {
	Revision string   `json:"revision"`
	Changes  []Change `json:"changes"`
}

// HasChanges reports whether applying p would change anything.
func (p *Plan) HasChanges() bool {
	for _, c := range p.Changes {
		if c.Action != ActionKeep && c.Action != ActionWait {
			return true
		}
	}
	return false
}

// Count returns how many changes have action a.
func (p *Plan) Count(a Action) int {
	n := 0
	for _, c := range p.Changes {
		if c.Action == a {
			n++
		}
	}
	return n
}

// Summary is a one-line count of the plan's actions.
func (p *Plan) Summary() string {
	s := fmt.Sprintf("%d to create, %d to replace, %d to delete, %d unchanged",
		p.Count(ActionCreate), p.Count(ActionReplace), p.Count(ActionDelete), p.Count(ActionKeep))
	if n := p.Count(ActionWait); n > 0 {
		s += fmt.Sprintf(", %d waiting", n)
	}
	if n := p.Steps(); n > 1 {
		s += fmt.Sprintf(", in %d steps", n)
	}
	return s
}

// Steps is the number of steps of the plan's rollout.
func (p *Plan) Steps() int {
	n := 0
	for _, c := range p.Changes {
		n = max(n, c.Step)
	}
	return n
}

// WriteText prints the plan for humans: one line per pod, then a summary.
func (p *Plan) WriteText(w io.Writer) error {
	rev := p.Revision
	if rev == "" {
		rev = "(unknown)"
	}
	if _, err := fmt.Fprintf(w, "revision %s\n", rev); err != nil {
		return err
	}
	for _, c := range p.Changes {
		if _, err := fmt.Fprintln(w, c.String()); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(w, "plan: %s\n", p.Summary())
	return err
}

// WriteJSON prints the plan as indented JSON.
func (p *Plan) WriteJSON(w io.Writer) error {
	out := struct {
		*Plan
		HasChanges bool           `json:"hasChanges"`
		Counts     map[Action]int `json:"counts"`
	}{p, p.HasChanges(), map[Action]int{
		ActionCreate: p.Count(ActionCreate), ActionReplace: p.Count(ActionReplace),
		ActionDelete: p.Count(ActionDelete), ActionKeep: p.Count(ActionKeep), ActionWait: p.Count(ActionWait),
	}}
	if out.Changes == nil {
		out.Changes = []Change{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// incomplete says why an observed pod with the desired hash is not what
// the desired pod asks for, or "" when it is: a create that was cut short
// leaves a sandbox that is not ready or app containers that were never
// made.
func incomplete(d *DesiredPod, o *ObservedPod) string {
	if !o.SandboxReady {
		return "sandbox setup was interrupted"
	}
	for _, c := range d.Spec.Containers {
		oc := o.Container(AppContainer, c.Name)
		if oc == nil {
			return fmt.Sprintf("container %q is missing", c.Name)
		}
		if oc.State == StateCreated {
			return fmt.Sprintf("container %q was never started", c.Name)
		}
	}
	return ""
}
