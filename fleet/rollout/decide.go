package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"berth.dev/berth/source"
)

// Device is what the policy needs to know of a device.
type Device struct {
	Name   string
	Labels map[string]string
}

// Report is what one device last said about itself on the status
// channel, reduced to what a rollout decision reads.
type Report struct {
	Device
	// Online is false once the device's connection was lost.
	Online bool
	// LastGood is the commit of the last revision that ran healthy there,
	// and GoodSince when it became good.
	LastGood  string
	GoodSince time.Time
	// Failed lists the commits the device rolled back (health failed).
	Failed []string
}

func (r *Report) failed(commit string) bool {
	for _, c := range r.Failed {
		if c == commit {
			return true
		}
	}
	return false
}

// Revision is the revision being rolled out.
type Revision struct {
	Commit string
	// Time is the commit time: without a status channel, wave k starts
	// at Time plus the soaks of the waves before it.
	Time time.Time
}

// State is what a device may do with a revision.
type State string

// States of a Decision.
const (
	// Apply: the device's wave has started; apply now.
	Apply State = "apply"
	// Wait: not yet; Decision.Reason says for what.
	Wait State = "wait"
	// Halted: too many devices of started waves failed the revision; it
	// is not applied here. A newer commit starts a new rollout.
	Halted State = "halted"
)

// Decision is a device's place in a rollout and what it may do now.
type Decision struct {
	State State `json:"state"`
	// Wave names the device's wave; WaveIndex is its place (0 first).
	Wave      string `json:"wave"`
	WaveIndex int    `json:"waveIndex"`
	// Reason says what the device waits for and why, or why the rollout
	// halted; empty for Apply.
	Reason string `json:"reason,omitempty"`
	// Until, when not zero, is when the decision may change without news
	// from the fleet (a soak ends, a window opens).
	Until time.Time `json:"until,omitzero"`
	// Prefetch tells whether the device may fetch the revision's images
	// now (inside the download window, after its jitter).
	Prefetch bool `json:"prefetch"`
}

// Decide decides whether device self may apply rev now under policy p.
// fleet is what the status channel reports of the other devices (self is
// skipped if present); with haveFleet false there is no status channel
// and waves start on a schedule: the commit time plus the soaks of the
// earlier waves.
//
// Wave k may start when every earlier wave is complete — each of its
// online devices runs rev healthy and the last of them has for the
// wave's soak (a wave with no online device counts as complete a soak
// after the wave before it) — and the devices of waves 0..k that failed
// rev are no more than maxFailures allows. Devices in no wave come after
// the last one. A window, when set, holds the apply until it is open. A
// policy with halt: true halts the rollout on every device.
func (p *Policy) Decide(now time.Time, self Device, rev Revision, fleet []Report, haveFleet bool) Decision {
	k := p.WaveOf(self.Name, self.Labels)
	d := Decision{Wave: p.WaveName(k), WaveIndex: k}
	d.Prefetch = p.mayPrefetch(now, self.Name)
	if p.Halt {
		d.State = Halted
		d.Reason = fmt.Sprintf("rollout of %s halted by its policy (halt: true at %s); waiting for a newer commit",
			source.ShortCommit(rev.Commit), p.HaltPos)
		return d
	}
	members := make([][]*Report, len(p.Waves)+1)
	for i := range fleet {
		r := &fleet[i]
		if r.Name == self.Name {
			continue
		}
		members[p.WaveOf(r.Name, r.Labels)] = append(members[p.WaveOf(r.Name, r.Labels)], r)
	}

	if haveFleet {
		started, failed := 1, []string(nil)
		var failedWaves []string
		for j := 0; j <= k; j++ {
			started += len(members[j])
			n := len(failed)
			for _, r := range members[j] {
				if r.failed(rev.Commit) {
					failed = append(failed, r.Name)
				}
			}
			if len(failed) > n {
				failedWaves = append(failedWaves, p.WaveName(j))
			}
		}
		if allowed := p.MaxFailures.Allowed(started); len(failed) > allowed {
			sort.Strings(failed)
			d.State = Halted
			d.Reason = fmt.Sprintf("rollout of %s halted: %d devices failed it in wave %s (%s), more than maxFailures %s allows (%d); waiting for a newer commit",
				source.ShortCommit(rev.Commit), len(failed), strings.Join(failedWaves, ", "), names(failed), p.MaxFailures, allowed)
			return d
		}
	}

	// When each earlier wave completes, in order.
	prevDone := rev.Time
	for j := 0; j < k && j < len(p.Waves); j++ {
		w := p.Waves[j]
		var online []*Report
		for _, r := range members[j] {
			if r.Online || !haveFleet {
				online = append(online, r)
			}
		}
		if !haveFleet || len(online) == 0 {
			prevDone = prevDone.Add(w.Soak)
			continue
		}
		var notYet []string
		var last time.Time
		for _, r := range online {
			if r.LastGood != rev.Commit {
				notYet = append(notYet, r.Name)
				continue
			}
			if r.GoodSince.After(last) {
				last = r.GoodSince
			}
		}
		if len(notYet) > 0 {
			sort.Strings(notYet)
			d.State = Wait
			d.Reason = fmt.Sprintf("wave %s: %d of %d online devices do not run %s healthy yet (%s)",
				w.Name, len(notYet), len(online), source.ShortCommit(rev.Commit), names(notYet))
			return d
		}
		prevDone = last.Add(w.Soak)
	}
	if k > 0 && now.Before(prevDone) {
		d.State = Wait
		d.Until = prevDone
		d.Reason = fmt.Sprintf("wave %s soaks until %s", p.WaveName(k-1), prevDone.UTC().Format(time.RFC3339))
		if !haveFleet {
			d.Reason += " (no status channel: commit time plus the soaks of earlier waves)"
		}
		return d
	}
	if w := p.Window; w != nil && !w.Open(now) {
		d.State = Wait
		d.Until = w.NextOpen(now)
		d.Reason = fmt.Sprintf("wave %s may start, but the apply window %s is closed until %s", d.Wave, w, d.Until.UTC().Format(time.RFC3339))
		return d
	}
	d.State = Apply
	return d
}

// mayPrefetch tells whether images may be fetched now: always without a
// download window; inside it, after a jitter of up to half its length
// from the device's bucket, so a fleet does not pull all at once.
func (p *Policy) mayPrefetch(now time.Time, node string) bool {
	w := p.DownloadWindow
	if w == nil {
		return true
	}
	start, ok := w.Current(now)
	if !ok {
		return false
	}
	jitter := time.Duration(Bucket(node) / 100 * float64(w.Duration/2))
	return !now.Before(start.Add(jitter))
}

// names lists up to ten names, then how many more.
func names(ns []string) string {
	if len(ns) <= 10 {
		return strings.Join(ns, ", ")
	}
	return strings.Join(ns[:10], ", ") + fmt.Sprintf(" and %d more", len(ns)-10)
}
