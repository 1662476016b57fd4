package agent

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/reconcile"
)

// healthWatch follows the pods a new revision created or replaced until
// they are healthy (the revision becomes the last good one) or not (the
// agent rolls back).
type healthWatch struct {
	commit   string
	since    time.Time
	deadline time.Time
	pods     []reconcile.PodID
	// rollback marks the watch of a revision rolled back to, handed to a
	// Continuous reconciler that changes the pods after Reconcile
	// returns: the agent follows them only to keep its status current,
	// and neither marks nor rolls back anything on the verdict.
	rollback bool

	// The runtime's part: interruptions is the runtime's count of
	// interruptions when the watch (re)started, runtimeDown is set when a
	// pass could not reach the runtime, and crashBase holds the crashes
	// each container had then ("pod/kind/name"), which are the runtime's
	// doing and not counted against the revision.
	interruptions uint64
	runtimeDown   bool
	crashBase     map[string]int
}

// restart starts the watch afresh at now, after the runtime was
// unreachable: the deadline counts again, and the crashes the pods have
// now are not the revision's.
func (w *healthWatch) restart(now time.Time, interruptions uint64, statuses map[reconcile.PodID]*reconcile.PodStatus) {
	w.deadline = now.Add(w.deadline.Sub(w.since))
	w.since, w.interruptions, w.runtimeDown = now, interruptions, false
	w.crashBase = map[string]int{}
	for _, st := range statuses {
		for _, c := range append(slices.Clone(st.InitContainers), st.Containers...) {
			w.crashBase[crashKey(st.ID, c.Name)] = crashes(c)
		}
	}
}

func crashKey(id reconcile.PodID, container string) string { return id.String() + "/" + container }

// crashes counts a container's crashes: its restarts, plus an exit now
// waiting to be restarted.
func crashes(c reconcile.ContainerStatus) int {
	n := c.RestartCount
	if c.State != reconcile.Running && (c.Reason == reconcile.ReasonCrashLoopBackOff || c.State == reconcile.Terminated && c.ExitCode != 0) {
		n++
	}
	return n
}

type verdict int

const (
	waiting verdict = iota
	healthy
	unhealthy
)

// evaluate judges the watched pods. A pod is healthy when each of its app
// containers has run for at least settle, or (for restartPolicy OnFailure
// or Never) exited with code 0. An app container that exits when its pod
// wants it to keep running, or exits with an error, makes the revision
// unhealthy at once; so does a deadline passed with pods still waiting.
//
// When statuses (from a pod manager that restarts containers and runs
// probes) are given, pods are judged by them instead: it is
// healthy when Ready (or Succeeded) for at least settle, and unhealthy
// when Failed or when a container crashed crashes times (restarts, plus
// an exit now waiting to be restarted).
func (w *healthWatch) evaluate(now time.Time, settle time.Duration, crashes int, desired map[reconcile.PodID]*reconcile.DesiredPod, obs []reconcile.ObservedPod, statuses map[reconcile.PodID]*reconcile.PodStatus) (verdict, string) {
	byID := make(map[reconcile.PodID]*reconcile.ObservedPod, len(obs))
	for i := range obs {
		byID[obs[i].ID] = &obs[i]
	}
	var notReady []string
	for _, id := range w.pods {
		d := desired[id]
		if d == nil {
			continue // no longer desired: nothing to wait for
		}
		if statuses != nil {
			// A pod manager restarts what exits: judge by its view only,
			// and wait until it has one of this spec.
			st := statuses[id]
			if st == nil || st.Hash != d.Hash {
				notReady = append(notReady, id.String())
				continue
			}
			ok, why := judgeStatus(now, w.since, settle, crashes, w.crashBase, d.Spec.RestartPolicy, st)
			if why != "" {
				return unhealthy, why
			}
			if ok && st.Phase != reconcile.PodSucceeded {
				// The manager's view may trail the runtime: the containers
				// must also run, settled, as containerd reports them now.
				ok = runningSettled(now, w.since, settle, d, byID[id])
			}
			if !ok {
				notReady = append(notReady, id.String())
			}
			continue
		}
		o := byID[id]
		if o == nil || o.Hash != d.Hash || !o.SandboxReady {
			notReady = append(notReady, id.String())
			continue
		}
		ready := true
		for _, c := range d.Spec.Containers {
			oc := o.Container(reconcile.AppContainer, c.Name)
			if oc == nil {
				ready = false
				continue
			}
			switch oc.State {
			case reconcile.StateRunning:
				started := oc.StartedAt
				if started.IsZero() {
					started = w.since
				}
				if now.Sub(started) < settle {
					ready = false
				}
			case reconcile.StateExited:
				policy := d.Spec.RestartPolicy
				if policy == "" || policy == "Always" {
					return unhealthy, fmt.Sprintf("container %q of pod %s exited with code %d", c.Name, id, oc.ExitCode)
				}
				if oc.ExitCode != 0 {
					return unhealthy, fmt.Sprintf("container %q of pod %s failed with code %d", c.Name, id, oc.ExitCode)
				}
			default:
				ready = false
			}
		}
		if !ready {
			notReady = append(notReady, id.String())
		}
	}
	if len(notReady) == 0 {
		return healthy, ""
	}
	if !now.Before(w.deadline) {
		sort.Strings(notReady)
		return unhealthy, fmt.Sprintf("pods not ready within %s: %s", w.deadline.Sub(w.since).Round(time.Second), strings.Join(notReady, ", "))
	}
	return waiting, ""
}

// judgeStatus reports whether a managed pod is healthy, or why it is not
// and never will be.
func judgeStatus(now, watched time.Time, settle time.Duration, limit int, base map[string]int, policy string, st *reconcile.PodStatus) (bool, string) {
	always := policy == "" || policy == "Always"
	switch {
	case st.Phase == reconcile.PodFailed && (!always || st.Reason != ""):
		why := fmt.Sprintf("pod %s failed", st.ID)
		if st.Reason != "" {
			why += " (" + st.Reason + ")"
		}
		return false, why
	case st.Phase == reconcile.PodSucceeded:
		return true, ""
	}
	for _, c := range append(append([]reconcile.ContainerStatus(nil), st.InitContainers...), st.Containers...) {
		n := crashes(c) - base[crashKey(st.ID, c.Name)]
		if n >= limit {
			return false, fmt.Sprintf("container %q of pod %s is crash-looping (%d crashes, last exit code %d)", c.Name, st.ID, n, c.ExitCode)
		}
	}
	if !st.Ready {
		return false, ""
	}
	// Ready for settle: since the Ready condition last turned true, else
	// since the last container started, else since the watch began.
	since := st.ReadySince
	for _, c := range st.Containers {
		if since.IsZero() || c.StartedAt.After(since) {
			since = c.StartedAt
		}
	}
	if since.IsZero() {
		since = watched
	}
	return now.Sub(since) >= settle, ""
}

// runningSettled reports whether every app container of d runs in o, and
// has for at least settle (counted from the watch when the runtime gives
// no start time).
func runningSettled(now, watched time.Time, settle time.Duration, d *reconcile.DesiredPod, o *reconcile.ObservedPod) bool {
	if o == nil || o.Hash != d.Hash || !o.SandboxReady {
		return false
	}
	for _, c := range d.Spec.Containers {
		oc := o.Container(reconcile.AppContainer, c.Name)
		if oc == nil || oc.State != reconcile.StateRunning {
			return false
		}
		started := oc.StartedAt
		if started.IsZero() {
			started = watched
		}
		if now.Sub(started) < settle {
			return false
		}
	}
	return true
}
