package fleet

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/preview"
)

// Wave is what the change does to the devices of one wave of the head
// revision's rollout policy.
type Wave struct {
	Name string `json:"name"`
	// Devices is how many devices of the inventory the wave holds;
	// Affected how many of them change, Failed on how many the head
	// revision fails.
	Devices  int `json:"devices"`
	Affected int `json:"affected"`
	Failed   int `json:"failed"`
	// Totals are pods over the wave's devices.
	Totals preview.Counts `json:"totals"`
	// Effect is the wave's effect per device when every device of it
	// changes alike ("1 pod replaced per device"), else empty.
	Effect string `json:"effect,omitempty"`
	// After names the waves that must complete first; Soak is how long
	// this one soaks before the next starts.
	After []string `json:"after,omitempty"`
	Soak  string   `json:"soak,omitempty"`
	// Halted: the head's policy says halt: true, so no device of the wave
	// applies it.
	Halted bool `json:"halted,omitempty"`
}

// waves groups the devices by the wave of pol, in rollout order,
// leaving out empty waves.
func waves(pol *rollout.Policy, inv *Inventory, results []result, groups map[string]*Group) []Wave {
	out := make([]Wave, len(pol.Waves)+1)
	keys := make([]map[string]bool, len(out))
	for i := range out {
		out[i].Name = pol.WaveName(i)
		keys[i] = map[string]bool{}
		for j := range min(i, len(pol.Waves)) {
			out[i].After = append(out[i].After, pol.Waves[j].Name)
		}
		if i < len(pol.Waves) && pol.Waves[i].Soak > 0 {
			out[i].Soak = shortDuration(pol.Waves[i].Soak)
		}
		out[i].Halted = pol.Halt
	}
	for i, d := range inv.Devices {
		w := &out[pol.WaveOf(d.Name, d.Labels)]
		p := results[i].plan
		w.Devices++
		switch {
		case p.Failed():
			w.Failed++
		case p.HasChanges():
			w.Affected++
		}
		w.Totals.Create += p.Counts.Create
		w.Totals.Replace += p.Counts.Replace
		w.Totals.Delete += p.Counts.Delete
		w.Totals.Unchanged += p.Counts.Unchanged
		keys[pol.WaveOf(d.Name, d.Labels)][results[i].key] = true
	}
	var kept []Wave
	for i, w := range out {
		if w.Devices == 0 {
			continue
		}
		if len(keys[i]) == 1 {
			for k := range keys[i] {
				w.Effect = groups[k].Effect()
			}
		}
		kept = append(kept, w)
	}
	return kept
}

// Line says what the change does to the wave: "canary: 5 devices, 1 pod
// replaced per device" or "rest: 495 devices, 120 change (pods 120
// replaced); after canary and early".
func (w *Wave) Line() string {
	s := fmt.Sprintf("%s: %s", w.Name, devices(w.Devices))
	switch {
	case w.Effect != "":
		s += ", " + w.Effect
	case w.Affected == 0 && w.Failed == 0:
		s += ", no changes"
	default:
		var parts []string
		if w.Failed > 0 {
			parts = append(parts, fmt.Sprintf("the head revision fails on %d", w.Failed))
		}
		if w.Affected > 0 {
			parts = append(parts, fmt.Sprintf("%d change (pods %s)", w.Affected, podTotals(w.Totals)))
		}
		s += ", " + strings.Join(parts, ", ")
	}
	if w.Soak != "" {
		s += ", soak " + w.Soak
	}
	if len(w.After) > 0 {
		s += "; after " + andList(w.After)
	}
	if w.Halted {
		s += "; halted by the policy (halt: true): no device applies it"
	}
	return s
}

func podTotals(c preview.Counts) string {
	var pods []string
	for _, x := range []struct {
		n    int
		verb string
	}{{c.Create, "created"}, {c.Replace, "replaced"}, {c.Delete, "deleted"}} {
		if x.n > 0 {
			pods = append(pods, fmt.Sprintf("%d %s", x.n, x.verb))
		}
	}
	return strings.Join(pods, ", ")
}

func andList(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// policyProblems loads the head's rollout policy; its problems, if any,
// as lines.
func policyProblems(head Revision) (*rollout.Policy, []string) {
	pol, err := rollout.Load(head.Files)
	var perr *rollout.Error
	if errors.As(err, &perr) {
		var lines []string
		for _, p := range perr.Problems {
			lines = append(lines, p.String())
		}
		return nil, lines
	}
	return pol, nil
}

// shortDuration prints d as written in a policy: 30m, 2h, 1h30m.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
