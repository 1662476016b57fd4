package manager_test

import (
	"berth.dev/berth/reconcile/manager"
	fx "berth.dev/berth/reconcile/reconciletest"
	"context"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/clocktest"
	"berth.dev/berth/runtime/fake"
)

// fakeTime runs a manager over rt on a manual clock; the test moves time
// with advance, which gives the workers and probes a moment to react.
type fakeTime struct {
	t     *testing.T
	rt    *fake.Runtime
	clock *clocktest.Clock
	m     *manager.Manager
	// stop stops the manager (the pods keep running); calling it again
	// does nothing.
	stop func()
}

func runFakeTime(t *testing.T, dir string) *fakeTime {
	t.Helper()
	rt, clock := fake.New(fx.Img), clocktest.New(t0)
	rt.Now = clock.Now
	return runFakeTimeOn(t, dir, rt, clock)
}

// runFakeTimeOn starts a manager on an existing runtime and clock, as an
// agent restarted on the same host.
func runFakeTimeOn(t *testing.T, dir string, rt *fake.Runtime, clock *clocktest.Clock) *fakeTime {
	t.Helper()
	f := &fakeTime{t: t, rt: rt, clock: clock}
	// A resync each fake second: these tests drive the controllers by
	// the clock.
	f.m = manager.New(f.rt, manager.Options{StateDir: dir, Clock: f.clock, Node: fx.Node, ResyncInterval: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.m.Run(ctx)
	}()
	var once sync.Once
	f.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(f.stop)
	return f
}

func (f *fakeTime) sync(rev string, objs ...reconcile.Object) {
	f.t.Helper()
	if err := f.m.Sync(context.Background(), rev, objs); err != nil {
		f.t.Fatal(err)
	}
}

// advance moves the clock by d and waits until the manager has acted on
// it: controller passes that began after the move, each followed by the
// pod workers it rang, until one leaves nothing rung.
func (f *fakeTime) advance(d time.Duration) {
	f.t.Helper()
	f.clock.Advance(d)
	f.settle()
}

// nobody is a pod no worker has: notifying it rings the controller.
var nobody = reconcile.PodID{Namespace: "-", Name: "-"}

// settle waits for a controller pass that began after the call, and for
// every pass and sync that follows from it.
func (f *fakeTime) settle() {
	f.t.Helper()
	deadline := time.After(20 * time.Second)
	for i := 0; ; i++ {
		passed := f.m.Passed()
		f.m.Notify(nobody)
		select {
		case <-passed:
		case <-deadline:
			f.t.Fatal("the manager made no pass within 20s")
		}
		// The first pass waited for may have begun before the call.
		if i == 0 {
			continue
		}
		for !f.m.Quiet() {
			select {
			case <-deadline:
				f.t.Fatal("the manager did not settle within 20s")
			case <-time.After(100 * time.Microsecond): // poll the condition
			}
		}
		return
	}
}

func (f *fakeTime) workload(key string) reconcile.WorkloadStatus {
	for _, w := range f.m.Workloads() {
		if w.Key() == key {
			return w
		}
	}
	return reconcile.WorkloadStatus{}
}

// until advances the clock a second at a time until cond holds, checking
// invariant at every step.
func (f *fakeTime) until(what string, limit int, cond func() bool, invariant func()) {
	f.t.Helper()
	f.untilStep(what, time.Second, limit, cond, invariant)
}

// untilStep is until with steps of step, at most limit of them.
func (f *fakeTime) untilStep(what string, step time.Duration, limit int, cond func() bool, invariant func()) {
	f.t.Helper()
	for range limit {
		if invariant != nil {
			invariant()
		}
		if cond() {
			return
		}
		f.advance(step)
	}
	f.t.Fatalf("%s: not within %d steps of %s", what, limit, step)
}

// slowReady makes every container of the template ready only 3 s after
// it starts.
func slowReady(t *reconcile.PodTemplateSpec) {
	t.Spec.Containers[0].ReadinessProbe = &reconcile.Probe{
		ProbeHandler:        reconcile.ProbeHandler{Exec: &reconcile.ExecAction{Command: []string{"ready"}}},
		InitialDelaySeconds: 3, PeriodSeconds: 1,
	}
}

func TestRollingUpdateKeepsReadyReplicas(t *testing.T) {
	for _, tc := range []struct {
		name            string
		surge, unavail  reconcile.IntOrString
		minReady, total int
	}{
		{"surge1-unavail0", reconcile.FromInt(1), reconcile.FromInt(0), 4, 5},
		{"surge50%-unavail0", reconcile.FromString("50%"), reconcile.FromInt(0), 4, 6},
		{"surge0-unavail1", reconcile.FromInt(0), reconcile.FromInt(1), 3, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := runFakeTime(t, t.TempDir())
			d := func(arg string) reconcile.Object {
				o := fx.Deployment("web", 4, arg)
				slowReady(&o.Deployment.Template)
				o.Deployment.MinReadySeconds = 2
				o.Deployment.Strategy.RollingUpdate = &reconcile.RollingUpdateDeployment{MaxSurge: &tc.surge, MaxUnavailable: &tc.unavail}
				return o
			}
			f.sync("r1", d("1d"))
			key := "Deployment/default/web"
			f.until("first rollout", 60, func() bool { w := f.workload(key); return w.Available == 4 && w.Current == 4 }, nil)
			f.sync("r2", d("2d"))
			eventually(t, "the rollout to start", func() bool { return f.workload(key).UpToDate < 4 })
			samples := 0
			f.until("second rollout", 200, func() bool {
				w := f.workload(key)
				return w.UpToDate == 4 && w.Current == 4 && w.Available == 4
			}, func() {
				samples++
				w := f.workload(key)
				if w.Available < tc.minReady {
					t.Fatalf("sample %d: %d available replicas, want at least %d: %+v", samples, w.Available, tc.minReady, w)
				}
				// As for a Deployment controller, pods being removed
				// do not count toward the surge.
				pods, _ := f.rt.List(context.Background())
				wanted := 0
				for _, p := range pods {
					if !f.m.Removing(p.ID) {
						wanted++
					}
				}
				if wanted > tc.total {
					t.Fatalf("sample %d: %d pods not being removed, want at most %d", samples, wanted, tc.total)
				}
			})
			if samples < 5 {
				t.Errorf("only %d samples: the rollout did not wait for readiness", samples)
			}
			if w := f.workload(key); w.Condition != reconcile.ConditionAvailable {
				t.Errorf("condition %q", w.Condition)
			}
		})
	}
}

