package manager

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/reconcile"
)

// podWorker drives one pod's lifecycle. Triggers only ring its doorbell
// (a channel with a buffer of one), so bursts collapse; the worker reads
// the latest desired spec under the lock. A newer spec cancels the work in
// flight for the older one.
type podWorker struct {
	m    *Manager
	id   reconcile.PodID
	log  hclog.Logger
	bell chan struct{}

	mu       sync.Mutex
	desired  *reconcile.DesiredPod // nil: the pod is not wanted
	retain   bool                  // leave the pod as it runs (a rollout holds it)
	held     bool                  // a rollout holds the pod on desired, its old spec
	cancel   context.CancelFunc
	inflight string // hash of the spec being worked on
	status   reconcile.PodStatus
	hasState bool
	primed   bool                   // status is prime's, not yet published by the worker
	seenPod  *reconcile.ObservedPod // the manager's last observation of the pod
	seenAt   time.Time              // when it was listed; zero: none
	pokedAt  time.Time              // when the pod last changed by itself (poke)
	// primedRec is the record prime read, for the worker's first
	// look: the record is read once, not by both.
	primedRec *reconcile.PodRecord
	// syncing and rings (rings not yet taken) say whether the worker is
	// busy, for tests that wait for the manager to be quiet.
	syncing bool
	rings   atomic.Int64

	// Owned by the worker goroutine.
	rec        *reconcile.PodRecord
	recDirty   bool
	lastAction time.Time // when the worker last changed the pod
	observedAt time.Time // when the worker's last observation of the pod began
	probes     map[string]*containerProbes
	execWarn   sync.Once
	panicked   string // specKey of a spec whose sync panicked
	holding    bool   // the sync in progress holds a start token
	// startFailed holds the containers ("kind/name") whose last start
	// failed: they are started again on the backoff curve.
	startFailed map[string]bool
}

func (w *podWorker) ring() {
	w.rings.Add(1) // before the bell: the ring is counted until taken
	select {
	case w.bell <- struct{}{}:
	default:
		w.rings.Add(-1)
	}
}

// update hands the worker a new desired spec (nil: remove the pod) and
// rings it; work in flight for another spec is cancelled.
func (w *podWorker) update(d *reconcile.DesiredPod, retain, held bool) {
	w.mu.Lock()
	w.desired, w.retain, w.held = d, retain, held
	if w.cancel != nil && w.inflight != specKey(d, retain) {
		w.cancel()
	}
	w.mu.Unlock()
	w.ring()
}

func specKey(d *reconcile.DesiredPod, retain bool) string {
	switch {
	case retain:
		return "retain"
	case d == nil:
		return "remove"
	}
	return d.Hash + "/" + string(d.Finished)
}

// removing says whether the worker was told to remove its pod.
func (w *podWorker) removing() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.desired == nil && !w.retain
}

// Status returns the worker's latest view of its pod.
func (w *podWorker) Status() (reconcile.PodStatus, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status, w.hasState
}

func (w *podWorker) run(ctx context.Context) {
	defer w.stopProbes()
	var timer <-chan time.Time
	for {
		rung := false
		select {
		case <-ctx.Done():
			return
		case <-w.bell:
			rung = true
		case <-timer:
		}
		w.mu.Lock()
		d, retain := w.desired, w.retain
		pctx, cancel := context.WithCancel(ctx)
		w.cancel, w.inflight, w.syncing = cancel, specKey(d, retain), true
		w.mu.Unlock()
		if rung {
			w.rings.Add(-1)
		}

		began := time.Now()
		key := specKey(d, retain)
		var next time.Time
		var gone bool
		var err error
		if w.panicked == "" || w.panicked != key {
			w.panicked = ""
			next, gone, err = w.safeSync(pctx, d, retain, key)
		}
		// A sync cut short (a newer spec, or the manager stopping) did not
		// fail, whatever error its last call returned (containerd's own
		// Canceled status does not wrap context.Canceled).
		cut := pctx.Err() != nil
		cancel()
		if !w.lastAction.Before(began) {
			// Observations listed while this sync changed the pod are
			// stale: those begun before the sync's own observation after
			// its last act, or, without one, before now. (Not a change
			// of its own: the last act counted as one, until observed.)
			if w.observedAt.After(w.lastAction) {
				w.lastAction = w.observedAt.Add(-time.Nanosecond)
			} else {
				w.lastAction = time.Now()
			}
		}
		if err != nil && !cut && !errors.Is(err, context.Canceled) {
			w.log.Warn("pod sync failed", "error", err)
			if next.IsZero() {
				next = w.m.clock.Now().Add(w.m.opts.ResyncInterval)
			}
		}
		if gone && w.m.dropWorker(w) {
			return
		}
		timer = nil
		if !next.IsZero() {
			timer = w.m.clock.After(next.Sub(w.m.clock.Now()))
		}
		w.mu.Lock()
		w.syncing = false
		w.mu.Unlock()
	}
}

