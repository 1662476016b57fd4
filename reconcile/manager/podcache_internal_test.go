package manager

import (
	"context"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	fx "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime/fake"
)

// runningPod creates pod web in rt with its container running and returns
// its desired spec.
func runningPod(t *testing.T, rt *fake.Runtime) *reconcile.DesiredPod {
	t.Helper()
	x, err := reconcile.ExpandAll([]reconcile.Object{fx.PodObj("web", "1d")}, "r1", reconcile.ExpandOptions{Node: fx.Node})
	if err != nil {
		t.Fatal(err)
	}
	d := &x.Pods[0]
	ctx := context.Background()
	if err := rt.CreateSandbox(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, d, reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	return d
}

func mainState(o *reconcile.ObservedPod) reconcile.ContainerState {
	return o.Container(reconcile.AppContainer, "main").State
}

// An observation a pass hands a worker is used unless the pod changed
// after it was made: by the worker's own act, or by itself (an exit,
// poke), whichever way the pass and the exit event raced.
func TestWorkerUsesAPassObservationOnlyIfNewer(t *testing.T) {
	rt := fake.New(fx.Img)
	m := New(rt, Options{StateDir: t.TempDir(), Node: fx.Node})
	ctx := context.Background()
	d := runningPod(t, rt)
	listed := time.Now()
	old, err := rt.ObservePod(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Kill(d.ID, reconcile.AppContainer, "main", 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(w *podWorker)
		want   reconcile.ContainerState
	}{
		{"nothing since", func(*podWorker) {}, reconcile.StateRunning},
		{"poked since", func(w *podWorker) { w.poke(time.Now()) }, reconcile.StateExited},
		{"acted since", func(w *podWorker) { w.acted() }, reconcile.StateExited},
	} {
		w := &podWorker{m: m, id: d.ID, bell: make(chan struct{}, 1)}
		w.seen(old, listed)
		c.change(w)
		o, err := w.current(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := mainState(o); got != c.want {
			t.Errorf("%s: state %s, want %s", c.name, got, c.want)
		}
	}
}

func trustedList(m *Manager, observed []reconcile.ObservedPod, listed time.Time) {
	m.mu.Lock()
	epoch := m.cache.epoch
	m.mu.Unlock()
	m.cacheFromList(observed, listed, true, epoch)
}

func (m *Manager) trusted() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.trustedCache()
}

// A change noted before or while a list is made marks the listed pod to
// be observed again, also before the first list and for a pod the list
// does not show.
func TestListKeepsChangesItMayHaveMissed(t *testing.T) {
	rt := fake.New(fx.Img)
	m := New(rt, Options{StateDir: t.TempDir(), Node: fx.Node})
	d := runningPod(t, rt)
	gone := reconcile.PodID{Namespace: "default", Name: "gone"}
	listed := time.Now()
	observed, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Before any list: an exit of web while it was being listed.
	m.noteChanged(d.ID, time.Now())
	// A pod seen before the list, changed (removed) while it was made.
	m.noteObserved(gone, &reconcile.ObservedPod{ID: gone}, listed.Add(-time.Second))
	m.noteChanged(gone, time.Now())
	trustedList(m, observed, listed)

	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.cache.pods[d.ID]; c == nil || c.obs == nil || !c.stale() {
		t.Errorf("web: %+v; want the list's observation, to be observed again", c)
	}
	if c := m.cache.pods[gone]; c == nil || c.obs != nil || !c.stale() {
		t.Errorf("gone: %+v; want absent as the list says, to be observed again", c)
	}
}

// A list that began before the cache was forgotten (the exit stream
// broke), or before the exit stream was live, is used but not trusted:
// the next pass lists again.
func TestListsBeforeTheExitStreamWasLiveAreNotTrusted(t *testing.T) {
	rt := fake.New(fx.Img)
	m := New(rt, Options{StateDir: t.TempDir(), Node: fx.Node, ResyncInterval: time.Hour})
	m.subscribeGrace = time.Minute

	m.subscribing()
	trustedList(m, nil, time.Now())
	if m.trusted() {
		t.Error("a list made within the grace after subscribing is trusted")
	}
	trustedList(m, nil, time.Now().Add(time.Minute))
	if !m.trusted() {
		t.Fatal("a list made after the grace is not trusted")
	}

	m.mu.Lock()
	epoch := m.cache.epoch
	m.mu.Unlock()
	m.forgetCache()
	if m.trusted() {
		t.Error("the cache is trusted after forgetCache")
	}
	m.cacheFromList(nil, time.Now().Add(2*time.Minute), true, epoch)
	if m.trusted() {
		t.Error("a list begun before forgetCache made the cache trusted")
	}
}

// forgetting observes pod web and, while doing so, forgets the cache, as
// a broken exit stream does during a pass.
type forgetting struct {
	*fake.Runtime
	m     *Manager
	lists int
}

func (r *forgetting) ObservePod(ctx context.Context, id reconcile.PodID) (*reconcile.ObservedPod, error) {
	r.m.forgetCache()
	return r.Runtime.ObservePod(ctx, id)
}

func (r *forgetting) List(ctx context.Context) ([]reconcile.ObservedPod, error) {
	r.lists++
	return r.Runtime.List(ctx)
}

// A pass whose cache is forgotten while it observes the pods that
// changed lists them all instead of deciding on what is left of it.
func TestCacheForgottenDuringAPassLists(t *testing.T) {
	rt := &forgetting{Runtime: fake.New(fx.Img)}
	m := New(rt, Options{StateDir: t.TempDir(), Node: fx.Node, ResyncInterval: time.Hour})
	m.subscribeGrace = 0
	rt.m = m
	d := runningPod(t, rt.Runtime)
	observed, err := rt.Runtime.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	trustedList(m, observed, time.Now())
	m.noteChanged(d.ID, time.Now())

	got, _, _, err := m.observePods(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rt.lists != 1 || len(got) != 1 || got[0].ID != d.ID {
		t.Errorf("%d lists, pods %v; want one list showing web", rt.lists, got)
	}
}

// The list a caller hands to Sync (berth apply's, made to print the plan
// at a time the manager does not know) decides the first pass, and the
// next pass lists again.
func TestAHandedInListIsUsedOnce(t *testing.T) {
	rt := &forgetting{Runtime: fake.New(fx.Img)}
	m := New(rt, Options{StateDir: t.TempDir(), Node: fx.Node, ResyncInterval: time.Hour})
	m.subscribeGrace = 0
	rt.m = m
	runningPod(t, rt.Runtime)
	observed, err := rt.Runtime.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.sync(context.Background(), "r1", []reconcile.Object{fx.PodObj("web", "1d")}, nil, observed); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := m.observePods(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rt.lists != 0 || m.trusted() {
		t.Errorf("after the pass on the handed-in list: %d lists, cache trusted %v; want none and not trusted", rt.lists, m.trusted())
	}
	if _, _, _, err := m.observePods(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rt.lists != 1 || !m.trusted() {
		t.Errorf("after the next pass: %d lists, cache trusted %v; want one and trusted", rt.lists, m.trusted())
	}
}