func TestRecreateAndProgressDeadline(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	d := func(arg, image string) reconcile.Object {
		o := fx.Deployment("web", 2, arg)
		o.Deployment.Strategy.Type = "Recreate"
		o.Deployment.ProgressDeadlineSeconds = fx.Ptr(int32(30))
		o.Deployment.Template.Spec.Containers[0].Image = image
		return o
	}
	key := "Deployment/default/web"
	f.sync("r1", d("1d", fx.Img))
	f.until("first rollout", 30, func() bool { return f.workload(key).Available == 2 }, nil)
	// The new template's image cannot be had: old pods are gone, new ones
	// never become ready, and the rollout is marked failed.
	f.sync("r2", d("2d", "example.local/missing:1"))
	f.until("deadline exceeded", 120, func() bool {
		return f.workload(key).Condition == reconcile.ConditionProgressDeadlineExceeded
	}, func() {
		pods, _ := f.rt.List(context.Background())
		hashes := map[string]bool{}
		for _, p := range pods {
			hashes[p.Hash] = true
		}
		if len(hashes) > 1 {
			t.Fatalf("Recreate ran old and new pods together")
		}
	})
}

func TestStatefulSetOrderedReady(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	sts := func(replicas int32, arg string, partition int32) reconcile.Object {
		o := fx.Workload("StatefulSet", "db")
		o.StatefulSet = &reconcile.StatefulSetSpec{Replicas: fx.Ptr(replicas), Template: fx.Template("db", arg)}
		slowReady(&o.StatefulSet.Template)
		o.StatefulSet.UpdateStrategy.RollingUpdate = &reconcile.RollingUpdateStatefulSetStrategy{Partition: fx.Ptr(partition)}
		return o
	}
	created := func() []string {
		var out []string
		for _, c := range f.rt.MutatingCalls() {
			if len(c) > 14 && c[:14] == "CreateSandbox " {
				out = append(out, c[len("CreateSandbox default/"):])
			}
		}
		return out
	}
	f.sync("r1", sts(3, "1d", 0))
	key := "StatefulSet/default/db"
	f.until("3 ready", 60, func() bool { return f.workload(key).Ready == 3 }, func() {
		// db-N is created only once db-0…db-N-1 are ready.
		c := created()
		ready := f.workload(key).Ready
		if len(c) > ready+1 {
			t.Fatalf("created %v with only %d ready", c, ready)
		}
	})
	if got := created(); len(got) != 3 || got[0] != "db-0" || got[1] != "db-1" || got[2] != "db-2" {
		t.Fatalf("creation order %v", got)
	}
	// Update with partition 1: db-2, then db-1 are replaced; db-0 keeps
	// the old template.
	f.rt.ResetCalls()
	f.sync("r2", sts(3, "2d", 1))
	f.until("updated above the partition", 60, func() bool { return f.workload(key).UpToDate == 2 && f.workload(key).Ready == 3 }, nil)
	var removed []string
	for _, c := range f.rt.MutatingCalls() {
		if len(c) > 10 && c[:10] == "RemovePod " {
			removed = append(removed, c[len("RemovePod default/"):])
		}
	}
	if len(removed) != 2 || removed[0] != "db-2" || removed[1] != "db-1" {
		t.Errorf("replaced %v, want db-2 then db-1", removed)
	}
	// Scale down: the highest ordinal goes.
	f.sync("r3", sts(2, "2d", 1))
	f.until("scaled to 2", 60, func() bool { return f.workload(key).Current == 2 }, nil)
	pods, _ := f.rt.List(context.Background())
	for _, p := range pods {
		if p.ID.Name == "db-2" {
			t.Error("db-2 still runs after scaling to 2")
		}
	}
}

