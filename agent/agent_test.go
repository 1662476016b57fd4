package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	"berth.dev/berth/runtime/fake"
	"berth.dev/berth/source"
)

const image = "example.local/app:1"

// repo is an in-memory repository: commits map to the pods they declare.
// It implements Source; Fetch returns the head, or fails while down is set.
type repo struct {
	mu      sync.Mutex
	commits map[string][]reconcile.Object
	state   string // for expansion
	head    string
	down    bool
	fetches atomic.Int64
	block   chan struct{} // when set, Fetch waits for it
}

func newRepo() *repo { return &repo{commits: map[string][]reconcile.Object{}} }

// commit adds a commit declaring pods name→shell command and makes it
// the head.
func (r *repo) commit(id string, pods map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var objs []reconcile.Object
	names := make([]string, 0, len(pods))
	for n := range pods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		objs = append(objs, shellPod(n, pods[n]))
	}
	r.commits[id] = objs
	r.head = id
}

// shellPod is a Pod whose one container runs cmd in a shell.
func shellPod(name, cmd string) reconcile.Object {
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default"},
		Pod: &reconcile.PodSpec{
			RestartPolicy: "Always",
			Containers:    []reconcile.Container{{Name: "main", Image: image, ImagePullPolicy: "IfNotPresent", Command: []string{"sh", "-c", cmd}}},
		},
	}
}

func (r *repo) setDown(v bool) { r.mu.Lock(); r.down = v; r.mu.Unlock() }

func (r *repo) rev(id string) *source.Revision {
	return &source.Revision{Commit: id, URL: "https://git.example/repo.git", Ref: "refs/heads/main"}
}

func (r *repo) Fetch(ctx context.Context) (*source.Revision, bool, error) {
	r.fetches.Add(1)
	r.mu.Lock()
	block := r.block
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, false, errors.New("fetch https://git.example/repo.git: connection refused")
	}
	return r.rev(r.head), true, nil
}

func (r *repo) Revision(ctx context.Context, id string) (*source.Revision, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.commits[id]; !ok {
		return nil, fmt.Errorf("%s: %w", id, source.ErrRefNotFound)
	}
	return r.rev(id), nil
}

func (r *repo) URL() string { return "https://git.example/repo.git" }

func (r *repo) load(rev *source.Revision) (*Loaded, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	objs, ok := r.commits[rev.Commit]
	if !ok {
		return nil, &ValidationError{Commit: rev.Commit, Problems: []string{"./x.yaml:1:1: broken"}}
	}
	pods, err := reconcile.Expand(objs, rev.Commit, reconcile.ExpandOptions{StateDir: r.state})
	if err != nil {
		return nil, err
	}
	return &Loaded{Objects: objs, Pods: pods}, nil
}

// harness runs an agent against a repo and a fake runtime.
type harness struct {
	t      *testing.T
	repo   *repo
	rt     *fake.Runtime
	state  string
	a      *Agent
	cancel context.CancelFunc
	done   chan struct{}
	tweak  func(*Config)
	// manager is kept for the tests that name it; every harness runs
	// the pod manager, berth's one engine.
	manager bool
	// allowMass is the pod manager's --allow-mass-delete.
	allowMass bool
	// backoff is the pod manager's CrashLoopBackOff, initial and maximum
	// (default 10 and 20 ms).
	backoff time.Duration
	m       *manager.Manager
}

func newHarness(t *testing.T, r *repo, rt *fake.Runtime, state string, tweak func(*Config)) *harness {
	t.Helper()
	return startHarness(&harness{t: t, repo: r, rt: rt, state: state, tweak: tweak})
}

func startHarness(h *harness) *harness {
	h.t.Helper()
	if h.state == "" {
		h.state = h.t.TempDir()
	}
	h.start()
	return h
}

