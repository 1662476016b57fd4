package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Node is this host.
	Node Node
	// StateDir is berth's state directory: records live under
	// StateDir/records, StatefulSet volumes under StateDir/volumes.
	StateDir string
	// Clock is the time source (default: the wall clock).
	Clock Clock
	// Logger (default: discard).
	Logger hclog.Logger
	// Execer runs exec probes; default: the runtime, when it implements
	// Execer.
	Execer Execer
	// ResyncInterval is how often every pod is compared with the runtime,
	// to notice containers that exited or were removed (default 1 s).
	ResyncInterval time.Duration
	// InitialBackoff, MaxBackoff and BackoffReset shape CrashLoopBackOff:
	// 10 s doubling to 300 s, back to the start after 10 minutes without
	// a restart (the defaults, as in kubelet).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	BackoffReset   time.Duration
	// AllowDeleteAll lets a revision that declares no workload remove
	// every pod berth runs; without it Sync refuses such a revision.
	AllowDeleteAll bool
}

// ErrDeleteAll is returned by Sync for a revision that declares no
// workload at all while pods run (an empty repository, a wrong --path),
// unless ManagerOptions.AllowDeleteAll is set.
var ErrDeleteAll = errors.New("the revision would delete every pod berth runs here")

func (o *ManagerOptions) defaults() {
	if o.StateDir == "" {
		o.StateDir = DefaultStateDir
	}
	if o.Clock == nil {
		o.Clock = RealClock{}
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.ResyncInterval <= 0 {
		o.ResyncInterval = time.Second
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
	rt    Runtime
	opts  ManagerOptions
	clock Clock
	log   hclog.Logger
	store *RecordStore

	bell chan struct{}

	mu        sync.Mutex
	synced    bool
	revision  string
	objects   []Object
	workers   map[PodID]*podWorker
	known     map[PodID]*DesiredPod // the last spec handed to each worker
	workloads []WorkloadStatus
	deploys   map[string]*DeploymentRecord
	// jobStatuses and cronStatuses are the Job and CronJob rows of the
	// workloads' status, from the last pass.
	jobStatuses  []WorkloadStatus
	cronStatuses []WorkloadStatus
	runCtx       context.Context
	wg           sync.WaitGroup

	recordsSwept bool // pod records of vanished pods removed

	testWorkers map[PodID]*podWorker // used by StepPod in tests only
}

// NewManager returns a manager for rt. Call Run to start it and Sync to
// hand it revisions.
func NewManager(rt Runtime, opts ManagerOptions) *Manager {
	opts.defaults()
	return &Manager{
		rt: rt, opts: opts, clock: opts.Clock, log: opts.Logger.Named("reconcile"),
		store:   NewRecordStore(opts.StateDir),
		bell:    make(chan struct{}, 1),
		workers: map[PodID]*podWorker{}, known: map[PodID]*DesiredPod{},
	}
}

func (m *Manager) execer() Execer {
	if m.opts.Execer != nil {
		return m.opts.Execer
	}
	if e, ok := m.rt.(Execer); ok {
		return e
	}
	return nil
}

// Sync hands the manager the objects of a revision. It expands them first
// and refuses the revision, changing nothing, when that fails; otherwise
// the manager starts moving the host to it.
func (m *Manager) Sync(ctx context.Context, revision string, objs []Object) error {
	recs, err := m.store.Load()
	if err != nil && recs == nil {
		return fmt.Errorf("read records: %w", err)
	}
	x, err := expand(objs, revision, m.expandOptions(recs))
	if err != nil {
		return err
	}
	if len(x.pods) == 0 && !declaresWorkloads(objs) && !m.opts.AllowDeleteAll {
		observed, err := m.rt.List(ctx)
		if err != nil {
			return fmt.Errorf("list pods: %w", err)
		}
		if len(observed) > 0 {
			return fmt.Errorf("revision %s: %w (%d); refusing without AllowDeleteAll", revision, ErrDeleteAll, len(observed))
		}
	}
	m.mu.Lock()
	m.synced, m.revision, m.objects = true, revision, objs
	m.mu.Unlock()
	m.ringController()
	return nil
}

func (m *Manager) expandOptions(recs *Records) ExpandOptions {
	return ExpandOptions{Node: m.opts.Node, StateDir: m.opts.StateDir, Records: recs, Now: m.clock.Now()}
}

func (m *Manager) ringController() {
	select {
	case m.bell <- struct{}{}:
	default:
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
	for {
		next := m.pass(ctx)
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = m.clock.After(next.Sub(m.clock.Now()))
		}
		resync := m.clock.After(m.opts.ResyncInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-m.bell:
		case <-timer:
		case <-resync:
			// The next pass lists the pods once and rings every worker.
		}
	}
}

// worker returns the worker of id, starting it when there is none.
func (m *Manager) worker(id PodID) *podWorker {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.workers[id]; w != nil {
		return w
	}
	w := &podWorker{m: m, id: id, log: m.log.With("pod", id.String()), bell: make(chan struct{}, 1)}
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

// assignment is what a controller pass wants of one pod.
type assignment struct {
	d      *DesiredPod
	retain bool
}

// pass is one controller pass: observe, run the Job and CronJob
// controllers, expand, gate rollouts, and hand every worker its spec. It
// returns when it wants to run again (zero: on the next event).
func (m *Manager) pass(ctx context.Context) time.Time {
	m.mu.Lock()
	synced, rev, objs := m.synced, m.revision, m.objects
	m.mu.Unlock()
	if !synced {
		return time.Time{}
	}
	now := m.clock.Now()
	listed := time.Now()
	observed, err := m.rt.List(ctx)
	if err != nil {
		m.log.Warn("list pods", "error", err)
		return now.Add(m.opts.ResyncInterval)
	}
	recs, err := m.store.Load()
	if err != nil && recs != nil {
		m.log.Error("unreadable records are ignored", "error", err)
	} else if err != nil {
		m.log.Warn("read records", "error", err)
		return now.Add(m.opts.ResyncInterval)
	}
	statuses := m.Pods()
	byID := map[PodID]*PodStatus{}
	for i := range statuses {
		byID[statuses[i].ID] = &statuses[i]
	}
	var next time.Time
	next = earliest(next, m.syncCronJobs(objs, recs, byID, now))
	x, err := expand(objs, rev, m.expandOptions(recs))
	if err != nil {
		m.log.Error("expand revision", "revision", rev, "error", err)
		return time.Time{}
	}
	if changed, n := m.syncJobs(x, recs, byID, observed, now); changed {
		// The CronJob controller acts on Job results (history, Forbid)
		// in the next pass.
		m.ringController()
		next = earliest(next, n)
		if x, err = expand(objs, rev, m.expandOptions(recs)); err != nil {
			m.log.Error("expand revision", "revision", rev, "error", err)
			return time.Time{}
		}
	} else {
		next = earliest(next, n)
	}
	next = earliest(next, x.wake)

	m.mu.Lock()
	known := make(map[PodID]*DesiredPod, len(m.known))
	for k, v := range m.known {
		known[k] = v
	}
	m.mu.Unlock()
	plan, workloads, n := m.rollout(objs, x, observed, byID, known, now)
	next = earliest(next, n)

	obsByID := make(map[PodID]*ObservedPod, len(observed))
	for i := range observed {
		obsByID[observed[i].ID] = &observed[i]
	}
	for id, a := range plan {
		w := m.worker(id)
		w.seen(obsByID[id], listed)
		if a.d != nil {
			m.mu.Lock()
			m.known[id] = a.d
			m.mu.Unlock()
		}
		w.update(a.d, a.retain)
	}
	for i := range observed {
		o := &observed[i]
		if _, ok := plan[o.ID]; !ok {
			w := m.worker(o.ID)
			w.seen(o, listed)
			w.update(nil, false)
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
		w.update(nil, false)
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

// Pods returns the latest status of every pod the manager drives, sorted.
func (m *Manager) Pods() []PodStatus {
	m.mu.Lock()
	ws := make([]*podWorker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	out := make([]PodStatus, 0, len(ws))
	for _, w := range ws {
		if st, ok := w.Status(); ok {
			out = append(out, st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return podLess(out[i].ID, out[j].ID) })
	return out
}

// Workloads returns the status of every workload of the revision.
func (m *Manager) Workloads() []WorkloadStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]WorkloadStatus(nil), m.workloads...)
}

func (m *Manager) setWorkloads(ws []WorkloadStatus) {
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
func (m *Manager) deployments() map[string]*DeploymentRecord {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.deploys == nil {
		d, err := m.store.Deployments()
		if err != nil {
			m.log.Warn("read deployment records", "error", err)
			d = map[string]*DeploymentRecord{}
		}
		m.deploys = d
	}
	return m.deploys
}

func (m *Manager) setDeployment(key string, r *DeploymentRecord) {
	m.mu.Lock()
	m.deploys[key] = r
	m.mu.Unlock()
	if err := m.store.WriteDeployment(key, r); err != nil {
		m.log.Warn("write deployment record", "deployment", key, "error", err)
	}
}

// sweepPodRecords removes the records of pods that neither run nor are
// wanted: pods removed while the agent was not running.
func (m *Manager) sweepPodRecords(plan map[PodID]assignment, observed map[PodID]*ObservedPod) {
	recs, err := m.store.Pods()
	if err != nil {
		m.log.Warn("read pod records", "error", err)
		return
	}
	for id := range recs {
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

// forgetDeployments removes the rollout records of Deployments the
// revision no longer declares.
func (m *Manager) forgetDeployments(objs []Object) {
	seen := map[string]bool{}
	for i := range objs {
		if objs[i].Kind == "Deployment" {
			seen[namespaceOr(objs[i].Metadata.Namespace)+"/"+objs[i].Metadata.Name] = true
		}
	}
	recs := m.deployments()
	m.mu.Lock()
	var gone []string
	for key := range recs {
		if !seen[key] {
			gone = append(gone, key)
			delete(recs, key)
		}
	}
	m.mu.Unlock()
	for _, key := range gone {
		if err := m.store.RemoveDeployment(key); err != nil {
			m.log.Warn("remove deployment record", "deployment", key, "error", err)
		}
	}
}

// declaresWorkloads reports whether objs declare any object that makes
// pods, whether or not it wants any on this node now.
func declaresWorkloads(objs []Object) bool {
	for i := range objs {
		switch objs[i].Kind {
		case "Pod", "Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob":
			return true
		}
	}
	return false
}
