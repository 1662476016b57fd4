package reconcile

import (
	"fmt"
	"sort"
	"time"
)

// MakePlan is what the engine will do with in, from now until the host
// matches the revision: Decide's verdict turned into one change per pod,
// and, for a rollout that takes several steps (a rolling update, ordered
// StatefulSet pods), the later steps too, found by deciding again on the
// host as it will be once each step is done and its pods are ready. Step
// 1 is what happens now. Making a plan does no I/O.
func MakePlan(in Input) *Plan {
	p := &Plan{Revision: in.Revision}
	acted := map[PodID]int{} // index in p.Changes of a pod's change
	var first Decision
	sim := in
	sim.Observed = append([]ObservedPod(nil), in.Observed...)
	if in.Status == nil {
		in.Status = statusFromRuntime(in)
	}
	sim.Status = make(map[PodID]*PodStatus, len(in.Status))
	for k, v := range in.Status {
		sim.Status[k] = v
	}
	limit := 2*(len(in.Pods)+len(in.Observed)) + 4
	assumed := false
	for step := 1; step <= limit; step++ {
		d := Decide(sim)
		if step == 1 {
			first = d
		}
		changes := StepChanges(&sim, d)
		n := 0
		for _, c := range changes {
			if _, done := acted[c.Pod]; done {
				continue
			}
			c.Step = step
			if step > 1 {
				c.After = first.Waiting[c.Pod]
				if t, ok := first.Targets[c.Pod]; ok && t.Held != "" {
					c.After = t.Held
				}
				if c.After == "" {
					c.After = "the earlier steps' pods are ready"
				}
			}
			acted[c.Pod] = len(p.Changes)
			p.Changes = append(p.Changes, c)
			n++
		}
		if len(changes) == 0 {
			if assumed {
				break
			}
			// Pods that run but are not ready yet hold the rollout: go on
			// as if they became ready.
			assumed = true
			readyAll(&sim)
			continue
		}
		if n == 0 && assumed {
			break
		}
		simulate(&sim, changes)
		readyAll(&sim)
		assumed = false
	}
	// What the first decision keeps, and what no step ever starts.
	obs := make(map[PodID]*ObservedPod, len(in.Observed))
	for i := range in.Observed {
		obs[in.Observed[i].ID] = &in.Observed[i]
	}
	desired := make(map[PodID]*DesiredPod, len(in.Pods))
	for i := range in.Pods {
		desired[in.Pods[i].ID] = &in.Pods[i]
	}
	for id, t := range first.Targets {
		if _, done := acted[id]; done {
			continue
		}
		c := Change{Action: ActionKeep, Pod: id, Reason: "unchanged"}
		if d := desired[id]; d != nil {
			// A held pod: what the revision declares for it.
			c.ToHash, c.Owner, c.Source = d.Hash, d.Owner, d.Source.String()
		}
		if o := obs[id]; o != nil {
			c.Observed, c.FromHash, c.Owner = o, o.Hash, o.Owner
		}
		if t.Spec != nil {
			c.Desired, c.ToHash, c.Owner, c.Source = t.Spec, t.Spec.Hash, t.Spec.Owner, t.Spec.Source.String()
			if t.Spec.Finished != "" {
				if c.Observed == nil {
					continue
				}
				c.Reason = "finished (" + string(t.Spec.Finished) + ")"
			}
		}
		if t.Held != "" {
			c.Reason = t.Held
		}
		acted[id] = len(p.Changes)
		p.Changes = append(p.Changes, c)
	}
	for i := range in.Pods {
		d := &in.Pods[i]
		if _, done := acted[d.ID]; done || d.Finished != "" {
			continue
		}
		why, ok := first.Waiting[d.ID]
		if !ok || isUnneeded(why) {
			continue
		}
		p.Changes = append(p.Changes, Change{
			Action: ActionWait, Pod: d.ID, Owner: d.Owner, ToHash: d.Hash, Source: d.Source.String(), Desired: d, Reason: why,
		})
	}
	sort.SliceStable(p.Changes, func(i, j int) bool { return PodLess(p.Changes[i].Pod, p.Changes[j].Pod) })
	return p
}

func isUnneeded(why string) bool { return why == reasonUnneeded }

