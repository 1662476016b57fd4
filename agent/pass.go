package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// pass runs one reconcile pass for the triggers rung since the previous
// one and reports whether it fetched. Its steps: read the operator's
// control record, fetch, pick the target (pin, bad-revision list), verify,
// load, observe, check safety, reconcile, record, check health.
func (a *Agent) pass(ctx context.Context, rung map[Trigger]bool) (fetched bool) {
	start := time.Now()
	outcome, reason := "unchanged", "none"
	defer func() {
		a.metrics.reconcileDur.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
		a.metrics.reconciles.WithLabelValues(outcome, reason).Inc()
		a.mu.Lock()
		a.status.LastPass = time.Now().UTC()
		a.status.Offline = a.offline
		a.mu.Unlock()
	}()
	needFetch := a.current == nil
	for t := range rung {
		needFetch = needFetch || t.fetches()
	}
	log := a.log
	if len(rung) > 0 {
		ts := make([]string, 0, len(rung))
		for t := range rung {
			ts = append(ts, string(t))
		}
		log = log.With("triggers", ts)
	}

	ctl, err := ReadControl(a.cfg.StateDir)
	if err != nil {
		log.Error("cannot read the control record; treating the agent as suspended", "error", err)
		ctl.Suspended = true
	}
	a.mu.Lock()
	a.status.Suspended, a.status.Pin = ctl.Suspended, ctl.Pin
	a.mu.Unlock()
	if ctl.Suspended {
		a.metrics.suspended.Set(1)
		outcome, reason = "suspended", "suspended"
		a.observe(ctx)
		return false
	}
	a.metrics.suspended.Set(0)

	target := a.current
	if a.held != nil {
		target = a.held // waiting for its wave (rollout.go)
	}
	if needFetch {
		fetched = true
		if rev, err := a.fetch(ctx); err == nil {
			target = rev
			if a.offline {
				log.Info("fetched again; leaving offline mode", "commit", rev.ShortCommit())
				a.offline = false
			}
		} else if a.current == nil {
			target = a.cached(ctx, "")
			if target != nil {
				a.offline = true
				log.Warn("cannot fetch; running the last good revision from the cache and pruning nothing",
					"commit", target.ShortCommit())
			}
		}
	}
	if ctl.Pin != "" {
		rev, err := a.cfg.Source.Revision(ctx, ctl.Pin)
		if err != nil {
			a.refuse(Problem{Kind: "pin", Commit: ctl.Pin, Reason: fmt.Sprintf("pinned revision not available: %v", err)})
			outcome, reason = "refused", "pin"
			target = a.current
		} else {
			target = rev
		}
	}
	if target == nil {
		outcome, reason = "failed", "no-revision"
		a.observe(ctx)
		return fetched
	}

	prune := !a.offline
	ld, prob := a.admit(ctx, target, ctl.Pin != "")
	if prob == nil {
		prob = a.gate(ctx, target, ld, ctl.Pin != "")
	}
	if prob != nil {
		if prob.Kind != KindRollout {
			a.refuse(*prob)
		}
		outcome, reason = "refused", prob.Kind
		target, ld = a.current, a.loaded
		if target == nil {
			// Nothing applied since start: run the last good revision,
			// pruning nothing, rather than the refused head.
			if c := a.cached(ctx, prob.Commit); c != nil {
				if p, prob2 := a.admit(ctx, c, false); prob2 == nil {
					target, ld, prune = c, p, false
				}
			}
		}
		if target == nil {
			a.observe(ctx)
			return fetched
		}
	}

	obs, err := a.cfg.Observer.List(ctx)
	if err != nil {
		a.runtimeUnreachable()
		a.refuse(Problem{Kind: "observe", Commit: target.Commit, Reason: fmt.Sprintf("list pods: %v", err)})
		outcome, reason = "failed", "observe"
		return fetched
	}
	plan := reconcile.MakePlan(reconcile.Input{
		Revision: target.Commit, Objects: ld.Objects, Pods: ld.Pods, Observed: obs, Node: ld.Node, Now: time.Now(),
	})
	var held []reconcile.PodID
	if !prune {
		plan, held = withoutDeletes(plan)
	}
	isNew := a.current == nil || a.current.Commit != target.Commit

	var applyErr error
	// The pod manager gets each revision once, changes or not, and
	// repairs drift itself.
	if a.handed != target.Commit {
		log.Info("reconciling", "commit", source.ShortCommit(target.Commit), "plan", plan.Summary(), "prune", prune)
		res, err := a.cfg.Reconciler.Reconcile(ctx, Target{Revision: target.Commit, Objects: ld.Objects, Pods: ld.Pods, Plan: plan, Prune: prune, Held: held})
		applyErr = err
		var re *reconcile.RemovalError
		switch {
		case errors.As(err, &re): // the deletion-safety rule, which Sync applies
			a.refuse(Problem{Kind: "safety", Commit: target.Commit, Reason: err.Error()})
			outcome, reason = "refused", "safety"
			a.setPods(obs)
			return fetched
		case err != nil:
			a.refuse(Problem{Kind: "apply", Commit: target.Commit, Reason: err.Error()})
			outcome, reason = "failed", "apply"
		default:
			a.handed = target.Commit
			outcome = "applied"
			log.Info("reconciled", "commit", source.ShortCommit(target.Commit), "created", res.Created,
				"replaced", res.Replaced, "deleted", res.Deleted)
		}
		a.metrics.lastApplied.SetToCurrentTime()
		if obs, err = a.cfg.Observer.List(ctx); err != nil {
			obs = nil
			a.runtimeUnreachable()
		}
	}
	if isNew {
		a.current, a.loaded = target, ld
		a.mu.Lock()
		a.status.NotForNode = ld.NotForNode
		a.mu.Unlock()
		a.recordApplied(target)
		if outcome != "failed" {
			outcome = "applied"
		}
		a.startWatch(target, ld.Pods, plan)
	}
	if prob == nil && applyErr == nil {
		// A clean pass clears a passing problem; a refusal or a rollback
		// stays reported until a new revision is applied.
		a.mu.Lock()
		if le := a.status.LastError; le != nil && (isNew || le.Kind == "apply" || le.Kind == "observe" || le.Kind == "pin") {
			a.status.LastError = nil
		}
		a.mu.Unlock()
	}
	if a.watch != nil && obs != nil {
		// The pods first: a revision found good is shown with the pods
		// it was judged by.
		a.setPods(obs)
		a.checkHealth(ctx, obs)
		if obs2, err := a.cfg.Observer.List(ctx); err == nil {
			obs = obs2
		}
	}
	if obs != nil {
		a.setPods(obs)
	}
	return fetched
}