// safeSync is sync that survives a panic: the stack is logged, the pod is
// marked failed, and the worker waits for a new spec while every other
// pod goes on.
func (w *podWorker) safeSync(ctx context.Context, d *reconcile.DesiredPod, retain bool, key string) (next time.Time, gone bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			w.log.Error("pod worker panicked; the pod is marked failed until its spec changes",
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			w.panicked = key
			w.mu.Lock()
			st := w.status
			if st.ID == (reconcile.PodID{}) {
				st = reconcile.PodStatus{ID: w.id, Containers: []reconcile.ContainerStatus{}}
				if d != nil {
					st.Owner, st.Hash, st.Revision = d.Owner, d.Hash, d.Revision
				}
			}
			st.Phase, st.Reason, st.Ready = reconcile.PodFailed, reconcile.ReasonWorkerPanic, false
			w.status, w.hasState = st, true
			w.mu.Unlock()
			w.m.ringController()
			next, gone, err = time.Time{}, false, nil
		}
	}()
	return w.sync(ctx, d, retain)
}

// emit reports a change the worker carried out (or failed to) to the
// manager's Events.
func (w *podWorker) emit(a reconcile.Action, owner, reason string, began time.Time, err error) {
	if f := w.m.opts.Events; f != nil {
		f(Event{Pod: w.id, Owner: owner, Action: a, Reason: reason, Err: err, Duration: time.Since(began)})
	}
}

// acted notes that the worker changed its pod in the runtime, so an
// observation made before now is stale.
func (w *podWorker) acted() {
	w.lastAction = time.Now()
	w.m.noteChanged(w.id, w.lastAction)
}

// poke wakes the worker for a change it did not make (a container of its
// pod exited at t): an observation older than that is not to be used.
func (w *podWorker) poke(t time.Time) {
	w.mu.Lock()
	if t.After(w.pokedAt) {
		w.pokedAt = t
	}
	w.mu.Unlock()
	w.ring()
}

// busy says whether the worker is in the middle of a sync.
func (w *podWorker) busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.syncing
}

// seen hands the worker an observation of its pod (nil: not found) that
// the manager's pass listed at at.
func (w *podWorker) seen(o *reconcile.ObservedPod, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if o != nil {
		c := *o
		c.Containers = append([]reconcile.ObservedContainer(nil), o.Containers...)
		o = &c
	}
	w.seenPod, w.seenAt = o, at
}

// prime gives a worker that has not synced yet the status `berth status`
// shows without an agent (the pass's observation and the pod's record), so
// the manager reports every pod from its first pass on, not only those
// whose workers have run.
func (w *podWorker) prime(o *reconcile.ObservedPod, d *reconcile.DesiredPod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hasState || o == nil {
		return
	}
	rec, _ := w.m.store.Pod(w.id)
	w.primedRec = rec
	var spec *reconcile.PodSpec
	if d != nil && d.Hash == o.Hash {
		spec = &d.Spec
	}
	st := reconcile.ObservePod(o, rec, spec)
	if st.Ready {
		st.ReadySince = w.m.clock.Now()
	}
	w.status, w.hasState, w.primed = st, true, true
}

// current returns the latest observation of the pod: the manager's, when
// it was listed after the worker last acted, else a fresh List. One List
// per pass serves every worker.
func (w *podWorker) current(ctx context.Context) (*reconcile.ObservedPod, error) {
	w.mu.Lock()
	o, at, poked := w.seenPod, w.seenAt, w.pokedAt
	w.seenPod, w.seenAt = nil, time.Time{}
	w.mu.Unlock()
	if !at.IsZero() && at.After(w.lastAction) && at.After(poked) {
		return o, nil
	}
	return w.observe(ctx)
}

