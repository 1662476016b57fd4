package manager_test

import (
	"context"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	fx "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime/fake"
)

func lists(rt *fake.Runtime) int {
	n := 0
	for _, c := range rt.Calls() {
		if c == "List " {
			n++
		}
	}
	return n
}

// Between full lists (Sync's, and one per ResyncInterval), the controller
// decides on the workers' own observations: a Deployment rolled out, and
// rolled out again, lists the runtime once per Sync however many passes
// its pods ring for.
func TestPassesBetweenResyncsDoNotList(t *testing.T) {
	rt := fake.New(fx.Img)
	m := manager.New(rt, manager.Options{StateDir: t.TempDir(), Node: fx.Node, ResyncInterval: time.Hour})
	m.SetSubscribeGrace(0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()

	passes := 0
	counting := make(chan struct{})
	go func() {
		defer close(counting)
		for ctx.Err() == nil {
			select {
			case <-m.Passed():
				passes++
			case <-ctx.Done():
			}
		}
	}()
	if err := converge2(ctx, m, "r1", fx.Deployment("web", 6, "1d")); err != nil {
		t.Fatal(err)
	}
	if err := converge2(ctx, m, "r2", fx.Deployment("web", 6, "2d")); err != nil {
		t.Fatal(err)
	}
	got := lists(rt)
	var running []string
	for _, st := range m.Pods() {
		if st.Phase == reconcile.PodRunning && st.Ready {
			running = append(running, st.ID.Name)
		}
	}
	cancel()
	<-counting
	if len(running) != 6 {
		t.Fatalf("ready pods after the second rollout: %v, want 6", running)
	}
	if passes < 4 {
		t.Fatalf("%d passes; the test wants a rollout that takes several", passes)
	}
	if got != 2 {
		t.Errorf("%d passes listed the runtime %d times; want 2 (one per Sync)", passes, got)
	}
}

// silentExits is a fake runtime whose exits go unreported, as when a
// change outside berth sends no event.
type silentExits struct{ *fake.Runtime }

func (silentExits) WatchExits(ctx context.Context, _ func(reconcile.PodID)) error {
	<-ctx.Done()
	return nil
}

// What changes without an event is found by the next full list, which
// comes once the last is ResyncInterval old, however often passes run:
// without it the cache would show the container running.
func TestResyncListsWhatNoEventReported(t *testing.T) {
	rt := silentExits{fake.New(fx.Img)}
	restartsAfterKill(t, rt, rt.Kill, manager.Options{ResyncInterval: 50 * time.Millisecond}, func(m *manager.Manager) {
		m.SetSubscribeGrace(0) // else the passes of the first seconds list anyway
	})
}
