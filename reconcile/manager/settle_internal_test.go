package manager

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/clocktest"
	"berth.dev/berth/runtime/fake"
)

// costlyList is a runtime whose List takes cost on the manual clock that
// stands for the wall clock. It neither observes one pod nor reports
// exits, so that every pass lists (see podCache).
type costlyList struct {
	reconcile.Runtime
	clock *clocktest.Clock
	cost  time.Duration
	lists atomic.Int64
}

func (r *costlyList) List(ctx context.Context) ([]reconcile.ObservedPod, error) {
	r.lists.Add(1)
	r.clock.Advance(r.cost)
	return r.Runtime.List(ctx)
}

// waitUntil polls cond until it holds; the manager runs on its own
// goroutine, and the test waits for what it does, not for a time.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Rings right after a pass that took 100 ms wait until 300 ms have gone
// by, and one pass takes all of them.
func TestRingsAfterACostlyPassWaitForIt(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(t0)
	rt := &costlyList{Runtime: fake.New(), clock: clock, cost: 100 * time.Millisecond}
	m := New(rt, Options{StateDir: t.TempDir(), Clock: clocktest.New(t0), ResyncInterval: time.Hour})
	m.wall = clock
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if err := m.Sync(ctx, "r1", nil); err != nil {
		t.Fatal(err)
	}
	// Sync lists, and rings for passes that may list again. Then ring
	// until a pass has listed (100 ms), moving the clock past any wait,
	// so that the last pass is known to have cost 100 ms. The resync
	// timers are an hour away; a wait is due within maxPassSpacing.
	// A pass that ran while Sync listed counts the list's 100 ms as its
	// own cost, so the pass Sync rings may wait on the clock: move it.
	waitUntil(t, "the passes after Sync", func() bool {
		if clock.Pending(maxPassSpacing) {
			clock.Advance(maxPassSpacing)
		}
		return m.Quiet()
	})
	before := rt.lists.Load()
	m.ringController()
	waitUntil(t, "a pass or a wait", func() bool { return rt.lists.Load() > before || clock.Pending(maxPassSpacing) })
	if rt.lists.Load() == before {
		clock.Advance(maxPassSpacing)
	}
	waitUntil(t, "a pass that lists", func() bool { return rt.lists.Load() == before+1 && m.Quiet() })
	before++

	for range 5 {
		m.ringController()
	}
	// The rung pass waits on the clock: 300 ms after the last pass ended,
	// which is now (the clock stands still).
	waitUntil(t, "a pass or a wait", func() bool { return rt.lists.Load() > before || clock.Pending(maxPassSpacing) })
	if n := rt.lists.Load() - before; n != 0 {
		t.Fatalf("a pass ran at once after a ring (%d lists); want it to wait for the last pass's cost", n)
	}
	if clock.Pending(299 * time.Millisecond) {
		t.Fatal("the wait is due within 299 ms; want 300 ms (3 × the last pass)")
	}
	clock.Advance(299 * time.Millisecond)
	if n := rt.lists.Load() - before; n != 0 || !clock.Pending(time.Millisecond) {
		t.Fatalf("after 299 ms: %d lists, wait pending %v; want none and the wait still pending", n, clock.Pending(time.Millisecond))
	}
	clock.Advance(time.Millisecond)
	waitUntil(t, "the pass after the wait", func() bool { return rt.lists.Load() > before && m.Quiet() })
	if n := rt.lists.Load() - before; n != 1 {
		t.Errorf("five rings made %d passes after the wait; want one", n)
	}
}

// A pass that costs nothing on the clock (as with the fake runtime of the
// other tests) is followed by the next at once, and a ring never waits
// longer than maxPassSpacing however costly the pass.
func TestSettleBounds(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	m := New(fake.New(), Options{StateDir: t.TempDir(), Clock: clocktest.New(clock.Now())})
	m.wall = clock
	if !m.settle(context.Background(), 0, clock.Now()) {
		t.Fatal("settle after a free pass: false")
	}
	if w := clock.Waiters(); w != 0 {
		t.Errorf("settle after a free pass set %d timers; want none", w)
	}
	got := make(chan bool, 1)
	go func() { got <- m.settle(context.Background(), time.Minute, clock.Now()) }()
	waitUntil(t, "the wait", func() bool { return clock.Waiters() == 1 })
	clock.Advance(maxPassSpacing)
	if !<-got {
		t.Fatal("settle: false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { got <- m.settle(ctx, time.Minute, clock.Now()) }()
	waitUntil(t, "the wait", func() bool { return clock.Waiters() == 1 })
	cancel()
	if <-got {
		t.Error("settle with its context ended: true, want false")
	}
}
