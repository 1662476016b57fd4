package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/reconcile"
)

// User journeys through the real berth binary, one-shot and agent, on a
// private containerd: the one engine decides for plan, apply and the agent
// alike.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// berthBinary builds cmd/berth once per test run.
func berthBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// exe runs the real binary with this host's shared flags.
func (h *host) exe(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	cmd := exec.Command(berthBinary(h.t), h.flags(args)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

func (h *host) flags(args []string) []string {
	return append([]string{args[0],
		"--containerd-address", daemon.Address(), "--namespace", h.ns, "--state-dir", h.state,
		"--network", h.net.Name, "--bridge", h.net.Bridge, "--pod-subnet", h.net.Subnet,
		"--log-level", "warn"}, args[1:]...)
}

// workloadYAML is a workload of kind whose pods sleep arg seconds; spec
// holds the lines of its spec above the selector.
func workloadYAML(kind, name, arg, spec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: %[1]s
metadata: {name: %[2]s}
spec:
%[4]s
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: main
          image: `+testImage+`
          command: ["sh", "-c", "trap 'exit 0' TERM; sleep %[3]s & wait"]
`, kind, name, arg, spec)
}

func deployment(name string, replicas int, arg string, surge, unavail int) string {
	return workloadYAML("Deployment", name, arg, fmt.Sprintf(
		"  replicas: %d\n  strategy:\n    rollingUpdate: {maxSurge: %d, maxUnavailable: %d}", replicas, surge, unavail))
}

func statefulSet(name string, replicas int, arg, strategy string) string {
	return workloadYAML("StatefulSet", name, arg, fmt.Sprintf(
		"  replicas: %d\n  podManagementPolicy: Parallel\n  updateStrategy: %s", replicas, strategy))
}

// statusPods is `berth status -o json`'s pods.
func (h *host) statusPods() []reconcile.PodStatus {
	h.t.Helper()
	code, out, errOut := h.exe("status", "-o", "json")
	if code != 0 {
		h.t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st struct {
		Pods []reconcile.PodStatus `json:"pods"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		h.t.Fatalf("status json: %v\n%s", err, out)
	}
	return st.Pods
}

// hashes returns pod name → spec hash of the pods that run.
func (h *host) hashes() map[string]string {
	out := map[string]string{}
	for name, p := range h.pods() {
		out[name] = p.Hash
	}
	return out
}

var changeLine = regexp.MustCompile(`^(create|replace|delete) +pod ([^\s:]+)`)

// actions collects "action pod" from plan or progress lines.
func actions(text string, progress bool) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		m := changeLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		isProgress := strings.Contains(l, ": done in ")
		if isProgress == progress {
			out = append(out, m[1]+" "+m[2])
		}
	}
	sort.Strings(out)
	return out
}

// TestJourneyApplyRollsDeploymentAsPlanned: berth plan shows the rollout
// step by step; berth apply carries out exactly those actions, rolling the
// Deployment (never more than maxSurge extra pods), and exits once the host
// converged.
func TestJourneyApplyRollsDeploymentAsPlanned(t *testing.T) {
	h := newHost(t)
	h.write("web.yaml", deployment("web", 3, "3600", 1, 0))
	h.commit("web v1")
	h.mustExe("apply", "--repo", h.repo)
	v1 := h.hashes()
	if len(v1) != 3 {
		t.Fatalf("pods after the first apply: %v", v1)
	}

	h.write("web.yaml", deployment("web", 3, "7200", 1, 0))
	h.commit("web v2")
	code, planOut, errOut := h.exe("plan", "--repo", h.repo)
	if code != exitChanges {
		t.Fatalf("plan: exit %d, want %d\n%s\n%s", code, exitChanges, planOut, errOut)
	}
	if !strings.Contains(planOut, "step 2, after:") {
		t.Errorf("plan shows no rollout steps:\n%s", planOut)
	}
	out := h.mustExe("apply", "--repo", h.repo)
	planned, done := actions(out, false), actions(out, true)
	if len(planned) != 6 || strings.Join(planned, ",") != strings.Join(done, ",") {
		t.Errorf("apply's plan %v, actions taken %v: want the same 3 creates and 3 deletes\n%s", planned, done, out)
	}
	if fromPlan := actions(planOut, false); strings.Join(fromPlan, ",") != strings.Join(done, ",") {
		t.Errorf("berth plan said %v, apply did %v", fromPlan, done)
	}
	if !strings.Contains(out, "converged: revision") {
		t.Errorf("apply did not report convergence:\n%s", out)
	}
	v2 := h.hashes()
	if len(v2) != 3 {
		t.Fatalf("pods after the rollout: %v", v2)
	}
	for name := range v2 {
		if _, old := v1[name]; old {
			t.Errorf("old pod %s survived the rollout", name)
		}
	}
	if code, out, _ := h.exe("plan", "--repo", h.repo); code != 0 {
		t.Errorf("plan after apply: exit %d, want 0 (no changes)\n%s", code, out)
	}
}

