package integration_test

import (
	"fmt"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
)

// TestReplaceCrashLoopingPod hands the manager a new spec for a pod whose
// container crash-loops with a tiny backoff, so the replacement meets a
// restart in flight (the agent's rollback under the pod manager), several
// times over: every replacement must finish and the new container run.
func TestReplaceCrashLoopingPod(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{
		InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		ResyncInterval: 20 * time.Millisecond,
	})
	crash := pod("flaky", reconcile.PodSpec{Containers: []reconcile.Container{sh("main", "exit 1")}})
	for i := range 6 {
		sync(t, m, fmt.Sprintf("bad%d", i), crash)
		waitFor(t, "the crash-looping container to restart", 30*time.Second, func() bool {
			st, ok := status(m, "flaky")
			return ok && st.Revision == fmt.Sprintf("bad%d", i) && st.Restarts() >= 2
		})
		good := pod("flaky", reconcile.PodSpec{Containers: []reconcile.Container{sh("main", fmt.Sprintf("echo %d; exec sleep 3600", i))}})
		rev := fmt.Sprintf("good%d", i)
		sync(t, m, rev, good)
		waitFor(t, "the replacement to run", 30*time.Second, func() bool {
			st, ok := status(m, "flaky")
			return ok && st.Revision == rev && len(st.Containers) == 1 && st.Containers[0].State == reconcile.Running
		})
	}
}
