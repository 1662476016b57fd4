package fake

import (
	"context"

	"berth.dev/berth/reconcile"
)

var _ reconcile.ExitWatcher = (*Runtime)(nil)

// WatchExits implements reconcile.ExitWatcher: exited is called with the
// pod of every container that exits (on its own, killed, stopped,
// removed, or lost to a reboot), as containerd's task exit events do,
// until ctx ends.
func (r *Runtime) WatchExits(ctx context.Context, exited func(reconcile.PodID)) error {
	ch := make(chan reconcile.PodID, 4096)
	r.mu.Lock()
	r.watchers = append(r.watchers, ch)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		for i, w := range r.watchers {
			if w == ch {
				r.watchers = append(r.watchers[:i], r.watchers[i+1:]...)
				break
			}
		}
		r.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-ch:
			exited(id)
		}
	}
}

// exited tells the watchers that a container of pod id exited. The
// caller holds r.mu.
func (r *Runtime) exited(id reconcile.PodID) {
	for _, w := range r.watchers {
		select {
		case w <- id:
		default: // a watcher this far behind finds the exit on its next resync
		}
	}
}

var _ reconcile.Admitter = (*Runtime)(nil)
