package fleet

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestTagNames(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"yaml only", map[string]string{"a.yaml": "x: 1 # @tag(zone)\n"}, []string{}},
		{"tags", map[string]string{"a.cue": "a: string @tag(node)\nb: *1 | int @tag(\"replicas\",type=int)\nc: string @tag( zone )\n"}, []string{"node", "replicas", "zone"}},
		{"if", map[string]string{"x/b.cue": "@if((gpu && arch == \"arm64\") || node == \"edge-1\")\npackage x\n"}, []string{"arch", "arm64", "edge-1", "gpu", "node"}},
		{"spaced", map[string]string{"c.cue": "@if (lab)\npackage x\n"}, []string{"lab"}},
		{"tag variable", map[string]string{"v.cue": "a: string @tag(a,var=arch)\n"}, []string{"a", "kubernetes.io/arch", "kubernetes.io/hostname", "kubernetes.io/os"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for k, v := range tt.files {
				fsys[k] = &fstest.MapFile{Data: []byte(v)}
			}
			if diff := cmp.Diff(tt.want, tagNames(fsys)); diff != "" {
				t.Errorf("tagNames (-want +got):\n%s", diff)
			}
		})
	}
	a := Device{Name: "a", Labels: map[string]string{"zone": "eu", "x": "1"}}
	b := Device{Name: "b", Labels: map[string]string{"zone": "eu", "x": "2"}}
	c := Device{Name: "c", Labels: map[string]string{"zone": ""}}
	d := Device{Name: "d"}
	if loadKey(a, []string{"zone"}) != loadKey(b, []string{"zone"}) {
		t.Errorf("devices agreeing on zone got different keys")
	}
	if loadKey(a, []string{"zone", "node"}) == loadKey(b, []string{"zone", "node"}) {
		t.Errorf("devices with different names share a key when node is read")
	}
	if loadKey(c, []string{"zone"}) == loadKey(d, []string{"zone"}) {
		t.Errorf("an empty label and a missing one share a key")
	}
}
