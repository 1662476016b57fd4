package manager

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/reconcile"
)

// Options configure a Manager.
type Options struct {
	// Node is this host.
	Node reconcile.Node
	// StateDir is berth's state directory: records live under
	// StateDir/records, StatefulSet volumes under StateDir/volumes.
	StateDir string
	// Clock is the time source (default: the wall clock).
	Clock reconcile.Clock
	// Logger (default: discard).
	Logger hclog.Logger
	// Execer runs exec probes; default: the runtime, when it implements
	// Execer.
	Execer reconcile.Execer
	// ResyncInterval is how often every pod is compared with the runtime
	// in full, to notice what no event reported (default 30 s). Container
	// exits wake the pod's worker at once when the runtime reports them
	// (ExitWatcher).
	ResyncInterval time.Duration
	// InitialBackoff, MaxBackoff and BackoffReset shape CrashLoopBackOff:
	// 10 s doubling to 300 s, back to the start after 10 minutes without
	// a restart (the defaults, as in kubelet).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	BackoffReset   time.Duration
	// MaxParallelStarts bounds how many pod sandboxes and containers are
	// being created at once (default 4): a revision of 50 pods starts
	// them 4 at a time, as `ctr` scripts and kubelet's image and sandbox
	// work do on a small host, instead of 50 workers contending for 2
	// CPUs and holding 50 creations' memory at once. Removals and probes
	// do not count.
	MaxParallelStarts int
	// Safety is the deletion-safety rule Sync applies (CheckRemovals).
	Safety reconcile.Safety
	// Events, when set, receives one Event per change the workers carry
	// out (progress lines of berth apply, tests comparing a plan with what
	// happened). It must not block.
	Events func(Event)
}

// Event is a change a pod worker carried out, or failed to.
type Event struct {
	Pod    reconcile.PodID
	Owner  string
	Action reconcile.Action
	Reason string
	// Err is set when the change failed; the worker tries again.
	Err      error
	Duration time.Duration
}

// String formats e as one progress line.
func (e Event) String() string {
	s := fmt.Sprintf("%-7s pod %s", e.Action, e.Pod)
	if e.Err != nil {
		return s + ": failed: " + e.Err.Error()
	}
	return fmt.Sprintf("%s: done in %s (%s)", s, e.Duration.Round(time.Millisecond), e.Reason)
}

func (o *Options) defaults() {
	if o.StateDir == "" {
		o.StateDir = reconcile.DefaultStateDir
	}
	if o.Clock == nil {
		o.Clock = reconcile.RealClock{}
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = 30 * time.Second
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = 10 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 300 * time.Second
	}
	if o.BackoffReset <= 0 {
		o.BackoffReset = 10 * time.Minute
	}
	if o.MaxParallelStarts <= 0 {
		o.MaxParallelStarts = 4
	}
}

// Manager keeps the host's pods equal to the latest revision it was given,
// for as long as it runs: one worker per pod drives the pod's lifecycle
// (restarts with CrashLoopBackOff, init and sidecar containers, probes,
// activeDeadlineSeconds, drift repair), and controllers roll out
// Deployments, StatefulSets and DaemonSets, run Jobs and schedule
// CronJobs, keeping what must survive a restart in records under the
// state directory. Stopping the manager (cancelling Run's context) leaves
// every pod running.
type Manager struct {
	rt    reconcile.Runtime
	opts  Options
	clock reconcile.Clock
	// wall times the controller's passes (settle); the wall clock but in
	// tests.
	wall  reconcile.Clock
	log   hclog.Logger
	store *RecordStore

	bell          chan struct{}
	rings         atomic.Int64  // rings of bell not yet taken (tests wait for quiet)
	interruptions atomic.Uint64 // see Interruptions
	// starts holds one token per sandbox or container being created
	// (Options.MaxParallelStarts).
	starts chan struct{}

	mu      sync.Mutex
	passing bool // a controller pass is in progress (tests wait for quiet)
	// syncList is what the last Sync listed (at syncListed), for the pass
	// that follows it; nil once a pass used it.
	syncList   []reconcile.ObservedPod
	syncListed time.Time
	// syncTrusted says whether syncList was listed here (not handed in by
	// the caller, at an unknown time) in cache epoch syncEpoch.
	syncTrusted bool
	syncEpoch   uint64
	cache       podCache // the runtime's pods as last seen (see podCache)
	// subscribeGrace is subscribeGrace but in tests.
	subscribeGrace time.Duration
	synced         bool
	revision       string
	objects        []reconcile.Object
	workers        map[reconcile.PodID]*podWorker
	known          map[reconcile.PodID]*reconcile.DesiredPod // the last spec handed to each worker
	workloads      []reconcile.WorkloadStatus
	deploys        map[string]*reconcile.DeploymentRecord
	// jobStatuses and cronStatuses are the Job and CronJob rows of the
	// workloads' status, from the last pass.
	jobStatuses  []reconcile.WorkloadStatus
	cronStatuses []reconcile.WorkloadStatus
	runCtx       context.Context
	wg           sync.WaitGroup

	recordsSwept bool // pod records of vanished pods removed

	// gen counts Syncs; decision is the latest pass's decision, made for
	// generation decidedGen on the pods in decided.
	gen, decidedGen int
	keep            map[reconcile.PodID]bool      // pods the revision may not remove
	removed         map[reconcile.PodID]time.Time // when a worker last removed each pod
	decision        *reconcile.Decision
	decided         []reconcile.ObservedPod
	passed          chan struct{} // closed after each pass, then replaced

	testWorkers map[reconcile.PodID]*podWorker // used by StepPod in tests only
}

