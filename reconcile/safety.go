package reconcile

import (
	"fmt"
	"sort"
	"strings"
)

// DefaultRemoveThreshold is the share of the workloads running here that
// a revision may remove without AllowMassDelete.
const DefaultRemoveThreshold = 0.5

// Safety is the deletion-safety rule's setting.
type Safety struct {
	// AllowMassDelete lets a revision remove every workload, or more than
	// Threshold of them.
	AllowMassDelete bool
	// Threshold is the share of the running workloads a revision may
	// remove (default DefaultRemoveThreshold).
	Threshold float64
}

// RemovalError is a revision refused by the deletion-safety rule.
type RemovalError struct {
	Revision string
	// Removed are the workloads (and bare Pods) that run here and that the
	// revision no longer declares, as "Kind/namespace/name".
	Removed []string
	// Running is how many workloads run here.
	Running   int
	Threshold float64
}

func (e *RemovalError) Error() string {
	rev := ShortRevision(e.Revision)
	names := e.Removed
	more := ""
	if len(names) > 5 {
		names, more = names[:5], fmt.Sprintf(" and %d more", len(e.Removed)-5)
	}
	what := fmt.Sprintf("%d of the %d workloads berth runs here", len(e.Removed), e.Running)
	if len(e.Removed) == e.Running {
		what = fmt.Sprintf("all %d workloads berth runs here", e.Running)
	} else {
		what += fmt.Sprintf(", more than %.0f%%", e.Threshold*100)
	}
	return fmt.Sprintf("revision %s would remove %s (%s%s); refused (allow with --allow-mass-delete)",
		rev, what, strings.Join(names, ", "), more)
}

// CheckRemovals is berth's one deletion-safety rule. It counts what the
// revision removes: the workloads and bare Pods that have pods running
// here and that the revision no longer declares. Pods a rollout replaces,
// a scale-down and Job runs a CronJob keeps are not removals. A revision
// that removes every running workload, or more than the threshold's share
// of them, is refused unless AllowMassDelete is set. It does no I/O.
func CheckRemovals(revision string, objs []Object, observed []ObservedPod, s Safety) error {
	if s.AllowMassDelete || len(observed) == 0 {
		return nil
	}
	if s.Threshold <= 0 {
		s.Threshold = DefaultRemoveThreshold
	}
	declared := map[string]bool{}
	crons := map[string]bool{} // "namespace/name" of CronJobs
	for i := range objs {
		declared[objs[i].Key()] = true
		if objs[i].Kind == "CronJob" {
			crons[NamespaceOr(objs[i].Metadata.Namespace)+"/"+objs[i].Metadata.Name] = true
		}
	}
	running := map[string]bool{}
	for _, o := range observed {
		if o.Owner != "" {
			running[o.Owner] = true
		}
	}
	var removed []string
	for owner := range running {
		if declared[owner] || cronRun(owner, crons) {
			continue
		}
		removed = append(removed, owner)
	}
	if len(removed) == 0 {
		return nil
	}
	if len(removed) < len(running) && float64(len(removed)) <= s.Threshold*float64(len(running)) {
		return nil
	}
	sort.Strings(removed)
	return &RemovalError{Revision: revision, Removed: removed, Running: len(running), Threshold: s.Threshold}
}

// cronRun reports whether owner is a Job a declared CronJob made
// ("Job/namespace/<cronjob>-<minutes>").
func cronRun(owner string, crons map[string]bool) bool {
	kind, ns, name := SplitOwner(owner)
	if kind != "Job" {
		return false
	}
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return false
	}
	for _, r := range name[i+1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return crons[NamespaceOr(ns)+"/"+name[:i]]
}