// TestJourneyStrategiesHeldByApplyAndAgent: an OnDelete StatefulSet and a
// partitioned one keep their old pods under berth apply and under the
// agent alike; a deleted OnDelete pod comes back on the new template.
func TestJourneyStrategiesHeldByApplyAndAgent(t *testing.T) {
	h := newHost(t)
	onDelete := "{type: OnDelete}"
	partitioned := "{type: RollingUpdate, rollingUpdate: {partition: 1}}"
	h.write("a.yaml", statefulSet("od", 2, "3600", onDelete))
	h.write("b.yaml", statefulSet("pt", 2, "3600", partitioned))
	h.commit("v1")
	h.mustExe("apply", "--repo", h.repo)
	v1 := h.hashes()

	h.write("a.yaml", statefulSet("od", 2, "7200", onDelete))
	h.write("b.yaml", statefulSet("pt", 2, "7200", partitioned))
	h.commit("v2")
	out := h.mustExe("apply", "--repo", h.repo)
	if !strings.Contains(out, "OnDelete: keeps its old template") || !strings.Contains(out, "below partition 1") {
		t.Errorf("apply's plan does not say why pods are held:\n%s", out)
	}
	v2 := h.hashes()
	for _, name := range []string{"od-0", "od-1", "pt-0"} {
		if v2[name] != v1[name] {
			t.Errorf("apply replaced %s, which its strategy holds", name)
		}
	}
	if v2["pt-1"] == v1["pt-1"] {
		t.Error("apply did not roll pt-1, above the partition")
	}

	// The agent over the same revision agrees: nothing more changes.
	ag := h.startAgentBinary("--repo", h.repo, "--interval", "1s")
	ag.waitLog(t, "reconciled")
	if got := h.hashes(); fmt.Sprint(got) != fmt.Sprint(v2) {
		t.Errorf("the agent changed held pods: %v, want %v", got, v2)
	}
	ag.stop(t)
}

// TestJourneyMassRemovalRefusedUntilAllowed: a revision that removes most
// of the workloads running here is refused by apply, with nothing changed,
// until --allow-mass-delete.
func TestJourneyMassRemovalRefusedUntilAllowed(t *testing.T) {
	h := newHost(t)
	h.write("a.yaml", sleeper("a", "3600"))
	h.write("b.yaml", sleeper("b", "3600"))
	h.write("c.yaml", sleeper("c", "3600"))
	h.write("arm.yaml", archPod("arm", "kubernetes.io/arch", otherArch()))
	h.commit("three pods, and one for another architecture")
	out := h.mustExe("apply", "--repo", h.repo)
	if !strings.Contains(out, "skip Pod/default/arm (./arm.yaml:1:1): not for this node: nodeSelector kubernetes.io/arch=") {
		t.Errorf("apply does not say which pod is not for this node, and why:\n%s", out)
	}
	before := h.pids()
	os.Remove(filepath.Join(h.repo, "b.yaml"))
	os.Remove(filepath.Join(h.repo, "c.yaml"))
	h.commit("remove two of three")
	code, _, errOut := h.exe("apply", "--repo", h.repo)
	if code != 1 || !strings.Contains(errOut, "would remove 2 of the 3 workloads") || !strings.Contains(errOut, "--allow-mass-delete") {
		t.Fatalf("apply: exit %d, stderr:\n%s", code, errOut)
	}
	if after := h.pids(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a refused revision changed the host: %v → %v", before, after)
	}
	h.mustExe("apply", "--repo", h.repo, "--allow-mass-delete")
	if got := h.pods(); len(got) != 1 {
		t.Errorf("pods after the allowed apply: %d, want 1", len(got))
	}
}

