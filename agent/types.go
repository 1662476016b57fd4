package agent

import (
	"context"
	"fmt"
	"strings"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// Source is what the agent needs from a repository: *source.Source
// implements it.
type Source interface {
	// Fetch brings the source up to date and returns the head revision and
	// whether it differs from the previous Fetch.
	Fetch(ctx context.Context) (*source.Revision, bool, error)
	// Revision reads a commit from the local cache without the network.
	Revision(ctx context.Context, rev string) (*source.Revision, error)
	// URL is the repository without credentials.
	URL() string
}

// Observer lists the pods berth manages on the host (a reconcile.Runtime
// does).
type Observer interface {
	List(ctx context.Context) ([]reconcile.ObservedPod, error)
}

// Target is what one reconciliation should make true: the pods of a
// revision, and the plan the agent checked for it.
type Target struct {
	// Revision is the commit (or directory digest) the pods come from.
	Revision string
	// Objects are the revision's validated objects, for a reconciler
	// that runs workload controllers itself.
	Objects []reconcile.Object
	// Pods are the revision's desired pods.
	Pods []reconcile.DesiredPod
	// Plan is the plan the agent made and checked against the pods it
	// observed. When Prune is false it holds no deletions. A reconciler
	// may plan again, but must not delete more than Plan does.
	Plan *reconcile.Plan
	// Prune allows deleting pods the revision no longer declares.
	Prune bool
	// Held lists the pods pruning would delete, when Prune is false.
	Held []reconcile.PodID
}

// Result counts what a reconciliation changed.
type Result struct {
	Created  int `json:"created"`
	Replaced int `json:"replaced"`
	Deleted  int `json:"deleted"`
	// Started lists the pods created or replaced, whose health decides
	// whether the revision is good.
	Started []reconcile.PodID `json:"started,omitempty"`
}

// Reconciler makes the host match a Target: ManagerReconciler hands the
// revision to the long-lived pod manager, berth's one engine, which keeps
// working on it after Reconcile returns (rollouts, restarts, drift
// repair). The agent hands it each revision once.
type Reconciler interface {
	Reconcile(ctx context.Context, t Target) (Result, error)
}

// Loaded is a validated revision: its objects and the pods they expand to
// on this host.
type Loaded struct {
	Objects []reconcile.Object
	Pods    []reconcile.DesiredPod
	// Node is the node the pods were expanded for.
	Node reconcile.Node
	// NotForNode are the objects whose pods are not for Node, and why.
	NotForNode []reconcile.NotForNode
}

// Loader turns a fetched revision into the pods it wants on this host:
// schema validation and expansion. A revision with problems returns a
// *ValidationError.
type Loader func(rev *source.Revision) (*Loaded, error)

// Verifier checks a revision's signature before it is applied; nil
// verifies nothing. Its error says why the revision is not trusted.
type Verifier func(ctx context.Context, rev *source.Revision) error

// ValidationError reports the problems of a revision that does not load,
// each as "./file:line:col: Kind/ns/name: field: message".
type ValidationError struct {
	Commit   string
	Problems []string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("revision %s is invalid (%d problems):\n%s", source.ShortCommit(e.Commit), len(e.Problems), strings.Join(e.Problems, "\n"))
}

// Trigger names why a pass ran.
type Trigger string

// Triggers.
const (
	TriggerStart   Trigger = "start"
	TriggerPoll    Trigger = "poll"
	TriggerWebhook Trigger = "webhook"
	TriggerWatch   Trigger = "watch"   // a local directory changed
	TriggerExit    Trigger = "exit"    // a container exited
	TriggerResync  Trigger = "resync"  // periodic drift check
	TriggerHealth  Trigger = "health"  // a health check of a new revision is due
	TriggerControl Trigger = "control" // suspend, resume, pin or unpin
)

// fetches reports whether a trigger asks for a fetch (the others only
// reconcile what was fetched).
func (t Trigger) fetches() bool {
	switch t {
	case TriggerStart, TriggerPoll, TriggerWebhook, TriggerWatch, TriggerControl:
		return true
	}
	return false
}
