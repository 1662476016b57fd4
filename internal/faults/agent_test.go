//go:build faults

package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
)

// agentProc is berth agent running for a host, its output kept.
type agentProc struct {
	cmd  *exec.Cmd
	out  *testenv.SyncBuffer
	done chan struct{}
}

// startAgent runs berth agent on the host's repository until the test
// ends (stopped before the host's cleanup applies), with env added to
// its environment.
func (h *host) startAgent(env ...string) *agentProc {
	h.t.Helper()
	cmd := h.command(context.Background(), "agent", "--repo", h.repo, "--interval", "2s", "--jitter", "0",
		"--health-settle", "2s", "--health-deadline", "2m")
	cmd.Args = append(cmd.Args, "--log-level", "info")
	cmd.Env = append(os.Environ(), env...)
	a := &agentProc{cmd: cmd, out: &testenv.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = a.out, a.out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(a.done) }()
	h.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-a.done
			h.t.Error("the agent did not stop on SIGTERM")
		}
		if h.t.Failed() || testing.Verbose() {
			h.t.Logf("agent log:\n%s", a.out.String())
		}
	})
	return a
}

// agentStatus is the running agent's status as berth status shows it;
// nil while no agent answers.
func (h *host) agentStatus() *agent.Status {
	out, err := h.command(context.Background(), "status", "-o", "json").Output()
	if err != nil {
		return nil
	}
	var st struct {
		Agent *agent.Status `json:"agent"`
	}
	if json.Unmarshal(out, &st) != nil {
		return nil
	}
	return st.Agent
}

// settled waits until the agent has found the revision it fetched good
// and the host runs rev's pods, each once, with nothing left over, and
// returns the agent's status then.
func (h *host) settled(rev string, within time.Duration) *agent.Status {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := h.agentStatus()
		var problems []string
		switch {
		case st == nil:
			problems = []string{"no agent status"}
		case st.Fetched == nil || st.LastGood == nil || st.LastGood.Commit != st.Fetched.Commit:
			problems = []string{fmt.Sprintf("the fetched revision is not good yet (fetched %+v, good %+v, checking %+v, error %+v)",
				st.Fetched, st.LastGood, st.Checking, st.LastError)}
		default:
			problems = h.problems(rev)
		}
		if len(problems) == 0 {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("the agent did not settle on %s within %s:\n  %s", rev, within, strings.Join(problems, "\n  "))
		}
		time.Sleep(200 * time.Millisecond) // poll the host as an operator would
	}
}

// TestKillContainerdUnderAgent kills containerd at random points of the
// agent's rollouts and starts it again, at once or after an outage of up
// to 15 s. Every time, the agent settles on the new revision: it is not
// rolled back or quarantined (the runtime's absence is not the revision's
// fault), the desired pods run once each, nothing leaks, and no container
// restarts more than CrashLoopBackOff allows.
func TestKillContainerdUnderAgent(t *testing.T) {
	h := newHost(t, "")
	full := h.learn()
	h.startAgent()
	h.settled("A", 2*time.Minute)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 56))
	outages := []time.Duration{0, 2 * time.Second, 15 * time.Second}
	n := trials(10)
	rev := "A"
	for i := range n {
		rev = map[string]string{"A": "B", "B": "A"}[rev]
		h.write(revisions[rev])
		// The agent sees the change after its watcher's debounce, then
		// takes about as long as an apply.
		delay := time.Duration(rng.Int64N(int64(full + time.Second)))
		time.Sleep(delay) // the fault's point in the rollout, not a wait for a condition
		if err := daemon.Kill(); err != nil {
			t.Fatal(err)
		}
		outage := outages[i%len(outages)]
		time.Sleep(outage) // containerd stays down this long
		if err := daemon.Restart(); err != nil {
			t.Fatalf("trial %d: restart containerd: %v", i, err)
		}
		back := time.Now()
		st := h.settled(rev, 3*time.Minute)
		if len(st.BadRevisions) > 0 {
			t.Fatalf("trial %d (kill after %s, down %s): revisions quarantined: %+v", i, delay, outage, st.BadRevisions)
		}
		for _, p := range st.Pods {
			// CrashLoopBackOff allows a restart at 0, 10, 30, 70 s …
			// of a loop; a loop without backoff restarts hundreds of
			// times a minute.
			if r := p.Restarts(); r > 3 {
				t.Errorf("trial %d: pod %s restarted %d times", i, p.ID, r)
			}
		}
		t.Logf("trial %d: killed %s into the rollout, down %s, settled %s after the restart",
			i, delay.Round(time.Millisecond), outage, time.Since(back).Round(100*time.Millisecond))
	}
}