// TestJourneyAgentRollsDeploymentOnPush: a host running only a Deployment
// of 3 gets a new image argument by a push; the agent rolls it (never
// fewer than replicas-maxUnavailable running) to all-new pods.
func TestJourneyAgentRollsDeploymentOnPush(t *testing.T) {
	h := newHost(t)
	h.write("web.yaml", deployment("web", 3, "3600", 1, 1))
	h.commit("web v1")
	ag := h.startAgentBinary("--repo", h.repo, "--interval", "1s", "--jitter", "0")
	v1 := h.waitPods(t, 3, nil)

	h.write("web.yaml", deployment("web", 3, "7200", 1, 1))
	h.commit("web v2")
	minRunning := 3
	deadline := time.Now().Add(90 * time.Second)
	for {
		pods := h.statusPods()
		running, fresh := 0, 0
		for _, p := range pods {
			if p.Phase == reconcile.PodRunning && p.Ready {
				running++
			}
			if _, old := v1[p.ID.Name]; !old && p.Ready {
				fresh++
			}
		}
		minRunning = min(minRunning, running)
		if fresh == 3 && len(pods) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Deployment did not roll to 3 new pods; status: %+v\nagent log:\n%s", pods, ag.out.String())
		}
		time.Sleep(50 * time.Millisecond) // poll the host, as a user watching berth status would
	}
	if minRunning < 2 {
		t.Errorf("only %d pods ready during the rollout, want at least replicas-maxUnavailable = 2", minRunning)
	}
	if strings.Contains(ag.out.String(), "refused") {
		t.Errorf("the agent refused a rollout:\n%s", ag.out.String())
	}
	ag.stop(t)
}

// agentProc is the real berth agent binary running for a host.
type agentProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func (h *host) startAgentBinary(args ...string) *agentProc {
	h.t.Helper()
	cmd := exec.Command(berthBinary(h.t), h.flags(append([]string{"agent"}, args...))...)
	cmd.Args = append(cmd.Args, "--log-level", "info")
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, out: buf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(a.done) }()
	h.t.Cleanup(func() { a.stop(h.t) })
	return a
}

func (a *agentProc) stop(t *testing.T) {
	select {
	case <-a.done:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(30 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
		t.Errorf("the agent did not stop on SIGTERM")
	}
}

func (a *agentProc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(a.out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never logged %q:\n%s", s, a.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPods waits until n pods run and returns their names → hash.
func (h *host) waitPods(t *testing.T, n int, ag *agentProc) map[string]string {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ready := 0
		for _, p := range h.statusPods() {
			if p.Ready {
				ready++
			}
		}
		if hs := h.hashes(); ready == n && len(hs) == n {
			return hs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods never ran", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *host) mustExe(args ...string) string {
	h.t.Helper()
	code, out, errOut := h.exe(args...)
	return h.must(args, code, out, errOut)
}

// agentStatus waits until the running agent's status, as berth status
// shows it, satisfies cond.
func (h *host) waitAgentStatus(t *testing.T, ag *agentProc, what string, cond func(*agent.Status) bool) *agent.Status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, out, _ := h.exe("status", "-o", "json")
		var st struct {
			Agent *agent.Status `json:"agent"`
		}
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.Agent != nil && cond(st.Agent) {
			return st.Agent
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent never reported %s; status:\n%s\nagent log:\n%s", what, out, ag.out.String())
		}
		time.Sleep(50 * time.Millisecond) // poll the host, as a user watching berth status would
	}
}

// TestJourneyAgentStartsWithoutItsDirectory: an agent whose repository
// directory is missing when it starts (a disk not mounted yet) starts,
// serves its API, keeps the last good revision running, and applies the
// repository once the directory is back.
func TestJourneyAgentStartsWithoutItsDirectory(t *testing.T) {
	h := newHost(t)
	h.write("web.yaml", deployment("web", 1, "3600", 1, 0))
	h.commit("web v1")
	args := []string{"--repo", h.repo, "--interval", "1s", "--jitter", "0", "--health-settle", "1s"}
	ag := h.startAgentBinary(args...)
	h.waitPods(t, 1, ag)
	good := h.waitAgentStatus(t, ag, "a good revision", func(s *agent.Status) bool { return s.LastGood != nil }).LastGood.Commit
	ag.stop(t)
	pids := h.pids()

	away := h.repo + ".away"
	if err := os.Rename(h.repo, away); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Rename(away, h.repo) }) // for the cleanup apply
	ag = h.startAgentBinary(args...)
	st := h.waitAgentStatus(t, ag, "the last good revision, offline", func(s *agent.Status) bool {
		return s.Applied != nil && s.FetchError != nil && s.Offline
	})
	if st.Applied.Commit != good {
		t.Fatalf("applied %s while the directory is missing, want the last good %s", st.Applied.Commit, good)
	}
	if got := h.pids(); !maps.Equal(got, pids) {
		t.Fatalf("pods changed while the directory was missing: %v, before %v", got, pids)
	}

	if err := os.Rename(away, h.repo); err != nil {
		t.Fatal(err)
	}
	h.write("api.yaml", deployment("api", 1, "3600", 1, 0))
	h.commit("api")
	h.waitPods(t, 2, ag)
	got := h.pids()
	for c, pid := range pids {
		if got[c] != pid {
			t.Errorf("%s was restarted: pid %d, before %d", c, got[c], pid)
		}
	}
	ag.stop(t)
}