// eventually waits until cond holds for the agent's status.
func (h *harness) eventually(what string, cond func(Status) bool) Status {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := h.a.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; status %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) start() {
	h.t.Helper()
	cfg := Config{
		Source:         h.repo,
		Load:           h.repo.load,
		Observer:       h.rt,
		StateDir:       h.state,
		Interval:       time.Hour,
		Resync:         -1,
		HealthSettle:   time.Nanosecond,
		HealthPoll:     time.Hour,
		HealthDeadline: time.Minute,
		Logger:         hclog.New(&hclog.LoggerOptions{Output: testWriter{h.t}, Level: hclog.Debug}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan struct{})
	cfg.HealthPoll = 10 * time.Millisecond
	if h.tweak != nil {
		h.tweak(&cfg)
	}
	// The one engine, as berth agent runs it.
	backoff, maxBackoff := 10*time.Millisecond, 20*time.Millisecond
	if h.backoff > 0 {
		backoff, maxBackoff = h.backoff, h.backoff
	}
	m := manager.New(h.rt, manager.Options{
		StateDir: h.state, Logger: cfg.Logger, ResyncInterval: 10 * time.Millisecond,
		InitialBackoff: backoff, MaxBackoff: maxBackoff,
		Safety: reconcile.Safety{AllowMassDelete: h.allowMass},
	})
	cfg.Reconciler = &ManagerReconciler{Manager: m}
	cfg.PodStatuses, cfg.Workloads = m.Pods, m.Workloads
	if cfg.Interruptions == nil { // a test may stand in for the runtime's
		cfg.Interruptions = m.Interruptions
	}
	h.m = m
	a, err := New(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.a = a
	passed := a.Passed()
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = m.Run(ctx) }()
	go func() { defer close(h.done); _ = a.Run(ctx); <-mdone }()
	h.wait(passed)
	h.settle()
	h.t.Cleanup(h.stop)
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

func (h *harness) wait(ch <-chan struct{}) {
	h.t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		h.t.Fatal("no pass within 10s")
	}
}

// pass rings trigger and waits for the pass it causes.
func (h *harness) pass(tr Trigger) {
	h.t.Helper()
	ch := h.a.Passed()
	h.a.Trigger(tr)
	h.wait(ch)
	h.settle()
}

// settle waits until the pod manager has carried out what the agent
// handed it (or gives up after a while: the test's assertions decide).
func (h *harness) settle() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = h.m.WaitConverged(ctx)
}

// running returns pod name → revision of the pods in the runtime.
func (h *harness) running() map[string]string {
	h.t.Helper()
	obs, err := h.rt.List(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range obs {
		out[p.ID.Name] = p.Revision
	}
	return out
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

const sleep = "sleep 1000"

func TestApplyThenRestartChangesNothing(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep, "db": sleep, "cache": sleep})
	rt := fake.New(image)
	h := newHarness(t, r, rt, "", nil)
	if diff := cmp.Diff(map[string]string{"web": "aaaa", "db": "aaaa", "cache": "aaaa"}, h.running()); diff != "" {
		t.Fatalf("pods (-want +got):\n%s", diff)
	}
	h.pass(TriggerHealth)
	st := h.a.Status()
	if st.LastGood == nil || st.LastGood.Commit != "aaaa" || st.Applied == nil || st.Applied.Commit != "aaaa" {
		t.Fatalf("status after health check: good %+v applied %+v", st.LastGood, st.Applied)
	}

	// Stopping the agent leaves the pods; a new agent changes nothing.
	h.stop()
	if len(h.running()) != 3 {
		t.Fatalf("pods after stop: %v", h.running())
	}
	rt.ResetCalls()
	h2 := newHarness(t, r, rt, h.state, nil)
	h2.pass(TriggerResync)
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Fatalf("restart made mutating calls: %v", m)
	}
	if st := h2.a.Status(); st.Checking != nil || len(st.Pods) != 3 {
		t.Fatalf("status after restart: checking %+v, %d pods", st.Checking, len(st.Pods))
	}
}