// observe looks the pod up in the runtime (by itself, when the runtime can
// observe one pod); nil when it does not exist.
func (w *podWorker) observe(ctx context.Context) (*reconcile.ObservedPod, error) {
	began := time.Now()
	w.observedAt = began
	if o, ok := w.m.rt.(reconcile.PodObserver); ok {
		p, err := o.ObservePod(ctx, w.id)
		if err == nil {
			w.m.noteObserved(w.id, p, began)
		}
		return p, err
	}
	pods, err := w.m.rt.List(ctx)
	if err != nil {
		return nil, err
	}
	for i := range pods {
		if pods[i].ID == w.id {
			return &pods[i], nil
		}
	}
	return nil, nil
}

// record returns the pod record for hash, loading it on first use; a
// record of another hash starts afresh.
func (w *podWorker) record(hash string) *reconcile.PodRecord {
	if w.rec == nil {
		w.mu.Lock()
		r := w.primedRec
		w.primedRec = nil
		w.mu.Unlock()
		if r == nil {
			var err error
			if r, err = w.m.store.Pod(w.id); err != nil {
				w.log.Warn("read pod record", "error", err)
			}
		}
		w.rec = r
	}
	if w.rec == nil || w.rec.Hash != hash {
		w.rec = &reconcile.PodRecord{Hash: hash, Containers: map[string]*reconcile.ContainerRecord{}}
	}
	if w.rec.Containers == nil {
		w.rec.Containers = map[string]*reconcile.ContainerRecord{}
	}
	return w.rec
}

func (w *podWorker) saveRecord() {
	if err := w.m.store.WritePod(w.id, w.rec); err != nil {
		w.log.Warn("write pod record", "error", err)
	}
}

