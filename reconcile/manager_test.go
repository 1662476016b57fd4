package reconcile_test

import (
	"context"
	"errors"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

// running starts a manager over rt with the wall clock and a short
// resync; stop cancels it and waits for it.
func running(t *testing.T, rt *fake.Runtime, dir string) (m *reconcile.Manager, stop func()) {
	t.Helper()
	m = reconcile.NewManager(rt, reconcile.ManagerOptions{StateDir: dir, Node: node, ResyncInterval: 10 * time.Millisecond})
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
	rt := fake.New(img)
	dir := t.TempDir()
	m, stop := running(t, rt, dir)
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{podObj("a", "1d"), podObj("b", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "pods a and b", func() bool { return cmp.Equal(runningPods(rt), []string{"a", "b"}) })
	eventually(t, "status of a and b", func() bool {
		st := m.Pods()
		return len(st) == 2 && st[0].Ready && st[1].Ready
	})

	// A revision that does not expand changes nothing.
	bad := podObj("c")
	bad.Pod.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "missing"}}}
	if err := m.Sync(context.Background(), "r2", []reconcile.Object{bad}); err == nil {
		t.Fatal("a revision referring to a missing ConfigMap was accepted")
	}

	// b dropped: removed; a untouched.
	before, _ := rt.List(context.Background())
	if err := m.Sync(context.Background(), "r3", []reconcile.Object{podObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b removed", func() bool { return cmp.Equal(runningPods(rt), []string{"a"}) })
	after, _ := rt.List(context.Background())
	if pidOf(before, "a") != pidOf(after, "a") {
		t.Error("pod a was restarted by an unrelated change")
	}

	// A revision that wants nothing is refused while pods run.
	if err := m.Sync(context.Background(), "r4", nil); !errors.Is(err, reconcile.ErrDeleteAll) {
		t.Fatalf("empty revision: %v, want ErrDeleteAll", err)
	}

	// Stopping the manager leaves the pods running; a new one adopts them
	// without restarting anything.
	stop()
	if !cmp.Equal(runningPods(rt), []string{"a"}) {
		t.Fatalf("stopping the manager stopped pods: %v", runningPods(rt))
	}
	rt.ResetCalls()
	m2, _ := running(t, rt, dir)
	if err := m2.Sync(context.Background(), "r3", []reconcile.Object{podObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "status from the new manager", func() bool { st := m2.Pods(); return len(st) == 1 && st[0].Ready })
	if calls := rt.MutatingCalls(); len(calls) != 0 {
		t.Errorf("a restarted manager changed running pods: %v", calls)
	}
}

func TestManagerDoesNothingBeforeSync(t *testing.T) {
	rt := fake.New(img)
	pods := expandOn(t, reconcile.ExpandOptions{}, podObj("old", "1d"))
	if err := reconcile.StartPod(context.Background(), rt, &pods[0]); err != nil {
		t.Fatal(err)
	}
	rt.ResetCalls()
	_, stop := running(t, rt, t.TempDir())
	time.Sleep(50 * time.Millisecond)
	stop()
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
	rt := fake.New(img)
	dir := t.TempDir()
	store := reconcile.NewRecordStore(dir)
	gone := reconcile.PodID{Namespace: "default", Name: "gone"}
	if err := store.WritePod(gone, &reconcile.PodRecord{Hash: "x"}); err != nil {
		t.Fatal(err)
	}
	m, _ := running(t, rt, dir)
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{podObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a running with a record, and gone's record removed", func() bool {
		recs, err := store.Pods()
		if err != nil {
			t.Fatal(err)
		}
		_, stale := recs[gone]
		_, kept := recs[reconcile.PodID{Namespace: "default", Name: "a"}]
		return !stale && kept
	})
}

// TestSlowPullDelaysNoOtherPod holds one pod's image pull until its
// context ends: the other pod runs meanwhile, and a newer spec for the
// slow pod cancels the pull in flight and starts at once.
func TestSlowPullDelaysNoOtherPod(t *testing.T) {
	rt := fake.New(img, "example.local/slow:1")
	cancelled := make(chan struct{})
	rt.Pull = func(ctx context.Context, image string) error {
		if image != "example.local/slow:1" {
			return nil
		}
		<-ctx.Done()
		close(cancelled)
		return ctx.Err()
	}
	m, _ := running(t, rt, t.TempDir())
	slow := podObj("slow", "1d")
	slow.Pod.Containers[0].Image = "example.local/slow:1"
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{slow, podObj("quick", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "quick running while slow pulls", func() bool { return cmp.Equal(runningPods(rt), []string{"quick"}) })
	if err := m.Sync(context.Background(), "r2", []reconcile.Object{podObj("slow", "2d"), podObj("quick", "1d")}); err != nil {
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
	rt := fake.New(img)
	dir := t.TempDir()
	m, _ := running(t, rt, dir)
	sts := func(name string, replicas int32, pol *reconcile.StatefulSetPersistentVolumeClaimPolicy) reconcile.Object {
		o := workload("StatefulSet", name)
		o.StatefulSet = &reconcile.StatefulSetSpec{
			Replicas: ptr(replicas), Template: template(name), PodManagementPolicy: "Parallel",
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
	sync(podObj("other", "1d"))
	eventually(t, "del's claims deleted with the set", func() bool { return !exists(claim("del", 0)) })
	if !exists(claim("keep", 0)) || !exists(claim("keep", 1)) {
		t.Error("claims of a set with the default Retain policy were deleted")
	}
}

func TestCorruptRecordIsSkipped(t *testing.T) {
	dir := t.TempDir()
	store := reconcile.NewRecordStore(dir)
	if err := store.WriteJob("default/good", &reconcile.JobRecord{Hash: "h", Condition: reconcile.JobComplete}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(store.Dir+"/jobs/default_bad.json", []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := store.Load()
	if !errors.Is(err, reconcile.ErrCorruptRecord) || recs == nil || recs.Jobs["default/good"] == nil {
		t.Fatalf("Load = %v, %v; want the good record and ErrCorruptRecord", recs, err)
	}
	// The manager carries on.
	rt := fake.New(img)
	m, _ := running(t, rt, dir)
	if err := m.Sync(context.Background(), "r1", []reconcile.Object{podObj("a", "1d")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a running", func() bool { return cmp.Equal(runningPods(rt), []string{"a"}) })
}