// New returns a manager for rt. Call Run to start it and Sync to
// hand it revisions.
func New(rt reconcile.Runtime, opts Options) *Manager {
	opts.defaults()
	return &Manager{
		rt: rt, opts: opts, clock: opts.Clock, wall: reconcile.RealClock{}, log: opts.Logger.Named("reconcile"),
		store:   NewRecordStore(opts.StateDir),
		bell:    make(chan struct{}, 1),
		starts:  make(chan struct{}, opts.MaxParallelStarts),
		workers: map[reconcile.PodID]*podWorker{}, known: map[reconcile.PodID]*reconcile.DesiredPod{},
		passed:         make(chan struct{}),
		cache:          podCache{pods: map[reconcile.PodID]*cachedPod{}},
		subscribeGrace: subscribeGrace,
	}
}

func (m *Manager) execer() reconcile.Execer {
	if m.opts.Execer != nil {
		return m.opts.Execer
	}
	if e, ok := m.rt.(reconcile.Execer); ok {
		return e
	}
	return nil
}

// Sync hands the manager the objects of a revision. Everything that can
// refuse the revision runs first, and a refused revision changes nothing:
// Expansion, the deletion-safety rule (CheckRemovals) and, when the
// runtime is an Admitter, admission of every pod to create or replace.
// Otherwise the manager starts moving the host to it.
func (m *Manager) Sync(ctx context.Context, revision string, objs []reconcile.Object) error {
	return m.SyncKeeping(ctx, revision, objs, nil)
}

// SyncKeeping is Sync for a revision that must not prune: the pods in
// keep, which the revision does not declare, are left running as they are
// (an agent that runs a cached revision offline prunes nothing).
func (m *Manager) SyncKeeping(ctx context.Context, revision string, objs []reconcile.Object, keep []reconcile.PodID) error {
	return m.sync(ctx, revision, objs, keep, nil)
}

// sync is SyncKeeping on the runtime's pods as observed lists them (nil:
// listed here).
func (m *Manager) sync(ctx context.Context, revision string, objs []reconcile.Object, keep []reconcile.PodID, observed []reconcile.ObservedPod) error {
	recs, err := m.store.Load()
	if err != nil && recs == nil {
		return fmt.Errorf("read records: %w", err)
	}
	x, err := reconcile.ExpandAll(objs, revision, m.expandOptions(recs))
	if err != nil {
		return err
	}
	listed, trusted := time.Now(), observed == nil
	m.mu.Lock()
	epoch := m.cache.epoch
	m.mu.Unlock()
	if observed == nil {
		if observed, err = m.rt.List(ctx); err != nil {
			return fmt.Errorf("list pods: %w", err)
		}
	}
	kept := make(map[reconcile.PodID]bool, len(keep))
	for _, id := range keep {
		kept[id] = true
	}
	removable := observed[:0:0]
	for _, o := range observed {
		if !kept[o.ID] {
			removable = append(removable, o)
		}
	}
	if err := reconcile.CheckRemovals(revision, objs, removable, m.opts.Safety); err != nil {
		return err
	}
	if err := reconcile.AdmitPods(m.rt, revision, x.Pods, observed); err != nil {
		return err
	}
	m.mu.Lock()
	m.synced, m.revision, m.objects, m.keep = true, revision, objs, kept
	m.syncList, m.syncListed, m.syncTrusted, m.syncEpoch = observed, listed, trusted, epoch
	m.gen++
	m.mu.Unlock()
	m.ringController()
	return nil
}

