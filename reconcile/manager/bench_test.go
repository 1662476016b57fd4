package manager_test

import (
	"berth.dev/berth/reconcile/manager"
	fx "berth.dev/berth/reconcile/reconciletest"
	"context"
	"fmt"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

func manyDeployments(n, replicas int, arg string) []reconcile.Object {
	var objs []reconcile.Object
	for i := range n {
		objs = append(objs, fx.Deployment(fmt.Sprintf("app%d", i), int32(replicas), arg))
	}
	return objs
}

// BenchmarkExpand expands 50 Deployments of 10 replicas (500 pods).
func BenchmarkExpand(b *testing.B) {
	objs := manyDeployments(50, 10, "1d")
	for b.Loop() {
		if _, err := reconcile.Expand(objs, "r", reconcile.ExpandOptions{Node: fx.Node}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkManagerConverge measures, on the in-memory runtime, how long a
// manager takes from Sync to 500 running, ready pods, and then to roll all
// of them to a new template: the cost of berth's own bookkeeping.
func BenchmarkManagerConverge(b *testing.B) {
	for b.Loop() {
		rt := fake.New(fx.Img)
		m := manager.New(rt, manager.Options{StateDir: b.TempDir(), Node: fx.Node, ResyncInterval: 20 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.Run(ctx) }()
		for _, arg := range []string{"1d", "2d"} {
			if err := m.Sync(ctx, arg, manyDeployments(50, 10, arg)); err != nil {
				b.Fatal(err)
			}
			for {
				ready := 0
				for _, w := range m.Workloads() {
					if w.UpToDate == 10 && w.Available == 10 && w.Current == 10 {
						ready++
					}
				}
				if ready == 50 {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		cancel()
		<-done
	}
}
