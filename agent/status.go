package agent

import (
	"fmt"
	"sort"
	"time"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
)

// Status is what the agent reports on /status. It holds no credentials:
// the source URL is shown without user info.
type Status struct {
	Source    string `json:"source"`
	Suspended bool   `json:"suspended"`
	Pin       string `json:"pin,omitempty"`
	// Offline is true while the agent runs a revision from its cache
	// because it could not fetch since it started; it prunes nothing then.
	Offline  bool             `json:"offline"`
	Fetched  *record.Revision `json:"fetched,omitempty"`
	Applied  *record.Revision `json:"applied,omitempty"`
	LastGood *record.Revision `json:"lastGood,omitempty"`
	// Checking is the revision whose pods are being watched before it
	// becomes the last good one.
	Checking *HealthCheck `json:"checking,omitempty"`
	// Rollout is this device's place in the rollout of the revision it
	// wants, when that revision has a rollout policy: its wave, and what
	// it waits for and why.
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// LastError is the most recent reason a revision was not applied, or
	// a reconciliation failed; nil after a clean pass.
	LastError *Problem `json:"lastError,omitempty"`
	// FetchError is the most recent fetch failure, nil after a fetch
	// succeeded.
	FetchError   *Problem      `json:"fetchError,omitempty"`
	BadRevisions []BadRevision `json:"badRevisions"`
	LastPass     time.Time     `json:"lastPass,omitzero"`
	NextFetch    time.Time     `json:"nextFetch,omitzero"`
	Pods         []PodStatus   `json:"pods"`
	Workloads    []Workload    `json:"workloads"`
}

// Problem is an error with the commit it concerns and its kind.
type Problem struct {
	// Kind is fetch, verify, validate, safety, bad-revision, pin, observe,
	// apply or health.
	Kind   string    `json:"kind"`
	Commit string    `json:"commit,omitempty"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
	// Problems are a validation failure's diagnostics, one per line as
	// ./file:line:col: Kind/ns/name: field: message.
	Problems []string `json:"problems,omitempty"`
}

// HealthCheck is a revision under observation after it was applied.
type HealthCheck struct {
	Commit   string            `json:"commit"`
	Since    time.Time         `json:"since"`
	Deadline time.Time         `json:"deadline"`
	Pods     []reconcile.PodID `json:"pods"`
}

// PodStatus is one pod on the host.
type PodStatus struct {
	ID       reconcile.PodID `json:"id"`
	Owner    string          `json:"owner,omitempty"`
	Revision string          `json:"revision"`
	Phase    string          `json:"phase"`
	Ready    bool            `json:"ready"`
	Restarts int             `json:"restarts"`
	IP       string          `json:"ip,omitempty"`
	// Containers is "ready/total" app containers.
	Containers string `json:"containers"`
}

// Workload sums the pods of one owner ("Kind/ns/name").
type Workload struct {
	Owner string `json:"owner"`
	Pods  int    `json:"pods"`
	Ready int    `json:"ready"`
}

// Pod phases, as Kubernetes names them.
const (
	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"
)

// podPhase derives a pod's phase and readiness from its containers.
func podPhase(p *reconcile.ObservedPod) (phase string, ready bool, readyN, total int) {
	running, succeeded, failed := 0, 0, 0
	for _, c := range p.Containers {
		if c.Kind != reconcile.AppContainer {
			continue
		}
		total++
		switch c.State {
		case reconcile.StateRunning:
			running++
		case reconcile.StateExited:
			if c.ExitCode == 0 {
				succeeded++
			} else {
				failed++
			}
		}
	}
	readyN = running
	switch {
	case !p.SandboxReady || total == 0:
		return PhasePending, false, readyN, total
	case failed > 0 && running == 0:
		return PhaseFailed, false, readyN, total
	case succeeded == total:
		return PhaseSucceeded, false, readyN, total
	case running+succeeded == total && failed == 0:
		return PhaseRunning, running == total, readyN, total
	case failed > 0:
		return PhaseRunning, false, readyN, total
	}
	return PhasePending, false, readyN, total
}

// podStatuses summarizes the observed pods and their workloads.
func podStatuses(obs []reconcile.ObservedPod) ([]PodStatus, []Workload) {
	pods := make([]PodStatus, 0, len(obs))
	byOwner := map[string]*Workload{}
	for i := range obs {
		p := &obs[i]
		phase, ready, n, total := podPhase(p)
		pods = append(pods, PodStatus{
			ID: p.ID, Owner: p.Owner, Revision: p.Revision, Phase: phase, Ready: ready,
			IP: p.IP, Containers: fmt.Sprintf("%d/%d", n, total), Restarts: restarts(p),
		})
		w := byOwner[p.Owner]
		if w == nil {
			w = &Workload{Owner: p.Owner}
			byOwner[p.Owner] = w
		}
		w.Pods++
		if ready || phase == PhaseSucceeded {
			w.Ready++
		}
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].ID.String() < pods[j].ID.String() })
	ws := make([]Workload, 0, len(byOwner))
	for _, w := range byOwner {
		ws = append(ws, *w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].Owner < ws[j].Owner })
	return pods, ws
}

// restarts counts a pod's container restarts. The runtime's observed
// state carries no restart count yet, so an app container that exited and
// is not running counts as one.
func restarts(p *reconcile.ObservedPod) int {
	n := 0
	for _, c := range p.Containers {
		if c.Kind == reconcile.AppContainer && c.State == reconcile.StateExited && c.ExitCode != 0 {
			n++
		}
	}
	return n
}