// Notify wakes the worker of pod id (a container of it exited), or the
// controller when no worker drives it.
func (m *Manager) Notify(id reconcile.PodID) {
	now := time.Now()
	m.noteChanged(id, now)
	m.mu.Lock()
	w := m.workers[id]
	m.mu.Unlock()
	if w != nil {
		w.poke(now)
		return
	}
	m.ringController()
}

// Passed returns a channel that is closed when the next controller pass
// ends.
func (m *Manager) Passed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.passed
}

// Pending says what stands between the host and the last revision handed
// to Sync, as of the latest controller pass: the changes the engine still
// asks for (now or in a later step of a rollout), and the pods it drives
// that do not run yet (creating, pulling, crash-looping). Nothing pending
// means the host has converged.
func (m *Manager) Pending() []string {
	m.mu.Lock()
	d, observed, current := m.decision, m.decided, m.decidedGen == m.gen && m.gen > 0
	m.mu.Unlock()
	if m.gen == 0 {
		return nil // nothing was handed over
	}
	if !current || d == nil {
		return []string{"waiting for the first pass over the revision"}
	}
	var out []string
	for _, c := range reconcile.StepChanges(&reconcile.Input{Observed: observed}, *d) {
		out = append(out, fmt.Sprintf("%s pod %s: %s", c.Action, c.Pod, c.Reason))
	}
	for id, why := range d.Blocking() {
		out = append(out, fmt.Sprintf("pod %s: %s", id, why))
	}
	for id, t := range d.Targets {
		if t.Waits {
			out = append(out, fmt.Sprintf("pod %s: %s", id, t.Held))
		}
	}
	for _, st := range m.Pods() {
		t, ok := d.Targets[st.ID]
		if !ok || t.Spec == nil || t.Spec.Finished != "" || t.Held != "" {
			continue
		}
		if why := notRunning(st, t.Spec); why != "" {
			out = append(out, fmt.Sprintf("pod %s: %s", st.ID, why))
		}
	}
	sort.Strings(out)
	return out
}

// notRunning says why a pod the engine drives to spec does not run it
// yet, or "".
func notRunning(st reconcile.PodStatus, spec *reconcile.DesiredPod) string {
	if st.Hash != spec.Hash {
		return "not yet running its spec"
	}
	switch st.Phase {
	case reconcile.PodSucceeded, reconcile.PodFailed:
		return ""
	case reconcile.PodPending:
		return "pending (" + st.Display() + ")"
	}
	for _, c := range st.Containers {
		switch c.State {
		case reconcile.Waiting:
			return fmt.Sprintf("container %q: %s", c.Name, c.Reason)
		case reconcile.Terminated:
			if c.ExitCode != 0 || spec.Spec.RestartPolicy == reconcile.RestartAlways || spec.Spec.RestartPolicy == "" {
				return fmt.Sprintf("container %q exited with code %d", c.Name, c.ExitCode)
			}
		}
	}
	return ""
}

func (m *Manager) expandOptions(recs *reconcile.Records) reconcile.ExpandOptions {
	return reconcile.ExpandOptions{Node: m.opts.Node, StateDir: m.opts.StateDir, Records: recs, Now: m.clock.Now()}
}

func (m *Manager) ringController() {
	m.rings.Add(1) // before the bell: the ring is counted until taken
	select {
	case m.bell <- struct{}{}:
	default:
		m.rings.Add(-1)
	}
}

// Run drives the pods until ctx is cancelled, then waits for the workers
// to stop; the pods keep running. Before the first Sync it touches
// nothing.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("manager is already running")
	}
	m.runCtx = ctx
	m.mu.Unlock()
	defer m.wg.Wait()
	if ew, ok := m.rt.(reconcile.ExitWatcher); ok {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.watchExits(ctx, ew)
		}()
	}
	rung := false // woken by a ring, counted in rings until now
	for {
		m.mu.Lock()
		m.passing = true
		m.mu.Unlock()
		if rung {
			m.rings.Add(-1)
		}
		began := m.wall.Now()
		next := m.pass(ctx)
		ended := m.wall.Now()
		m.mu.Lock()
		m.passing = false
		close(m.passed)
		m.passed = make(chan struct{})
		m.mu.Unlock()
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = m.clock.After(next.Sub(m.clock.Now()))
		}
		resync := m.clock.After(m.opts.ResyncInterval)
		rung = false
		select {
		case <-ctx.Done():
			return nil
		case <-m.bell:
			rung = true
			if !m.settle(ctx, ended.Sub(began), ended) {
				return nil
			}
		case <-timer:
		case <-resync:
			// The next pass lists the pods once and rings every worker.
		}
	}
}