// sync moves the pod one step toward its desired state and says when to
// look again (zero: when something rings) and whether the pod is gone for
// good.
func (w *podWorker) sync(ctx context.Context, d *reconcile.DesiredPod, retain bool) (next time.Time, gone bool, err error) {
	m := w.m
	now := m.clock.Now()
	began := time.Now()
	obs, err := w.current(ctx)
	if err != nil {
		return time.Time{}, false, err
	}
	switch {
	case retain && obs == nil:
		w.publish(nil, nil, nil)
		return time.Time{}, d == nil, nil
	case retain && d == nil:
		// Held by a rollout without a spec berth knows: leave it alone.
		rec, _ := m.store.Pod(w.id)
		w.publish(obs, rec, nil)
		return time.Time{}, false, nil
	case d == nil:
		w.stopProbes()
		if obs != nil {
			w.log.Info("removing pod", "reason", "no longer desired")
			w.acted()
			err := m.rt.RemovePod(ctx, w.id, obs.GracePeriod)
			if err != nil {
				err = fmt.Errorf("remove pod: %w", err)
			}
			w.emit(reconcile.ActionDelete, obs.Owner, "no longer desired", began, err)
			if err != nil {
				return time.Time{}, false, err
			}
			m.noteRemoved(w.id)
		}
		if err := m.store.RemovePod(w.id); err != nil {
			w.log.Warn("remove pod record", "error", err)
		}
		w.rec = nil
		w.mu.Lock()
		w.primedRec = nil // removed with the record
		w.mu.Unlock()
		w.publish(nil, nil, nil)
		return time.Time{}, true, nil
	case d.Finished != "":
		// A Job's finished pod, as recorded: shown, never started again.
		rec := w.record(d.Hash)
		if rec.Phase == "" {
			rec.Phase = d.Finished
			w.saveRecord()
		}
		w.stopProbes()
		if obs == nil {
			w.publish(nil, nil, nil)
			return time.Time{}, false, nil
		}
		w.publish(obs, rec, d)
		return time.Time{}, false, nil
	}

	w.mu.Lock()
	held := w.held
	w.mu.Unlock()
	if held && obs == nil {
		// A pod its rollout holds on an old spec is gone (deleted by
		// hand, OnDelete): what comes next is the controller's to decide.
		w.publish(nil, nil, nil)
		m.ringController()
		return time.Time{}, false, nil
	}
	rec := w.record(d.Hash)
	if rec.Phase != "" {
		// Succeeded or Failed: nothing runs again.
		w.stopProbes()
		if obs != nil && obs.Hash == d.Hash {
			w.stopRunning(ctx, d, obs, reconcile.AppContainer, reconcile.InitContainer)
		}
		w.publish(obs, rec, d)
		return time.Time{}, false, nil
	}
	if obs == nil || obs.Hash != d.Hash || !obs.SandboxReady {
		if d.Spec.RestartPolicy == reconcile.RestartNever && rec.AnyStarted() {
			// The pod ran and lost its sandbox (a reboot, a removal
			// outside berth): with restartPolicy Never nothing runs twice.
			rec.Phase, rec.Reason = reconcile.PodFailed, reconcile.ReasonSandboxChanged
			w.saveRecord()
			w.log.Info("pod failed", "reason", reconcile.ReasonSandboxChanged)
			w.publish(obs, rec, d)
			return time.Time{}, false, nil
		}
		// Images first: the old pod keeps running while they are pulled,
		// and is not removed for an image that cannot be had.
		if until, err := w.ensureImages(ctx, d, now); err != nil || !until.IsZero() {
			w.publish(obs, rec, d)
			return until, false, err
		}
		action, why := reconcile.ActionCreate, "not running on this host"
		if obs != nil {
			action, why = reconcile.ActionReplace, "spec changed"
		}
		defer func() {
			if err == nil || !errors.Is(err, context.Canceled) {
				w.emit(action, d.Owner, why, began, err)
			}
		}()
		if obs != nil {
			w.stopProbes()
			if obs.Hash == d.Hash {
				why = "sandbox is gone or incomplete"
			}
			w.log.Info("replacing pod", "reason", why)
			w.acted()
			if err := m.rt.RemovePod(ctx, w.id, obs.GracePeriod); err != nil {
				return time.Time{}, false, fmt.Errorf("remove old pod: %w", err)
			}
		}
		// One start token for the whole creation: the sandbox and the
		// containers this sync starts, so a pod, once begun, is finished
		// before the next pod's sandbox is made.
		release, err := w.holdStart(ctx)
		if err != nil {
			return time.Time{}, false, err
		}
		defer release()
		w.acted()
		if err := m.rt.CreateSandbox(ctx, d); err != nil {
			return time.Time{}, false, fmt.Errorf("create sandbox: %w", err)
		}
		if rec.StartTime.IsZero() {
			rec.StartTime, w.recDirty = now, true
		}
		if obs, err = w.observe(ctx); err != nil || obs == nil {
			if err == nil {
				err = errors.New("sandbox vanished after creation")
			}
			return time.Time{}, false, err
		}
	}
	if rec.StartTime.IsZero() {
		rec.StartTime = obs.CreatedAt
		if rec.StartTime.IsZero() {
			rec.StartTime = now
		}
		w.saveRecord()
	}

	// activeDeadlineSeconds counts from the pod's start.
	if ads := d.Spec.ActiveDeadlineSeconds; ads != nil {
		deadline := rec.StartTime.Add(time.Duration(*ads) * time.Second)
		if !now.Before(deadline) {
			w.log.Info("pod failed", "reason", reconcile.ReasonDeadlineExceeded)
			rec.Phase, rec.Reason = reconcile.PodFailed, reconcile.ReasonDeadlineExceeded
			w.saveRecord()
			w.stopProbes()
			w.stopRunning(ctx, d, obs, reconcile.AppContainer, reconcile.InitContainer)
			w.publish(obs, rec, d)
			return time.Time{}, false, nil
		}
		next = reconcile.Earliest(next, deadline)
	}

	n, err := w.syncContainers(ctx, d, obs, rec, now)
	next = reconcile.Earliest(next, n)
	if !w.lastAction.Before(began) {
		if obs2, err2 := w.observe(ctx); err2 == nil && obs2 != nil {
			obs = obs2
		}
	}
	w.syncProbes(ctx, d, obs)
	w.publish(obs, rec, d)
	if rec.Phase == "" {
		next = reconcile.Earliest(next, w.probeWake())
	}
	return next, false, err
}

