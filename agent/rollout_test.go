package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
	"berth.dev/berth/source"
)

// policyRepo is a repo whose revisions carry files: a rollout policy per
// commit.
type policyRepo struct {
	*repo
	policies map[string]string
	times    map[string]time.Time // commit times, zero when not set
}

func (r *policyRepo) withFiles(rev *source.Revision) *source.Revision {
	fs := fstest.MapFS{}
	if p := r.policies[rev.Commit]; p != "" {
		fs["berth-rollout.yaml"] = &fstest.MapFile{Data: []byte(p)}
	}
	rev.Files = fs
	rev.Time = r.times[rev.Commit]
	return rev
}

func (r *policyRepo) Fetch(ctx context.Context) (*source.Revision, bool, error) {
	rev, changed, err := r.repo.Fetch(ctx)
	if err != nil {
		return nil, false, err
	}
	return r.withFiles(rev), changed, nil
}

func (r *policyRepo) Revision(ctx context.Context, id string) (*source.Revision, error) {
	rev, err := r.repo.Revision(ctx, id)
	if err != nil {
		return nil, err
	}
	return r.withFiles(rev), nil
}

// fleetView is a status channel the test writes.
type fleetView struct {
	mu      sync.Mutex
	reports []rollout.Report
	now     time.Time
	// following is what the device last asked to follow: the commit and
	// the earlier waves, "" for nothing.
	following string
}

func (f *fleetView) set(rs ...rollout.Report) {
	f.mu.Lock()
	f.reports = rs
	f.mu.Unlock()
}

func (f *fleetView) get(commit string, earlier []string) ([]rollout.Report, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.following = strings.TrimSpace(commit + " " + strings.Join(earlier, ","))
	return append([]rollout.Report(nil), f.reports...), true
}

func (f *fleetView) followed() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.following
}

func (f *fleetView) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fleetView) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

const canaryPolicy = `waves:
- {name: canary, selector: {matchLabels: {ring: canary}}, soak: 30m}
- {name: rest, percent: 100}
`

