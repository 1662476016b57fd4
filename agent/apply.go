package agent

import (
	"context"

	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/reconcile"
)

// ApplyReconciler reconciles by carrying out the agent's checked plan with
// reconcile.Apply: what "berth apply" does, once per pass.
type ApplyReconciler struct {
	Runtime reconcile.Runtime
	// Workers is how many pods are handled at once (default 4).
	Workers int
	Logger  hclog.Logger
}

var _ Reconciler = (*ApplyReconciler)(nil)

// Reconcile implements Reconciler. It plans again when the target carries
// no plan, and never deletes when Prune is false.
func (r *ApplyReconciler) Reconcile(ctx context.Context, t Target) (Result, error) {
	plan := t.Plan
	if plan == nil {
		obs, err := r.Runtime.List(ctx)
		if err != nil {
			return Result{}, err
		}
		plan = reconcile.MakePlan(t.Revision, t.Pods, obs)
	}
	if !t.Prune {
		plan, _ = withoutDeletes(plan)
	}
	res := reconcile.Apply(ctx, r.Runtime, plan, reconcile.ApplyOptions{Workers: r.Workers, Logger: r.Logger})
	var out Result
	for _, x := range res.Results {
		if x.Err != nil {
			continue
		}
		switch x.Action {
		case reconcile.ActionCreate:
			out.Created++
			out.Started = append(out.Started, x.Pod)
		case reconcile.ActionReplace:
			out.Replaced++
			out.Started = append(out.Started, x.Pod)
		case reconcile.ActionDelete:
			out.Deleted++
		}
	}
	return out, res.Err()
}
