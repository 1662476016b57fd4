package rollout

import (
	"strings"
	"testing"
	"time"
)

// twoWaves: canary by label, then everyone, with a 30m canary soak.
const twoWaves = `waves:
- {name: canary, selector: {matchLabels: {ring: canary}}, soak: 30m}
- {name: main, selector: {matchExpressions: [{key: ring, operator: DoesNotExist}]}, soak: 1h}
- {name: rest, percent: 100}
maxFailures: 1
`

func TestDecide(t *testing.T) {
	p := mustParse(t, twoWaves)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rev := Revision{Commit: "c2c2c2c2c2c2c2c2", Time: t0}
	canary := Device{Name: "can-1", Labels: map[string]string{"ring": "canary"}}
	main := Device{Name: "dev-1"}
	other := Device{Name: "dev-2", Labels: map[string]string{"ring": "late"}}
	good := func(d Device, since time.Time) Report {
		return Report{Device: d, Online: true, LastGood: rev.Commit, GoodSince: since}
	}
	for _, tc := range []struct {
		name      string
		now       time.Time
		self      Device
		fleet     []Report
		haveFleet bool
		state     State
		wave      string
		reason    string
		until     time.Time
	}{
		{name: "canary applies at once", now: t0, self: canary, haveFleet: true, state: Apply, wave: "canary"},
		{name: "main waits for the canary to run it", now: t0.Add(time.Hour), self: main, haveFleet: true,
			fleet: []Report{{Device: canary, Online: true, LastGood: "c1"}},
			state: Wait, wave: "main", reason: "wave canary: 1 of 1 online devices do not run c2c2c2c2c2c2 healthy yet (can-1)"},
		{name: "main waits for the canary's soak", now: t0.Add(20 * time.Minute), self: main, haveFleet: true,
			fleet: []Report{good(canary, t0.Add(5*time.Minute))},
			state: Wait, wave: "main", reason: "wave canary soaks until 2026-03-01T12:35:00Z", until: t0.Add(35 * time.Minute)},
		{name: "main applies after the soak", now: t0.Add(35 * time.Minute), self: main, haveFleet: true,
			fleet: []Report{good(canary, t0.Add(5*time.Minute))}, state: Apply, wave: "main"},
		{name: "an offline canary does not hold the rollout", now: t0.Add(35 * time.Minute), self: main, haveFleet: true,
			fleet: []Report{{Device: canary, Online: false, LastGood: "c1"}}, state: Apply, wave: "main"},
		{name: "rest waits for both soaks", now: t0.Add(time.Hour), self: other, haveFleet: true,
			fleet: []Report{good(canary, t0.Add(5*time.Minute)), good(main, t0.Add(40*time.Minute))},
			state: Wait, wave: "rest", reason: "wave main soaks until 2026-03-01T13:40:00Z", until: t0.Add(100 * time.Minute)},
		{name: "one failure is within maxFailures", now: t0.Add(time.Hour), self: main, haveFleet: true,
			fleet: []Report{good(canary, t0), {Device: Device{Name: "can-2", Labels: canary.Labels}, Online: false, Failed: []string{rev.Commit}}},
			state: Apply, wave: "main"},
		{name: "two failures halt", now: t0.Add(time.Hour), self: other, haveFleet: true,
			fleet: []Report{
				{Device: Device{Name: "can-2", Labels: canary.Labels}, Online: true, LastGood: "c1", Failed: []string{rev.Commit}},
				{Device: main, Online: true, LastGood: "c1", Failed: []string{"c0", rev.Commit}},
			},
			state: Halted, wave: "rest", reason: "rollout of c2c2c2c2c2c2 halted: 2 devices failed it in wave canary, main (can-2, dev-1), more than maxFailures 1 allows (1); waiting for a newer commit"},
		{name: "failures of an older commit do not count", now: t0.Add(time.Hour), self: main, haveFleet: true,
			fleet: []Report{good(canary, t0), {Device: Device{Name: "can-2", Labels: canary.Labels}, Online: true, Failed: []string{"c1"}}},
			state: Wait, wave: "main", reason: "wave canary: 1 of 2 online devices do not run c2c2c2c2c2c2 healthy yet (can-2)"},
		{name: "no status channel: commit time plus soaks", now: t0.Add(time.Hour), self: other,
			state: Wait, wave: "rest", reason: "wave main soaks until 2026-03-01T13:30:00Z (no status channel: commit time plus the soaks of earlier waves)", until: t0.Add(90 * time.Minute)},
		{name: "no status channel, after the soaks", now: t0.Add(90 * time.Minute), self: other, state: Apply, wave: "rest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.Decide(tc.now, tc.self, rev, tc.fleet, tc.haveFleet)
			if d.State != tc.state || d.Wave != tc.wave || d.Reason != tc.reason || !d.Until.Equal(tc.until) {
				t.Errorf("got %s in %s: %q until %s\nwant %s in %s: %q until %s", d.State, d.Wave, d.Reason, d.Until, tc.state, tc.wave, tc.reason, tc.until)
			}
		})
	}
}

func TestDecideWindows(t *testing.T) {
	p := mustParse(t, `waves: [{name: all, percent: 100}]
window: {schedule: "0 2 * * *", duration: 4h}
downloadWindow: {schedule: "0 0 * * *", duration: 2h}
`)
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rev := Revision{Commit: "c2", Time: day}
	d := p.Decide(day.Add(time.Hour), Device{Name: "dev"}, rev, nil, false)
	if d.State != Wait || !d.Until.Equal(day.Add(2*time.Hour)) || !strings.Contains(d.Reason, "apply window") {
		t.Errorf("before the window: %+v", d)
	}
	if d := p.Decide(day.Add(3*time.Hour), Device{Name: "dev"}, rev, nil, false); d.State != Apply || d.Prefetch {
		t.Errorf("inside the apply window, outside the download window: %+v", d)
	}
	// Prefetch starts within the first half of the download window,
	// each device at its own offset.
	started := 0
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if p.Decide(day.Add(30*time.Minute), Device{Name: n}, rev, nil, false).Prefetch {
			started++
		}
		if !p.Decide(day.Add(time.Hour), Device{Name: n}, rev, nil, false).Prefetch {
			t.Errorf("%s may not prefetch after half the download window", n)
		}
	}
	if started == 0 || started == 8 {
		t.Errorf("%d of 8 devices prefetch after 30 minutes: want a spread", started)
	}
}

// TestDecideHalt: a policy with halt: true halts its revision on every
// device, the canaries included, with or without a status channel.
func TestDecideHalt(t *testing.T) {
	p := mustParse(t, twoWaves+"halt: true\n")
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	rev := Revision{Commit: "c3c3c3c3c3c3c3c3", Time: t0}
	canary := Device{Name: "can-1", Labels: map[string]string{"ring": "canary"}}
	for _, haveFleet := range []bool{true, false} {
		for _, self := range []Device{canary, {Name: "dev-1"}} {
			d := p.Decide(t0.Add(24*time.Hour), self, rev, nil, haveFleet)
			if want := "rollout of c3c3c3c3c3c3 halted by its policy (halt: true at ./berth-rollout.yaml:"; d.State != Halted || !strings.HasPrefix(d.Reason, want) {
				t.Errorf("%s, status channel %v: %s %q, want halted: %q…", self.Name, haveFleet, d.State, d.Reason, want)
			}
		}
	}
}