// ensureImages makes every image of the pod available; a failure puts
// the containers in ErrImagePull, then ImagePullBackOff, with the restart
// backoff curve. It returns when to try again.
func (w *podWorker) ensureImages(ctx context.Context, d *reconcile.DesiredPod, now time.Time) (time.Time, error) {
	rec := w.rec
	pull := rec.Container("image", "pull")
	if pull.Waiting != "" && now.Before(pull.Until) {
		return pull.Until, nil
	}
	for _, c := range reconcile.PodImages(d) {
		if err := reconcile.EnsurePodImage(ctx, w.m.rt, d, c.Image, c.ImagePullPolicy); err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			reason := reconcile.ReasonImagePullBackOff
			if pull.Waiting == "" {
				reason = reconcile.ReasonErrImagePull
			}
			w.m.backoff(pull, now)
			pull.Waiting, pull.Until = reason, now.Add(pull.Backoff)
			for _, cc := range d.Spec.InitContainers {
				if cc.Image == c.Image {
					cr := rec.Container(reconcile.InitContainer, cc.Name)
					cr.Waiting, cr.Until = reason, pull.Until
				}
			}
			for _, cc := range d.Spec.Containers {
				if cc.Image == c.Image {
					cr := rec.Container(reconcile.AppContainer, cc.Name)
					cr.Waiting, cr.Until = reason, pull.Until
				}
			}
			w.saveRecord()
			w.log.Warn("image pull failed", "image", c.Image, "retry", pull.Backoff, "error", err)
			return pull.Until, nil
		}
	}
	if pull.Waiting != "" || pull.Backoff != 0 {
		delete(rec.Containers, "image/pull")
		for _, cr := range rec.Containers {
			if cr.Waiting == reconcile.ReasonErrImagePull || cr.Waiting == reconcile.ReasonImagePullBackOff {
				cr.Waiting, cr.Until = "", time.Time{}
			}
		}
		w.saveRecord()
	}
	return time.Time{}, nil
}

// backoff extends c's CrashLoopBackOff delay for a death at t, the way
// kubelet does: the first delay is InitialBackoff, each next one double
// the last up to MaxBackoff, back to the start after BackoffReset without
// a death.
func (m *Manager) backoff(c *reconcile.ContainerRecord, t time.Time) {
	if c.Backoff == 0 || t.Sub(c.LastDeath) > m.opts.BackoffReset {
		c.Backoff = m.opts.InitialBackoff
	} else {
		c.Backoff = min(2*c.Backoff, m.opts.MaxBackoff)
	}
	c.LastDeath = t
}

// inBackoff says until when a container that died at t must wait before
// it starts again; zero when it may start now.
func (m *Manager) inBackoff(c *reconcile.ContainerRecord, t, now time.Time) time.Time {
	if c.Backoff == 0 || now.Sub(c.LastDeath) > m.opts.BackoffReset {
		return time.Time{}
	}
	if until := t.Add(c.Backoff); now.Before(until) {
		return until
	}
	return time.Time{}
}

// restart starts a container again after its death at t, unless it is in
// CrashLoopBackOff; it returns when to look again.
func (w *podWorker) restart(ctx context.Context, d *reconcile.DesiredPod, kind reconcile.ContainerKind, name string, died, now time.Time, exitCode int, reason string) (time.Time, error) {
	cr := w.rec.Container(kind, name)
	since := died
	if since.IsZero() && w.startFailed[string(kind)+"/"+name] {
		// Its last start failed: it waits out the backoff of that try, so
		// a start that keeps failing (a runtime restarting under it)
		// follows CrashLoopBackOff instead of being tried again at every
		// wake-up.
		since = cr.LastDeath
	}
	if until := w.m.inBackoff(cr, since, now); !until.IsZero() {
		if cr.Waiting != reconcile.ReasonCrashLoopBackOff || !cr.Until.Equal(until) {
			cr.Waiting, cr.Until = reconcile.ReasonCrashLoopBackOff, until
			w.saveRecord()
		}
		return until, nil
	}
	if died.IsZero() {
		died = now // vanished: when is unknown, so it does not wait
	}
	w.m.backoff(cr, died)
	cr.Restarts++
	cr.Waiting, cr.Until, cr.Ready = "", time.Time{}, false
	cr.LastExitCode, cr.LastReason = exitCode, reason
	w.saveRecord() // the count first, then the side effect
	w.log.Info("restarting container", "container", name, "restarts", cr.Restarts, "exit_code", exitCode, "backoff", cr.Backoff)
	w.acted()
	if err := w.startContainer(ctx, d, kind, name); err != nil {
		return time.Time{}, fmt.Errorf("restart container %q: %w", name, err)
	}
	return time.Time{}, nil
}