// reasonUnneeded: a ReplicaSet's pod that its running pods stand in for.
const reasonUnneeded = "not needed: the ReplicaSet's running pods make up its replicas"

// StepChanges turns a decision on sim into the creates, replaces and
// deletes it asks for now.
func StepChanges(sim *Input, d Decision) []Change {
	// Copies: simulate rewrites sim.Observed in place.
	obs := make(map[PodID]*ObservedPod, len(sim.Observed))
	for _, o := range sim.Observed {
		obs[o.ID] = &o
	}
	var out []Change
	for id, t := range d.Targets {
		s, o := t.Spec, obs[id]
		if t.Retain || s == nil || s.Finished != "" {
			continue
		}
		c := Change{Pod: id, Owner: s.Owner, ToHash: s.Hash, Source: s.Source.String(), Desired: s}
		switch {
		case o == nil:
			c.Action, c.Reason = ActionCreate, "not running on this host"
		case o.Hash != s.Hash:
			c.Action, c.Observed, c.FromHash = ActionReplace, o, o.Hash
			c.Reason = fmt.Sprintf("spec changed (%s → %s)", o.Hash, s.Hash)
		default:
			why := incomplete(s, o)
			if why == "" {
				continue
			}
			c.Action, c.Observed, c.FromHash, c.Reason = ActionReplace, o, o.Hash, why
		}
		out = append(out, c)
	}
	for id, why := range d.Removing {
		o := obs[id]
		out = append(out, Change{Action: ActionDelete, Pod: id, Owner: o.Owner, FromHash: o.Hash, Observed: o, Reason: why})
	}
	sort.Slice(out, func(i, j int) bool { return PodLess(out[i].Pod, out[j].Pod) })
	return out
}

// simulate makes sim the host once changes are done: created and
// replaced pods run their new spec, deleted pods are gone.
func simulate(sim *Input, changes []Change) {
	idx := map[PodID]int{}
	for i := range sim.Observed {
		idx[sim.Observed[i].ID] = i
	}
	gone := map[PodID]bool{}
	for _, c := range changes {
		switch c.Action {
		case ActionDelete:
			gone[c.Pod] = true
		case ActionCreate, ActionReplace:
			o := runningPod(c.Desired, sim.Now)
			if i, ok := idx[c.Pod]; ok {
				sim.Observed[i] = o
			} else {
				idx[c.Pod] = len(sim.Observed)
				sim.Observed = append(sim.Observed, o)
			}
			delete(sim.Status, c.Pod)
		}
	}
	out := sim.Observed[:0:0]
	for _, o := range sim.Observed {
		if !gone[o.ID] {
			out = append(out, o)
		}
	}
	sim.Observed = out
	known := make(map[PodID]*DesiredPod, len(sim.Known)+len(changes))
	for k, v := range sim.Known {
		known[k] = v
	}
	for _, c := range changes {
		if c.Desired != nil {
			known[c.Pod] = c.Desired
		}
	}
	sim.Known = known
}

// readyAll marks every pod of sim ready long enough for any
// minReadySeconds.
func readyAll(sim *Input) {
	long := sim.Now.Add(-365 * 24 * time.Hour)
	for i := range sim.Observed {
		o := &sim.Observed[i]
		s := PodStatus{ID: o.ID, Owner: o.Owner, Hash: o.Hash, Phase: PodRunning, Ready: true, ReadySince: long}
		if cur := sim.Status[o.ID]; cur != nil {
			s = *cur
			s.Ready, s.ReadySince = true, long
		}
		sim.Status[o.ID] = &s
	}
}

// runningPod is how a pod made from d looks once it runs.
func runningPod(d *DesiredPod, now time.Time) ObservedPod {
	o := ObservedPod{ID: d.ID, Hash: d.Hash, Revision: d.Revision, Owner: d.Owner, SandboxReady: true, CreatedAt: now, GracePeriod: d.GracePeriod()}
	for _, c := range d.Spec.InitContainers {
		o.Containers = append(o.Containers, ObservedContainer{Name: c.Name, Kind: InitContainer, Image: c.Image, State: StateExited})
	}
	for _, c := range d.Spec.Containers {
		o.Containers = append(o.Containers, ObservedContainer{Name: c.Name, Kind: AppContainer, Image: c.Image, State: StateRunning})
	}
	return o
}
