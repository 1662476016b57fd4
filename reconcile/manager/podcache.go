package manager

import (
	"context"
	"sort"
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
// once the last full list is ResyncInterval old. A list is trusted (later
// passes decide on the cache) only when it began once the exit stream was
// live (subscribeGrace after subscribing) and no break came since; a list
// a caller handed to Sync, made at a time unknown here, is used once.
// Otherwise a pass decides on the pods as last seen: a worker's
// observation of its own pod replaces the list's when it is newer, and a
// pod that changed since it was last seen (its worker acted, one of its
// containers exited) is observed again, alone, unless its worker is in
// the middle of a sync, after which the worker observes it itself.
type podCache struct {
	pods map[reconcile.PodID]*cachedPod // never nil: changes are kept before the first list
	// listed is the wall time the last trusted full list began (zero:
	// none, or it is no longer to be trusted); listedClock is the
	// manager's clock then, for its age.
	listed, listedClock time.Time
	// epoch counts forgetCache calls: a list that began before one is
	// used, not trusted.
	epoch uint64
	// subscribed is when the exit stream was last (re)subscribed: a list
	// that began before the subscription can be trusted to be live
	// (subscribeGrace later) may have missed an exit no event reports.
	subscribed time.Time
}

// subscribeGrace is how long after subscribing to containerd's exit
// events the subscription is taken to be live: the client's subscription
// is asynchronous and not acknowledged.
const subscribeGrace = 2 * time.Second

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
// pod, but where a newer observation or change is known. The list is
// trusted (later passes may decide on the cache) when trusted is set,
// no forgetCache came since epoch, and the exit stream was live before
// the list began.
func (m *Manager) cacheFromList(observed []reconcile.ObservedPod, listed time.Time, trusted bool, epoch uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pods := make(map[reconcile.PodID]*cachedPod, len(observed))
	for i := range observed {
		o := observed[i]
		pods[o.ID] = &cachedPod{obs: &o, at: listed}
	}
	for id, c := range m.cache.pods {
		switch {
		case c.at.After(listed):
			// Observed while the list was being made: newer.
			pods[id] = c
		case c.changed.After(listed):
			// Changed while the list was being made: the list's view (or
			// its absence) is to be observed again.
			if n := pods[id]; n != nil {
				n.changed = c.changed
			} else {
				pods[id] = &cachedPod{at: listed, changed: c.changed}
			}
		}
	}
	m.cache.pods = pods
	m.cache.listed, m.cache.listedClock = time.Time{}, time.Time{}
	if trusted && epoch == m.cache.epoch && !listed.Before(m.cache.subscribed.Add(m.subscribeGrace)) {
		m.cache.listed, m.cache.listedClock = listed, m.clock.Now()
	}
}

// cachedPod returns the cache's entry of pod id, made empty if there is
// none; m.mu is held.
func (m *Manager) cachedPod(id reconcile.PodID) *cachedPod {
	c := m.cache.pods[id]
	if c == nil {
		c = &cachedPod{}
		m.cache.pods[id] = c
	}
	return c
}

// noteObserved records the observation of pod id (nil: not in the
// runtime) that began at at.
func (m *Manager) noteObserved(id reconcile.PodID, o *reconcile.ObservedPod, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cachedPod(id)
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
	c := m.cachedPod(id)
	if t.After(c.changed) {
		c.changed = t
	}
}

// forgetCache makes the passes list every pod until a list that began
// once the exit stream was live again (the stream broke off: what changed
// meanwhile is unknown).
func (m *Manager) forgetCache() {
	m.mu.Lock()
	m.cache.epoch++
	m.cache.listed, m.cache.listedClock = time.Time{}, time.Time{}
	m.mu.Unlock()
}

// subscribing records that the exit stream is being (re)subscribed now.
func (m *Manager) subscribing() {
	m.mu.Lock()
	m.cache.subscribed = time.Now()
	m.mu.Unlock()
}

// trusted says whether a pass may decide on the cache; m.mu is held.
func (m *Manager) trustedCache() bool {
	return !m.cache.listed.IsZero() && m.clock.Now().Sub(m.cache.listedClock) < m.opts.ResyncInterval
}

// observePods returns the runtime's pods for a pass, and when each was
// observed: the list Sync made, a full list, or the cache with its stale
// pods observed again (see podCache).
func (m *Manager) observePods(ctx context.Context) (observed []reconcile.ObservedPod, at map[reconcile.PodID]time.Time, listed time.Time, err error) {
	_, canObserve := m.rt.(reconcile.PodObserver)
	_, seesExits := m.rt.(reconcile.ExitWatcher)
	m.mu.Lock()
	observed, listed, trusted, epoch := m.syncList, m.syncListed, m.syncTrusted, m.syncEpoch
	m.syncList = nil
	useCache := observed == nil && canObserve && seesExits && m.trustedCache()
	epoch0 := m.cache.epoch
	m.mu.Unlock()
	if useCache {
		var ok bool
		if observed, at, listed, ok, err = m.fromCache(ctx, epoch0); err != nil || ok {
			return observed, at, listed, err
		}
		observed = nil // the cache was forgotten meanwhile: list
	}
	if observed == nil {
		m.mu.Lock()
		epoch = m.cache.epoch
		m.mu.Unlock()
		listed, trusted = time.Now(), true
		if observed, err = m.rt.List(ctx); err != nil {
			return nil, nil, time.Time{}, err
		}
	}
	m.cacheFromList(observed, listed, trusted, epoch)
	return observed, nil, listed, nil
}

// fromCache is observePods on the cache: the stale pods whose workers are
// not syncing are observed again first. It reports false when the cache
// was forgotten (epoch0 is no longer current) meanwhile.
func (m *Manager) fromCache(ctx context.Context, epoch0 uint64) (observed []reconcile.ObservedPod, at map[reconcile.PodID]time.Time, listed time.Time, ok bool, err error) {
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
			return nil, nil, time.Time{}, false, err
		}
		m.noteObserved(id, o, began)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cache.epoch != epoch0 || !m.trustedCache() {
		return nil, nil, time.Time{}, false, nil
	}
	at = make(map[reconcile.PodID]time.Time, len(m.cache.pods))
	for id, c := range m.cache.pods {
		at[id] = c.at
		if c.obs != nil {
			observed = append(observed, *c.obs)
		}
	}
	sort.Slice(observed, func(i, j int) bool { return reconcile.PodLess(observed[i].ID, observed[j].ID) })
	return observed, at, m.cache.listed, true, nil
}
