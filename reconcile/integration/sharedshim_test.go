package integration_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

// TestKilledSharedShimRestartsItsPods kills the runc shim that several
// pods share (the default groups up to 16 pods per shim): the manager must
// see every one of their containers exit and restart them, and the
// pods' status must report the restart and its reason.
func TestKilledSharedShimRestartsItsPods(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{InitialBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	names := []string{"one", "two", "three"}
	running := func(n string) bool {
		st, ok := status(m, n)
		if !ok || len(st.Containers) != 2 {
			return false
		}
		for _, c := range st.Containers {
			if c.State != reconcile.Running {
				return false
			}
		}
		return true
	}
	// One pod after the other: starts at the same time go to different
	// shims.
	var objs []reconcile.Object
	for _, n := range names {
		objs = append(objs, pod(n, reconcile.PodSpec{Containers: []reconcile.Container{sh("main", "exec sleep 3600"), sh("side", "exec sleep 3600")}}))
		sync(t, m, "r"+n, objs...)
		waitFor(t, "pod "+n+" to run", time.Minute, func() bool { return running(n) })
	}
	pods, err := rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	shims := map[int]bool{}
	before := map[string]uint32{}
	for _, p := range pods {
		for _, c := range p.Containers {
			shims[runtimetest.ParentPID(t, c.PID)] = true
			before[p.ID.Name+"/"+c.Name] = c.PID
		}
	}
	if len(shims) != 1 {
		t.Fatalf("the 6 containers of 3 pods run under %d shims, want 1", len(shims))
	}
	for shim := range shims {
		if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every container of the killed shim's pods to run again", time.Minute, func() bool {
		for _, n := range names {
			st, ok := status(m, n)
			if !ok || !running(n) {
				return false
			}
			for _, c := range st.Containers {
				if c.RestartCount < 1 {
					return false
				}
			}
		}
		return true
	})
	pods, err = rt.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		for _, c := range p.Containers {
			if c.PID == before[p.ID.Name+"/"+c.Name] {
				t.Errorf("%s/%s kept its process after its shim was killed", p.ID.Name, c.Name)
			}
		}
	}
	recs, err := manager.NewRecordStore(h.stateDir).Pods()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		rec := recs[reconcile.PodID{Namespace: "default", Name: n}]
		if rec == nil {
			t.Fatalf("no record of pod %s", n)
		}
		for _, key := range []string{"app/main", "app/side"} {
			c := rec.Containers[key]
			if c == nil {
				t.Fatalf("pod %s: no record of %s", n, key)
			}
			if c.LastExitCode != 137 || c.LastReason != containerd.ReasonTaskLost {
				t.Errorf("pod %s, %s: last termination recorded as %d %q, want 137 %s", n, key, c.LastExitCode, c.LastReason, containerd.ReasonTaskLost)
			}
		}
	}
}
