package schema

import (
	"os"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

// TestExamples loads the example repositories for a few nodes and checks
// what each node gets.
func TestExamples(t *testing.T) {
	tests := []struct {
		dir  string
		node reconcile.Node
		want []string
		// replicas of Deployment/default/shop, when set.
		replicas int32
	}{
		{"hello", reconcile.Node{Name: "n"}, []string{"Pod/default/web", "Pod/default/worker"}, 0},
		{"cue-templates", reconcile.Node{Name: "n"}, []string{"ConfigMap/default/shop-config", "Deployment/default/shop"}, 1},
		{"cue-templates", reconcile.Node{Name: "n", Labels: map[string]string{"replicas": "3"}}, []string{"ConfigMap/default/shop-config", "Deployment/default/shop"}, 3},
		{"fleet", reconcile.Node{Name: "small", Labels: map[string]string{"role": "edge"}},
			[]string{"ConfigMap/default/site", "DaemonSet/default/log-shipper", "Pod/default/sensor-reader"}, 0},
		{"fleet", reconcile.Node{Name: "big", Labels: map[string]string{"role": "edge", "gpu": "true"}},
			[]string{"ConfigMap/default/site", "DaemonSet/default/log-shipper", "Deployment/default/inference", "Pod/default/sensor-reader"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.dir+"/"+tt.node.String(), func(t *testing.T) {
			res, err := Load(os.DirFS("../examples/"+tt.dir), Options{Node: tt.node, Sandbox: testSandbox(t)})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range res.Objects {
				got = append(got, o.Key())
				if o.Key() == "Deployment/default/shop" && *o.Deployment.Replicas != tt.replicas {
					t.Errorf("shop has %d replicas, want %d", *o.Deployment.Replicas, tt.replicas)
				}
				if o.Key() == "ConfigMap/default/site" && o.ConfigMap.Data["node"] != tt.node.Name {
					t.Errorf("site ConfigMap names node %q, want %q", o.ConfigMap.Data["node"], tt.node.Name)
				}
				if o.Key() == "ConfigMap/default/shop-config" && o.ConfigMap.Data["features.json"] == "" {
					t.Error("shop-config has no embedded features.json")
				}
			}
			slices.Sort(got)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("objects (-want +got):\n%s", d)
			}
		})
	}
}
