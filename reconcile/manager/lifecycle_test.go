package manager_test

import (
	"berth.dev/berth/reconcile/manager"
	fx "berth.dev/berth/reconcile/reconciletest"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/clocktest"
	"berth.dev/berth/runtime/fake"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// lifecycle is a manager over a fake runtime with a manual clock, whose
// pod workers the test steps by hand.
type lifecycle struct {
	t     *testing.T
	rt    *fake.Runtime
	clock *clocktest.Clock
	m     *manager.Manager
	dir   string
}

func newLifecycle(t *testing.T) *lifecycle {
	t.Helper()
	l := &lifecycle{t: t, rt: fake.New(fx.Img), clock: clocktest.New(t0), dir: t.TempDir()}
	l.rt.Now = l.clock.Now
	l.m = l.manager()
	t.Cleanup(l.m.StopStepped)
	return l
}

// manager is a new manager on the same runtime and state directory, as
// after an agent restart.
func (l *lifecycle) manager() *manager.Manager {
	return manager.New(l.rt, manager.Options{StateDir: l.dir, Clock: l.clock, Node: fx.Node})
}

func (l *lifecycle) step(d *reconcile.DesiredPod) time.Time {
	l.t.Helper()
	next, _, err := l.m.StepPod(context.Background(), d)
	if err != nil {
		l.t.Fatalf("step at %s: %v", l.clock.Now().Sub(t0), err)
	}
	return next
}

func (l *lifecycle) status(d *reconcile.DesiredPod) reconcile.PodStatus {
	return l.m.StepStatus(d.ID)
}

func lifecyclePod(t *testing.T, edit func(*reconcile.PodSpec)) *reconcile.DesiredPod {
	t.Helper()
	o := fx.PodObj("app", "1d")
	edit(o.Pod)
	pods := fx.ExpandOn(t, reconcile.ExpandOptions{}, o)
	return &pods[0]
}

func restartsOf(st reconcile.PodStatus) int { return st.Restarts() }

func TestCrashLoopBackOffCurve(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) { s.Containers[0].Command, s.Containers[0].Args = []string{"false"}, nil })
	var at []int
	prev := 0
	sawBackoff := false
	for s := 0; s <= 1000; s++ {
		l.clock.Set(t0.Add(time.Duration(s) * time.Second))
		l.step(d)
		st := l.status(d)
		if n := restartsOf(st); n != prev {
			if n != prev+1 {
				t.Fatalf("at %ds restarts jumped from %d to %d", s, prev, n)
			}
			at, prev = append(at, s), n
		}
		if st.Display() == reconcile.ReasonCrashLoopBackOff {
			sawBackoff = true
		}
	}
	var gaps []int
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i]-at[i-1])
	}
	if diff := cmp.Diff([]int{10, 20, 40, 80, 160, 300, 300}, gaps); diff != "" {
		t.Errorf("restart gaps (-kubelet +got), restarts at %v:\n%s", at, diff)
	}
	if !sawBackoff {
		t.Error("status never showed CrashLoopBackOff")
	}
	// The count and the backoff survive a restart of the agent.
	l.m = l.manager()
	l.clock.Advance(time.Second)
	l.step(d)
	if got := restartsOf(l.status(d)); got != prev {
		t.Errorf("after an agent restart: %d restarts, want %d", got, prev)
	}
}

// TestFailedStartsFollowBackoff: a container whose start keeps failing
// (its task cannot be made while containerd restarts) is tried again on
// the CrashLoopBackOff curve, not at every step of its worker.
func TestFailedStartsFollowBackoff(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(*reconcile.PodSpec) {})
	var at []int
	l.rt.Fail = func(call, subject string) error {
		if call != "StartContainer" {
			return nil
		}
		at = append(at, int(l.clock.Now().Sub(t0)/time.Second))
		return errors.New("create task: containerd is unavailable")
	}
	for s := 0; s <= 1000; s++ {
		l.clock.Set(t0.Add(time.Duration(s) * time.Second))
		if _, _, err := l.m.StepPod(context.Background(), d); err != nil && !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("step at %ds: %v", s, err)
		}
	}
	// The first start, its first retry at the next step, then the curve.
	var gaps []int
	for i := 2; i < len(at); i++ {
		gaps = append(gaps, at[i]-at[i-1])
	}
	if diff := cmp.Diff([]int{10, 20, 40, 80, 160, 300, 300}, gaps); diff != "" {
		t.Errorf("gaps between failed starts (-kubelet +got), starts at %v:\n%s", at, diff)
	}
}