// A pass rung right after another waits until passSpacing times the
// last pass's duration has gone by since it ended, at most
// maxPassSpacing.
const (
	passSpacing    = 3
	maxPassSpacing = 500 * time.Millisecond
)

// settle waits, after a ring, until the last pass's cost is repaid (see
// passSpacing), and reports false if ctx ended first. Cost and wait are
// wall time (m.wall), whatever clock drives the pods: they measure what
// a pass costs the host. A pass that lists every
// pod asks the runtime for each container's task; while pods come up
// one after the other, each ringing as it does, passes ran back to back
// and their cost grew with the square of the pods: 47 passes and 2,665
// task lookups in containerd to start 50 pods. Spaced, passes take at
// most a quarter of the time (and most passes no longer list: see
// podCache). A ring that comes while the pass waits is taken by the
// pass that follows: that pass sees what rang.
func (m *Manager) settle(ctx context.Context, cost time.Duration, ended time.Time) bool {
	wait := min(passSpacing*cost, maxPassSpacing) - m.wall.Now().Sub(ended)
	if wait <= 0 {
		return true
	}
	select {
	case <-ctx.Done():
		return false
	case <-m.wall.After(wait):
	}
	select {
	case <-m.bell:
		m.rings.Add(-1)
	default:
	}
	return true
}

// noteRemoved records that a worker removed pod id from the runtime.
func (m *Manager) noteRemoved(id reconcile.PodID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.removed == nil {
		m.removed = map[reconcile.PodID]time.Time{}
	}
	now := time.Now()
	for k, t := range m.removed {
		if now.Sub(t) > time.Hour {
			delete(m.removed, k)
		}
	}
	m.removed[id] = now
	if c := m.cache.pods[id]; c != nil && !now.Before(c.at) {
		c.obs, c.at = nil, now
	}
}

// watchExits wakes the worker of every pod whose container exits. A
// broken stream (containerd restarted or gone) counts as an
// interruption; the manager waits, with a short backoff, until the
// runtime answers again (when it can tell), rings a pass, which finds
// what changed meanwhile and wakes every worker, and subscribes again.
func (m *Manager) watchExits(ctx context.Context, ew reconcile.ExitWatcher) {
	const minBackoff, maxBackoff = 250 * time.Millisecond, 2 * time.Second
	checker, _ := m.rt.(interface{ Check(context.Context) error })
	backoff := minBackoff
	for ctx.Err() == nil {
		began := time.Now()
		m.subscribing()
		err := ew.WatchExits(ctx, m.Notify)
		if ctx.Err() != nil {
			return
		}
		m.interruptions.Add(1)
		if time.Since(began) > time.Minute {
			backoff = minBackoff
		}
		m.log.Warn("container exit events unavailable; subscribing again once the runtime answers", "error", err)
		m.forgetCache()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			if checker == nil {
				break
			}
			cctx, cancel := context.WithTimeout(ctx, maxBackoff)
			err := checker.Check(cctx)
			cancel()
			if err == nil {
				break
			}
		}
		m.ringController()
	}
}

// Interruptions counts how often the runtime's stream of container exits
// broke off (containerd restarted or unreachable). What failed meanwhile
// (a start, a listing) is the runtime's doing, not a revision's: the
// agent's health check starts again after one.
func (m *Manager) Interruptions() uint64 { return m.interruptions.Load() }

// worker returns the worker of id, starting it when there is none.
func (m *Manager) worker(id reconcile.PodID) *podWorker {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.workers[id]; w != nil {
		return w
	}
	w := &podWorker{m: m, id: id, log: m.log.With("pod", id.String()), bell: make(chan struct{}, 1)}
	// A pass that listed the pod before a worker removed it must not have
	// a new worker remove it again: its observation is older than that.
	w.lastAction = m.removed[id]
	delete(m.removed, id)
	m.workers[id] = w
	ctx := m.runCtx
	if ctx == nil {
		ctx = context.Background()
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		w.run(ctx)
	}()
	return w
}

