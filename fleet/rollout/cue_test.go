package rollout

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// exampleCUE is the example policy in CUE, with a helper and the
// standard library.
const exampleCUE = `import "strings"

_soak: "30m"
waves: [
	{name: "canary", selector: matchLabels: ring: "canary", soak: _soak},
	{name: strings.ToLower("Early"), percent: 10, soak: "2h"},
	{name: "rest", percent: 100},
]
maxFailures: 2
window: {schedule: "0 2 * * *", duration: "4h"}
`

// TestParseCUE: the same policy from CUE as from YAML.
func TestParseCUE(t *testing.T) {
	fromYAML := mustParse(t, example)
	fromCUE, err := Parse("./berth-rollout.cue", []byte(exampleCUE))
	if err != nil {
		t.Fatal(err)
	}
	if fromCUE.File != "./berth-rollout.cue" {
		t.Errorf("file %q", fromCUE.File)
	}
	fromCUE.File = fromYAML.File
	opts := cmp.Comparer(func(a, b *Window) bool {
		return a == nil && b == nil || a != nil && b != nil && a.Spec == b.Spec && a.Duration == b.Duration
	})
	if diff := cmp.Diff(fromYAML, fromCUE, opts, cmp.Comparer(func(a, b Wave) bool {
		return a.Name == b.Name && a.Percent == b.Percent && a.Soak == b.Soak &&
			(a.Selector == nil) == (b.Selector == nil) && (a.Selector == nil || a.Selector.String() == b.Selector.String())
	})); diff != "" {
		t.Errorf("CUE policy differs from YAML (-yaml +cue):\n%s", diff)
	}
	if d := fromCUE.Decide(time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC), Device{Name: "x", Labels: map[string]string{"ring": "canary"}}, Revision{Commit: "c"}, nil, false); d.State != Apply || d.Wave != "canary" {
		t.Errorf("decision %+v", d)
	}
}

func TestParseCUEErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string
	}{
		{"the parser's rules, at CUE positions", "waves: [\n\t{name: \"a\", percent: 5, sok: \"1h\"},\n\t{name: \"b\", percent: 120},\n]\nhalt: \"yes\"\n",
			[]string{"./berth-rollout.cue:2:26: waves[0].sok: unknown field (known: name, selector, percent, soak)",
				"./berth-rollout.cue:3:23: waves[1].percent: must be a number above 0 and at most 100, got \"120\"",
				"./berth-rollout.cue:5:7: halt: must be true or false, got \"yes\""}},
		{"CUE syntax", "waves: [\n", []string{"./berth-rollout.cue:1:10: expected ']', found 'EOF'"}},
		{"conflict", "maxFailures: 1\nmaxFailures: 2\nwaves: [{name: \"a\", percent: 5}]\n",
			[]string{"./berth-rollout.cue:2:14: maxFailures: conflicting values 2 and 1"}},
		{"not concrete", "waves: [{name: string, percent: 5}]\n",
			[]string{"./berth-rollout.cue:1:16: waves[0].name: incomplete value string"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkProblems(t, "./berth-rollout.cue", tc.src, tc.want)
		})
	}
}

func TestLoadCUEAndTwoPolicies(t *testing.T) {
	p, err := Load(fstest.MapFS{"berth-rollout.cue": {Data: []byte(exampleCUE)}})
	if err != nil || p == nil || p.File != "./berth-rollout.cue" || len(p.Waves) != 3 {
		t.Fatalf("got %+v, %v", p, err)
	}
	_, err = Load(fstest.MapFS{"berth-rollout.yaml": {Data: []byte(example)}, "berth-rollout.cue": {Data: []byte(exampleCUE)}})
	if err == nil || err.Error() != "./berth-rollout.cue:1:1: a second rollout policy: ./berth-rollout.yaml is one already; keep one" {
		t.Fatalf("two policies: %v", err)
	}
}
