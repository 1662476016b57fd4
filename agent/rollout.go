package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// TriggerRollout asks for a pass because the rollout a held revision
// waits for may have moved: a soak ended, a window opened, or the fleet
// reported news.
const TriggerRollout Trigger = "rollout"

// Kinds of Problem the rollout step reports.
const (
	// KindRollout: the revision waits for its wave (not an error).
	KindRollout = "rollout"
	// KindPull: an image of the revision could not be fetched ahead, so
	// nothing was stopped for it.
	KindPull = "pull"
)

// Rollouts places this device in the rollout each revision declares in
// its rollout policy (package fleet/rollout).
type Rollouts struct {
	// Node is this device.
	Node rollout.Device
	// Fleet, when set, is the status channel. Asked for the rollout of
	// commit and the waves before this device's own, it follows them and
	// returns the reports of their devices and of the devices that failed
	// commit, and whether they are complete; asked for commit "", it
	// follows nothing. Nil means there is no status channel: waves then
	// start at the commit time plus the soaks of the earlier waves.
	Fleet func(commit string, earlier []string) (reports []rollout.Report, complete bool)
	// Now is the clock (default time.Now).
	Now func() time.Time

	// seen is the revision last decided on with a status channel, first
	// decided on at seenAt (owned by the agent's loop goroutine).
	seen   string
	seenAt time.Time
}

// reportMargin is how long, after a device fetched a revision, it may
// take to report its place in the revision's rollout on the status
// channel.
const reportMargin = 30 * time.Second

// RolloutStatus is the device's place in the rollout of the revision it
// wants, as the status reports it.
type RolloutStatus struct {
	Commit string `json:"commit"`
	// CommitTime is the revision's commit time.
	CommitTime time.Time `json:"commitTime,omitzero"`
	rollout.Decision
}

// Prefetcher fetches every image pods need, before anything is stopped
// for them.
type Prefetcher func(ctx context.Context, pods []reconcile.DesiredPod) error

// gate decides whether the admitted revision rev may be applied now: it
// returns nil to go on, a Problem of kind KindRollout while the
// revision's wave may not start, or of kind KindPull when its images
// could not be fetched ahead (make before break: nothing is stopped
// then). The current revision, the last good one and a pin pass at once.
func (a *Agent) gate(ctx context.Context, rev *source.Revision, ld *Loaded, pinned bool) *Problem {
	if a.current != nil && a.current.Commit == rev.Commit || pinned ||
		a.goodRecord != nil && a.goodRecord.Commit == rev.Commit {
		a.cfg.Rollout.unfollow()
		return nil
	}
	prefetch := true
	if r := a.cfg.Rollout; r != nil && rev.Files != nil {
		pol, err := rollout.Load(rev.Files)
		var perr *rollout.Error
		if errors.As(err, &perr) {
			p := &Problem{Kind: "validate", Commit: rev.Commit, Reason: fmt.Sprintf("revision %s has an invalid rollout policy (%d problems)", rev.ShortCommit(), len(perr.Problems))}
			for _, x := range perr.Problems {
				p.Problems = append(p.Problems, x.String())
			}
			return p
		}
		if pol != nil {
			d := a.decide(r, pol, rev)
			a.setRollout(&RolloutStatus{Commit: rev.Commit, CommitTime: rev.Time.UTC(), Decision: d})
			prefetch = d.Prefetch || d.State == rollout.Apply
			if d.State != rollout.Apply {
				a.held = rev
				if prefetch {
					a.prefetch(ctx, rev, ld)
				}
				a.wakeAt(r.now(), d.Until)
				key := string(d.State) + "\x00" + d.Reason
				if a.holdLogged != key {
					a.holdLogged = key
					a.log.Info("revision held by its rollout policy", "commit", rev.ShortCommit(), "wave", d.Wave, "state", d.State, "reason", d.Reason)
				}
				return &Problem{Kind: KindRollout, Commit: rev.Commit, Reason: d.Reason}
			}
		} else {
			a.setRollout(nil)
		}
	}
	a.held = nil
	a.cfg.Rollout.unfollow()
	if prefetch {
		if p := a.prefetch(ctx, rev, ld); p != nil {
			return p
		}
	}
	return nil
}

func (r *Rollouts) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// unfollow tells the status channel this device waits for no rollout:
// it stops following other devices once its wave has started.
func (r *Rollouts) unfollow() {
	if r != nil && r.Fleet != nil {
		r.Fleet("", nil)
	}
}

