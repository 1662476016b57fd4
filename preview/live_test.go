package preview_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/schema"
)

func podYAML(name, image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n  containers: [{name: main, image: " + image + "}]\n"
}

func evalFiles(commit string, files map[string]string) *preview.Evaluation {
	fs := fstest.MapFS{}
	for k, v := range files {
		fs[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return preview.Evaluate(fs, commit, node, schema.Options{}, preview.ExpandOptions{})
}

// running returns e's pods as the runtime would report them after apply.
func running(e *preview.Evaluation) []reconcile.ObservedPod {
	var out []reconcile.ObservedPod
	for _, d := range e.Pods {
		o := reconcile.ObservedPod{ID: d.ID, Hash: d.Hash, Revision: d.Revision, Owner: d.Owner, SandboxReady: true}
		for _, c := range d.Spec.Containers {
			o.Containers = append(o.Containers, reconcile.ObservedContainer{Name: c.Name, Kind: reconcile.AppContainer, State: reconcile.StateRunning})
		}
		out = append(out, o)
	}
	return out
}

func TestCompareLive(t *testing.T) {
	base := evalFiles(baseCommit, map[string]string{"web.yaml": podYAML("web", "nginx:1.27"), "db.yaml": podYAML("db", "postgres:16")})
	head := evalFiles(headCommit, map[string]string{"web.yaml": podYAML("web", "nginx:1.28"), "db.yaml": podYAML("db", "postgres:16")})
	if base.Failed() != nil || head.Failed() != nil {
		t.Fatalf("evaluate: %v %v", base.Failed(), head.Failed())
	}
	lookup := func(commit string) *preview.Evaluation {
		if commit == baseCommit {
			return base
		}
		return nil
	}
	tests := []struct {
		name     string
		observed func() []reconcile.ObservedPod
		lookup   func(string) *preview.Evaluation
		want     map[string]string // pod name → action and reason fragment
		drift    map[string]bool
	}{
		{
			name:     "new revision",
			observed: func() []reconcile.ObservedPod { return running(base) },
			lookup:   lookup,
			want:     map[string]string{"web": "replace changed containers[main].image", "db": "keep unchanged"},
		},
		{
			name: "pod removed outside berth",
			observed: func() []reconcile.ObservedPod {
				return running(base)[1:] // db is first
			},
			lookup: lookup,
			want:   map[string]string{"db": "create removed outside berth", "web": "replace changed"},
			drift:  map[string]bool{"db": true},
		},
		{
			name: "spec changed outside berth",
			observed: func() []reconcile.ObservedPod {
				o := running(base)
				o[1].Hash = "0000000000000000"
				return o
			},
			lookup: lookup,
			want:   map[string]string{"web": "replace changed outside berth"},
			drift:  map[string]bool{"web": true},
		},
		{
			name: "container missing",
			observed: func() []reconcile.ObservedPod {
				o := running(head)
				o[0].Containers = nil
				return o
			},
			lookup: lookup,
			want:   map[string]string{"db": "replace is missing (changed outside berth)", "web": "keep unchanged"},
			drift:  map[string]bool{"db": true},
		},
		{
			name:     "old revision not at hand",
			observed: func() []reconcile.ObservedPod { return running(base) },
			want:     map[string]string{"web": "replace not at hand"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := preview.CompareLive(head, "main", preview.Live{Observed: tt.observed(), Applied: base, Revision: tt.lookup})
			got := map[string]preview.PodChange{}
			for _, c := range p.Changes {
				got[c.Pod.Name] = c
			}
			for name, want := range tt.want {
				action, frag, _ := strings.Cut(want, " ")
				c, ok := got[name]
				if !ok || string(c.Action) != action || !strings.Contains(c.Reason, frag) {
					t.Errorf("pod %s: got %s %q, want %s …%s…", name, c.Action, c.Reason, action, frag)
				}
				if c.Drift != tt.drift[name] {
					t.Errorf("pod %s: drift %v, want %v", name, c.Drift, tt.drift[name])
				}
			}
			if c := got["web"]; c.Action == reconcile.ActionReplace && strings.HasPrefix(c.Reason, "changed containers") && len(c.Diff) != 1 {
				t.Errorf("web diff = %v, want the image", c.Diff)
			}
			if p.Base.Name != "live" || p.Base.Commit != baseCommit {
				t.Errorf("base = %+v", p.Base)
			}
		})
	}
}