// startContainer starts a container in the runtime and notes whether the
// start failed.
func (w *podWorker) startContainer(ctx context.Context, d *reconcile.DesiredPod, kind reconcile.ContainerKind, name string) error {
	err := w.starting(ctx, func() error { return w.m.rt.StartContainer(ctx, d, kind, name) })
	key := string(kind) + "/" + name
	switch {
	case err == nil:
		delete(w.startFailed, key)
	case ctx.Err() == nil:
		if w.startFailed == nil {
			w.startFailed = map[string]bool{}
		}
		w.startFailed[key] = true
	}
	return err
}

// start starts a container for the first time in this pod (or again, when
// it vanished: then it counts as a restart).
func (w *podWorker) start(ctx context.Context, d *reconcile.DesiredPod, kind reconcile.ContainerKind, name string, now time.Time) (time.Time, error) {
	cr := w.rec.Container(kind, name)
	if cr.Started {
		return w.restart(ctx, d, kind, name, time.Time{}, now, 0, "")
	}
	// Written with the pod's status at the end of this sync: a container
	// found in the runtime shows it was started anyway.
	cr.Started, w.recDirty = true, true
	w.acted()
	if err := w.startContainer(ctx, d, kind, name); err != nil {
		return time.Time{}, fmt.Errorf("start %s container %q: %w", kind, name, err)
	}
	return time.Time{}, nil
}

