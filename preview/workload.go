package preview

import (
	"fmt"
	"sort"
	"strconv"
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
	// Diff is how the new pods differ from the old ones when the
	// workload's pods are swapped for new ones (a Deployment's new
	// template makes pods with new names): the template diff.
	Diff []reconcile.FieldChange `json:"diff,omitempty"`
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
func workloadChanges(base, head *Evaluation, changes []PodChange) []WorkloadChange {
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
		var baseObjs []reconcile.Object
		if base != nil {
			baseObjs = base.Objects
		}
		w.Summary = summarize(findObject(baseObjs, owner), findObject(head.Objects, owner), w.Counts)
		if base != nil && w.Counts.Create > 0 && w.Counts.Delete > 0 {
			w.Diff = templateDiff(podOf(base.Pods, changes, owner, reconcile.ActionDelete), podOf(head.Pods, changes, owner, reconcile.ActionCreate))
		}
		out = append(out, *w)
	}
	return out
}

// podOf returns the first pod of pods owned by owner that changes lists
// with action.
func podOf(pods []reconcile.DesiredPod, changes []PodChange, owner string, action reconcile.Action) *reconcile.DesiredPod {
	want := map[reconcile.PodID]bool{}
	for _, c := range changes {
		if c.Owner == owner && c.Action == action {
			want[c.Pod] = true
		}
	}
	for i := range pods {
		if want[pods[i].ID] {
			return &pods[i]
		}
	}
	return nil
}

// templateDiff is the diff of an old and a new pod of one workload,
// without the labels that only name the template's version.
func templateDiff(from, to *reconcile.DesiredPod) []reconcile.FieldChange {
	if from == nil || to == nil {
		return nil
	}
	return diffPods(from, to)
}

// versionLabels only name the version of a workload's template, which
// changes whenever anything else does (and, for a DaemonSet, with the
// node); the diff leaves them out.
var versionLabels = []string{"pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name"}

// diffPods is reconcile.DiffPods without the version labels.
func diffPods(from, to *reconcile.DesiredPod) []reconcile.FieldChange {
	var out []reconcile.FieldChange
	for _, c := range reconcile.DiffPods(from, to) {
		if isVersionLabel(c.Path) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func isVersionLabel(path string) bool {
	rest, ok := strings.CutPrefix(path, "metadata.labels")
	if !ok {
		return false
	}
	for _, l := range versionLabels {
		if rest == "."+l || rest == "["+strconv.Quote(l)+"]" {
			return true
		}
	}
	return false
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
// Pods deleted and created together are the workload's pods swapped for
// new ones, as a new template does.
func summarize(base, head *reconcile.Object, n Counts) string {
	if head == nil {
		return fmt.Sprintf("removed from the revision: %s deleted", pods(n.Delete))
	}
	var parts []string
	swapped, created, deleted := n.Replace, n.Create, n.Delete
	if base == nil {
		parts = append(parts, "new")
	} else {
		if from, to := replicas(base), replicas(head); from >= 0 && to >= 0 && from != to {
			parts = append(parts, fmt.Sprintf("scaled from %d to %d", from, to))
		}
		pairs := min(created, deleted)
		swapped, created, deleted = swapped+pairs, created-pairs, deleted-pairs
	}
	if swapped > 0 {
		parts = append(parts, updateSummary(head, swapped))
	}
	if created > 0 {
		parts = append(parts, pods(created)+" created")
	}
	if deleted > 0 {
		parts = append(parts, pods(deleted)+" deleted")
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
		g, u := reconcile.RollingUpdateBounds(s.RollingUpdate, replicas(o))
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