// TestRolloutWaves follows a device of the second wave through a
// rollout: it holds a revision until the canary runs it healthy and has
// soaked, holds a revision the canary failed (halted), and takes the
// next commit once the canary ran it.
func TestRolloutWaves(t *testing.T) {
	r := &policyRepo{repo: newRepo(), policies: map[string]string{}}
	r.commit("aaaa", map[string]string{"web": sleep})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fv := &fleetView{now: t0}
	canary := rollout.Device{Name: "can-1", Labels: map[string]string{"ring": "canary"}}
	fv.set(rollout.Report{Device: canary, Online: true, LastGood: "aaaa"})
	rt := fake.New(image)
	h := newHarness(t, r.repo, rt, "", func(c *Config) {
		c.Source = r
		c.Rollout = &Rollouts{Node: rollout.Device{Name: "dev-1"}, Fleet: fv.get, Now: fv.clock}
		c.Interval, c.Jitter = time.Minute, 0.5 // devices report in a rollout within 1m30s (+30s) of its commit
	})
	if got := h.running()["web"]; got != "aaaa" {
		t.Fatalf("web runs %q, want aaaa (a revision without policy applies at once)", got)
	}

	r.commit("bbbb", map[string]string{"web": sleep + " # b"})
	r.policies["bbbb"] = canaryPolicy
	h.pass(TriggerPoll)
	st := h.a.Status()
	if st.Rollout == nil || st.Rollout.State != rollout.Wait || st.Rollout.Wave != "rest" ||
		st.Rollout.Reason != "wave canary: 1 of 1 online devices do not run bbbb healthy yet (can-1)" {
		t.Fatalf("rollout status %+v", st.Rollout)
	}
	if got := h.running()["web"]; got != "aaaa" || st.LastError != nil {
		t.Fatalf("web runs %q, last error %+v: want aaaa and none while waiting", got, st.LastError)
	}
	if got := fv.followed(); got != "bbbb canary" {
		t.Errorf("while waiting the device follows %q, want the rollout of bbbb, wave canary", got)
	}

	// The canary runs it: wait for its soak; the fleet's news wakes the agent.
	fv.set(rollout.Report{Device: canary, Online: true, LastGood: "bbbb", GoodSince: t0.Add(time.Minute)})
	ch := h.a.Passed()
	h.a.FleetChanged()
	h.wait(ch)
	st = h.a.Status()
	if st.Rollout.State != rollout.Wait || !st.Rollout.Until.Equal(t0.Add(31*time.Minute)) || h.running()["web"] != "aaaa" {
		t.Fatalf("during the soak: %+v, web %s", st.Rollout, h.running()["web"])
	}
	fv.advance(31 * time.Minute)
	h.pass(TriggerRollout)
	if got := h.running()["web"]; got != "bbbb" {
		t.Fatalf("after the soak web runs %q, want bbbb", got)
	}
	if st := h.a.Status(); st.Rollout.State != rollout.Apply {
		t.Fatalf("rollout status %+v", st.Rollout)
	}
	if got := fv.followed(); got != "" {
		t.Errorf("once its wave started the device follows %q, want nothing", got)
	}

	// The canary fails the next one: the rollout halts here.
	r.commit("cccc", map[string]string{"web": sleep + " # c"})
	r.policies["cccc"] = canaryPolicy
	fv.set(rollout.Report{Device: canary, Online: true, LastGood: "bbbb", Failed: []string{"cccc"}})
	h.pass(TriggerPoll)
	st = h.a.Status()
	if st.Rollout.State != rollout.Halted || !strings.Contains(st.Rollout.Reason, "halted: 1 devices failed it in wave canary (can-1)") || h.running()["web"] != "bbbb" {
		t.Fatalf("halted: %+v, web %s", st.Rollout, h.running()["web"])
	}

	// The fix is a new rollout: the canary runs it, soaks, and this device follows.
	r.commit("dddd", map[string]string{"web": sleep + " # d"})
	r.policies["dddd"] = canaryPolicy
	// The canary reports it done at once: the device still gives every
	// device a poll to fetch dddd and report, lest a canary that has not
	// fetched it yet be passed over.
	fv.set(rollout.Report{Device: canary, Online: true, LastGood: "dddd", GoodSince: fv.clock().Add(-time.Hour), Failed: []string{"cccc"}})
	h.pass(TriggerPoll)
	st = h.a.Status()
	if want := fv.clock().Add(120 * time.Second); st.Rollout.State != rollout.Wait || !st.Rollout.Until.Equal(want) ||
		!strings.Contains(st.Rollout.Reason, "had a poll") || h.running()["web"] != "bbbb" {
		t.Fatalf("within the poll grace: %+v (want until %s), web %s", st.Rollout, want, h.running()["web"])
	}
	fv.advance(120 * time.Second)
	h.pass(TriggerRollout)
	if got := h.running()["web"]; got != "dddd" {
		t.Fatalf("web runs %q, want dddd; status %+v", got, h.a.Status().Rollout)
	}
}