// holdStart takes one of the manager's start tokens
// (Options.MaxParallelStarts) until release is called; the container
// starts of the same sync run under it.
func (w *podWorker) holdStart(ctx context.Context) (release func(), err error) {
	select {
	case w.m.starts <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	w.holding = true
	return func() {
		w.holding = false
		<-w.m.starts
	}, nil
}

// starting runs create, a container start, under a start token: the
// sync's own when it holds one, else one taken for it.
func (w *podWorker) starting(ctx context.Context, create func() error) error {
	if w.holding {
		return create()
	}
	release, err := w.holdStart(ctx)
	if err != nil {
		return err
	}
	defer release()
	return create()
}

// deathTime is when an exited container died, as well as berth can tell.
func deathTime(oc *reconcile.ObservedContainer, now time.Time) time.Time {
	if !oc.FinishedAt.IsZero() {
		return oc.FinishedAt
	}
	return now
}

// syncContainers runs init containers in order, each to success (sidecars,
// restartPolicy Always, started in order and kept running), then the app
// containers under the restart policy; it sets the pod's terminal phase.
func (w *podWorker) syncContainers(ctx context.Context, d *reconcile.DesiredPod, obs *reconcile.ObservedPod, rec *reconcile.PodRecord, now time.Time) (time.Time, error) {
	policy := d.Spec.RestartPolicy
	// Init containers are done once an app container ran in this sandbox;
	// a new sandbox (after a reboot) runs them again, as kubelet does.
	appStarted := false
	for _, c := range d.Spec.Containers {
		if oc := obs.Container(reconcile.AppContainer, c.Name); oc != nil && oc.State != reconcile.StateCreated {
			appStarted = true
		}
	}
	var next time.Time
	for _, c := range d.Spec.InitContainers {
		sidecar := c.RestartPolicy == reconcile.RestartAlways
		oc := obs.Container(reconcile.InitContainer, c.Name)
		if appStarted && !sidecar {
			continue
		}
		switch {
		case oc == nil || oc.State == reconcile.StateCreated:
			n, err := w.start(ctx, d, reconcile.InitContainer, c.Name, now)
			if err != nil || !n.IsZero() || !sidecar {
				return n, err
			}
		case oc.State == reconcile.StateRunning:
			if !sidecar {
				return time.Time{}, nil // wait for it to finish
			}
			if !w.started(c.Name, oc) {
				return time.Time{}, nil // a sidecar must start before the next
			}
		case oc.State == reconcile.StateExited && oc.ExitCode == 0 && !sidecar:
			continue
		case oc.State == reconcile.StateExited:
			if !sidecar && policy == reconcile.RestartNever {
				rec.Phase, rec.Reason = reconcile.PodFailed, ""
				rec.Container(reconcile.InitContainer, c.Name).LastExitCode = oc.ExitCode
				w.saveRecord()
				w.log.Info("pod failed", "reason", "init container failed", "container", c.Name, "exit_code", oc.ExitCode)
				return time.Time{}, nil
			}
			n, err := w.restart(ctx, d, reconcile.InitContainer, c.Name, deathTime(oc, now), now, oc.ExitCode, reconcile.TerminatedReason(oc))
			if err != nil || !n.IsZero() || !sidecar {
				return n, err
			}
		default:
			return now.Add(w.m.opts.ResyncInterval), nil
		}
	}
	terminated, failed := 0, 0
	for _, c := range d.Spec.Containers {
		oc := obs.Container(reconcile.AppContainer, c.Name)
		switch {
		case oc == nil && policy == reconcile.RestartNever && rec.Container(reconcile.AppContainer, c.Name).Started:
			// Removed outside berth after it ran: it does not run twice.
			terminated++
			failed++
		case oc == nil || oc.State == reconcile.StateCreated:
			n, err := w.start(ctx, d, reconcile.AppContainer, c.Name, now)
			if err != nil {
				return next, err
			}
			next = reconcile.Earliest(next, n)
		case oc.State == reconcile.StateRunning:
		case oc.State == reconcile.StateExited:
			if reconcile.ShouldRestart(policy, oc.ExitCode) {
				n, err := w.restart(ctx, d, reconcile.AppContainer, c.Name, deathTime(oc, now), now, oc.ExitCode, reconcile.TerminatedReason(oc))
				if err != nil {
					return next, err
				}
				next = reconcile.Earliest(next, n)
				continue
			}
			terminated++
			if oc.ExitCode != 0 {
				failed++
			}
		}
	}
	if terminated == len(d.Spec.Containers) && terminated > 0 {
		rec.Phase = reconcile.PodSucceeded
		if failed > 0 {
			rec.Phase = reconcile.PodFailed
		}
		w.saveRecord()
		w.log.Info("pod finished", "phase", string(rec.Phase))
		w.stopProbes()
		w.stopRunning(ctx, d, obs, reconcile.InitContainer)
	}
	return next, nil
}

// stopRunning stops the running containers of the given kinds, when the
// runtime can stop single containers; otherwise, for app containers, the
// whole pod is removed.
func (w *podWorker) stopRunning(ctx context.Context, d *reconcile.DesiredPod, obs *reconcile.ObservedPod, kinds ...reconcile.ContainerKind) {
	stopper, ok := w.m.rt.(reconcile.ContainerStopper)
	for _, c := range obs.Containers {
		if c.State != reconcile.StateRunning {
			continue
		}
		want := false
		for _, k := range kinds {
			want = want || c.Kind == k
		}
		if !want {
			continue
		}
		if !ok {
			if c.Kind == reconcile.AppContainer {
				w.acted()
				if err := w.m.rt.RemovePod(ctx, w.id, d.GracePeriod()); err != nil {
					w.log.Warn("remove pod", "error", err)
				}
				return
			}
			continue
		}
		w.acted()
		if err := stopper.StopContainer(ctx, w.id, c.Kind, c.Name, d.GracePeriod()); err != nil {
			w.log.Warn("stop container", "container", c.Name, "error", err)
		}
	}
}

// publish computes the pod's status and hands it to the manager.
func (w *podWorker) publish(obs *reconcile.ObservedPod, rec *reconcile.PodRecord, d *reconcile.DesiredPod) {
	var st reconcile.PodStatus
	has := obs != nil || d != nil
	switch {
	case obs != nil:
		var spec *reconcile.PodSpec
		if d != nil {
			spec = &d.Spec
		}
		st = reconcile.ObservePod(obs, rec, spec)
		w.overlayProbes(&st, obs)
	case d != nil:
		st = reconcile.ObservePod(&reconcile.ObservedPod{ID: d.ID, Hash: d.Hash, Revision: d.Revision, Owner: d.Owner}, rec, &d.Spec)
	}
	w.mu.Lock()
	prev := w.status
	if prev.Ready && st.Ready && !prev.ReadySince.IsZero() {
		st.ReadySince = prev.ReadySince
	} else if st.Ready {
		st.ReadySince = w.m.clock.Now()
	}
	// A primed status was made after the pass decided: the first status
	// the worker publishes rings the controller even when it is the same,
	// or a pass would never decide on it.
	primed := w.primed
	w.status, w.hasState, w.primed = st, has, false
	w.mu.Unlock()
	if rec != nil && rec == w.rec && (rec.Ready != st.Ready || w.recDirty) {
		rec.Ready, w.recDirty = st.Ready, false
		w.saveRecord()
	}
	if primed || prev.Phase != st.Phase || prev.Ready != st.Ready || prev.Restarts() != st.Restarts() || prev.Hash != st.Hash {
		w.m.ringController()
	}
}
