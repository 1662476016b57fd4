package rollout

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

const example = `waves:
- {name: canary, selector: {matchLabels: {ring: canary}}, soak: 30m}
- {name: early, percent: 10, soak: 2h}
- {name: rest, percent: 100}
maxFailures: 2
window: {schedule: "0 2 * * *", duration: 4h}
`

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse("./berth-rollout.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseExample(t *testing.T) {
	p := mustParse(t, example)
	var got []string
	for _, w := range p.Waves {
		sel := "<none>"
		if w.Selector != nil {
			sel = w.Selector.String()
		}
		got = append(got, fmt.Sprintf("%s sel=%s pct=%v soak=%s", w.Name, sel, w.Percent, w.Soak))
	}
	want := []string{"canary sel=ring=canary pct=0 soak=30m0s", "early sel=<none> pct=10 soak=2h0m0s", "rest sel=<none> pct=100 soak=0s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("waves (-want +got):\n%s", diff)
	}
	if p.MaxFailures.String() != "2" || p.Window == nil || p.Window.Duration != 4*time.Hour || p.DownloadWindow != nil || p.Halt {
		t.Errorf("maxFailures %s window %v download %v", p.MaxFailures, p.Window, p.DownloadWindow)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"unknown field", "waves:\n- {name: a, percent: 5, sok: 1h}\n",
			[]string{"./berth-rollout.yaml:2:25: waves[0].sok: unknown field (known: name, selector, percent, soak)"}},
		{"bad soak and percent", "waves:\n- name: a\n  percent: 120\n  soak: soon\n",
			[]string{"./berth-rollout.yaml:3:12: waves[0].percent: must be a number above 0 and at most 100, got \"120\"",
				"./berth-rollout.yaml:4:9: waves[0].soak: must be a duration such as 30m or 2h, got \"soon\""}},
		{"no waves", "maxFailures: 1\n", []string{"./berth-rollout.yaml:1:1: waves: required: list at least one wave"}},
		{"duplicate wave and no selection", "waves:\n- {name: a, percent: 5}\n- {name: a}\n",
			[]string{"./berth-rollout.yaml:3:3: waves[1]: select devices with selector, percent or both"}},
		{"duplicate name", "waves:\n- {name: a, percent: 5}\n- {name: a, percent: 50}\n",
			[]string{"./berth-rollout.yaml:3:3: waves[1].name: wave \"a\" is also waves[0]"}},
		{"decreasing percent", "waves:\n- {name: a, percent: 50}\n- {name: b, percent: 10}\n",
			[]string{"./berth-rollout.yaml:3:3: waves[1].percent: 10% is below an earlier wave's 50%: percents are cumulative shares of the fleet and must not decrease"}},
		{"bad name", "waves:\n- {name: Canary, percent: 5}\n",
			[]string{"./berth-rollout.yaml:2:10: waves[0].name: must be a DNS-1123 label (lower-case letters, digits and '-', at most 63), got \"Canary\""}},
		{"bad label key", "waves:\n- name: a\n  selector: {matchLabels: {\"bad key\": x}}\n",
			[]string{`./berth-rollout.yaml:3:28: waves[0].selector.matchLabels["bad key"]: `}},
		{"bad operator", "waves:\n- name: a\n  selector:\n    matchExpressions:\n    - {key: ring, operator: Near}\n",
			[]string{"./berth-rollout.yaml:5:29: waves[0].selector.matchExpressions[0].operator: must be In, NotIn, Exists or DoesNotExist, got \"Near\""}},
		{"bad maxFailures", "waves: [{name: a, percent: 5}]\nmaxFailures: many\n",
			[]string{`./berth-rollout.yaml:2:14: maxFailures: must be a count of devices (2) or a percentage of them ("10%"), got "many"`}},
		{"bad window", "waves: [{name: a, percent: 5}]\nwindow: {schedule: \"0 25 * * *\", duration: 0s}\n",
			[]string{`./berth-rollout.yaml:2:20: window.schedule: must be a cron schedule ("0 2 * * *"): `,
				"./berth-rollout.yaml:2:44: window.duration: must be above zero, got 0s"}},
		{"window without duration", "waves: [{name: a, percent: 5}]\ndownloadWindow: {schedule: \"@daily\"}\n",
			[]string{"./berth-rollout.yaml:2:17: downloadWindow: schedule and duration are required"}},
		{"syntax", "waves: [\n", []string{"./berth-rollout.yaml:1:1: did not find expected node content"}},
		{"not a mapping", "- a\n", []string{"./berth-rollout.yaml:1:1: must be a mapping, got a list"}},
		{"bad halt", "waves: [{name: a, percent: 5}]\nhalt: yes please\n",
			[]string{`./berth-rollout.yaml:2:7: halt: must be true or false, got "yes please"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, "./berth-rollout.yaml", tc.src, tc.want)
		})
	}
}

// checkProblems parses src as file and checks that its problems start
// with want, in order.
func checkProblems(t *testing.T, file, src string, want []string) {
	t.Helper()
	_, err := Parse(file, []byte(src))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("got %v, want *Error", err)
	}
	if len(perr.Problems) != len(want) {
		t.Fatalf("got %d problems:\n%s\nwant %d", len(perr.Problems), err, len(want))
	}
	for i, p := range perr.Problems {
		if !strings.HasPrefix(p.String(), want[i]) {
			t.Errorf("problem %d:\n got %s\nwant %s…", i, p, want[i])
		}
	}
}

func TestLoad(t *testing.T) {
	p, err := Load(fstest.MapFS{"pod.yaml": {Data: []byte("kind: Pod")}})
	if p != nil || err != nil {
		t.Fatalf("no policy file: got %v, %v", p, err)
	}
	p, err = Load(fstest.MapFS{"berth-rollout.yml": {Data: []byte(example)}})
	if err != nil || p == nil || p.File != "./berth-rollout.yml" || len(p.Waves) != 3 {
		t.Fatalf("got %+v, %v", p, err)
	}
	_, err = Load(fstest.MapFS{"berth-rollout.json": {Data: []byte(`{"waves": [{"name": "a", "percent": 0}]}`)}})
	if err == nil || !strings.HasPrefix(err.Error(), "./berth-rollout.json:1:37: waves[0].percent:") {
		t.Fatalf("got %v", err)
	}
	_, err = Load(fstest.MapFS{"berth-rollout.yaml": {Data: []byte(strings.Repeat("#", MaxFileSize+1))}})
	if err == nil || !strings.Contains(err.Error(), "larger than 64 KiB") {
		t.Fatalf("got %v", err)
	}
}

func TestWaveOf(t *testing.T) {
	p := mustParse(t, example)
	counts := make([]int, len(p.Waves)+1)
	for i := range 10000 {
		name := fmt.Sprintf("dev-%05d", i)
		l := map[string]string{}
		if i < 5 {
			l["ring"] = "canary"
		}
		w := p.WaveOf(name, l)
		if w2 := p.WaveOf(name, l); w2 != w {
			t.Fatalf("%s: wave %d then %d", name, w, w2)
		}
		counts[w]++
	}
	if counts[0] != 5 || counts[3] != 0 {
		t.Errorf("canary %d, no wave %d: want 5 and 0", counts[0], counts[3])
	}
	if counts[1] < 900 || counts[1] > 1100 {
		t.Errorf("early holds %d of 9995 devices, want about 10%%", counts[1])
	}
	// Percents are cumulative: a device in a 10 % wave is in every wider one.
	q := mustParse(t, "waves: [{name: a, percent: 10}, {name: b, percent: 20}]\n")
	for i := range 1000 {
		name := fmt.Sprintf("dev-%d", i)
		if (Bucket(name) < 10) != (q.WaveOf(name, nil) == 0) {
			t.Fatalf("%s: bucket %v, wave %d", name, Bucket(name), q.WaveOf(name, nil))
		}
	}
	if got := q.WaveName(q.WaveOf("dev-x", nil)); got == "" {
		t.Error("no wave name")
	}
}

func TestThreshold(t *testing.T) {
	for _, tc := range []struct {
		t    Threshold
		n    int
		want int
	}{{Threshold{Count: 2}, 100, 2}, {Threshold{Percent: 10, IsPercent: true}, 55, 5}, {Threshold{Percent: 10, IsPercent: true}, 9, 0}} {
		if got := tc.t.Allowed(tc.n); got != tc.want {
			t.Errorf("%s of %d: got %d, want %d", tc.t, tc.n, got, tc.want)
		}
	}
}

func TestWindow(t *testing.T) {
	p := mustParse(t, "waves: [{name: a, percent: 100}]\nwindow: {schedule: \"0 2 * * *\", duration: 4h}\n")
	w := p.Window
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Duration
		open bool
	}{{time.Hour, false}, {2 * time.Hour, true}, {5*time.Hour + 59*time.Minute, true}, {6 * time.Hour, false}, {23 * time.Hour, false}} {
		if got := w.Open(day.Add(tc.at)); got != tc.open {
			t.Errorf("at %s: open %v, want %v", tc.at, got, tc.open)
		}
	}
	if got := w.NextOpen(day.Add(7 * time.Hour)); !got.Equal(day.Add(26 * time.Hour)) {
		t.Errorf("next open %s", got)
	}
}
