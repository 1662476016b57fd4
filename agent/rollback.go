package agent

import (
	"context"
	"fmt"
	"slices"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// startWatch begins the health check of a newly applied revision: the
// pods its plan created or replaced, or, when it changed none (an agent
// restarted over a revision that never proved good), all its pods. A
// revision that is already the last good one, or has no pods, is good at
// once.
func (a *Agent) startWatch(rev *source.Revision, pods []reconcile.DesiredPod, plan *reconcile.Plan) {
	a.watch = nil
	if a.goodRecord != nil && a.goodRecord.Commit == rev.Commit {
		a.good = rev
		a.mu.Lock()
		a.status.Checking = nil
		a.mu.Unlock()
		return
	}
	var ids []reconcile.PodID
	for _, c := range plan.Changes {
		if c.Action == reconcile.ActionCreate || c.Action == reconcile.ActionReplace {
			ids = append(ids, c.Pod)
		}
	}
	if len(ids) == 0 {
		for _, p := range pods {
			ids = append(ids, p.ID)
		}
	}
	if len(ids) == 0 || a.cfg.HealthDeadline < 0 {
		a.markGood(rev)
		return
	}
	now := time.Now()
	a.watch = &healthWatch{commit: rev.Commit, since: now, deadline: now.Add(a.cfg.HealthDeadline), pods: ids, interruptions: a.interruptions()}
	a.mu.Lock()
	a.status.Checking = &HealthCheck{Commit: rev.Commit, Since: now.UTC(), Deadline: a.watch.deadline.UTC(), Pods: slices.Clone(ids)}
	a.mu.Unlock()
	a.log.Info("watching the pods of the new revision", "commit", rev.ShortCommit(), "pods", len(ids),
		"deadline", a.cfg.HealthDeadline)
}

// checkHealth judges the watched revision and rolls back when it is
// unhealthy.
func (a *Agent) checkHealth(ctx context.Context, obs []reconcile.ObservedPod) {
	w := a.watch
	if w == nil || a.current == nil || a.current.Commit != w.commit {
		a.watch = nil
		return
	}
	desired := make(map[reconcile.PodID]*reconcile.DesiredPod, len(a.loaded.Pods))
	for i := range a.loaded.Pods {
		desired[a.loaded.Pods[i].ID] = &a.loaded.Pods[i]
	}
	var statuses map[reconcile.PodID]*reconcile.PodStatus
	if a.cfg.PodStatuses != nil {
		sts := a.cfg.PodStatuses()
		statuses = make(map[reconcile.PodID]*reconcile.PodStatus, len(sts))
		for i := range sts {
			statuses[sts[i].ID] = &sts[i]
		}
	}
	if w.runtimeDown || a.interruptions() != w.interruptions {
		// containerd was unreachable (restarted, or gone for a while)
		// since the last check: what failed meanwhile is not the
		// revision's fault, so its pods get a fresh window.
		w.restart(time.Now(), a.interruptions(), statuses)
		a.log.Warn("the runtime was unreachable; the health check starts again", "commit", source.ShortCommit(w.commit),
			"deadline", w.deadline.Sub(w.since))
		if !w.rollback {
			a.mu.Lock()
			if c := a.status.Checking; c != nil {
				c.Since, c.Deadline = w.since.UTC(), w.deadline.UTC()
			}
			a.mu.Unlock()
		}
		return
	}
	v, why := w.evaluate(time.Now(), a.cfg.HealthSettle, a.cfg.CrashRestarts, desired, obs, statuses)
	if w.rollback {
		switch v {
		case healthy:
			a.watch = nil
			a.log.Info("pods of the revision rolled back to are running", "commit", source.ShortCommit(w.commit))
		case unhealthy:
			a.watch = nil
			a.log.Warn("pods of the revision rolled back to are not healthy", "commit", source.ShortCommit(w.commit), "reason", why)
		}
		return
	}
	switch v {
	case healthy:
		a.watch = nil
		a.markGood(a.current)
	case unhealthy:
		a.watch = nil
		a.rollback(ctx, why)
	}
}

// rollback records the current revision as bad and applies the last good
// one again.
func (a *Agent) rollback(ctx context.Context, why string) {
	bad := a.current
	a.metrics.rollbacks.Inc()
	a.bad = append(a.bad, BadRevision{Commit: bad.Commit, Reason: why, Time: time.Now().UTC()})
	if err := writeBad(a.cfg.StateDir, a.bad); err != nil {
		a.log.Error("cannot record the bad revision", "error", err)
	}
	good := a.cached(ctx, bad.Commit)
	p := Problem{Kind: "health", Commit: bad.Commit, Time: time.Now().UTC()}
	if good != nil {
		p.Reason = fmt.Sprintf("revision %s is unhealthy (%s); rolling back to %s", bad.ShortCommit(), why, good.ShortCommit())
	}
	a.mu.Lock()
	a.status.BadRevisions = slices.Clone(a.bad)
	a.status.Checking = nil
	a.status.LastError = &p
	a.mu.Unlock()

	if good == nil {
		p.Reason = fmt.Sprintf("revision %s is unhealthy (%s); there is no last good revision to go back to", bad.ShortCommit(), why)
		a.log.Error("revision unhealthy and no last good revision to roll back to", "commit", bad.ShortCommit(), "reason", why)
		a.setProblem(p)
		return
	}
	a.log.Error("revision unhealthy; rolling back", "commit", bad.ShortCommit(), "reason", why, "to", good.ShortCommit())
	p.Reason = fmt.Sprintf("revision %s is unhealthy (%s); rolled back to %s", bad.ShortCommit(), why, good.ShortCommit())
	ld, err := a.cfg.Load(good)
	if err != nil {
		p.Reason += fmt.Sprintf("; cannot load it: %v", err)
		a.setProblem(p)
		return
	}
	obs, err := a.cfg.Observer.List(ctx)
	if err != nil {
		p.Reason += fmt.Sprintf("; cannot list pods: %v", err)
		a.setProblem(p)
		return
	}
	plan := reconcile.MakePlan(reconcile.Input{
		Revision: good.Commit, Objects: ld.Objects, Pods: ld.Pods, Observed: obs, Node: ld.Node, Now: time.Now(),
	})
	if _, err := a.cfg.Reconciler.Reconcile(ctx, Target{Revision: good.Commit, Objects: ld.Objects, Pods: ld.Pods, Plan: plan, Prune: true}); err != nil {
		p.Reason += fmt.Sprintf("; reapplying it failed: %v", err)
	} else {
		a.handed = good.Commit
		a.followRollback(good, plan)
	}
	a.metrics.lastApplied.SetToCurrentTime()
	a.current, a.loaded = good, ld
	a.recordApplied(good)
	a.setProblem(p)
}

func (a *Agent) setProblem(p Problem) {
	a.mu.Lock()
	a.status.LastError = &p
	a.mu.Unlock()
}

// followRollback watches the pods a rollback replaces or creates as the
// pod manager changes them after Reconcile returned, so that the health
// polls keep the status's pods current until they run the revision rolled
// back to.
func (a *Agent) followRollback(good *source.Revision, plan *reconcile.Plan) {
	if a.cfg.HealthDeadline < 0 {
		return
	}
	var ids []reconcile.PodID
	for _, c := range plan.Changes {
		if c.Action == reconcile.ActionCreate || c.Action == reconcile.ActionReplace {
			ids = append(ids, c.Pod)
		}
	}
	if len(ids) == 0 {
		return
	}
	now := time.Now()
	a.watch = &healthWatch{commit: good.Commit, since: now, deadline: now.Add(a.cfg.HealthDeadline), pods: ids, rollback: true,
		interruptions: a.interruptions()}
}

// interruptions is the runtime's count of interruptions (0 without one).
func (a *Agent) interruptions() uint64 {
	if a.cfg.Interruptions == nil {
		return 0
	}
	return a.cfg.Interruptions()
}

// runtimeUnreachable notes that a pass could not reach the runtime: the
// health check of the watched revision starts again once it can.
func (a *Agent) runtimeUnreachable() {
	if a.watch != nil {
		a.watch.runtimeDown = true
	}
}