func TestGitOutageAcrossRestartChangesNoPod(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep, "db": sleep})
	rt := fake.New(image)
	h := newHarness(t, r, rt, "", nil)
	h.pass(TriggerHealth) // aaaa becomes good

	// A new commit lands while the host runs aaaa, then Git goes away.
	r.commit("bbbb", map[string]string{"web": sleep})
	r.setDown(true)
	rt.ResetCalls()
	h.pass(TriggerPoll)
	h.stop()
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Fatalf("outage made mutating calls: %v", m)
	}

	// Restart without network: nothing changes, the status says offline.
	h2 := newHarness(t, r, rt, h.state, nil)
	h2.pass(TriggerPoll)
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Fatalf("offline restart made mutating calls: %v", m)
	}
	st := h2.a.Status()
	if !st.Offline || st.FetchError == nil || st.Applied.Commit != "aaaa" {
		t.Fatalf("status: offline %v fetchError %+v applied %+v", st.Offline, st.FetchError, st.Applied)
	}
	h2.stop()

	// After a reboot the pods are gone: the offline agent brings back the
	// last good revision, and prunes nothing that runs.
	rt2 := fake.New(image)
	_ = rt2.CreateSandbox(context.Background(), &reconcile.DesiredPod{ID: reconcile.PodID{Namespace: "default", Name: "stray"}, Hash: "x", Revision: "old"})
	newHarness(t, r, rt2, h.state, nil)
	if diff := cmp.Diff(map[string]string{"web": "aaaa", "db": "aaaa", "stray": "old"}, func() map[string]string {
		h := &harness{t: t, rt: rt2}
		return h.running()
	}()); diff != "" {
		t.Fatalf("pods after offline reboot (-want +got):\n%s", diff)
	}
}

func TestMassDeletionRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		next      map[string]string
		allow     bool
		wantPods  int
		wantError bool
	}{
		{"more than half", map[string]string{"a": sleep}, false, 4, true},
		{"all", map[string]string{}, false, 4, true},
		{"half is allowed", map[string]string{"a": sleep, "b": sleep}, false, 2, false},
		{"all with opt-in", map[string]string{}, true, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo()
			r.commit("aaaa", map[string]string{"a": sleep, "b": sleep, "c": sleep, "d": sleep})
			rt := fake.New(image)
			h := startHarness(&harness{t: t, repo: r, rt: rt, allowMass: tc.allow})
			r.commit("bbbb", tc.next)
			h.pass(TriggerWebhook)
			if got := len(h.running()); got != tc.wantPods {
				t.Fatalf("%d pods run, want %d", got, tc.wantPods)
			}
			st := h.a.Status()
			if tc.wantError != (st.LastError != nil && st.LastError.Kind == "safety" && st.LastError.Commit == "bbbb") {
				t.Fatalf("last error %+v", st.LastError)
			}
		})
	}
}

func TestUnhealthyRevisionRolledBackAndNotRetried(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep, "db": sleep})
	rt := fake.New(image)
	h := newHarness(t, r, rt, "", nil)
	h.pass(TriggerHealth)

	// bbbb replaces web with a container that crashes at once.
	r.commit("bbbb", map[string]string{"web": "exit 3", "db": sleep})
	h.pass(TriggerWebhook)
	// The pod manager carries the rollback out while the agent records it.
	st := h.eventually("the rollback recorded", func(st Status) bool {
		return len(st.BadRevisions) == 1 && st.Applied != nil && st.Applied.Commit == "aaaa"
	})
	if got := h.running()["web"]; got != "aaaa" {
		t.Fatalf("web runs revision %q after the health check, want a rollback to aaaa", got)
	}
	if len(st.BadRevisions) != 1 || st.BadRevisions[0].Commit != "bbbb" || st.LastGood.Commit != "aaaa" || st.Applied.Commit != "aaaa" {
		t.Fatalf("status: bad %+v good %+v applied %+v", st.BadRevisions, st.LastGood, st.Applied)
	}
	if st.LastError == nil || st.LastError.Kind != "health" || st.LastError.Commit != "bbbb" {
		t.Fatalf("last error %+v", st.LastError)
	}

	// The bad head is not tried again, not even by a restarted agent.
	rt.ResetCalls()
	h.pass(TriggerPoll)
	h.stop()
	h2 := newHarness(t, r, rt, h.state, nil)
	h2.pass(TriggerPoll)
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Fatalf("bad revision retried: %v", m)
	}
	if st := h2.a.Status(); st.LastError == nil || st.LastError.Kind != "bad-revision" {
		t.Fatalf("last error after restart %+v", st.LastError)
	}

	// A newer commit is applied.
	r.commit("cccc", map[string]string{"web": sleep + " ", "db": sleep})
	h2.pass(TriggerWebhook)
	if got := h2.running()["web"]; got != "cccc" {
		t.Fatalf("web runs %q, want cccc", got)
	}
}