// TestRolloutWithoutStatusChannel follows a device of the second wave
// with no status channel: it applies a revision at its commit time plus
// the canary's soak, holds a revision whose policy says halt: true, and
// rolls back a revision that fails here without trying it again (it
// cannot tell the others; they go on by the schedule).
func TestRolloutWithoutStatusChannel(t *testing.T) {
	r := &policyRepo{repo: newRepo(), policies: map[string]string{}, times: map[string]time.Time{}}
	r.commit("aaaa", map[string]string{"web": sleep})
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	fv := &fleetView{now: t0}
	rt := fake.New(image)
	h := newHarness(t, r.repo, rt, "", func(c *Config) {
		c.Source = r
		c.Rollout = &Rollouts{Node: rollout.Device{Name: "dev-1"}, Now: fv.clock}
	})

	r.commit("bbbb", map[string]string{"web": sleep + " # b"})
	r.policies["bbbb"], r.times["bbbb"] = canaryPolicy, t0.Add(-time.Minute)
	h.pass(TriggerPoll)
	st := h.a.Status()
	if st.Rollout == nil || st.Rollout.State != rollout.Wait || !st.Rollout.Until.Equal(t0.Add(29*time.Minute)) ||
		!strings.Contains(st.Rollout.Reason, "no status channel") || h.running()["web"] != "aaaa" {
		t.Fatalf("before the canary's soak: %+v, web %s", st.Rollout, h.running()["web"])
	}
	fv.advance(29 * time.Minute)
	h.pass(TriggerRollout)
	if got := h.running()["web"]; got != "bbbb" {
		t.Fatalf("after the soak web runs %q, want bbbb", got)
	}

	// An operator halts the rollout in the repository.
	r.commit("cccc", map[string]string{"web": sleep + " # c"})
	r.policies["cccc"], r.times["cccc"] = canaryPolicy+"halt: true\n", t0.Add(-time.Hour)
	h.pass(TriggerPoll)
	st = h.a.Status()
	if st.Rollout.State != rollout.Halted || !strings.Contains(st.Rollout.Reason, "halted by its policy") || h.running()["web"] != "bbbb" {
		t.Fatalf("halted by the policy: %+v, web %s", st.Rollout, h.running()["web"])
	}

	// The next commit is a new rollout; it fails here: the device rolls
	// it back and does not try it again.
	r.commit("dddd", map[string]string{"web": "exit 3"})
	r.policies["dddd"], r.times["dddd"] = canaryPolicy, t0.Add(-time.Hour)
	h.pass(TriggerPoll)
	h.eventually("dddd rolled back", func(st Status) bool {
		return len(st.BadRevisions) == 1 && st.BadRevisions[0].Commit == "dddd" && st.Applied != nil && st.Applied.Commit == "bbbb"
	})
	rt.ResetCalls()
	h.pass(TriggerPoll)
	if m := rt.MutatingCalls(); len(m) != 0 || h.running()["web"] != "bbbb" {
		t.Fatalf("the failed revision was tried again: %v, web %s", m, h.running()["web"])
	}
}

// TestPrefetchFailureTouchesNothing checks make before break: when an
// image of a new revision cannot be fetched, the running pods stay.
func TestPrefetchFailureTouchesNothing(t *testing.T) {
	r := newRepo()
	r.commit("aaaa", map[string]string{"web": sleep})
	rt := fake.New(image)
	var fetched [][]string
	pullErr := errors.New("pull example.local/app:2: connection refused")
	h := newHarness(t, r, rt, "", func(c *Config) {
		c.Prefetch = func(ctx context.Context, pods []reconcile.DesiredPod) error {
			var imgs []string
			for _, p := range pods {
				imgs = append(imgs, p.Spec.Containers[0].Image)
			}
			fetched = append(fetched, imgs)
			if imgs[0] != image {
				return pullErr
			}
			return nil
		}
	})
	r.commit("bbbb", map[string]string{"web": sleep})
	r.mu.Lock()
	r.commits["bbbb"][0].Pod.Containers[0].Image = "example.local/app:2"
	r.mu.Unlock()
	h.pass(TriggerPoll)
	st := h.a.Status()
	if got := h.running()["web"]; got != "aaaa" {
		t.Fatalf("web runs %q after a failed prefetch, want aaaa", got)
	}
	if st.LastError == nil || st.LastError.Kind != KindPull || !strings.Contains(st.LastError.Reason, "nothing was stopped") {
		t.Fatalf("last error %+v", st.LastError)
	}
	if diff := cmp.Diff([][]string{{image}, {"example.local/app:2"}}, fetched); diff != "" {
		t.Errorf("prefetched (-want +got):\n%s", diff)
	}
}
