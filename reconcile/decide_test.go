package reconcile_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	fx "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime/fake"
)

// A rolling update (3 replicas, maxSurge 1, maxUnavailable 0) starts the
// next new pod in the step that removes an old one, and a pod being
// removed counts neither toward the surge nor as available, as for a
// Deployment controller (a pod with a deletion timestamp).
func TestRollingUpdateOverlapsRemovalAndNextPod(t *testing.T) {
	rt := fake.New(fx.Img)
	ctx := context.Background()
	fx.Start(t, rt, fx.Expand(t, "r1", fx.Deployment("web", 3, "1d")))
	objs := []reconcile.Object{fx.Deployment("web", 3, "2d")}
	pods := fx.Expand(t, "r2", objs...)
	decide := func(terminating ...reconcile.PodID) reconcile.Decision {
		t.Helper()
		observed, err := rt.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		term := map[reconcile.PodID]bool{}
		for _, id := range terminating {
			term[id] = true
		}
		return reconcile.Decide(reconcile.Input{Revision: "r2", Objects: objs, Pods: pods, Observed: observed, Terminating: term, Now: time.Now()})
	}
	newTargets := func(d reconcile.Decision) []string {
		var out []string
		for _, p := range pods {
			if _, ok := d.Targets[p.ID]; ok {
				out = append(out, p.ID.Name)
			}
		}
		return out
	}
	removing := func(d reconcile.Decision) []reconcile.PodID {
		var out []reconcile.PodID
		for id := range d.Removing {
			out = append(out, id)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}

	// Step 1: room for one new pod; no old pod goes yet.
	d := decide()
	if got := newTargets(d); len(got) != 1 || len(d.Removing) != 0 {
		t.Fatalf("step 1: new pods %v, removing %v; want one new pod and no removal", got, d.Removing)
	}
	first := d.Targets[pods[0].ID].Spec
	fx.Start(t, rt, []reconcile.DesiredPod{*first})

	// Step 2: the new pod runs: one old pod goes and, in the same step,
	// the second new pod starts.
	d = decide()
	gone := removing(d)
	if got := newTargets(d); len(got) != 2 || len(gone) != 1 {
		t.Fatalf("step 2: new pods %v, removing %v; want two new pods and one removal", got, gone)
	}

	// While the old pod terminates, the decision holds: the second new
	// pod keeps its target and no other old pod goes before it runs.
	again := decide(gone[0])
	if diff := cmp.Diff(newTargets(d), newTargets(again)); diff != "" {
		t.Errorf("new pods changed while an old one terminates (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(gone, removing(again)); diff != "" {
		t.Errorf("removals changed while an old one terminates (-before +after):\n%s", diff)
	}
	if _, ok := again.Targets[gone[0]]; ok {
		t.Errorf("the terminating pod %s got a target back", gone[0])
	}
}
