package agent

import (
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
	// NotForNode are the objects of the applied revision whose pods do
	// not run on this node, and why.
	NotForNode []reconcile.NotForNode `json:"notForNode,omitempty"`
	// Rollout is this device's place in the rollout of the revision it
	// wants, when that revision has a rollout policy: its wave, and what
	// it waits for and why.
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// LastError is the most recent reason a revision was not applied, or
	// a reconciliation failed; nil after a clean pass.
	LastError *Problem `json:"lastError,omitempty"`
	// FetchError is the most recent fetch failure, nil after a fetch
	// succeeded.
	FetchError   *Problem                   `json:"fetchError,omitempty"`
	BadRevisions []BadRevision              `json:"badRevisions"`
	LastPass     time.Time                  `json:"lastPass,omitzero"`
	NextFetch    time.Time                  `json:"nextFetch,omitzero"`
	Pods         []reconcile.PodStatus      `json:"pods"`
	Workloads    []reconcile.WorkloadStatus `json:"workloads"`
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

// podStatuses are the pods on the host, as the pod manager's workers
// know them (readiness from probes, restart counts) and, for a pod no
// worker drives yet, as the runtime shows it; and the workloads' status
// as the manager's controllers report it. One model: reconcile's, which
// berth status serves too.
func (a *Agent) podStatuses(obs []reconcile.ObservedPod) ([]reconcile.PodStatus, []reconcile.WorkloadStatus) {
	known := map[reconcile.PodID]reconcile.PodStatus{}
	if a.cfg.PodStatuses != nil {
		for _, st := range a.cfg.PodStatuses() {
			known[st.ID] = st
		}
	}
	pods := make([]reconcile.PodStatus, 0, len(obs))
	for i := range obs {
		if st, ok := known[obs[i].ID]; ok {
			pods = append(pods, st)
			continue
		}
		pods = append(pods, reconcile.ObservePod(&obs[i], nil, nil))
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].ID.String() < pods[j].ID.String() })
	var ws []reconcile.WorkloadStatus
	if a.cfg.Workloads != nil {
		ws = a.cfg.Workloads()
	}
	if len(ws) == 0 {
		ws = reconcile.WorkloadsFromPods(pods)
	}
	return pods, ws
}
