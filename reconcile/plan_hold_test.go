package reconcile_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

// heldPlan applies objs at r1, plans the changed objs at r2 with HoldBack,
// and returns each pod's action.
func heldPlan(t *testing.T, r1, r2 []reconcile.Object) map[string]reconcile.Action {
	t.Helper()
	rt := fake.New(img)
	ctx := context.Background()
	first := reconcile.MakePlan("r1", expandOn(t, reconcile.ExpandOptions{}, r1...), nil)
	if err := reconcile.Apply(ctx, rt, first, reconcile.ApplyOptions{}).Err(); err != nil {
		t.Fatal(err)
	}
	observed, _ := rt.List(ctx)
	p := reconcile.MakePlan("r2", expandOn(t, reconcile.ExpandOptions{}, r2...), observed)
	p.HoldBack(r2)
	out := map[string]reconcile.Action{}
	for _, c := range p.Changes {
		out[c.Pod.Name] = c.Action
	}
	return out
}

func TestHoldBack(t *testing.T) {
	sts := func(arg string, partition int32, onDelete bool) reconcile.Object {
		o := workload("StatefulSet", "db")
		o.StatefulSet = &reconcile.StatefulSetSpec{Replicas: ptr(int32(3)), Template: template("db", arg)}
		o.StatefulSet.UpdateStrategy.RollingUpdate = &reconcile.RollingUpdateStatefulSetStrategy{Partition: ptr(partition)}
		if onDelete {
			o.StatefulSet.UpdateStrategy = reconcile.StatefulSetUpdateStrategy{Type: "OnDelete"}
		}
		return o
	}
	got := heldPlan(t, []reconcile.Object{sts("1d", 0, false)}, []reconcile.Object{sts("2d", 2, false)})
	if diff := cmp.Diff(map[string]reconcile.Action{"db-0": "keep", "db-1": "keep", "db-2": "replace"}, got); diff != "" {
		t.Errorf("partition 2 (-want +got):\n%s", diff)
	}
	got = heldPlan(t, []reconcile.Object{sts("1d", 0, false)}, []reconcile.Object{sts("2d", 0, true)})
	if diff := cmp.Diff(map[string]reconcile.Action{"db-0": "keep", "db-1": "keep", "db-2": "keep"}, got); diff != "" {
		t.Errorf("OnDelete (-want +got):\n%s", diff)
	}

	rs := func(replicas int32, arg string) reconcile.Object {
		o := workload("ReplicaSet", "rs")
		o.ReplicaSet = &reconcile.ReplicaSetSpec{Replicas: ptr(replicas), Template: template("rs", arg)}
		return o
	}
	got = heldPlan(t, []reconcile.Object{rs(2, "1d")}, []reconcile.Object{rs(3, "2d")})
	counts := map[reconcile.Action]int{}
	for _, a := range got {
		counts[a]++
	}
	if diff := cmp.Diff(map[reconcile.Action]int{"keep": 2, "create": 1}, counts); diff != "" {
		t.Errorf("ReplicaSet template change and scale-up (-want +got):\n%s", diff)
	}
}
