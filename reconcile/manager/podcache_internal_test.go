package manager

import (
	"context"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	fx "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime/fake"
)

// An observation a pass hands a worker is used unless the pod changed
// after it was made: by the worker's own act, or by itself (an exit,
// poke), whichever way the pass and the exit event raced.
func TestWorkerUsesAPassObservationOnlyIfNewer(t *testing.T) {
	rt := fake.New(fx.Img)
	m := New(rt, Options{StateDir: t.TempDir(), Node: fx.Node})
	ctx := context.Background()
	x, err := reconcile.ExpandAll([]reconcile.Object{fx.PodObj("web", "1d")}, "r1", reconcile.ExpandOptions{Node: fx.Node})
	if err != nil {
		t.Fatal(err)
	}
	d := &x.Pods[0]
	if err := rt.CreateSandbox(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, d, reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	listed := time.Now()
	old, err := rt.ObservePod(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Kill(d.ID, reconcile.AppContainer, "main", 3); err != nil {
		t.Fatal(err)
	}
	state := func(o *reconcile.ObservedPod) reconcile.ContainerState {
		return o.Container(reconcile.AppContainer, "main").State
	}

	w := &podWorker{m: m, id: d.ID, bell: make(chan struct{}, 1)}
	w.seen(old, listed)
	o, err := w.current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if state(o) != reconcile.StateRunning {
		t.Fatalf("without a poke: state %s, want the pass's observation (running)", state(o))
	}

	w.seen(old, listed)
	w.poke(time.Now())
	if o, err = w.current(ctx); err != nil {
		t.Fatal(err)
	}
	if state(o) != reconcile.StateExited {
		t.Errorf("poked after the pass's observation: state %s, want a new one (exited)", state(o))
	}

	w.seen(old, listed)
	w.acted()
	if o, err = w.current(ctx); err != nil {
		t.Fatal(err)
	}
	if state(o) != reconcile.StateExited {
		t.Errorf("acted after the pass's observation: state %s, want a new one (exited)", state(o))
	}
}
