package mqtt

import (
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"berth.dev/berth/fleet/rollout"
)

// RecordTopic is where node publishes its record in the rollout of
// commit, under its wave: berth/<fleet>/rollout/<commit>/wave/<wave>/<node>.
// A device waiting for its wave subscribes to
// berth/<fleet>/rollout/<commit>/wave/<w>/+ for each earlier wave w only.
func RecordTopic(fleet, commit, wave, node string) string {
	return "berth/" + fleet + "/rollout/" + commit + "/wave/" + wave + "/" + node
}

// FailedTopic is where node, having rolled commit back, says so:
// berth/<fleet>/rollout/<commit>/failed/<node>. Every device waiting in
// the rollout of commit follows berth/<fleet>/rollout/<commit>/failed/+.
func FailedTopic(fleet, commit, node string) string {
	return "berth/" + fleet + "/rollout/" + commit + "/failed/" + node
}

// record is a device's retained record in a rollout: what another
// device's rollout decision reads of it, and no more.
type record struct {
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels,omitempty"`
	Wave   string            `json:"wave"`
	// Healthy: the device runs the commit healthy (it is its last good
	// revision), since GoodSince.
	Healthy   bool      `json:"healthy,omitempty"`
	GoodSince time.Time `json:"goodSince,omitzero"`
	// Failed: the device rolled the commit back.
	Failed bool `json:"failed,omitempty"`
}

// recordOf is the record of a device in the rollout of its desired
// revision.
func recordOf(s *DeviceStatus) record {
	r := record{Node: s.Node, Labels: s.Labels, Wave: s.Wave, Failed: slices.Contains(s.Failed, s.Desired)}
	if s.LastGood == s.Desired {
		r.Healthy, r.GoodSince = true, s.GoodSince.UTC()
	}
	return r
}

// following is what a device follows of one rollout, and what arrived:
// pure bookkeeping, under the Device's lock.
type following struct {
	self    string // the device's own records are not followed
	commit  string
	earlier []string
	// gen counts interests and connections; the sync marker carries it,
	// so a marker of an older interest does not complete a newer one.
	gen        int
	marker     string // the marker awaited, "" when none
	synced     bool
	subscribed map[string]bool // topics subscribed on this connection
	records    map[string]*record
	failed     map[string]*record
	online     map[string]bool // presence flags of the followed devices
}

// reset sets the interest; it reports whether it changed, which forgets
// what arrived for the former one.
func (f *following) reset(commit string, earlier []string) bool {
	if f.records != nil && f.commit == commit && slices.Equal(f.earlier, earlier) {
		return false
	}
	f.commit, f.earlier = commit, append([]string(nil), earlier...)
	f.records, f.failed, f.online = map[string]*record{}, map[string]*record{}, map[string]bool{}
	f.synced, f.marker = false, ""
	f.gen++
	return true
}

// connected forgets the subscriptions: a new connection has none (the
// session is clean), and retained records arrive again.
func (f *following) connected() {
	f.subscribed = map[string]bool{}
	f.synced, f.marker = false, ""
	f.gen++
}

// plan returns the topics to subscribe to and to drop for the current
// interest, and the sync marker to publish after subscribing ("" when
// none is needed), and takes them as done.
func (f *following) plan(fleet, syncT string) (add, drop []string, marker string) {
	target := map[string]bool{}
	if f.commit != "" {
		for _, w := range f.earlier {
			target[RecordTopic(fleet, f.commit, w, "+")] = true
		}
		target[FailedTopic(fleet, f.commit, "+")] = true
		target[syncT] = true
		for node := range f.records {
			target[OnlineTopic(fleet, node)] = true
		}
	}
	if f.subscribed == nil {
		f.subscribed = map[string]bool{}
	}
	for t := range target {
		if !f.subscribed[t] {
			add = append(add, t)
		}
	}
	for t := range f.subscribed {
		if !target[t] {
			drop = append(drop, t)
		}
	}
	f.subscribed = target
	sort.Strings(add)
	sort.Strings(drop)
	if f.commit != "" && !f.synced {
		f.marker = strconv.Itoa(f.gen)
		marker = f.marker
	}
	return add, drop, marker
}

// failedSubscribe takes back topics whose subscription failed.
func (f *following) failedSubscribe(topics []string) {
	for _, t := range topics {
		delete(f.subscribed, t)
	}
}

// handle records a message; it reports whether what the device follows
// changed, and whether a device appeared whose presence flag is to be
// followed.
func (f *following) handle(syncT, topic string, payload []byte) (changed, newNode bool) {
	if topic == syncT {
		if !f.synced && f.marker != "" && string(payload) == f.marker {
			f.synced = true
			return true, false
		}
		return false, false
	}
	parts := strings.Split(topic, "/")
	switch {
	case len(parts) == 4 && parts[3] == "online":
		node := parts[2]
		if _, ok := f.records[node]; !ok {
			return false, false
		}
		on, had := f.online[node]
		f.online[node] = string(payload) == "true"
		return !had || on != f.online[node], false
	case len(parts) == 7 && parts[2] == "rollout" && parts[3] == f.commit && parts[4] == "wave" && slices.Contains(f.earlier, parts[5]):
		_, had := f.records[parts[6]]
		if !f.take(f.records, parts[6], payload) {
			return false, false
		}
		_, has := f.records[parts[6]]
		return true, has && !had
	case len(parts) == 6 && parts[2] == "rollout" && parts[3] == f.commit && parts[4] == "failed":
		return f.take(f.failed, parts[5], payload), false
	}
	return false, false
}

// take stores or, for an empty payload (a cleared retained message),
// deletes node's record in m.
func (f *following) take(m map[string]*record, node string, payload []byte) bool {
	if node == f.self {
		return false
	}
	if len(payload) == 0 {
		if _, ok := m[node]; !ok {
			return false
		}
		delete(m, node)
		if _, ok := f.records[node]; !ok {
			delete(f.online, node)
		}
		return true
	}
	var r record
	if err := json.Unmarshal(payload, &r); err != nil || r.Node != node {
		return false
	}
	m[node] = &r
	return true
}

// reports is what arrived, as rollout.Decide reads it, sorted by node.
func (f *following) reports() []rollout.Report {
	byNode := map[string]*rollout.Report{}
	add := func(r *record) *rollout.Report {
		rep := byNode[r.Node]
		if rep == nil {
			on, known := f.online[r.Node]
			rep = &rollout.Report{Device: rollout.Device{Name: r.Node, Labels: r.Labels}, Online: on || !known}
			byNode[r.Node] = rep
		}
		return rep
	}
	for _, r := range f.records {
		rep := add(r)
		if r.Healthy {
			rep.LastGood, rep.GoodSince = f.commit, r.GoodSince
		}
		if r.Failed {
			rep.Failed = []string{f.commit}
		}
	}
	for _, r := range f.failed {
		add(r).Failed = []string{f.commit}
	}
	out := make([]rollout.Report, 0, len(byNode))
	for _, r := range byNode {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
