package preview

import (
	"fmt"
	"sort"
	"strings"

	"berth.dev/berth/reconcile"
)

// WorkloadChange sums up what a plan does to the pods of one workload
// (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob).
type WorkloadChange struct {
	// Owner is the workload, "Kind/namespace/name".
	Owner string `json:"owner"`
	// Summary spells the effect out: "rolling update of 3 pods,
	// maxUnavailable 0, maxSurge 1".
	Summary string `json:"summary"`
	Counts  Counts `json:"counts"`
}

// String formats w as "Deployment default/web: summary".
func (w WorkloadChange) String() string { return ownerName(w.Owner) + ": " + w.Summary }

// ownerName turns "Kind/namespace/name" into "Kind namespace/name".
func ownerName(owner string) string {
	kind, rest, ok := strings.Cut(owner, "/")
	if !ok {
		return owner
	}
	if strings.HasPrefix(rest, "/") {
		rest = "default" + rest
	}
	return kind + " " + rest
}

// workloadChanges groups changes by owning workload and describes each
// workload with a changed pod, from its spec in head (or base, when it was
// removed).
func workloadChanges(base, head []reconcile.Object, changes []PodChange) []WorkloadChange {
	byOwner := map[string]*WorkloadChange{}
	var order []string
	for _, c := range changes {
		kind, _, _ := strings.Cut(c.Owner, "/")
		if kind == "" || kind == "Pod" {
			continue
		}
		w := byOwner[c.Owner]
		if w == nil {
			w = &WorkloadChange{Owner: c.Owner}
			byOwner[c.Owner] = w
			order = append(order, c.Owner)
		}
		w.Counts.Add(c.Action)
	}
	sort.Strings(order)
	var out []WorkloadChange
	for _, owner := range order {
		w := byOwner[owner]
		if w.Counts.Changed() == 0 {
			continue
		}
		w.Summary = summarize(findObject(base, owner), findObject(head, owner), w.Counts)
		out = append(out, *w)
	}
	return out
}

func findObject(objs []reconcile.Object, key string) *reconcile.Object {
	for i := range objs {
		if objs[i].Key() == key {
			return &objs[i]
		}
	}
	return nil
}

// summarize describes the effect of counts on the workload, which is
// base in the old revision and head in the new one (either may be nil).
func summarize(base, head *reconcile.Object, n Counts) string {
	if head == nil {
		return fmt.Sprintf("removed from the revision: %s deleted", pods(n.Delete))
	}
	var parts []string
	if base == nil {
		parts = append(parts, "new")
	} else if from, to := replicas(base), replicas(head); from >= 0 && to >= 0 && from != to {
		parts = append(parts, fmt.Sprintf("scaled from %d to %d", from, to))
	}
	if n.Replace > 0 {
		parts = append(parts, updateSummary(head, n.Replace))
	}
	if n.Create > 0 {
		parts = append(parts, pods(n.Create)+" created")
	}
	if n.Delete > 0 {
		parts = append(parts, pods(n.Delete)+" deleted")
	}
	return strings.Join(parts, "; ")
}

func pods(n int) string {
	if n == 1 {
		return "1 pod"
	}
	return fmt.Sprintf("%d pods", n)
}

// replicas is the workload's replica count, or -1 for kinds without one.
func replicas(o *reconcile.Object) int {
	var r *int32
	switch {
	case o.Deployment != nil:
		r = o.Deployment.Replicas
	case o.ReplicaSet != nil:
		r = o.ReplicaSet.Replicas
	case o.StatefulSet != nil:
		r = o.StatefulSet.Replicas
	default:
		return -1
	}
	if r == nil {
		return 1
	}
	return int(*r)
}

// updateSummary describes how n pods of o are replaced, following the
// workload's update strategy with Kubernetes' defaults.
func updateSummary(o *reconcile.Object, n int) string {
	switch {
	case o.Deployment != nil:
		s := o.Deployment.Strategy
		if s.Type == "Recreate" {
			return fmt.Sprintf("recreate: %s stopped, then started from the new template", pods(n))
		}
		total := replicas(o)
		unavail, surge := reconcile.FromString("25%"), reconcile.FromString("25%")
		if ru := s.RollingUpdate; ru != nil {
			if ru.MaxUnavailable != nil {
				unavail = *ru.MaxUnavailable
			}
			if ru.MaxSurge != nil {
				surge = *ru.MaxSurge
			}
		}
		u, err1 := unavail.Scaled(total, false)
		g, err2 := surge.Scaled(total, true)
		if err1 != nil || err2 != nil {
			return "rolling update of " + pods(n)
		}
		if u == 0 && g == 0 {
			u = 1 // as Kubernetes does
		}
		return fmt.Sprintf("rolling update of %s, maxUnavailable %d, maxSurge %d", pods(n), u, g)
	case o.StatefulSet != nil:
		s := o.StatefulSet.UpdateStrategy
		if s.Type == "OnDelete" {
			return fmt.Sprintf("%s to replace (OnDelete)", pods(n))
		}
		msg := fmt.Sprintf("rolling update of %s, highest ordinal first", pods(n))
		if ru := s.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
			msg += fmt.Sprintf(", ordinals ≥ %d only", *ru.Partition)
		}
		return msg
	case o.DaemonSet != nil:
		if o.DaemonSet.UpdateStrategy.Type == "OnDelete" {
			return fmt.Sprintf("%s to replace (OnDelete)", pods(n))
		}
		return "rolling update of " + pods(n)
	}
	return pods(n) + " replaced"
}
