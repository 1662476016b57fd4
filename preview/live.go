package preview

import (
	"fmt"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// Live is what runs on the host, for CompareLive.
type Live struct {
	// Observed are the pods berth finds in the runtime.
	Observed []reconcile.ObservedPod
	// Applied is the revision last applied on the host, evaluated for
	// it; nil when unknown.
	Applied *Evaluation
	// Now is the time the host is judged at (minReadySeconds, progress
	// deadlines); Deployments are its Deployments' rollout records.
	Now         time.Time
	Deployments map[string]*reconcile.DeploymentRecord
	// Revision evaluates a revision (by commit) that running pods came
	// from, so a replace can show its field diff; nil, or a nil result,
	// when the revision is not at hand.
	Revision func(commit string) *Evaluation
}

// CompareLive previews applying head on the host now: reconcile.MakePlan
// against the observed pods, as apply does. It also spells out drift,
// what was done outside berth: a pod the last applied revision declares
// that no longer runs, a running pod whose spec is not what its revision
// declares, a pod missing containers.
func CompareLive(head *Evaluation, headName string, live Live) *Plan {
	p := &Plan{
		Base: RevisionInfo{Name: "live"},
		Head: RevisionInfo{Name: headName, Commit: head.Commit},
		Node: head.Node,
	}
	if live.Applied != nil {
		p.Base.Commit = live.Applied.Commit
	}
	if failHead(p, head) {
		return p
	}
	applied := map[reconcile.PodID]*reconcile.DesiredPod{}
	if live.Applied != nil && live.Applied.Failed() == nil {
		for i := range live.Applied.Pods {
			applied[live.Applied.Pods[i].ID] = &live.Applied.Pods[i]
		}
	}
	evals := map[string]*Evaluation{}
	declared := func(commit string, id reconcile.PodID) (*reconcile.DesiredPod, bool) {
		if live.Revision == nil || commit == "" {
			return nil, false
		}
		e, seen := evals[commit]
		if !seen {
			e = live.Revision(commit)
			evals[commit] = e
		}
		if e == nil || e.Failed() != nil {
			return nil, false
		}
		for i := range e.Pods {
			if e.Pods[i].ID == id {
				return &e.Pods[i], true
			}
		}
		return nil, true
	}
	headInfo := p.Head.String()
	rp := reconcile.MakePlan(reconcile.Input{
		Revision: head.Commit, Objects: head.Objects, Pods: head.Pods, Observed: live.Observed,
		Node: head.Node, Now: live.Now, Deployments: live.Deployments,
	})
	for _, c := range rp.Changes {
		pc := fromChange(c)
		switch c.Action {
		case reconcile.ActionCreate:
			if a := applied[c.Pod]; a != nil {
				pc.Drift = true
				pc.Reason = fmt.Sprintf("removed outside berth: applied revision %s declares it, but it does not run", source.ShortCommit(live.Applied.Commit))
			} else {
				pc.Reason = "not running; declared by " + headInfo
			}
		case reconcile.ActionReplace:
			o := c.Observed
			if c.FromHash == c.ToHash {
				pc.Drift = true
				pc.Reason += " (changed outside berth)"
				break
			}
			from, known := declared(o.Revision, c.Pod)
			switch {
			case from != nil && from.Hash == o.Hash:
				pc.Diff = diffPods(from, c.Desired)
				pc.Reason = changedReason(pc.Diff)
			case from != nil || known:
				pc.Drift = true
				pc.Reason = fmt.Sprintf("the running spec (%s) is not what its revision %s declares: changed outside berth", o.Hash, source.ShortCommit(o.Revision))
			default:
				pc.Reason = fmt.Sprintf("spec changed (%s → %s); revision %s is not at hand for a field diff", o.Hash, c.ToHash, source.ShortCommit(o.Revision))
			}
		case reconcile.ActionDelete:
			pc.Reason = "not in " + headInfo
			if why := head.waitingReason(c.Owner); why != "" {
				pc.Reason = why
			}
		}
		pc.Refused = head.Refused[c.Pod]
		p.add(pc)
	}
	p.Workloads = workloadChanges(live.Applied, head, p.Changes)
	p.Waiting = head.Waiting
	return p
}