func TestDaemonSetOnDelete(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	ds := func(arg string) reconcile.Object {
		o := fx.Workload("DaemonSet", "agent")
		o.DaemonSet = &reconcile.DaemonSetSpec{Template: fx.Template("agent", arg)}
		o.DaemonSet.UpdateStrategy.Type = "OnDelete"
		return o
	}
	key := "DaemonSet/default/agent"
	f.sync("r1", ds("1d"))
	f.until("running", 10, func() bool { return f.workload(key).Ready == 1 }, nil)
	pods, _ := f.rt.List(context.Background())
	f.sync("r2", ds("2d"))
	for range 5 {
		f.advance(time.Second)
	}
	if w := f.workload(key); w.UpToDate != 0 || w.Ready != 1 {
		t.Fatalf("OnDelete replaced the pod: %+v", w)
	}
	if err := f.rt.RemovePod(context.Background(), pods[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	f.until("replaced after deletion", 10, func() bool { return f.workload(key).UpToDate == 1 }, nil)
}

func TestReplicaSetKeepsRunningPodsOnTemplateChange(t *testing.T) {
	f := runFakeTime(t, t.TempDir())
	rs := func(replicas int32, arg string) reconcile.Object {
		o := fx.Workload("ReplicaSet", "rs")
		o.ReplicaSet = &reconcile.ReplicaSetSpec{Replicas: fx.Ptr(replicas), Template: fx.Template("rs", arg)}
		return o
	}
	key := "ReplicaSet/default/rs"
	f.sync("r1", rs(2, "1d"))
	f.until("2 ready", 10, func() bool { return f.workload(key).Ready == 2 }, nil)
	before, _ := f.rt.List(context.Background())
	// A new template leaves the running pods alone; scaling up adds one
	// pod of the new template.
	f.sync("r2", rs(3, "2d"))
	f.until("3 ready", 10, func() bool { return f.workload(key).Ready == 3 && f.workload(key).UpToDate == 1 }, nil)
	after, _ := f.rt.List(context.Background())
	for _, p := range before {
		if pidOf(after, p.ID.Name) != p.Containers[0].PID {
			t.Errorf("pod %s was touched by a template change", p.ID.Name)
		}
	}
	// Scaling down to 1 removes old pods first... and keeps one pod.
	f.sync("r3", rs(1, "2d"))
	f.until("1 pod", 10, func() bool { return f.workload(key).Current == 1 }, nil)
	if w := f.workload(key); w.UpToDate != 1 {
		t.Errorf("after scaling to 1: %+v, want the new-template pod kept", w)
	}
}