func TestBackoffResetsAfterCleanRunning(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(*reconcile.PodSpec) {})
	l.step(d)
	kill := func() {
		if err := l.rt.Kill(d.ID, reconcile.AppContainer, "main", 1); err != nil {
			t.Fatal(err)
		}
	}
	// Two quick deaths: the second waits 10 s.
	kill()
	l.step(d)
	kill()
	if next := l.step(d); next.Sub(l.clock.Now()) != 10*time.Second {
		t.Fatalf("second death waits %s, want 10s", next.Sub(l.clock.Now()))
	}
	l.clock.Advance(10 * time.Second)
	l.step(d)
	if got := restartsOf(l.status(d)); got != 2 {
		t.Fatalf("restarts %d, want 2", got)
	}
	// Eleven minutes of clean running: the next death restarts at once.
	l.clock.Advance(11 * time.Minute)
	kill()
	l.step(d)
	if got := restartsOf(l.status(d)); got != 3 {
		t.Errorf("restarts %d after a death following clean running, want 3 (no backoff)", got)
	}
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		policy string
		cmd    string
		phase  reconcile.PodPhase
		show   string
	}{
		{reconcile.RestartOnFailure, "true", reconcile.PodSucceeded, "Completed"},
		{reconcile.RestartNever, "false", reconcile.PodFailed, "Error"},
		{reconcile.RestartNever, "true", reconcile.PodSucceeded, "Completed"},
	}
	for _, tt := range tests {
		t.Run(tt.policy+"/"+tt.cmd, func(t *testing.T) {
			l := newLifecycle(t)
			d := lifecyclePod(t, func(s *reconcile.PodSpec) {
				s.RestartPolicy = tt.policy
				s.Containers[0].Command, s.Containers[0].Args = []string{tt.cmd}, nil
			})
			for range 3 {
				l.step(d)
				l.clock.Advance(time.Minute)
			}
			st := l.status(d)
			if st.Phase != tt.phase || st.Restarts() != 0 || st.Display() != tt.show {
				t.Errorf("phase %s restarts %d status %q, want %s 0 %q", st.Phase, st.Restarts(), st.Display(), tt.phase, tt.show)
			}
		})
	}
	// OnFailure restarts a failing container.
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) {
		s.RestartPolicy = reconcile.RestartOnFailure
		s.Containers[0].Command, s.Containers[0].Args = []string{"false"}, nil
	})
	l.step(d)
	l.step(d)
	if got := restartsOf(l.status(d)); got != 1 {
		t.Errorf("OnFailure: %d restarts, want 1", got)
	}
}

func TestDriftRepair(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(*reconcile.PodSpec) {})
	l.step(d)
	if err := l.rt.Kill(d.ID, reconcile.AppContainer, "main", 137); err != nil {
		t.Fatal(err)
	}
	l.step(d)
	if err := l.rt.Remove(d.ID, reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	l.clock.Advance(time.Minute)
	l.step(d)
	st := l.status(d)
	if st.Restarts() != 2 || st.Display() != "Running" {
		t.Errorf("after a kill and a removal: restarts %d status %q, want 2 Running", st.Restarts(), st.Display())
	}
	// The whole pod removed outside berth comes back.
	if err := l.rt.RemovePod(context.Background(), d.ID, 0); err != nil {
		t.Fatal(err)
	}
	l.step(d)
	pods, _ := l.rt.List(context.Background())
	if len(pods) != 1 || pods[0].Container(reconcile.AppContainer, "main") == nil {
		t.Fatalf("pod not recreated: %+v", pods)
	}
}

