package rollout

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"berth.dev/berth/reconcile"
)

// FileNames are the names the policy file may have at the root of the
// definitions; a revision holds at most one of them. The loader of
// manifests skips them.
var FileNames = []string{"berth-rollout.yaml", "berth-rollout.yml", "berth-rollout.json", "berth-rollout.cue"}

// Limits on a policy file.
const (
	// MaxFileSize is the largest policy file read: 64 KiB.
	MaxFileSize = 64 << 10
	// MaxWaves is the most waves a policy may declare.
	MaxWaves = 100
)

// Policy is a parsed and validated rollout policy.
type Policy struct {
	// File is the policy's file, "./berth-rollout.yaml".
	File string
	// Waves are the waves in order.
	Waves []Wave
	// MaxFailures is how many devices of the started waves may fail the
	// revision before the rollout halts.
	MaxFailures Threshold
	// Window, when set, limits applying to its occurrences.
	Window *Window
	// DownloadWindow, when set, limits fetching images ahead to its
	// occurrences.
	DownloadWindow *Window
	// Halt halts the rollout of the revision that carries it: no device
	// that does not run it yet applies it, with or without a status
	// channel. An operator commits it to stop a rollout; the next commit
	// without it starts a new one.
	Halt bool
	// HaltPos is where halt: true is written.
	HaltPos reconcile.Position
}

// Wave is one step of a rollout.
type Wave struct {
	// Name names the wave in status and plans.
	Name string
	// Selector selects devices by label; nil selects every device.
	Selector labels.Selector
	// Percent, when above zero, limits the wave to the devices whose
	// bucket is below it: a cumulative share of the fleet, so the devices
	// of "percent: 10" are also those of "percent: 20".
	Percent float64
	// Soak is how long the wave's devices must run a revision healthy
	// before the next wave starts.
	Soak time.Duration
}

// Threshold is a count of devices, or a percentage of them.
type Threshold struct {
	Count   int
	Percent float64
	// IsPercent tells which of the two is meant.
	IsPercent bool
}

// Allowed is how many of n devices the threshold allows (a percentage is
// rounded down).
func (t Threshold) Allowed(n int) int {
	if t.IsPercent {
		return int(math.Floor(t.Percent * float64(n) / 100))
	}
	return t.Count
}

// String prints the threshold as written: "2" or "10%".
func (t Threshold) String() string {
	if t.IsPercent {
		return strconv.FormatFloat(t.Percent, 'f', -1, 64) + "%"
	}
	return strconv.Itoa(t.Count)
}

// Window is a recurring period: it opens at each activation of a cron
// schedule and stays open for a duration.
type Window struct {
	// Spec is the schedule as written.
	Spec     string
	Schedule cron.Schedule
	Duration time.Duration
}

// Open reports whether now is inside an occurrence of the window.
func (w *Window) Open(now time.Time) bool {
	return !w.Schedule.Next(now.Add(-w.Duration)).After(now)
}

// Current returns the start of the occurrence now is in; ok is false when
// now is outside the window.
func (w *Window) Current(now time.Time) (start time.Time, ok bool) {
	s := w.Schedule.Next(now.Add(-w.Duration))
	if s.After(now) {
		return time.Time{}, false
	}
	return s, true
}

// NextOpen is when the window next opens after now.
func (w *Window) NextOpen(now time.Time) time.Time { return w.Schedule.Next(now) }

// String prints the window as "schedule for duration".
func (w *Window) String() string {
	return fmt.Sprintf("%q for %s", w.Spec, w.Duration)
}

// Problem is what is wrong with a policy: where, which field, which rule.
type Problem struct {
	Pos reconcile.Position
	// Path is the field, such as "waves[0].soak".
	Path string
	// Message says which rule is broken.
	Message string
}

