package manager

import (
	"berth.dev/berth/reconcile"
	"context"
	"time"
)

// StepPod runs one sync of the pod's worker synchronously, without its
// goroutine, so tests can drive the lifecycle step by step with a manual
// clock. The worker is kept between calls, as the manager keeps it.
func (m *Manager) StepPod(ctx context.Context, d *reconcile.DesiredPod) (next time.Time, gone bool, err error) {
	m.mu.Lock()
	if m.testWorkers == nil {
		m.testWorkers = map[reconcile.PodID]*podWorker{}
	}
	w := m.testWorkers[d.ID]
	if w == nil {
		w = &podWorker{m: m, id: d.ID, log: m.log.With("pod", d.ID.String()), bell: make(chan struct{}, 1)}
		m.testWorkers[d.ID] = w
	}
	m.mu.Unlock()
	return w.sync(ctx, d, false)
}

// StepStatus is the status the stepped worker of id last published.
func (m *Manager) StepStatus(id reconcile.PodID) reconcile.PodStatus {
	m.mu.Lock()
	w := m.testWorkers[id]
	m.mu.Unlock()
	st, _ := w.Status()
	return st
}

// StopStepped stops the probes of the stepped workers.
func (m *Manager) StopStepped() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.testWorkers {
		w.stopProbes()
	}
}

// Quiet reports whether nothing waits to run: no controller pass rung or
// in progress, and no pod worker rung or syncing. A test that moved a
// manual clock waits for a pass that began after the move, then for
// quiet.
func (m *Manager) Quiet() bool {
	m.mu.Lock()
	if m.passing || m.rings.Load() > 0 {
		m.mu.Unlock()
		return false
	}
	ws := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		busy := w.syncing || w.rings.Load() > 0
		w.mu.Unlock()
		if busy {
			return false
		}
	}
	return m.rings.Load() == 0
}

// SetSubscribeGrace sets how long after subscribing to exits the stream
// counts as live (the fake runtime subscribes at once).
func (m *Manager) SetSubscribeGrace(d time.Duration) { m.subscribeGrace = d }