func TestInitContainersInOrder(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) {
		s.InitContainers = []reconcile.Container{
			{Name: "first", Image: fx.Img, Command: []string{"true"}},
			{Name: "proxy", Image: fx.Img, Command: []string{"sleep", "1d"}, RestartPolicy: reconcile.RestartAlways},
			{Name: "second", Image: fx.Img, Command: []string{"true"}},
		}
	})
	for range 5 {
		l.step(d)
	}
	var starts []string
	for _, c := range l.rt.Calls() {
		if s, ok := strings.CutPrefix(c, "StartContainer "); ok {
			starts = append(starts, s[strings.LastIndex(s, "/")+1:])
		}
	}
	if diff := cmp.Diff([]string{"first", "proxy", "second", "main"}, starts); diff != "" {
		t.Errorf("start order (-want +got):\n%s", diff)
	}
	st := l.status(d)
	if st.Display() != "Running" || !st.Ready {
		t.Errorf("status %q ready %v", st.Display(), st.Ready)
	}
	// kubectl counts the sidecar in READY.
	if r, n := st.ReadyCount(); r != 2 || n != 2 {
		t.Errorf("READY %d/%d, want 2/2 (main and the proxy sidecar)", r, n)
	}
	// The sidecar is kept running: killed, it comes back.
	if err := l.rt.Kill(d.ID, reconcile.InitContainer, "proxy", 1); err != nil {
		t.Fatal(err)
	}
	l.step(d)
	if got := l.status(d).InitContainers[1]; got.Name != "proxy" || got.RestartCount != 1 || got.State != reconcile.Running {
		t.Errorf("sidecar after a kill: %+v", got)
	}
}

func TestInitContainerFailure(t *testing.T) {
	for _, policy := range []string{reconcile.RestartNever, reconcile.RestartAlways} {
		t.Run(policy, func(t *testing.T) {
			l := newLifecycle(t)
			d := lifecyclePod(t, func(s *reconcile.PodSpec) {
				s.RestartPolicy = policy
				s.InitContainers = []reconcile.Container{{Name: "setup", Image: fx.Img, Command: []string{"false"}}}
			})
			for range 3 {
				l.step(d)
				l.clock.Advance(time.Second)
			}
			st := l.status(d)
			if policy == reconcile.RestartNever {
				if st.Phase != reconcile.PodFailed || st.Display() != "Init:Error" {
					t.Errorf("phase %s status %q, want Failed Init:Error", st.Phase, st.Display())
				}
				return
			}
			if st.Phase != reconcile.PodPending || st.InitContainers[0].RestartCount == 0 || !strings.HasPrefix(st.Display(), "Init:") {
				t.Errorf("phase %s status %q init %+v: want a pending pod retrying its init container", st.Phase, st.Display(), st.InitContainers)
			}
			for _, c := range l.rt.Calls() {
				if strings.HasSuffix(c, "/main") && strings.HasPrefix(c, "StartContainer") {
					t.Errorf("app container started although init failed: %v", l.rt.Calls())
				}
			}
		})
	}
}

func TestActiveDeadline(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) { s.ActiveDeadlineSeconds = fx.Ptr(int64(30)) })
	if next := l.step(d); !next.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("next look at %s, want the deadline", next.Sub(t0))
	}
	l.clock.Advance(30 * time.Second)
	l.step(d)
	st := l.status(d)
	if st.Phase != reconcile.PodFailed || st.Display() != reconcile.ReasonDeadlineExceeded {
		t.Errorf("phase %s status %q", st.Phase, st.Display())
	}
	pods, _ := l.rt.List(context.Background())
	if len(pods) != 1 || pods[0].Containers[0].State != reconcile.StateExited {
		t.Errorf("container still runs after the deadline: %+v", pods)
	}
	// Nothing starts again, even for a new agent.
	l.m = l.manager()
	l.clock.Advance(time.Hour)
	l.step(d)
	if l.status(d).Phase != reconcile.PodFailed {
		t.Errorf("a new agent restarted the failed pod")
	}
}

func TestImagePullBackOff(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) { s.Containers[0].Image = "example.local/missing:1" })
	n1 := l.step(d)
	if got := l.status(d).Display(); got != reconcile.ReasonErrImagePull {
		t.Errorf("status %q, want ErrImagePull", got)
	}
	l.clock.Set(n1)
	n2 := l.step(d)
	if got := l.status(d).Display(); got != reconcile.ReasonImagePullBackOff || n2.Sub(n1) != 20*time.Second {
		t.Errorf("status %q, retry after %s; want ImagePullBackOff after 20s", got, n2.Sub(n1))
	}
	l.rt.AddImage("example.local/missing:1")
	l.clock.Set(n2)
	l.step(d)
	if got := l.status(d).Display(); got != "Running" {
		t.Errorf("after the image appeared: %q", got)
	}
}

