package manager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/reconcile"
)

// PendingError is returned by Converge when ctx ends before the host
// matches the revision; it names what is still pending.
type PendingError struct {
	Revision string
	Pending  []string
	Err      error
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("revision %s: the host did not converge (%v); still pending:\n  %s",
		reconcile.ShortRevision(e.Revision), e.Err, strings.Join(e.Pending, "\n  "))
}

func (e *PendingError) Unwrap() error { return e.Err }

// Converge is berth's one-shot apply: it runs a Manager over rt, hands it
// the revision, and returns once nothing is pending (the host matches the
// revision: every rollout step done, every pod running its spec) or ctx
// ends (a *PendingError). The pods keep running when it returns; what a
// running agent does afterwards (restarts, probes) is the agent's.
//
// observed, when not nil, is rt's pods as the caller listed them just
// before (to print the plan): the first pass decides on them instead of
// listing again, as it does on Sync's own list.
func Converge(ctx context.Context, rt reconcile.Runtime, revision string, objs []reconcile.Object, observed []reconcile.ObservedPod, opts Options) error {
	m := New(rt, opts)
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- m.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	if err := m.sync(ctx, revision, objs, nil, observed); err != nil {
		return err
	}
	return m.WaitConverged(ctx)
}

// WaitConverged waits until nothing is pending for the last revision
// handed to Sync, or ctx ends (a *PendingError naming what is pending).
func (m *Manager) WaitConverged(ctx context.Context) error {
	// Workers ring the controller when a pod's status changes; a tick
	// makes sure a quiet moment is judged too.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		passed := m.Passed()
		select {
		case <-ctx.Done():
			m.mu.Lock()
			rev := m.revision
			m.mu.Unlock()
			err := ctx.Err()
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				err = context.DeadlineExceeded
			}
			return &PendingError{Revision: rev, Pending: m.Pending(), Err: err}
		case <-tick.C:
			m.ringController()
		case <-passed:
			if len(m.Pending()) == 0 {
				return nil
			}
		}
	}
}
