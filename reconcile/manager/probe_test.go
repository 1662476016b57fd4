package manager_test

import (
	fx "berth.dev/berth/reconcile/reconciletest"
	"strings"
	"sync"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
)

// execAnswers answers exec probes by command: "live", "ready" and "start"
// succeed while their flag is true, and remembers what ran.
type execAnswers struct {
	mu   sync.Mutex
	ok   map[string]bool
	runs map[string]int
}

func (e *execAnswers) set(cmd string, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ok[cmd] = ok
}

func (e *execAnswers) count(cmd string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.runs[cmd]
}

func (e *execAnswers) answer(id reconcile.PodID, container string, cmd []string) (reconcile.ExecResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := strings.Join(cmd, " ")
	e.runs[c]++
	if e.ok[c] {
		return reconcile.ExecResult{}, nil
	}
	return reconcile.ExecResult{ExitCode: 1}, nil
}

func execProbe(cmd string, period int32) *reconcile.Probe {
	return &reconcile.Probe{
		ProbeHandler:  reconcile.ProbeHandler{Exec: &reconcile.ExecAction{Command: []string{cmd}}},
		PeriodSeconds: period, FailureThreshold: 3,
	}
}

// eventually polls cond for up to five seconds of real time: probes run in
// their own goroutines.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// tick advances the clock by d once the probe goroutines wait on it.
func (l *lifecycle) tick(d time.Duration, waiters int) {
	l.t.Helper()
	eventually(l.t, "probes waiting on the clock", func() bool { return l.clock.Waiters() >= waiters })
	l.clock.Advance(d)
}

// tickUntil advances the clock a period at a time until cond holds.
func (l *lifecycle) tickUntil(what string, cond func() bool) {
	l.t.Helper()
	for range 20 {
		time.Sleep(2 * time.Millisecond)
		if cond() {
			return
		}
		l.tick(10*time.Second, 0)
	}
	l.t.Fatalf("%s: not after 20 periods", what)
}

func TestProbes(t *testing.T) {
	l := newLifecycle(t)
	ans := &execAnswers{ok: map[string]bool{"start": false, "live": true, "ready": true}, runs: map[string]int{}}
	l.rt.ExecFunc = ans.answer
	d := lifecyclePod(t, func(s *reconcile.PodSpec) {
		c := &s.Containers[0]
		c.StartupProbe = execProbe("start", 10)
		c.LivenessProbe = execProbe("live", 10)
		c.LivenessProbe.TerminationGracePeriodSeconds = fx.Ptr(int64(3))
		c.ReadinessProbe = execProbe("ready", 10)
	})
	l.step(d)
	// The startup probe gates the others: two failed startup checks, no
	// liveness or readiness check, not ready.
	eventually(t, "first startup check", func() bool { return ans.count("start") == 1 })
	l.tick(10*time.Second, 3)
	eventually(t, "second startup check", func() bool { return ans.count("start") == 2 })
	if ans.count("live") != 0 || ans.count("ready") != 0 {
		t.Fatalf("liveness or readiness ran before startup succeeded: %v", ans.runs)
	}
	l.step(d)
	if l.status(d).Ready {
		t.Fatal("ready before the startup probe succeeded")
	}
	ans.set("start", true)
	l.tickUntil("started and ready", func() bool {
		l.step(d)
		return l.status(d).Ready
	})

	// Readiness failing: not ready, never restarted.
	ans.set("ready", false)
	l.tickUntil("not ready", func() bool {
		l.step(d)
		return !l.status(d).Ready
	})
	for range 6 {
		l.tick(10*time.Second, 2)
	}
	l.step(d)
	if got := l.status(d).Restarts(); got != 0 {
		t.Fatalf("readiness failure restarted the container (%d restarts)", got)
	}

	// Liveness failing three times: restarted.
	before := ans.count("live")
	ans.set("live", false)
	l.tickUntil("liveness restart", func() bool {
		l.step(d)
		return l.status(d).Restarts() == 1
	})
	if got := ans.count("live") - before; got < 3 {
		t.Errorf("restarted after %d liveness checks, want failureThreshold 3", got)
	}
	if g, ok := l.rt.StopGrace(d.ID, "main"); !ok || g != 3*time.Second {
		t.Errorf("stopped with grace %s (%v), want the probe's 3s", g, ok)
	}
}