// TestWorkerPanicUnderAgent panics the real agent's worker of one pod
// (bin/berth-faults, built with the faults tag, panics making the sandbox
// of the pod BERTH_FAULT_PANIC_POD names): the agent keeps running and
// serving its API, the pod is shown failed with reason WorkerPanic, and
// the other pods run, and go on being managed: a change to one of them
// is carried out after the panic.
func TestWorkerPanicUnderAgent(t *testing.T) {
	bin := os.Getenv("BERTH_FAULTS_BIN")
	if bin == "" {
		t.Fatal("BERTH_FAULTS_BIN is not set: run make test-faults, which builds bin/berth-faults")
	}
	h := newHost(t, "")
	h.bin = bin // without BERTH_FAULT_PANIC_POD, the same as bin/berth
	h.write(map[string]string{"good.yaml": pod("good", "1"), "bad.yaml": pod("bad", "1"), "other.yaml": pod("other", "1")})
	a := h.startAgent("BERTH_FAULT_PANIC_POD=bad")
	// waitPods waits until the agent shows bad failed by the panic and
	// good and other running with the given VALUE of good.
	waitPods := func(good string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			select {
			case <-a.done:
				t.Fatalf("the agent exited after a pod worker's panic:\n%s", a.out.String())
			default:
			}
			var problems []string
			st := h.agentStatus()
			if st == nil {
				problems = append(problems, "no agent status")
			} else {
				phase := map[string]string{}
				for _, p := range st.Pods {
					phase[p.ID.Name] = string(p.Phase) + "/" + p.Reason
				}
				if phase["bad"] != string(reconcile.PodFailed)+"/"+reconcile.ReasonWorkerPanic {
					problems = append(problems, fmt.Sprintf("bad is %q, want Failed/WorkerPanic", phase["bad"]))
				}
			}
			o := h.observe()
			for _, name := range []string{"good", "other"} {
				if o.running[name] == 0 {
					problems = append(problems, name+" does not run")
				}
			}
			if _, ok := o.sandboxes["bad"]; ok {
				problems = append(problems, "bad has a sandbox")
			}
			if len(problems) == 0 && good != "" {
				env, err := h.podEnv("good", "VALUE")
				if err != nil || env != good {
					problems = append(problems, fmt.Sprintf("good has VALUE %q (%v), want %q", env, err, good))
				}
			}
			if len(problems) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the panic:\n  %s\nagent log:\n%s", strings.Join(problems, "\n  "), a.out.String())
			}
			time.Sleep(200 * time.Millisecond) // poll the host as an operator would
		}
	}
	waitPods("1")
	if !strings.Contains(a.out.String(), "injected by BERTH_FAULT_PANIC_POD") {
		t.Errorf("the agent's log does not show the panic:\n%s", a.out.String())
	}
	// The other pods' workers, and the engine, go on: a change to good
	// replaces it.
	h.write(map[string]string{"good.yaml": pod("good", "2"), "bad.yaml": pod("bad", "1"), "other.yaml": pod("other", "1")})
	waitPods("2")
}

// podEnv is the value of the environment variable key in the running app
// container of the named pod.
func (h *host) podEnv(name, key string) (string, error) {
	pid := h.observe().running[name]
	if pid == 0 {
		return "", fmt.Errorf("%s does not run", name)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return "", err
	}
	for _, kv := range strings.Split(string(b), "\x00") {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("no %s in the environment of %s", key, name)
}
