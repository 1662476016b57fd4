package agent

import (
	"context"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
)

// ManagerReconciler hands each revision to a long-lived manager.Manager,
// which runs the pods (restarts, probes, rollouts, Jobs) until the next
// one. Sync returns once the manager accepted the revision; the agent's
// health check then follows the pods through PodStatuses.
type ManagerReconciler struct {
	Manager *manager.Manager
}

var _ Reconciler = (*ManagerReconciler)(nil)

// Reconcile implements Reconciler. A target that must not prune hands
// the manager the pods it would remove to keep as they run.
func (r *ManagerReconciler) Reconcile(ctx context.Context, t Target) (Result, error) {
	var keep []reconcile.PodID
	if !t.Prune {
		keep = t.Held
	}
	if err := r.Manager.SyncKeeping(ctx, t.Revision, t.Objects, keep); err != nil {
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