func TestHealthDeadline(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	rt := fake.New(image)
	h := newHarness(t, r, rt, "", func(c *Config) { c.HealthSettle = time.Hour; c.HealthDeadline = time.Nanosecond })
	st := h.a.Status()
	if st.LastError == nil || st.LastError.Kind != "health" || len(st.BadRevisions) != 1 {
		t.Fatalf("status: last error %+v, bad %+v", st.LastError, st.BadRevisions)
	}
	if st.LastGood != nil {
		t.Fatalf("a revision that never became ready is good: %+v", st.LastGood)
	}
}

func TestSuspendAndPin(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	rt := fake.New(image)
	h := newHarness(t, r, rt, "", nil)
	if err := WriteControl(h.state, Control{Suspended: true}); err != nil {
		t.Fatal(err)
	}
	r.commit("bbbb", map[string]string{"web": sleep + " "})
	h.pass(TriggerControl)
	h.pass(TriggerWebhook)
	if got := h.running()["web"]; got != "aaaa" || !h.a.Status().Suspended {
		t.Fatalf("suspended agent applied %q", got)
	}
	if err := WriteControl(h.state, Control{}); err != nil {
		t.Fatal(err)
	}
	h.pass(TriggerControl)
	if got := h.running()["web"]; got != "bbbb" {
		t.Fatalf("resumed agent runs %q, want bbbb", got)
	}
	if err := WriteControl(h.state, Control{Pin: "aaaa"}); err != nil {
		t.Fatal(err)
	}
	h.pass(TriggerControl)
	if got := h.running()["web"]; got != "aaaa" {
		t.Fatalf("pinned agent runs %q, want aaaa", got)
	}
	if st := h.a.Status(); st.Pin != "aaaa" || st.Fetched.Commit != "bbbb" {
		t.Fatalf("status pin %q fetched %+v", st.Pin, st.Fetched)
	}
}

func TestRefusedRevisionsChangeNothing(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	rt := fake.New(image)
	h := newHarness(t, r, rt, "", func(c *Config) {
		c.Verify = func(ctx context.Context, rev *source.Revision) error {
			if rev.Commit == "cccc" {
				return errors.New("commit cccc is not signed")
			}
			return nil
		}
	})
	for _, tc := range []struct{ commit, kind string }{{"bbbb", "validate"}, {"cccc", "verify"}} {
		if tc.kind == "validate" {
			r.mu.Lock()
			r.head = tc.commit // no pods registered: the loader fails
			r.mu.Unlock()
		} else {
			r.commit(tc.commit, map[string]string{"web": sleep + " "})
		}
		rt.ResetCalls()
		h.pass(TriggerWebhook)
		if m := rt.MutatingCalls(); len(m) != 0 {
			t.Fatalf("%s: refused revision made calls %v", tc.commit, m)
		}
		st := h.a.Status()
		if st.LastError == nil || st.LastError.Kind != tc.kind || st.LastError.Commit != tc.commit {
			t.Fatalf("%s: last error %+v", tc.commit, st.LastError)
		}
	}
}

func TestTriggersCollapse(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	h := newHarness(t, r, fake.New(image), "", nil)
	block := make(chan struct{})
	r.mu.Lock()
	r.block = block
	r.mu.Unlock()
	before := r.fetches.Load()
	first := h.a.Passed()
	h.a.Trigger(TriggerPoll)
	for r.fetches.Load() == before { // the pass is fetching
		time.Sleep(time.Millisecond)
	}
	for range 100 {
		h.a.Trigger(TriggerWebhook)
	}
	r.mu.Lock()
	r.block = nil
	r.mu.Unlock()
	close(block)
	h.wait(first)
	// The collapsed triggers make one more pass, with a fetch.
	deadline := time.Now().Add(10 * time.Second)
	for r.fetches.Load()-before < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// A pass that does not fetch is the barrier: any further fetch from
	// the 100 triggers would have happened before it.
	h.pass(TriggerResync)
	if n := r.fetches.Load() - before; n != 2 {
		t.Fatalf("%d fetches for 101 triggers, want 2 (one running, the rest collapsed)", n)
	}
}