// String formats p as "./berth-rollout.yaml:3:12: waves[0].soak: message".
func (p Problem) String() string {
	var b strings.Builder
	if s := p.Pos.String(); s != "" {
		b.WriteString(s + ": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Error lists every problem of a policy.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load reads the policy at the root of fsys. It returns nil and no error
// when there is none, and an *Error when the policy is invalid.
func Load(fsys fs.FS) (*Policy, error) {
	var found []string
	for _, name := range FileNames {
		if _, err := fs.Stat(fsys, name); !errors.Is(err, fs.ErrNotExist) {
			found = append(found, name)
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	file := "./" + found[0]
	if len(found) > 1 {
		return nil, &Error{[]Problem{{Pos: reconcile.Position{File: "./" + found[1], Line: 1, Column: 1},
			Message: fmt.Sprintf("a second rollout policy: %s is one already; keep one", file)}}}
	}
	f, err := fsys.Open(found[0])
	if err != nil {
		return nil, &Error{[]Problem{{Pos: reconcile.Position{File: file}, Message: fmt.Sprintf("cannot read: %v", err)}}}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	f.Close()
	switch {
	case err != nil:
		return nil, &Error{[]Problem{{Pos: reconcile.Position{File: file}, Message: fmt.Sprintf("cannot read: %v", err)}}}
	case len(data) > MaxFileSize:
		return nil, &Error{[]Problem{{Pos: reconcile.Position{File: file}, Message: fmt.Sprintf("larger than %d KiB", MaxFileSize>>10)}}}
	}
	return Parse(file, data)
}

// Parse parses and validates the policy file named file (for positions):
// YAML or JSON, or CUE when file ends in .cue.
func Parse(file string, data []byte) (*Policy, error) {
	p := &parser{file: file}
	var root *yaml.Node
	if strings.HasSuffix(file, ".cue") {
		n, problems := parseCUE(file, data)
		if problems != nil {
			return nil, &Error{problems}
		}
		root = n
	} else {
		var doc yaml.Node
		dec := yaml.NewDecoder(bytes.NewReader(data))
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, &Error{[]Problem{{Pos: reconcile.Position{File: file, Line: 1, Column: 1}, Message: "empty: want a mapping with waves"}}}
			}
			return nil, &Error{[]Problem{yamlProblem(file, err)}}
		}
		var extra yaml.Node
		if err := dec.Decode(&extra); err == nil {
			p.errorf(&extra, "", "one YAML document expected, found another")
		}
		root = doc.Content[0]
	}
	pol := p.policy(root)
	if len(p.problems) > 0 {
		return nil, &Error{p.problems}
	}
	pol.File = file
	return pol, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func yamlProblem(file string, err error) Problem {
	pr := Problem{Pos: reconcile.Position{File: file, Line: 1, Column: 1}, Message: err.Error()}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		pr.Pos.Line, _ = strconv.Atoi(m[1])
		pr.Message = m[2]
	}
	return pr
}

type parser struct {
	file     string
	problems []Problem
}

func (p *parser) pos(n *yaml.Node) reconcile.Position {
	return reconcile.Position{File: p.file, Line: n.Line, Column: n.Column}
}

func (p *parser) errorf(n *yaml.Node, path, format string, args ...any) {
	p.problems = append(p.problems, Problem{Pos: p.pos(n), Path: path, Message: fmt.Sprintf(format, args...)})
}

// fields returns the fields of a mapping by name, reporting unknown and
// repeated ones.
func (p *parser) fields(n *yaml.Node, path string, known ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, path, "must be a mapping, got %s", kindName(n))
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		fp := join(path, k.Value)
		if !contains(known, k.Value) {
			p.errorf(k, fp, "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.errorf(k, fp, "field given twice")
			continue
		}
		out[k.Value] = v
	}
	return out
}

func join(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "null"
	}
	return fmt.Sprintf("%q", n.Value)
}

func (p *parser) policy(n *yaml.Node) *Policy {
	f := p.fields(n, "", "waves", "maxFailures", "window", "downloadWindow", "halt")
	if f == nil {
		return nil
	}
	pol := &Policy{}
	wn := f["waves"]
	switch {
	case wn == nil:
		p.errorf(n, "waves", "required: list at least one wave")
	case wn.Kind != yaml.SequenceNode:
		p.errorf(wn, "waves", "must be a list, got %s", kindName(wn))
	case len(wn.Content) == 0:
		p.errorf(wn, "waves", "must list at least one wave")
	case len(wn.Content) > MaxWaves:
		p.errorf(wn, "waves", "%d waves, more than %d", len(wn.Content), MaxWaves)
	default:
		names := map[string]int{}
		lastPercent := 0.0
		for i, w := range wn.Content {
			path := fmt.Sprintf("waves[%d]", i)
			wave, ok := p.wave(w, path)
			if !ok {
				continue
			}
			if j, dup := names[wave.Name]; dup {
				p.errorf(w, path+".name", "wave %q is also waves[%d]", wave.Name, j)
			}
			names[wave.Name] = i
			if wave.Selector == nil && wave.Percent > 0 && wave.Percent < lastPercent {
				p.errorf(w, path+".percent", "%v%% is below an earlier wave's %v%%: percents are cumulative shares of the fleet and must not decrease", wave.Percent, lastPercent)
			}
			if wave.Selector == nil && wave.Percent > 0 {
				lastPercent = wave.Percent
			}
			pol.Waves = append(pol.Waves, wave)
		}
	}
	if m := f["maxFailures"]; m != nil {
		pol.MaxFailures = p.threshold(m, "maxFailures")
	}
	if w := f["window"]; w != nil {
		pol.Window = p.window(w, "window")
	}
	if w := f["downloadWindow"]; w != nil {
		pol.DownloadWindow = p.window(w, "downloadWindow")
	}
	if h := f["halt"]; h != nil {
		var halt bool
		if h.Kind != yaml.ScalarNode || h.Tag != "!!bool" || h.Decode(&halt) != nil {
			p.errorf(h, "halt", "must be true or false, got %s", kindName(h))
		}
		pol.Halt, pol.HaltPos = halt, p.pos(h)
	}
	return pol
}

var waveName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (p *parser) wave(n *yaml.Node, path string) (Wave, bool) {
	f := p.fields(n, path, "name", "selector", "percent", "soak")
	if f == nil {
		return Wave{}, false
	}
	before := len(p.problems)
	var w Wave
	if nn := f["name"]; nn == nil {
		p.errorf(n, path+".name", "required")
	} else if nn.Kind != yaml.ScalarNode || !waveName.MatchString(nn.Value) || len(nn.Value) > 63 {
		p.errorf(nn, path+".name", "must be a DNS-1123 label (lower-case letters, digits and '-', at most 63), got %s", kindName(nn))
	} else {
		w.Name = nn.Value
	}
	if s := f["selector"]; s != nil {
		w.Selector = p.selector(s, path+".selector")
	}
	if pc := f["percent"]; pc != nil {
		v, err := strconv.ParseFloat(strings.TrimSuffix(pc.Value, "%"), 64)
		if pc.Kind != yaml.ScalarNode || err != nil || !(v > 0 && v <= 100) {
			p.errorf(pc, path+".percent", "must be a number above 0 and at most 100, got %s", kindName(pc))
		} else {
			w.Percent = v
		}
	}
	if f["selector"] == nil && f["percent"] == nil {
		p.errorf(n, path, "select devices with selector, percent or both")
	}
	if s := f["soak"]; s != nil {
		w.Soak = p.duration(s, path+".soak", true)
	}
	return w, len(p.problems) == before
}

func (p *parser) duration(n *yaml.Node, path string, zeroOK bool) time.Duration {
	d, err := time.ParseDuration(n.Value)
	switch {
	case n.Kind != yaml.ScalarNode || err != nil:
		p.errorf(n, path, "must be a duration such as 30m or 2h, got %s", kindName(n))
	case d < 0 || d == 0 && !zeroOK:
		p.errorf(n, path, "must be above zero, got %s", n.Value)
	}
	return d
}

func (p *parser) selector(n *yaml.Node, path string) labels.Selector {
	f := p.fields(n, path, "matchLabels", "matchExpressions")
	if f == nil {
		return nil
	}
	sel := labels.NewSelector()
	if ml := f["matchLabels"]; ml != nil {
		if ml.Kind != yaml.MappingNode {
			p.errorf(ml, path+".matchLabels", "must be a mapping, got %s", kindName(ml))
		} else {
			for i := 0; i+1 < len(ml.Content); i += 2 {
				k, v := ml.Content[i], ml.Content[i+1]
				fp := fmt.Sprintf("%s.matchLabels[%q]", path, k.Value)
				if v.Kind != yaml.ScalarNode {
					p.errorf(v, fp, "must be a string, got %s", kindName(v))
					continue
				}
				r, err := labels.NewRequirement(k.Value, selection.Equals, []string{v.Value})
				if err != nil {
					p.errorf(k, fp, "%s", requirementMessage(err))
					continue
				}
				sel = sel.Add(*r)
			}
		}
	}
	if me := f["matchExpressions"]; me != nil {
		if me.Kind != yaml.SequenceNode {
			p.errorf(me, path+".matchExpressions", "must be a list, got %s", kindName(me))
		} else {
			for i, e := range me.Content {
				ep := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
				if r, ok := p.expression(e, ep); ok {
					sel = sel.Add(r)
				}
			}
		}
	}
	return sel
}

var operators = map[string]selection.Operator{
	"In": selection.In, "NotIn": selection.NotIn, "Exists": selection.Exists, "DoesNotExist": selection.DoesNotExist,
}

func (p *parser) expression(n *yaml.Node, path string) (labels.Requirement, bool) {
	f := p.fields(n, path, "key", "operator", "values")
	if f == nil {
		return labels.Requirement{}, false
	}
	key, op := f["key"], f["operator"]
	if key == nil || op == nil {
		p.errorf(n, path, "key and operator are required")
		return labels.Requirement{}, false
	}
	o, ok := operators[op.Value]
	if !ok || op.Kind != yaml.ScalarNode {
		p.errorf(op, path+".operator", "must be In, NotIn, Exists or DoesNotExist, got %s", kindName(op))
		return labels.Requirement{}, false
	}
	var vals []string
	if v := f["values"]; v != nil {
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, path+".values", "must be a list, got %s", kindName(v))
			return labels.Requirement{}, false
		}
		for _, x := range v.Content {
			vals = append(vals, x.Value)
		}
	}
	r, err := labels.NewRequirement(key.Value, o, vals)
	if err != nil {
		p.errorf(key, path, "%s", requirementMessage(err))
		return labels.Requirement{}, false
	}
	return *r, true
}

