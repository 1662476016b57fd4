package containerd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/runtimetest"
)

// TestCancelledRestartThenRemove cancels the restart of a container that
// exits at once at ever later points (a pod manager drops a restart in
// flight when a new spec arrives), then removes the pod, as a replacement
// does. Whatever the cancelled call left, the removal must complete and
// leave nothing on the host; the contexts only catch a hang.
func TestCancelledRestartThenRemove(t *testing.T) {
	rt, e := newRuntime(t)
	if err := rt.EnsureImage(ctx(t), testImage, reconcile.PullNever); err != nil {
		t.Fatal(err)
	}
	base := snapshotHost(t, rt, e)
	for i := range 16 {
		pod := runtimetest.NewPod(fmt.Sprintf("cancel-%d", i), runtimetest.Exiter("main", testImage, "1"))
		pod.Spec.RestartPolicy = reconcile.RestartAlways
		runtimetest.Up(t, rt, pod)
		// A restart cancelled after a delay growing with i: before the old
		// task is deleted, while the new task is created, after it started.
		cctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.StartContainer(cctx, pod, reconcile.AppContainer, "main") }()
		time.Sleep(time.Duration(i) * 8 * time.Millisecond)
		cancel()
		<-done // cancelled or finished: either is fine
		rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
		err := rt.RemovePod(rctx, pod.ID, time.Second)
		rcancel()
		if err != nil {
			t.Fatalf("round %d: RemovePod after a cancelled restart: %v", i, err)
		}
		for _, p := range runtimetest.MustList(t, rt) {
			if p.ID == pod.ID {
				t.Fatalf("round %d: pod %s still listed after RemovePod: %+v", i, pod.ID, p)
			}
		}
		if leaks := snapshotHost(t, rt, e).diff(base); len(leaks) > 0 {
			t.Fatalf("round %d: left behind after RemovePod: %v", i, leaks)
		}
	}
}