// dropWorker forgets w when its pod is still unwanted; it reports whether
// the worker should stop.
func (m *Manager) dropWorker(w *podWorker) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.desired != nil || w.retain {
		return false
	}
	if m.workers[w.id] == w {
		delete(m.workers, w.id)
		delete(m.known, w.id)
	}
	return true
}

// pass is one controller pass: observe, run the Job and CronJob
// controllers, expand, gate rollouts, and hand every worker its spec. It
// returns when it wants to run again (zero: on the next event).
func (m *Manager) pass(ctx context.Context) time.Time {
	m.mu.Lock()
	synced, rev, objs, gen := m.synced, m.revision, m.objects, m.gen
	m.mu.Unlock()
	if !synced {
		return time.Time{}
	}
	now := m.clock.Now()
	// The pass right after a Sync decides on the pods Sync listed: a
	// worker that acted since re-observes its own pod.
	observed, observedAt, listed, err := m.observePods(ctx)
	if err != nil {
		if ctx.Err() == nil { // else the manager is stopping: nothing is wrong
			m.log.Warn("list pods", "error", err)
		}
		return now.Add(m.opts.ResyncInterval)
	}
	seenAt := func(id reconcile.PodID) time.Time {
		if t, ok := observedAt[id]; ok {
			return t
		}
		return listed
	}
	recs, err := m.store.Load()
	if err != nil && recs != nil {
		m.log.Error("unreadable records are ignored", "error", err)
	} else if err != nil {
		m.log.Warn("read records", "error", err)
		return now.Add(m.opts.ResyncInterval)
	}
	statuses := m.Pods()
	byID := map[reconcile.PodID]*reconcile.PodStatus{}
	for i := range statuses {
		byID[statuses[i].ID] = &statuses[i]
	}
	var next time.Time
	next = reconcile.Earliest(next, m.syncCronJobs(objs, recs, byID, now))
	x, err := reconcile.ExpandAll(objs, rev, m.expandOptions(recs))
	if err != nil {
		m.log.Error("expand revision", "revision", rev, "error", err)
		return time.Time{}
	}
	if changed, n := m.syncJobs(x, recs, byID, observed, now); changed {
		// The CronJob controller acts on Job results (history, Forbid)
		// in the next pass.
		m.ringController()
		next = reconcile.Earliest(next, n)
		if x, err = reconcile.ExpandAll(objs, rev, m.expandOptions(recs)); err != nil {
			m.log.Error("expand revision", "revision", rev, "error", err)
			return time.Time{}
		}
	} else {
		next = reconcile.Earliest(next, n)
	}
	next = reconcile.Earliest(next, x.Wake)

	m.mu.Lock()
	known := make(map[reconcile.PodID]*reconcile.DesiredPod, len(m.known))
	for k, v := range m.known {
		known[k] = v
	}
	terminating := map[reconcile.PodID]bool{}
	for i := range observed {
		if w := m.workers[observed[i].ID]; w != nil && w.removing() {
			terminating[observed[i].ID] = true
		}
	}
	m.mu.Unlock()
	d := reconcile.Decide(reconcile.Input{
		Revision: rev, Objects: objs, Pods: x.Pods, Observed: observed, Status: byID,
		Known: known, Deployments: m.deployments(), Terminating: terminating, Node: m.opts.Node, Now: now,
	})
	m.keepDeployments(d)
	m.mu.Lock()
	for id := range d.Removing {
		if m.keep[id] {
			d.Targets[id] = reconcile.Target{Retain: true, Held: "not pruned: the revision was not fetched"}
			delete(d.Removing, id)
		}
	}
	m.mu.Unlock()
	plan, workloads := d.Targets, d.Workloads
	next = reconcile.Earliest(next, d.Wake)
	m.mu.Lock()
	m.decision, m.decided, m.decidedGen = &d, observed, gen
	m.mu.Unlock()

	obsByID := make(map[reconcile.PodID]*reconcile.ObservedPod, len(observed))
	for i := range observed {
		obsByID[observed[i].ID] = &observed[i]
	}
	for id, a := range plan {
		w := m.worker(id)
		w.seen(obsByID[id], seenAt(id))
		w.prime(obsByID[id], a.Spec)
		if a.Spec != nil {
			m.mu.Lock()
			m.known[id] = a.Spec
			m.mu.Unlock()
		}
		w.update(a.Spec, a.Retain, a.Held != "")
	}
	for i := range observed {
		o := &observed[i]
		if _, ok := plan[o.ID]; !ok {
			w := m.worker(o.ID)
			w.seen(o, seenAt(o.ID))
			w.prime(o, nil)
			w.update(nil, false, false)
		}
	}
	m.mu.Lock()
	var stale []*podWorker
	for id, w := range m.workers {
		if _, ok := plan[id]; !ok {
			stale = append(stale, w)
		}
	}
	m.mu.Unlock()
	for _, w := range stale {
		w.update(nil, false, false)
	}
	m.sweepClaims(objs, observed)
	if !m.recordsSwept {
		m.recordsSwept = true
		m.sweepPodRecords(plan, obsByID)
	}
	m.mu.Lock()
	workloads = append(workloads, m.jobStatuses...)
	workloads = append(workloads, m.cronStatuses...)
	m.mu.Unlock()
	m.setWorkloads(workloads)
	return next
}