// fetch fetches the source, recording the fetched revision and the fetch
// outcome.
func (a *Agent) fetch(ctx context.Context) (*source.Revision, error) {
	fctx, cancel := context.WithTimeout(ctx, a.cfg.FetchTimeout)
	defer cancel()
	start := time.Now()
	rev, changed, err := a.cfg.Source.Fetch(fctx)
	a.metrics.fetchDur.Observe(time.Since(start).Seconds())
	if err != nil {
		a.failures++
		a.metrics.fetchErrors.Inc()
		a.log.Warn("fetch failed; pods are left as they are", "error", err, "failures", a.failures)
		a.mu.Lock()
		a.status.FetchError = &Problem{Kind: "fetch", Reason: err.Error(), Time: time.Now().UTC()}
		a.mu.Unlock()
		return nil, err
	}
	if a.failures > 0 {
		a.log.Info("fetch succeeded again", "after_failures", a.failures)
	}
	a.failures = 0
	a.mu.Lock()
	a.status.FetchError = nil
	fetchedBefore := a.status.Fetched
	a.mu.Unlock()
	if changed || fetchedBefore == nil || fetchedBefore.Commit != rev.Commit {
		if fetchedBefore != nil {
			a.noteRewrite(ctx, fetchedBefore.Commit, rev)
		}
		r := a.recordOf(rev)
		if err := record.Write(a.cfg.StateDir, RecordLastFetched, r); err != nil {
			a.log.Error("cannot record the fetched revision", "error", err)
		}
		a.mu.Lock()
		a.status.Fetched = &r
		a.mu.Unlock()
		a.metrics.setRevision("fetched", rev.Commit)
	}
	return rev, nil
}

// cached reads the last good revision (else the last applied one) from
// the source's cache, skipping the commit except. It returns nil when
// there is none.
func (a *Agent) cached(ctx context.Context, except string) *source.Revision {
	if a.good != nil && a.good.Commit != except {
		return a.good
	}
	a.mu.Lock()
	applied := a.status.Applied
	a.mu.Unlock()
	for _, r := range []*record.Revision{a.goodRecord, applied} {
		if r == nil || r.Commit == except || a.isBad(r.Commit) {
			continue
		}
		rev, err := a.cfg.Source.Revision(ctx, r.Commit)
		if err != nil {
			kept, err2 := readGoodFiles(ctx, a.cfg.StateDir, r.Commit)
			if err2 != nil {
				a.log.Warn("cannot read a recorded revision from the cache", "commit", source.ShortCommit(r.Commit), "error", err, "kept", err2)
				continue
			}
			rev = kept
		}
		return rev
	}
	return nil
}

// admit decides whether rev may be applied and loads its pods. The
// current revision is admitted without checks.
func (a *Agent) admit(ctx context.Context, rev *source.Revision, pinned bool) (*Loaded, *Problem) {
	if a.current != nil && a.current.Commit == rev.Commit {
		return a.loaded, nil
	}
	if !pinned {
		if b := a.badEntry(rev.Commit); b != nil {
			return nil, &Problem{Kind: "bad-revision", Commit: rev.Commit,
				Reason: fmt.Sprintf("revision %s was rolled back (%s); waiting for a newer commit", rev.ShortCommit(), b.Reason)}
		}
	}
	if a.cfg.Verify != nil {
		if err := a.cfg.Verify(ctx, rev); err != nil {
			return nil, &Problem{Kind: "verify", Commit: rev.Commit,
				Reason: fmt.Sprintf("revision %s is not trusted: %v", rev.ShortCommit(), err)}
		}
	}
	ld, err := a.cfg.Load(rev)
	if err != nil {
		p := &Problem{Kind: "validate", Commit: rev.Commit, Reason: err.Error()}
		var ve *ValidationError
		if errors.As(err, &ve) {
			p.Reason = fmt.Sprintf("revision %s is invalid (%d problems)", rev.ShortCommit(), len(ve.Problems))
			p.Problems = ve.Problems
		}
		return nil, p
	}
	return ld, nil
}