func TestObservePodReasons(t *testing.T) {
	obs := &reconcile.ObservedPod{ID: reconcile.PodID{Namespace: "default", Name: "p"}, Hash: "h", SandboxReady: true,
		Containers: []reconcile.ObservedContainer{{Name: "main", Kind: reconcile.AppContainer, State: reconcile.StateExited, ExitCode: 137, Reason: reconcile.ReasonOOMKilled}}}
	if got := reconcile.ObservePod(obs, nil, nil).Display(); got != reconcile.ReasonOOMKilled {
		t.Errorf("OOM-killed container shows %q", got)
	}
	obs.Containers[0].Reason, obs.Containers[0].ExitCode = "", 2
	if got := reconcile.ObservePod(obs, nil, nil).Display(); got != "Error" {
		t.Errorf("failed container shows %q", got)
	}
	rec := &reconcile.PodRecord{Hash: "h", Containers: map[string]*reconcile.ContainerRecord{"app/main": {Restarts: 4, Waiting: reconcile.ReasonCrashLoopBackOff}}}
	st := reconcile.ObservePod(obs, rec, nil)
	if st.Display() != reconcile.ReasonCrashLoopBackOff || st.Restarts() != 4 {
		t.Errorf("status %q restarts %d", st.Display(), st.Restarts())
	}
	// A record of another spec hash is ignored.
	rec.Hash = "old"
	if st := reconcile.ObservePod(obs, rec, nil); st.Restarts() != 0 {
		t.Errorf("stale record counted: %d restarts", st.Restarts())
	}
}

func TestNeverRestartsNothing(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) { s.RestartPolicy = reconcile.RestartNever })
	l.step(d)
	// Removed outside berth after it ran: failed, not run again.
	if err := l.rt.Remove(d.ID, reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	l.step(d)
	if st := l.status(d); st.Phase != reconcile.PodFailed {
		t.Errorf("phase %s after its container was removed, want Failed", st.Phase)
	}
	// A pod that lost its whole sandbox (as after a reboot) is not made
	// again either.
	l2 := newLifecycle(t)
	d2 := lifecyclePod(t, func(s *reconcile.PodSpec) { s.RestartPolicy = reconcile.RestartNever })
	l2.step(d2)
	if err := l2.rt.RemovePod(context.Background(), d2.ID, 0); err != nil {
		t.Fatal(err)
	}
	l2.rt.ResetCalls()
	l2.step(d2)
	if st := l2.status(d2); st.Phase != reconcile.PodFailed || st.Display() != reconcile.ReasonSandboxChanged {
		t.Errorf("phase %s status %q, want Failed SandboxChanged", st.Phase, st.Display())
	}
	if calls := l2.rt.MutatingCalls(); len(calls) != 0 {
		t.Errorf("the pod was made again: %v", calls)
	}
}

func TestNewSandboxRunsInitContainersAgain(t *testing.T) {
	l := newLifecycle(t)
	d := lifecyclePod(t, func(s *reconcile.PodSpec) {
		s.InitContainers = []reconcile.Container{{Name: "setup", Image: fx.Img, Command: []string{"true"}}}
	})
	for range 3 {
		l.step(d)
	}
	// The sandbox is lost, as in a reboot: the init container runs again
	// before the app container.
	if err := l.rt.RemovePod(context.Background(), d.ID, 0); err != nil {
		t.Fatal(err)
	}
	l.rt.ResetCalls()
	for range 3 {
		l.step(d)
	}
	var starts []string
	for _, c := range l.rt.Calls() {
		if s, ok := strings.CutPrefix(c, "StartContainer "); ok {
			starts = append(starts, s[strings.LastIndex(s, "/")+1:])
		}
	}
	if diff := cmp.Diff([]string{"setup", "main"}, starts); diff != "" {
		t.Errorf("starts after a new sandbox (-want +got):\n%s", diff)
	}
	if st := l.status(d); st.Restarts() != 2 || !st.Ready {
		t.Errorf("restarts %d ready %v, want 2 (one per container) and ready", st.Restarts(), st.Ready)
	}
}

func TestReplacementPullsBeforeRemoving(t *testing.T) {
	l := newLifecycle(t)
	d1 := lifecyclePod(t, func(*reconcile.PodSpec) {})
	l.step(d1)
	d2 := lifecyclePod(t, func(s *reconcile.PodSpec) { s.Containers[0].Image = "example.local/missing:2" })
	l.rt.ResetCalls()
	l.step(d2)
	if calls := l.rt.MutatingCalls(); len(calls) != 0 {
		t.Errorf("the old pod was touched although the new image cannot be had: %v", calls)
	}
	if got := runningPods(l.rt); len(got) != 1 {
		t.Errorf("running %v, want the old pod", got)
	}

}
