package agent

import (
	"context"
	"fmt"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// ManagerReconciler hands each revision to a long-lived reconcile.Manager,
// which runs the pods (restarts, probes, rollouts, Jobs) until the next
// one. Sync returns once the manager accepted the revision; the agent's
// health check then follows the pods through PodStatuses.
type ManagerReconciler struct {
	Manager *reconcile.Manager
}

var (
	_ Reconciler = (*ManagerReconciler)(nil)
	_ Continuous = (*ManagerReconciler)(nil)
)

// Continuous implements Continuous: the manager drives the pods until the
// next revision.
func (r *ManagerReconciler) Continuous() bool { return true }

// Reconcile implements Reconciler. The manager removes the pods a
// revision no longer declares, so a target that must not prune and would
// leave pods behind is not handed over: those pods keep running
// unsupervised until a revision can be fetched again.
func (r *ManagerReconciler) Reconcile(ctx context.Context, t Target) (Result, error) {
	if !t.Prune && len(t.Held) > 0 {
		return Result{}, fmt.Errorf("pruning is off and revision %s does not declare %d running pods; not handing it to the pod manager", source.ShortCommit(t.Revision), len(t.Held))
	}
	if err := r.Manager.Sync(ctx, t.Revision, t.Objects); err != nil {
		return Result{}, err
	}
	var res Result
	if t.Plan != nil {
		for _, c := range t.Plan.Changes {
			switch c.Action {
			case reconcile.ActionCreate:
				res.Created++
				res.Started = append(res.Started, c.Pod)
			case reconcile.ActionReplace:
				res.Replaced++
				res.Started = append(res.Started, c.Pod)
			case reconcile.ActionDelete:
				res.Deleted++
			}
		}
	}
	return res, nil
}