func TestNextFetchBackoff(t *testing.T) {
	a := &Agent{cfg: Config{Interval: time.Minute, Jitter: 0.1, MinBackoff: 5 * time.Second, MaxBackoff: 5 * time.Minute}}
	for _, tc := range []struct {
		failures int
		base     time.Duration
	}{{0, time.Minute}, {1, 5 * time.Second}, {2, 10 * time.Second}, {4, 40 * time.Second}, {7, 5 * time.Minute}, {30, 5 * time.Minute}} {
		a.failures = tc.failures
		for range 20 {
			d := a.nextFetch()
			if d < tc.base || d >= tc.base+tc.base/10 {
				t.Fatalf("%d failures: next fetch in %s, want in [%s, %s)", tc.failures, d, tc.base, tc.base+tc.base/10)
			}
		}
	}
}

func TestManagerCrashLoopRolledBack(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep, "db": sleep})
	rt := fake.New(image)
	// Slow image checks: the manager replaces pods well after the pass
	// that handed it the revision ended.
	rt.Pull = func(ctx context.Context, image string) error {
		select {
		case <-time.After(50 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h := startHarness(&harness{t: t, repo: r, rt: rt, manager: true})
	h.eventually("aaaa good", func(st Status) bool { return st.LastGood != nil && st.LastGood.Commit == "aaaa" })

	r.commit("bbbb", map[string]string{"web": "exit 3", "db": sleep})
	h.a.Trigger(TriggerWebhook)
	st := h.eventually("rollback", func(st Status) bool { return len(st.BadRevisions) == 1 })
	if st.BadRevisions[0].Commit != "bbbb" || !strings.Contains(st.BadRevisions[0].Reason, "crash-looping") {
		t.Fatalf("bad revisions %+v", st.BadRevisions)
	}
	h.eventually("web back on aaaa", func(st Status) bool {
		return h.running()["web"] == "aaaa" && st.Applied.Commit == "aaaa" && st.LastGood.Commit == "aaaa"
	})
	// The manager replaced web after the rollback pass; with no trigger
	// but the agent's own, the status shows it too.
	h.eventually("status shows web on aaaa and ready", func(st Status) bool {
		for _, p := range st.Pods {
			if p.ID.Name == "web" {
				return p.Revision == "aaaa" && p.Ready
			}
		}
		return false
	})
	if st := h.a.Status(); len(st.BadRevisions) != 1 || st.LastGood.Commit != "aaaa" {
		t.Fatalf("after following the rollback: bad %+v, good %+v", st.BadRevisions, st.LastGood)
	}

	// Restarted over healthy pods, agent and manager change nothing.
	h.stop()
	rt.ResetCalls()
	h2 := startHarness(&harness{t: t, repo: r, rt: rt, state: h.state, manager: true})
	h2.pass(TriggerPoll)
	for range 3 { // several manager passes, each handing every worker its pod
		select {
		case <-h2.m.Passed():
		case <-time.After(10 * time.Second):
			t.Fatal("the manager made no pass")
		}
	}
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Fatalf("restart made mutating calls: %v", m)
	}
}

// TestRuntimeOutageNotBlamedOnRevision: starts of a new revision's
// container fail while the runtime is interrupted (containerd restarting
// under the agent); the revision is not rolled back for the restarts
// that cost, and becomes good once its pods run. The same failures with
// no interruption are the revision's, and roll it back.
func TestRuntimeOutageNotBlamedOnRevision(t *testing.T) {
	for _, interrupted := range []bool{true, false} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			r := newRepo()
			r.commit("aaaa", map[string]string{"web": sleep})
			rt := fake.New(image)
			var interruptions atomic.Uint64
			// Failed starts 150 ms apart: the agent checks health every
			// 10 ms, so it sees each interruption before the next
			// failure, as it would see containerd's.
			h := startHarness(&harness{t: t, repo: r, rt: rt, backoff: 150 * time.Millisecond,
				tweak: func(c *Config) { c.Interruptions = interruptions.Load }})
			h.eventually("aaaa good", func(st Status) bool { return st.LastGood != nil && st.LastGood.Commit == "aaaa" })

			var failures atomic.Int64
			rt.Fail = func(call, subject string) error {
				if call != "StartContainer" || failures.Load() >= 6 {
					return nil
				}
				failures.Add(1)
				if interrupted {
					interruptions.Add(1) // the exit stream broke as containerd went away
				}
				return errors.New("create task: connection error: containerd is unavailable")
			}
			r.commit("bbbb", map[string]string{"web": sleep + " # v2"})
			h.a.Trigger(TriggerWebhook)
			if !interrupted {
				st := h.eventually("rollback", func(st Status) bool { return len(st.BadRevisions) == 1 })
				if st.BadRevisions[0].Commit != "bbbb" || !strings.Contains(st.BadRevisions[0].Reason, "crash-looping") {
					t.Fatalf("bad revisions %+v", st.BadRevisions)
				}
				return
			}
			st := h.eventually("bbbb good", func(st Status) bool {
				return len(st.BadRevisions) > 0 || st.LastGood != nil && st.LastGood.Commit == "bbbb"
			})
			if len(st.BadRevisions) > 0 {
				t.Fatalf("the revision was blamed for the runtime's interruptions: %+v", st.BadRevisions)
			}
			if failures.Load() < 6 {
				t.Fatalf("only %d starts failed", failures.Load())
			}
			if got := h.running()["web"]; got != "bbbb" {
				t.Fatalf("web runs %q", got)
			}
		})
	}
}

