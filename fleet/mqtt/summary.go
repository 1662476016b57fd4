package mqtt

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"berth.dev/berth/source"
)

func pid() int { return os.Getpid() }

// Group is the devices of a fleet that want one revision and sit in one
// wave of its rollout.
type Group struct {
	Revision string `json:"revision"`
	// RevisionTime is the revision's commit time.
	RevisionTime time.Time `json:"revisionTime,omitzero"`
	Wave         string    `json:"wave"`
	WaveIndex    int       `json:"waveIndex"`
	Devices      int       `json:"devices"`
	Healthy      int       `json:"healthy"`
	Failed       int       `json:"failed"`
	Pending      int       `json:"pending"`
	Offline      int       `json:"offline"`
	// Halted is set when a device of the group reports the rollout
	// halted.
	Halted bool `json:"halted,omitempty"`
	// Failing names the devices that failed the revision, with why.
	Failing []Failing `json:"failing,omitempty"`
	// OfflineDevices names the devices that are offline.
	OfflineDevices []string `json:"offlineDevices,omitempty"`
	// Waiting is what the group's pending devices wait for (the most
	// common reason).
	Waiting string `json:"waiting,omitempty"`
}

// Failing is a device that failed a revision.
type Failing struct {
	Node   string `json:"node"`
	Reason string `json:"reason,omitempty"`
}

// Summary is a fleet's status grouped by revision and wave.
type Summary struct {
	Fleet   string         `json:"fleet"`
	Devices int            `json:"devices"`
	Groups  []Group        `json:"groups"`
	Status  []DeviceStatus `json:"status"`
}

// state is the column a device counts in.
func state(d *DeviceStatus) string {
	switch {
	case !d.Online:
		return "offline"
	case d.Health == Failed || d.Desired != "" && contains(d.Failed, d.Desired):
		return "failed"
	case d.Desired != "" && d.LastGood == d.Desired:
		return "healthy"
	}
	return "pending"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Summarize groups the devices by desired revision (newest first) and
// wave (in rollout order).
func Summarize(fleet string, ds []DeviceStatus) *Summary {
	s := &Summary{Fleet: fleet, Devices: len(ds), Groups: []Group{}, Status: ds}
	if s.Status == nil {
		s.Status = []DeviceStatus{}
	}
	byKey := map[string]*Group{}
	waits := map[*Group]map[string]int{}
	var order []*Group
	for i := range ds {
		d := &ds[i]
		key := d.Desired + "\x00" + d.Wave
		g := byKey[key]
		if g == nil {
			g = &Group{Revision: d.Desired, RevisionTime: d.DesiredTime, Wave: d.Wave, WaveIndex: d.WaveIndex}
			byKey[key] = g
			waits[g] = map[string]int{}
			order = append(order, g)
		}
		g.Devices++
		switch state(d) {
		case "offline":
			g.Offline++
			g.OfflineDevices = append(g.OfflineDevices, d.Node)
		case "failed":
			g.Failed++
			g.Failing = append(g.Failing, Failing{Node: d.Node, Reason: d.Failure})
		case "healthy":
			g.Healthy++
		default:
			g.Pending++
			if d.Waiting != "" {
				waits[g][d.Waiting]++
			}
		}
		if d.Rollout == Halted {
			g.Halted = true
		}
	}
	for _, g := range order {
		best := 0
		for w, n := range waits[g] {
			if n > best || n == best && w < g.Waiting {
				g.Waiting, best = w, n
			}
		}
		s.Groups = append(s.Groups, *g)
	}
	sort.SliceStable(s.Groups, func(i, j int) bool {
		a, b := &s.Groups[i], &s.Groups[j]
		if a.Revision != b.Revision {
			if !a.RevisionTime.Equal(b.RevisionTime) {
				return a.RevisionTime.After(b.RevisionTime)
			}
			return a.Revision < b.Revision
		}
		return a.WaveIndex < b.WaveIndex
	})
	return s
}

// WriteJSON prints s as indented JSON.
func WriteJSON(w io.Writer, s *Summary) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// WriteText prints s as a table, one row per revision and wave, then the
// failing and offline devices and what pending devices wait for.
func WriteText(w io.Writer, s *Summary) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "fleet %s: %d devices\n\n", s.Fleet, s.Devices)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tWAVE\tDEVICES\tHEALTHY\tFAILED\tPENDING\tOFFLINE\tROLLOUT")
	for _, g := range s.Groups {
		ro := "-"
		switch {
		case g.Halted:
			ro = "halted"
		case g.Pending > 0:
			ro = "in progress"
		case g.Failed == 0 && g.Offline == 0:
			ro = "done"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", orDash(source.ShortCommit(g.Revision)), orDash(g.Wave), g.Devices, g.Healthy, g.Failed, g.Pending, g.Offline, ro)
	}
	tw.Flush()
	for _, g := range s.Groups {
		where := source.ShortCommit(g.Revision)
		if g.Wave != "" {
			where += " " + g.Wave
		}
		for _, f := range g.Failing {
			fmt.Fprintf(&b, "failed   %s: %s", where, f.Node)
			if f.Reason != "" {
				fmt.Fprintf(&b, ": %s", f.Reason)
			}
			b.WriteByte('\n')
		}
		if len(g.OfflineDevices) > 0 {
			fmt.Fprintf(&b, "offline  %s: %s\n", where, names(g.OfflineDevices))
		}
		if g.Waiting != "" {
			fmt.Fprintf(&b, "waiting  %s: %s\n", where, g.Waiting)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func names(ns []string) string {
	if len(ns) <= 20 {
		return strings.Join(ns, ", ")
	}
	return strings.Join(ns[:20], ", ") + fmt.Sprintf(" and %d more", len(ns)-20)
}
