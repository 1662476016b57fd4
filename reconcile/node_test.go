package reconcile

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNodeMatches(t *testing.T) {
	node := Node{Name: "edge-7", Labels: map[string]string{
		"disktype": "ssd", "zone": "eu-1", "cores": "4", "gpu": "",
	}}
	req := func(terms ...NodeSelectorTerm) *Affinity {
		return &Affinity{NodeAffinity: &NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &NodeSelector{NodeSelectorTerms: terms},
		}}
	}
	expr := func(key, op string, values ...string) NodeSelectorTerm {
		return NodeSelectorTerm{MatchExpressions: []NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
	}
	field := func(op string, values ...string) NodeSelectorTerm {
		return NodeSelectorTerm{MatchFields: []NodeSelectorRequirement{{Key: "metadata.name", Operator: op, Values: values}}}
	}
	tests := []struct {
		name   string
		spec   *PodSpec
		ok     bool
		reason string // substring of the reason when !ok
	}{
		{"nil spec", nil, true, ""},
		{"no constraints", &PodSpec{}, true, ""},
		{"nodeName equal", &PodSpec{NodeName: "edge-7"}, true, ""},
		{"nodeName other", &PodSpec{NodeName: "edge-8"}, false, `nodeName "edge-8"`},
		{"nodeSelector match", &PodSpec{NodeSelector: map[string]string{"disktype": "ssd", "zone": "eu-1"}}, true, ""},
		{"nodeSelector empty value", &PodSpec{NodeSelector: map[string]string{"gpu": ""}}, true, ""},
		{"nodeSelector wrong value", &PodSpec{NodeSelector: map[string]string{"disktype": "hdd"}}, false, "disktype=hdd: node label is disktype=ssd"},
		{"nodeSelector missing label", &PodSpec{NodeSelector: map[string]string{"arch": "arm64"}}, false, `no label "arch"`},
		{"In match", &PodSpec{Affinity: req(expr("zone", OpIn, "eu-2", "eu-1"))}, true, ""},
		{"In no match", &PodSpec{Affinity: req(expr("zone", OpIn, "us-1"))}, false, "zone In [us-1]"},
		{"In missing label", &PodSpec{Affinity: req(expr("arch", OpIn, "amd64"))}, false, `no label "arch"`},
		{"NotIn match", &PodSpec{Affinity: req(expr("zone", OpNotIn, "us-1"))}, true, ""},
		{"NotIn missing label matches", &PodSpec{Affinity: req(expr("arch", OpNotIn, "amd64"))}, true, ""},
		{"NotIn no match", &PodSpec{Affinity: req(expr("zone", OpNotIn, "eu-1"))}, false, "zone NotIn"},
		{"Exists", &PodSpec{Affinity: req(expr("gpu", OpExists))}, true, ""},
		{"Exists missing", &PodSpec{Affinity: req(expr("tpu", OpExists))}, false, "tpu Exists"},
		{"DoesNotExist", &PodSpec{Affinity: req(expr("tpu", OpDoesNotExist))}, true, ""},
		{"DoesNotExist present", &PodSpec{Affinity: req(expr("gpu", OpDoesNotExist))}, false, "gpu DoesNotExist"},
		{"Gt", &PodSpec{Affinity: req(expr("cores", OpGt, "2"))}, true, ""},
		{"Gt equal fails", &PodSpec{Affinity: req(expr("cores", OpGt, "4"))}, false, "cores Gt 4"},
		{"Lt", &PodSpec{Affinity: req(expr("cores", OpLt, "8"))}, true, ""},
		{"Lt fails", &PodSpec{Affinity: req(expr("cores", OpLt, "3"))}, false, "cores Lt 3"},
		{"Gt non-integer label", &PodSpec{Affinity: req(expr("zone", OpGt, "1"))}, false, "not an integer"},
		{"Gt non-integer value", &PodSpec{Affinity: req(expr("cores", OpGt, "x"))}, false, "not an integer"},
		{"Gt two values", &PodSpec{Affinity: req(expr("cores", OpGt, "1", "2"))}, false, "exactly one value"},
		{"Gt missing label", &PodSpec{Affinity: req(expr("ram", OpGt, "1"))}, false, `no label "ram"`},
		{"unknown operator", &PodSpec{Affinity: req(expr("zone", "Like", "eu"))}, false, `unknown operator "Like"`},
		{"matchFields In", &PodSpec{Affinity: req(field(OpIn, "edge-7"))}, true, ""},
		{"matchFields NotIn", &PodSpec{Affinity: req(field(OpNotIn, "edge-7"))}, false, "metadata.name NotIn"},
		{"matchFields other key", &PodSpec{Affinity: req(NodeSelectorTerm{MatchFields: []NodeSelectorRequirement{{Key: "spec.unschedulable", Operator: OpIn, Values: []string{"x"}}}})}, false, "only metadata.name"},
		{"terms are ORed", &PodSpec{Affinity: req(expr("zone", OpIn, "us-1"), expr("disktype", OpIn, "ssd"))}, true, ""},
		{"requirements in a term are ANDed", &PodSpec{Affinity: req(NodeSelectorTerm{
			MatchExpressions: []NodeSelectorRequirement{{Key: "zone", Operator: OpIn, Values: []string{"eu-1"}}, {Key: "disktype", Operator: OpIn, Values: []string{"hdd"}}},
		})}, false, "disktype In [hdd]"},
		{"expressions and fields ANDed", &PodSpec{Affinity: req(NodeSelectorTerm{
			MatchExpressions: []NodeSelectorRequirement{{Key: "zone", Operator: OpIn, Values: []string{"eu-1"}}},
			MatchFields:      []NodeSelectorRequirement{{Key: "metadata.name", Operator: OpIn, Values: []string{"edge-9"}}},
		})}, false, "metadata.name In [edge-9]"},
		{"empty term matches nothing", &PodSpec{Affinity: req(NodeSelectorTerm{})}, false, "empty term"},
		{"no terms matches nothing", &PodSpec{Affinity: req()}, false, "no nodeSelectorTerms"},
		{"preferred only", &PodSpec{Affinity: &Affinity{NodeAffinity: &NodeAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []PreferredSchedulingTerm{{Weight: 1, Preference: expr("zone", OpIn, "us-1")}},
		}}}, true, ""},
		{"selector and affinity both needed", &PodSpec{NodeSelector: map[string]string{"disktype": "ssd"}, Affinity: req(expr("zone", OpIn, "us-1"))}, false, "zone In [us-1]"},
		{"tolerations ignored", &PodSpec{Tolerations: []Toleration{{Key: "k", Operator: "Exists"}}}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason := node.Matches(tt.spec)
			if ok != tt.ok {
				t.Fatalf("Matches = %v (%q), want %v", ok, reason, tt.ok)
			}
			if ok && reason != "" {
				t.Errorf("reason %q on a match", reason)
			}
			if !ok && !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", reason, tt.reason)
			}
		})
	}
}

func TestParseNodeLabels(t *testing.T) {
	got, err := ParseNodeLabels([]string{"a=1", " b = 2 ", "flag", "", "a=3", "c=x=y"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "3", "b": "2", "flag": "", "c": "x=y"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	if _, err := ParseNodeLabels([]string{"=v"}); err == nil {
		t.Error("a label without a key was accepted")
	}
}

func TestNodeString(t *testing.T) {
	n := Node{Name: "h", Labels: map[string]string{"b": "2", "a": "1"}}
	if got := n.String(); got != "h{a=1,b=2}" {
		t.Errorf("String = %q", got)
	}
}