// Removing says whether the manager is removing pod id: the pod is no
// longer wanted and may still run, as a pod with a deletion timestamp
// does on a kubelet. A rolling update does not count it toward maxSurge.
func (m *Manager) Removing(id reconcile.PodID) bool {
	m.mu.Lock()
	w := m.workers[id]
	m.mu.Unlock()
	return w != nil && w.removing()
}

// Pods returns the latest status of every pod the manager drives, sorted.
func (m *Manager) Pods() []reconcile.PodStatus {
	m.mu.Lock()
	ws := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	out := make([]reconcile.PodStatus, 0, len(ws))
	for _, w := range ws {
		if st, ok := w.Status(); ok {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return reconcile.PodLess(out[i].ID, out[j].ID) })
	return out
}

// Workloads returns the status of every workload of the revision.
func (m *Manager) Workloads() []reconcile.WorkloadStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]reconcile.WorkloadStatus(nil), m.workloads...)
}

func (m *Manager) setWorkloads(ws []reconcile.WorkloadStatus) {
	sort.Slice(ws, func(i, j int) bool { return ws[i].Key() < ws[j].Key() })
	m.mu.Lock()
	same := len(ws) == len(m.workloads)
	for i := 0; same && i < len(ws); i++ {
		same = ws[i] == m.workloads[i]
	}
	m.workloads = ws
	m.mu.Unlock()
	if !same {
		if err := m.store.WriteWorkloads(ws); err != nil {
			m.log.Warn("write workload status", "error", err)
		}
	}
}

// deployments returns the Deployment rollout records, loading them once.
func (m *Manager) deployments() map[string]*reconcile.DeploymentRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deploys == nil {
		d, err := m.store.Deployments()
		if err != nil {
			m.log.Warn("read deployment records", "error", err)
			d = map[string]*reconcile.DeploymentRecord{}
		}
		m.deploys = d
	}
	return m.deploys
}

// sweepPodRecords removes the records of pods that neither run nor are
// wanted: pods removed while the agent was not running.
func (m *Manager) sweepPodRecords(plan map[reconcile.PodID]reconcile.Target, observed map[reconcile.PodID]*reconcile.ObservedPod) {
	ids, err := m.store.PodIDs()
	if err != nil {
		m.log.Warn("list pod records", "error", err)
		return
	}
	for _, id := range ids {
		if _, ok := plan[id]; ok {
			continue
		}
		if _, ok := observed[id]; ok {
			continue
		}
		if err := m.store.RemovePod(id); err != nil {
			m.log.Warn("remove pod record", "pod", id.String(), "error", err)
		}
	}
}

// keepDeployments writes the rollout records a decision changed and
// removes those of Deployments the revision no longer declares.
func (m *Manager) keepDeployments(d reconcile.Decision) {
	for _, key := range d.Stuck {
		m.log.Warn("rollout stuck", "deployment", key, "reason", reconcile.ConditionProgressDeadlineExceeded)
	}
	m.mu.Lock()
	m.deploys = d.Deployments
	m.mu.Unlock()
	for _, key := range d.Changed {
		if err := m.store.WriteDeployment(key, d.Deployments[key]); err != nil {
			m.log.Warn("write deployment record", "deployment", key, "error", err)
		}
	}
	for _, key := range d.Forgotten {
		if err := m.store.RemoveDeployment(key); err != nil {
			m.log.Warn("remove deployment record", "deployment", key, "error", err)
		}
	}
}