func TestManagerNeverReadyRolledBack(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	rt := fake.New(image)
	rt.ExecFunc = func(id reconcile.PodID, container string, cmd []string) (reconcile.ExecResult, error) {
		return reconcile.ExecResult{ExitCode: 1}, nil
	}
	h := startHarness(&harness{t: t, repo: r, rt: rt, manager: true, tweak: func(c *Config) { c.HealthDeadline = 300 * time.Millisecond }})
	h.eventually("aaaa good", func(st Status) bool { return st.LastGood != nil && st.LastGood.Commit == "aaaa" })

	r.commit("bbbb", map[string]string{"web": sleep + " "})
	r.mu.Lock()
	r.commits["bbbb"][0].Pod.Containers[0].ReadinessProbe = &reconcile.Probe{
		ProbeHandler: reconcile.ProbeHandler{Exec: &reconcile.ExecAction{Command: []string{"false"}}}, PeriodSeconds: 1,
	}
	r.mu.Unlock()
	h.a.Trigger(TriggerWebhook)
	st := h.eventually("rollback", func(st Status) bool { return len(st.BadRevisions) == 1 })
	if st.BadRevisions[0].Commit != "bbbb" || !strings.Contains(st.BadRevisions[0].Reason, "not ready within") {
		t.Fatalf("bad revisions %+v", st.BadRevisions)
	}
	h.eventually("web back on aaaa and ready", func(st Status) bool {
		rev, ready := "", false
		for _, p := range st.Pods {
			if p.ID.Name == "web" {
				rev, ready = p.Revision, p.Ready
			}
		}
		return rev == "aaaa" && ready && st.Applied.Commit == "aaaa"
	})
}

// rewritten is a repo whose history was rewritten between any two commits.
type rewritten struct{ *repo }

func (rewritten) IsAncestor(ctx context.Context, older, newer string) (bool, error) {
	return older == newer, nil
}

func TestForcePushLogged(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	var logs strings.Builder
	var mu sync.Mutex
	h := startHarness(&harness{t: t, repo: r, rt: fake.New(image), tweak: func(c *Config) {
		c.Source = rewritten{r}
		c.Logger = hclog.New(&hclog.LoggerOptions{Output: writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		})})
	}})
	r.commit("bbbb", map[string]string{"web": sleep + " "})
	h.pass(TriggerWebhook)
	if got := h.running()["web"]; got != "bbbb" {
		t.Fatalf("web runs %q after the force-push, want bbbb", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "history rewritten") || !strings.Contains(logs.String(), "previous=aaaa") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
