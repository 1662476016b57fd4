package manager

import (
	"context"
	"slices"
	"strings"
	"time"

	"berth.dev/berth/reconcile"
)

// The controller's picture of the runtime's pods between full lists.
//
// A pass used to list every pod and ask the runtime for every container's
// task. While pods come up, each rings the controller, so the passes, and
// with them that listing, grew with the pods: starting 200 pods made 43
// passes and 7,900 task lookups in containerd, each answered by the
// task's shim, and 62 listings of every container record with its OCI
// spec. Yet between two passes the runtime's pods change for three
// reasons only: a worker acts on its pod (and observes it afterwards),
// a container exits (the exit watcher says which pod), or something
// outside berth changes them (what the periodic full list is for).
//
// So a pass lists in full only when it must: the first pass, the pass
// after a Sync (on Sync's own list), after the exit stream broke off, and
// once the last full list is ResyncInterval old. Otherwise it decides on
// the pods as last seen: a worker's observation of its own pod replaces
// the list's when it is newer, and a pod that changed since it was last
// seen (its worker acted, one of its containers exited) is observed again,
// alone, unless its worker is in the middle of a sync, after which the
// worker observes it itself.
type podCache struct {
	pods map[reconcile.PodID]*cachedPod
	// listed is the wall time of the last full list (zero: none, or it
	// is no longer to be trusted); listedClock is the manager's clock
	// then, for its age.
	listed, listedClock time.Time
}

type cachedPod struct {
	obs *reconcile.ObservedPod // nil: not in the runtime
	at  time.Time              // wall time the observation began
	// changed is when the pod last changed without an observation
	// since (a worker acted on it, a container exited): the pod is to be
	// observed again when changed is after at.
	changed time.Time
}

func (c *cachedPod) stale() bool { return c.changed.After(c.at) }

// cacheFromList makes observed, listed at listed, the picture of every
// pod, but where a newer observation or change is known.
func (m *Manager) cacheFromList(observed []reconcile.ObservedPod, listed time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.cache.pods
	pods := make(map[reconcile.PodID]*cachedPod, len(observed))
	for i := range observed {
		o := observed[i]
		pods[o.ID] = &cachedPod{obs: &o, at: listed}
	}
	for id, c := range old {
		if c.at.After(listed) || c.changed.After(listed) {
			// Observed, or changed, while the list was being made.
			if n := pods[id]; n != nil && !c.at.After(listed) {
				n.changed = c.changed
				continue
			}
			pods[id] = c
		}
	}
	m.cache = podCache{pods: pods, listed: listed, listedClock: m.clock.Now()}
}

// noteObserved records the observation of pod id (nil: not in the
// runtime) that began at at.
func (m *Manager) noteObserved(id reconcile.PodID, o *reconcile.ObservedPod, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cache.pods == nil {
		return
	}
	c := m.cache.pods[id]
	if c == nil {
		c = &cachedPod{}
		m.cache.pods[id] = c
	}
	if at.Before(c.at) {
		return
	}
	if o != nil {
		cp := *o
		o = &cp
	}
	c.obs, c.at = o, at
}

// noteChanged records that pod id changed at t without being observed
// since.
func (m *Manager) noteChanged(id reconcile.PodID, t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cache.pods == nil {
		return
	}
	c := m.cache.pods[id]
	if c == nil {
		c = &cachedPod{}
		m.cache.pods[id] = c
	}
	if t.After(c.changed) {
		c.changed = t
	}
}

// forgetCache makes the next pass list every pod (the exit stream broke
// off: what changed meanwhile is unknown).
func (m *Manager) forgetCache() {
	m.mu.Lock()
	m.cache = podCache{}
	m.mu.Unlock()
}

// observePods returns the runtime's pods for a pass, and when each was
// observed: the list Sync made, a full list, or the cache with its stale
// pods observed again (see podCache).
func (m *Manager) observePods(ctx context.Context) (observed []reconcile.ObservedPod, at map[reconcile.PodID]time.Time, listed time.Time, err error) {
	m.mu.Lock()
	observed, listed = m.syncList, m.syncListed
	m.syncList = nil
	full := observed != nil || m.cache.listed.IsZero() ||
		m.clock.Now().Sub(m.cache.listedClock) >= m.opts.ResyncInterval
	_, canObserve := m.rt.(reconcile.PodObserver)
	_, seesExits := m.rt.(reconcile.ExitWatcher)
	m.mu.Unlock()
	if full || !canObserve || !seesExits {
		if observed == nil {
			listed = time.Now()
			if observed, err = m.rt.List(ctx); err != nil {
				return nil, nil, time.Time{}, err
			}
		}
		m.cacheFromList(observed, listed)
		return observed, nil, listed, nil
	}

	m.mu.Lock()
	var again []reconcile.PodID
	for id, c := range m.cache.pods {
		if w := m.workers[id]; c.stale() && (w == nil || !w.busy()) {
			again = append(again, id)
		}
	}
	m.mu.Unlock()
	po := m.rt.(reconcile.PodObserver)
	for _, id := range again {
		began := time.Now()
		o, err := po.ObservePod(ctx, id)
		if err != nil {
			return nil, nil, time.Time{}, err
		}
		m.noteObserved(id, o, began)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	at = make(map[reconcile.PodID]time.Time, len(m.cache.pods))
	for id, c := range m.cache.pods {
		at[id] = c.at
		if c.obs != nil {
			observed = append(observed, *c.obs)
		}
	}
	slices.SortFunc(observed, func(a, b reconcile.ObservedPod) int {
		if c := strings.Compare(a.ID.Namespace, b.ID.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.ID.Name, b.ID.Name)
	})
	return observed, at, m.cache.listed, nil
}
