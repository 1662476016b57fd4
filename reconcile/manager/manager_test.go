package manager_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/reconcile/manager"
	fx "berth.dev/berth/reconcile/reconciletest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

// running starts a manager over rt with the wall clock and a short
// resync; stop cancels it and waits for it.
func running(t *testing.T, rt *fake.Runtime, dir string) (m *manager.Manager, stop func()) {
	t.Helper()
	m = manager.New(rt, manager.Options{StateDir: dir, Node: fx.Node, ResyncInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return m, stop
}

func runningPods(rt *fake.Runtime) []string {
	pods, _ := rt.List(context.Background())
	var out []string
	for _, p := range pods {
		for _, c := range p.Containers {
			if c.State == reconcile.StateRunning {
				out = append(out, p.ID.Name)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func TestManagerSync(t *testing.T) {
	rt := fake.New(fx.Img)
	dir := t.TempDir()
	m, stop := running(t, rt, dir)
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{fx.PodObj("a", "1d"), fx.PodObj("b", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pods a and b", func() bool { return cmp.Equal(runningPods(rt), []string{"a", "b"}) })
	eventually(t, "status of a and b", func() bool {
		st := m.Pods()
		return len(st) == 2 && st[0].Ready && st[1].Ready
	})

	// A revision that does not expand changes nothing.
	bad := fx.PodObj("c")
	bad.Pod.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "missing"}}}
	if err := m.Sync(context.Background(), "r2", []reconcile.Object{bad}); err == nil {
		t.Fatal("a revision referring to a missing ConfigMap was accepted")
	}

	// b dropped: removed; a untouched.
	before, _ := rt.List(context.Background())
	if err := m.Sync(context.Background(), "r3", []reconcile.Object{fx.PodObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b removed", func() bool { return cmp.Equal(runningPods(rt), []string{"a"}) })
	after, _ := rt.List(context.Background())
	if pidOf(before, "a") != pidOf(after, "a") {
		t.Error("pod a was restarted by an unrelated change")
	}

	// A revision that wants nothing is refused while pods run.
	var re *reconcile.RemovalError
	if err := m.Sync(context.Background(), "r4", nil); !errors.As(err, &re) {
		t.Fatalf("empty revision: %v, want a RemovalError", err)
	}

	// Stopping the manager leaves the pods running; a new one adopts them
	// without restarting anything.
	stop()
	if !cmp.Equal(runningPods(rt), []string{"a"}) {
		t.Fatalf("stopping the manager stopped pods: %v", runningPods(rt))
	}
	rt.ResetCalls()
	m2, _ := running(t, rt, dir)
	if err := m2.Sync(context.Background(), "r3", []reconcile.Object{fx.PodObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "status from the new manager", func() bool { st := m2.Pods(); return len(st) == 1 && st[0].Ready })
	if calls := rt.MutatingCalls(); len(calls) != 0 {
		t.Errorf("a restarted manager changed running pods: %v", calls)
	}
}

func TestManagerDoesNothingBeforeSync(t *testing.T) {
	rt := fake.New(fx.Img)
	pods := fx.ExpandOn(t, reconcile.ExpandOptions{}, fx.PodObj("old", "1d"))
	ctx := context.Background()
	if err := rt.CreateSandbox(ctx, &pods[0]); err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, &pods[0], reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	rt.ResetCalls()
	m := manager.New(rt, manager.Options{StateDir: t.TempDir(), Node: fx.Node})
	passed := m.Passed()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.Run(rctx) }()
	<-passed // the first pass ran, before any Sync
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if calls := rt.MutatingCalls(); len(calls) != 0 {
		t.Errorf("manager acted before its first revision: %v", calls)
	}
}

func pidOf(pods []reconcile.ObservedPod, name string) uint32 {
	for _, p := range pods {
		if p.ID.Name == name {
			return p.Containers[0].PID
		}
	}
	return 0
}

func TestStalePodRecordsAreSwept(t *testing.T) {
	rt := fake.New(fx.Img)
	dir := t.TempDir()
	store := manager.NewRecordStore(dir)
	gone := reconcile.PodID{Namespace: "default", Name: "gone"}
	if err := store.WritePod(gone, &reconcile.PodRecord{Hash: "x"}); err != nil {
		t.Fatal(err)
	}
	// A record that cannot be read, of a pod that is gone too.
	broken := filepath.Join(store.Dir, "pods", "default_broken.json")
	if err := os.WriteFile(broken, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, _ := running(t, rt, dir)
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{fx.PodObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a running with a record, and gone's record removed", func() bool {
		recs, err := store.Pods()
		if err != nil && !errors.Is(err, manager.ErrCorruptRecord) {
			t.Fatal(err)
		}
		_, stale := recs[gone]
		_, kept := recs[reconcile.PodID{Namespace: "default", Name: "a"}]
		_, err = os.Stat(broken)
		return !stale && kept && errors.Is(err, fs.ErrNotExist)
	})
}

// TestSlowPullDelaysNoOtherPod holds one pod's image pull until its
// context ends: the other pod runs meanwhile, and a newer spec for the
// slow pod cancels the pull in flight and starts at once.
func TestSlowPullDelaysNoOtherPod(t *testing.T) {
	rt := fake.New(fx.Img, "example.local/slow:1")
	pulling, cancelled := make(chan struct{}), make(chan struct{})
	rt.Pull = func(ctx context.Context, image string) error {
		if image != "example.local/slow:1" {
			return nil
		}
		close(pulling)
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}
	m, _ := running(t, rt, t.TempDir())
	slow := fx.PodObj("slow", "1d")
	slow.Pod.Containers[0].Image = "example.local/slow:1"
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{slow, fx.PodObj("quick", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "quick running while slow pulls", func() bool { return cmp.Equal(runningPods(rt), []string{"quick"}) })
	select {
	case <-pulling: // the pull is in flight
	case <-time.After(10 * time.Second):
		t.Fatal("the slow pod's pull never began")
	}
	if err := m.Sync(context.Background(), "r2", []reconcile.Object{fx.PodObj("slow", "2d"), fx.PodObj("quick", "1d")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the newer spec did not cancel the pull in flight")
	}
	eventually(t, "slow running with the newer spec", func() bool { return cmp.Equal(runningPods(rt), []string{"quick", "slow"}) })
}

func TestClaimRetentionPolicy(t *testing.T) {
	rt := fake.New(fx.Img)
	dir := t.TempDir()
	m, _ := running(t, rt, dir)
	sts := func(name string, replicas int32, pol *reconcile.StatefulSetPersistentVolumeClaimPolicy) reconcile.Object {
		o := fx.Workload("StatefulSet", name)
		o.StatefulSet = &reconcile.StatefulSetSpec{
			Replicas: fx.Ptr(replicas), Template: fx.Template(name), PodManagementPolicy: "Parallel",
			VolumeClaimTemplates:                 []reconcile.PersistentVolumeClaimTemplate{{Metadata: reconcile.ObjectMeta{Name: "data"}}},
			PersistentVolumeClaimRetentionPolicy: pol,
		}
		return o
	}
	claim := func(set string, ord int) string { return reconcile.ClaimDir(dir, "default", "data", set, ord) }
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	// The fake runtime makes no directories: the test does, as the real
	// one would.
	for _, set := range []string{"del", "keep"} {
		for ord := range 2 {
			if err := os.MkdirAll(claim(set, ord), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	del := &reconcile.StatefulSetPersistentVolumeClaimPolicy{WhenScaled: "Delete", WhenDeleted: "Delete"}
	sync := func(objs ...reconcile.Object) {
		t.Helper()
		if err := m.Sync(context.Background(), "r", objs); err != nil {
			t.Fatal(err)
		}
	}
	sync(sts("del", 2, del), sts("keep", 2, nil))
	eventually(t, "4 pods", func() bool { return len(runningPods(rt)) == 4 })
	sync(sts("del", 1, del), sts("keep", 1, nil))
	eventually(t, "del-1's claim deleted", func() bool { return !exists(claim("del", 1)) })
	if !exists(claim("keep", 1)) || !exists(claim("del", 0)) {
		t.Fatal("a retained claim or a claim in use was deleted")
	}
	sync(fx.PodObj("other", "1d"), sts("keep", 1, nil))
	eventually(t, "del's claims deleted with the set", func() bool { return !exists(claim("del", 0)) })
	if !exists(claim("keep", 0)) || !exists(claim("keep", 1)) {
		t.Error("claims of a set with the default Retain policy were deleted")
	}
}

func TestCorruptRecordIsSkipped(t *testing.T) {
	dir := t.TempDir()
	store := manager.NewRecordStore(dir)
	if err := store.WriteJob("default/good", &reconcile.JobRecord{Hash: "h", Condition: reconcile.JobComplete}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store.Dir+"/jobs/default_bad.json", []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := store.Load()
	if !errors.Is(err, manager.ErrCorruptRecord) || recs == nil || recs.Jobs["default/good"] == nil {
		t.Fatalf("Load = %v, %v; want the good record and ErrCorruptRecord", recs, err)
	}
	// The manager carries on.
	rt := fake.New(fx.Img)
	m, _ := running(t, rt, dir)
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{fx.PodObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a running", func() bool { return cmp.Equal(runningPods(rt), []string{"a"}) })
}

// panicky is a runtime whose CreateSandbox panics for one pod, as a bug in
// berth's handling of one odd pod would.
type panicky struct {
	*fake.Runtime
	pod string
}

func (p panicky) CreateSandbox(ctx context.Context, d *reconcile.DesiredPod) error {
	if d.ID.Name == p.pod {
		panic("injected panic for " + p.pod)
	}
	return p.Runtime.CreateSandbox(ctx, d)
}

func TestWorkerPanicLeavesOtherPodsRunning(t *testing.T) {
	rt := fake.New(fx.Img)
	m := manager.New(panicky{rt, "bad"}, manager.Options{StateDir: t.TempDir(), Node: fx.Node})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := m.Sync(ctx, "r1", []reconcile.Object{fx.PodObj("good", "1d"), fx.PodObj("bad", "1d"), fx.PodObj("other", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the good pods run and the bad one is failed", func() bool {
		failed := false
		for _, st := range m.Pods() {
			if st.ID.Name == "bad" && st.Phase == reconcile.PodFailed && st.Reason == reconcile.ReasonWorkerPanic {
				failed = true
			}
		}
		return failed && cmp.Equal(runningPods(rt), []string{"good", "other"})
	})
	// The manager goes on: a new revision is carried out.
	if err := m.Sync(ctx, "r2", []reconcile.Object{fx.PodObj("good", "2d"), fx.PodObj("bad", "1d"), fx.PodObj("other", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "good replaced after the panic", func() bool {
		for _, st := range m.Pods() {
			if st.ID.Name == "good" && st.Revision == "r2" && st.Phase == reconcile.PodRunning {
				return true
			}
		}
		return false
	})
}

func TestExitWakesWorkerWithoutResync(t *testing.T) {
	rt := fake.New(fx.Img)
	// A resync far away: only the exit event can bring the container back.
	restartsAfterKill(t, rt, rt.Kill, manager.Options{ResyncInterval: time.Hour}, nil)
}

// restartsAfterKill runs a manager over rt with opts (and fast restarts;
// prepare, if set, adjusts it before it runs), converges pod web, kills
// its container with kill and waits until the manager restarted it.
func restartsAfterKill(t *testing.T, rt reconcile.Runtime, kill func(reconcile.PodID, reconcile.ContainerKind, string, int) error, opts manager.Options, prepare func(*manager.Manager)) {
	t.Helper()
	opts.StateDir, opts.Node = t.TempDir(), fx.Node
	opts.InitialBackoff, opts.MaxBackoff = time.Millisecond, time.Millisecond
	m := manager.New(rt, opts)
	if prepare != nil {
		prepare(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := converge2(ctx, m, "r1", fx.PodObj("web", "1d")); err != nil {
		t.Fatal(err)
	}
	id := reconcile.PodID{Namespace: "default", Name: "web"}
	if err := kill(id, reconcile.AppContainer, "main", 1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the killed container restarted", func() bool {
		for _, st := range m.Pods() {
			if st.ID == id && st.Restarts() == 1 && st.Phase == reconcile.PodRunning && st.Containers[0].State == reconcile.Running {
				return true
			}
		}
		return false
	})
}

func converge2(ctx context.Context, m *manager.Manager, rev string, objs ...reconcile.Object) error {
	if err := m.Sync(ctx, rev, objs); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return m.WaitConverged(wctx)
}

// interruptedRuntime is a fake runtime whose exit stream breaks on
// demand and whose Check fails while down is set, as containerd's do
// while it restarts.
type interruptedRuntime struct {
	*fake.Runtime
	breaks chan struct{}
	down   atomic.Bool
	checks chan struct{} // one value per Check, while it has room
}

func (r *interruptedRuntime) WatchExits(ctx context.Context, exited func(reconcile.PodID)) error {
	select {
	case <-ctx.Done():
		return nil
	case <-r.breaks:
		return errors.New("containerd events: error reading from server: EOF")
	}
}

func (r *interruptedRuntime) Check(context.Context) error {
	select {
	case r.checks <- struct{}{}:
	default:
	}
	if r.down.Load() {
		return errors.New("containerd does not answer")
	}
	return nil
}

// TestExitStreamBreakRingsPassWhenRuntimeIsBack: a broken exit stream
// counts as an interruption, and once the runtime answers again a pass
// runs at once (not at the next resync, an hour away here) and lists the
// pods in full to find what changed meanwhile.
func TestExitStreamBreakRingsPassWhenRuntimeIsBack(t *testing.T) {
	rt := &interruptedRuntime{Runtime: fake.New(fx.Img), breaks: make(chan struct{}), checks: make(chan struct{}, 16)}
	m := manager.New(rt, manager.Options{StateDir: t.TempDir(), Node: fx.Node, ResyncInterval: time.Hour})
	first := m.Passed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s within 10s", what)
		}
	}
	wait(first, "first pass")
	synced := m.Passed()
	if err := m.Sync(ctx, "r1", []reconcile.Object{fx.PodObj("web", "1d")}); err != nil {
		t.Fatal(err)
	}
	wait(synced, "pass after Sync")
	eventually(t, "the pod running and the manager quiet", func() bool { return len(runningPods(rt.Runtime)) == 1 && m.Quiet() })
	lists := func() (n int) {
		for _, c := range rt.Calls() {
			if c == "List " {
				n++
			}
		}
		return n
	}
	before := lists()

	rt.down.Store(true)
	next := m.Passed()
	rt.breaks <- struct{}{}
	// The manager asks the runtime until it answers: let it fail twice.
	wait(rt.checks, "check of the runtime")
	wait(rt.checks, "second check of the runtime")
	select {
	case <-next:
		t.Fatal("a pass ran while the runtime did not answer")
	default:
	}
	if n := m.Interruptions(); n != 1 {
		t.Fatalf("interruptions %d, want 1", n)
	}
	rt.down.Store(false)
	wait(next, "pass after the runtime came back")
	if lists() == before {
		t.Error("the pass after the runtime came back did not list the pods: what changed meanwhile went unseen")
	}
}

// gatedRuntime holds every CreateSandbox until the test opens the gate,
// counting how many are in flight at once.
type gatedRuntime struct {
	*fake.Runtime
	gate     chan struct{}
	mu       sync.Mutex
	inFlight int
	most     int
}

func (g *gatedRuntime) CreateSandbox(ctx context.Context, p *reconcile.DesiredPod) error {
	g.mu.Lock()
	g.inFlight++
	g.most = max(g.most, g.inFlight)
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	g.inFlight--
	g.mu.Unlock()
	return g.Runtime.CreateSandbox(ctx, p)
}

func (g *gatedRuntime) counts() (inFlight, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight, g.most
}

// A revision of 10 pods is created at most MaxParallelStarts at a time.
func TestStartsAreBounded(t *testing.T) {
	rt := &gatedRuntime{Runtime: fake.New(fx.Img), gate: make(chan struct{})}
	m := manager.New(rt, manager.Options{StateDir: t.TempDir(), Node: fx.Node, MaxParallelStarts: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var objs []reconcile.Object
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("p%d", i)
		objs = append(objs, fx.PodObj(name, "1d"))
		names = append(names, name)
	}
	if err := m.Sync(ctx, "r1", objs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two sandboxes being created", func() bool { n, _ := rt.counts(); return n == 2 })
	close(rt.gate)
	sort.Strings(names)
	eventually(t, "all ten pods running", func() bool { return cmp.Equal(runningPods(rt.Runtime), names) })
	if _, most := rt.counts(); most != 2 {
		t.Errorf("at most %d sandboxes were created at once, want 2 (MaxParallelStarts)", most)
	}
}

// heldObserve holds a worker's look at a pod whose container runs, once,
// until the test releases it: a controller pass can then see the pod
// running before its worker has said so.
type heldObserve struct {
	*fake.Runtime
	hold     string // the revision whose pod is held
	held     chan struct{}
	release  chan struct{}
	holdOnce sync.Once
}

func (h *heldObserve) ObservePod(ctx context.Context, id reconcile.PodID) (*reconcile.ObservedPod, error) {
	o, err := h.Runtime.ObservePod(ctx, id)
	if err == nil && o != nil && o.Revision == h.hold {
		for _, c := range o.Containers {
			if c.State == reconcile.StateRunning {
				h.holdOnce.Do(func() {
					close(h.held)
					<-h.release
				})
			}
		}
	}
	return o, err
}

// A pass that sees a new pod running before its worker publishes it must
// not swallow the worker's news: the rollout goes on at once, not at the
// next resync.
func TestRolloutGoesOnWhenAPassSawThePodFirst(t *testing.T) {
	rt := &heldObserve{Runtime: fake.New(fx.Img), hold: "r2", held: make(chan struct{}), release: make(chan struct{})}
	m := manager.New(rt, manager.Options{StateDir: t.TempDir(), Node: fx.Node, ResyncInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deploy := func(arg string) []reconcile.Object {
		o := fx.Deployment("web", 1, arg)
		one, zero := reconcile.FromInt(1), reconcile.FromInt(0)
		o.Deployment.Strategy.RollingUpdate = &reconcile.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}
		return []reconcile.Object{o}
	}
	if err := m.Sync(ctx, "r1", deploy("1d")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first pod", func() bool { return len(runningPods(rt.Runtime)) == 1 })
	v2 := deploy("2d")
	if err := m.Sync(ctx, "r2", v2); err != nil {
		t.Fatal(err)
	}
	<-rt.held
	// A pass now lists the new pod running while its worker is held.
	passed := m.Passed()
	if err := m.Sync(ctx, "r2", v2); err != nil {
		t.Fatal(err)
	}
	<-passed
	close(rt.release)
	eventually(t, "the old pod removed", func() bool {
		pods, err := rt.List(ctx)
		return err == nil && len(pods) == 1 && pods[0].Revision == "r2"
	})
}