// requirementMessage shortens apimachinery's field errors, which name
// their own path ("key: Invalid value: ...").
func requirementMessage(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "[")
	s = strings.TrimSuffix(s, "]")
	return s
}

func (p *parser) threshold(n *yaml.Node, path string) Threshold {
	if n.Kind == yaml.ScalarNode {
		if s, ok := strings.CutSuffix(n.Value, "%"); ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 100 {
				return Threshold{Percent: v, IsPercent: true}
			}
		} else if v, err := strconv.Atoi(n.Value); err == nil && v >= 0 {
			return Threshold{Count: v}
		}
	}
	p.errorf(n, path, "must be a count of devices (2) or a percentage of them (\"10%%\"), got %s", kindName(n))
	return Threshold{}
}

// cronParser reads five-field schedules, descriptors such as @daily, and
// a CRON_TZ= or TZ= prefix; times are UTC otherwise.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (p *parser) window(n *yaml.Node, path string) *Window {
	f := p.fields(n, path, "schedule", "duration")
	if f == nil {
		return nil
	}
	s, d := f["schedule"], f["duration"]
	if s == nil || d == nil {
		p.errorf(n, path, "schedule and duration are required")
		return nil
	}
	w := &Window{Spec: s.Value}
	before := len(p.problems)
	sched, err := cronParser.Parse(s.Value)
	if err != nil || s.Kind != yaml.ScalarNode {
		p.errorf(s, path+".schedule", "must be a cron schedule (\"0 2 * * *\"): %v", err)
	} else if sched.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		p.errorf(s, path+".schedule", "never occurs")
	}
	w.Schedule = sched
	w.Duration = p.duration(d, path+".duration", false)
	if len(p.problems) > before {
		return nil
	}
	return w
}

// WaveOf returns the index of the wave device node with labels belongs
// to: the first whose selector matches and whose percent covers the
// device's bucket. A device in no wave gets len(p.Waves): it rolls out
// after the last wave.
func (p *Policy) WaveOf(node string, l map[string]string) int {
	b := Bucket(node)
	for i, w := range p.Waves {
		if w.Selector != nil && !w.Selector.Matches(labels.Set(l)) {
			continue
		}
		if w.Percent > 0 && b >= w.Percent {
			continue
		}
		return i
	}
	return len(p.Waves)
}

// WaveName names wave i, "after-last-wave" for devices in no wave.
func (p *Policy) WaveName(i int) string {
	if i < len(p.Waves) {
		return p.Waves[i].Name
	}
	return AfterLastWave
}

// AfterLastWave names the place of devices no wave selects.
const AfterLastWave = "after-last-wave"

// Bucket is a device's place in percent waves: a number in [0, 100) from
// a stable hash of its node name, with a resolution of 1/10000 of the
// fleet.
func Bucket(node string) float64 {
	sum := sha256.Sum256([]byte(node))
	return float64(binary.BigEndian.Uint64(sum[:8])%1000000) / 10000
}