// refuse reports a problem in the status, and in the log once per kind
// and commit.
func (a *Agent) refuse(p Problem) {
	p.Time = time.Now().UTC()
	a.mu.Lock()
	a.status.LastError = &p
	a.mu.Unlock()
	key := p.Kind + "\x00" + p.Commit
	if a.reported[key] {
		return
	}
	a.reported[key] = true
	args := []any{"kind", p.Kind, "commit", source.ShortCommit(p.Commit), "reason", p.Reason}
	for _, d := range p.Problems {
		args = append(args, "problem", d)
	}
	a.log.Error("revision not applied; the host keeps running what it ran", args...)
}

// withoutDeletes returns p without its deletions, and the pods they
// would have deleted.
func withoutDeletes(p *reconcile.Plan) (*reconcile.Plan, []reconcile.PodID) {
	out := &reconcile.Plan{Revision: p.Revision}
	var held []reconcile.PodID
	for _, c := range p.Changes {
		if c.Action == reconcile.ActionDelete {
			held = append(held, c.Pod)
			continue
		}
		out.Changes = append(out.Changes, c)
	}
	return out, held
}

func (a *Agent) recordOf(rev *source.Revision) record.Revision {
	return record.Revision{Commit: rev.Commit, Ref: rev.Ref, URL: rev.URL, Path: rev.Path, Time: time.Now().UTC()}
}

func (a *Agent) recordApplied(rev *source.Revision) {
	r := a.recordOf(rev)
	if err := record.Write(a.cfg.StateDir, record.LastApplied, r); err != nil {
		a.log.Error("cannot record the applied revision", "error", err)
	}
	a.mu.Lock()
	a.status.Applied = &r
	a.mu.Unlock()
	a.metrics.setRevision("applied", rev.Commit)
}

func (a *Agent) markGood(rev *source.Revision) {
	a.good = rev
	r := a.recordOf(rev)
	a.goodRecord = &r
	if err := record.Write(a.cfg.StateDir, RecordLastGood, r); err != nil {
		a.log.Error("cannot record the last good revision", "error", err)
	}
	a.mu.Lock()
	a.status.LastGood = &r
	a.status.Checking = nil
	a.mu.Unlock()
	a.metrics.setRevision("good", rev.Commit)
	a.log.Info("revision is good", "commit", rev.ShortCommit())
	a.keepGoodFiles(rev)
}

func (a *Agent) badEntry(commit string) *BadRevision {
	for i := range a.bad {
		if a.bad[i].Commit == commit {
			return &a.bad[i]
		}
	}
	return nil
}

func (a *Agent) isBad(commit string) bool { return a.badEntry(commit) != nil }

// observe refreshes the pods in the status without changing anything.
func (a *Agent) observe(ctx context.Context) {
	if obs, err := a.cfg.Observer.List(ctx); err == nil {
		a.setPods(obs)
	}
}

func (a *Agent) setPods(obs []reconcile.ObservedPod) {
	pods, workloads := a.podStatuses(obs)
	counts := map[reconcile.PodPhase]int{reconcile.PodPending: 0, reconcile.PodRunning: 0, reconcile.PodSucceeded: 0, reconcile.PodFailed: 0}
	total := 0
	for _, p := range pods {
		counts[p.Phase]++
		total += p.Restarts()
	}
	for phase, n := range counts {
		a.metrics.pods.WithLabelValues(string(phase)).Set(float64(n))
	}
	a.metrics.restarts.Set(float64(total))
	a.mu.Lock()
	a.status.Pods, a.status.Workloads = pods, workloads
	a.mu.Unlock()
}

// ancestry is implemented by sources that keep history (*source.Source).
type ancestry interface {
	IsAncestor(ctx context.Context, older, newer string) (bool, error)
}

// noteRewrite logs when the new head does not descend from the previous
// one: a force-push (or a ref moved elsewhere). The new head wins.
func (a *Agent) noteRewrite(ctx context.Context, previous string, rev *source.Revision) {
	anc, ok := a.cfg.Source.(ancestry)
	if !ok || strings.HasPrefix(previous, "dir:") || strings.HasPrefix(rev.Commit, "dir:") {
		return
	}
	if descends, err := anc.IsAncestor(ctx, previous, rev.Commit); err == nil && !descends {
		a.log.Warn("history rewritten (force-push?); the new head wins",
			"previous", source.ShortCommit(previous), "commit", rev.ShortCommit(), "ref", rev.Ref)
	}
}