// decide runs the policy's decision for this device, following on the
// status channel only the waves before its own and the failures.
func (a *Agent) decide(r *Rollouts, pol *rollout.Policy, rev *source.Revision) rollout.Decision {
	now := r.now
	rv := rollout.Revision{Commit: rev.Commit, Time: rev.Time}
	if r.Fleet == nil {
		return pol.Decide(now(), r.Node, rv, nil, false)
	}
	k := pol.WaveOf(r.Node.Name, r.Node.Labels)
	earlier := make([]string, 0, k)
	for j := 0; j < k && j < len(pol.Waves); j++ {
		earlier = append(earlier, pol.Waves[j].Name)
	}
	if r.seen != rev.Commit {
		r.seen, r.seenAt = rev.Commit, now()
	}
	reports, complete := r.Fleet(rev.Commit, earlier)
	d := pol.Decide(now(), r.Node, rv, reports, true)
	if d.State != rollout.Apply {
		return d
	}
	if !complete {
		d.State = rollout.Wait
		d.Reason = "waiting for the rollout's status from the broker before starting wave " + d.Wave
		return d
	}
	// A device reports in the rollout of a revision only once it has
	// fetched it, so a device of an earlier wave that has not polled yet
	// is not seen: wait until every device has had a poll since this one
	// fetched the revision (the fleet's interval and jitter being this
	// device's), and the time to report.
	grace := a.cfg.Interval + time.Duration(float64(a.cfg.Interval)*a.cfg.Jitter) + reportMargin
	if until := r.seenAt.Add(grace); k > 0 && now().Before(until) {
		d.State, d.Until = rollout.Wait, until
		d.Reason = fmt.Sprintf("the earlier waves look done, but a device that has not fetched %s yet does not report on it: wave %s starts after every device had a poll (%s after this device fetched it, until %s)",
			source.ShortCommit(rev.Commit), d.Wave, grace.Round(time.Second), until.UTC().Format(time.RFC3339))
	}
	return d
}

// prefetch fetches the images of rev's pods once per revision. A failure
// is a Problem of kind KindPull; it is tried again on the next pass.
func (a *Agent) prefetch(ctx context.Context, rev *source.Revision, ld *Loaded) *Problem {
	if a.cfg.Prefetch == nil || a.prefetched == rev.Commit {
		return nil
	}
	start := time.Now()
	if err := a.cfg.Prefetch(ctx, ld.Pods); err != nil {
		return &Problem{Kind: KindPull, Commit: rev.Commit,
			Reason: fmt.Sprintf("images of revision %s could not be fetched; nothing was stopped: %v", rev.ShortCommit(), err)}
	}
	a.prefetched = rev.Commit
	a.log.Info("images fetched ahead", "commit", rev.ShortCommit(), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

func (a *Agent) setRollout(s *RolloutStatus) {
	a.mu.Lock()
	a.status.Rollout = s
	a.mu.Unlock()
}

// wakeAt rings the bell at t (on the rollout's clock, whose time is now),
// when the decision may change by itself.
func (a *Agent) wakeAt(now, t time.Time) {
	if a.rolloutTimer != nil {
		a.rolloutTimer.Stop()
		a.rolloutTimer = nil
	}
	if t.IsZero() {
		return
	}
	a.rolloutTimer = time.AfterFunc(max(t.Sub(now), 0), func() { a.Trigger(TriggerRollout) })
}

// FleetChanged tells the agent the fleet's status changed; it reconsiders
// a held revision.
func (a *Agent) FleetChanged() {
	a.mu.Lock()
	holding := a.status.Rollout != nil && a.status.Rollout.State != rollout.Apply
	a.mu.Unlock()
	if holding {
		a.Trigger(TriggerRollout)
	}
}

// ImagePrefetcher fetches the images of pods through rt: each image and
// pull policy once, IfNotPresent for images not marked Never (which must
// already be there).
func ImagePrefetcher(rt reconcile.Runtime) Prefetcher {
	return func(ctx context.Context, pods []reconcile.DesiredPod) error {
		seen := map[string]bool{}
		for i := range pods {
			p := &pods[i]
			for _, c := range append(append([]reconcile.Container(nil), p.Spec.InitContainers...), p.Spec.Containers...) {
				policy := reconcile.PullIfNotPresent
				if c.ImagePullPolicy == reconcile.PullNever {
					policy = reconcile.PullNever
				}
				if seen[c.Image+"\x00"+policy] {
					continue
				}
				seen[c.Image+"\x00"+policy] = true
				if err := reconcile.EnsurePodImage(ctx, rt, p, c.Image, policy); err != nil {
					return fmt.Errorf("pod %s, image %s: %w", p.ID, c.Image, err)
				}
			}
		}
		return nil
	}
}
