package reconcile

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Node selector operators of Kubernetes' NodeSelectorRequirement.
const (
	OpIn           = "In"
	OpNotIn        = "NotIn"
	OpExists       = "Exists"
	OpDoesNotExist = "DoesNotExist"
	OpGt           = "Gt"
	OpLt           = "Lt"
)

// Matches reports whether a pod with spec runs on n, with Kubernetes'
// scheduling semantics restricted to what decides placement on one host:
// spec.nodeName must equal n.Name when set, every spec.nodeSelector entry
// must equal a label of n, and at least one term of the required node
// affinity must match (a term matches when all its matchExpressions on
// labels and matchFields on metadata.name match; a term with neither
// matches nothing). Preferred affinity and tolerations never decide
// anything on a single host. When ok is false, reason says which
// constraint failed, as a sentence fragment ("nodeSelector disktype=ssd
// does not match …").
func (n Node) Matches(spec *PodSpec) (ok bool, reason string) {
	if spec == nil {
		return true, ""
	}
	if spec.NodeName != "" && spec.NodeName != n.Name {
		return false, fmt.Sprintf("nodeName %q is not this node (%q)", spec.NodeName, n.Name)
	}
	for _, k := range sortedKeys(spec.NodeSelector) {
		want := spec.NodeSelector[k]
		got, has := n.Labels[k]
		if !has {
			return false, fmt.Sprintf("nodeSelector %s=%s: node has no label %q", k, want, k)
		}
		if got != want {
			return false, fmt.Sprintf("nodeSelector %s=%s: node label is %s=%s", k, want, k, got)
		}
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil {
		return true, ""
	}
	req := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if req == nil {
		return true, ""
	}
	if len(req.NodeSelectorTerms) == 0 {
		return false, "required nodeAffinity has no nodeSelectorTerms, which matches no node"
	}
	var reasons []string
	for i, t := range req.NodeSelectorTerms {
		ok, why := n.matchTerm(t)
		if ok {
			return true, ""
		}
		reasons = append(reasons, fmt.Sprintf("term %d: %s", i, why))
	}
	return false, "required nodeAffinity matches no term (" + strings.Join(reasons, "; ") + ")"
}

// matchTerm reports whether all requirements of t match n.
func (n Node) matchTerm(t NodeSelectorTerm) (bool, string) {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false, "an empty term matches no node"
	}
	for _, r := range t.MatchExpressions {
		v, has := n.Labels[r.Key]
		if ok, why := matchRequirement(r, "label", v, has); !ok {
			return false, why
		}
	}
	for _, r := range t.MatchFields {
		if r.Key != "metadata.name" {
			return false, fmt.Sprintf("matchFields key %q is not supported (only metadata.name)", r.Key)
		}
		if ok, why := matchRequirement(r, "field", n.Name, true); !ok {
			return false, why
		}
	}
	return true, ""
}

// matchRequirement evaluates one requirement against the node's value v of
// r.Key (has says whether the node has the key at all).
func matchRequirement(r NodeSelectorRequirement, what, v string, has bool) (bool, string) {
	desc := func() string {
		if !has {
			return fmt.Sprintf("node has no %s %q", what, r.Key)
		}
		return fmt.Sprintf("node %s is %s=%s", what, r.Key, v)
	}
	switch r.Operator {
	case OpIn:
		if has && slices.Contains(r.Values, v) {
			return true, ""
		}
		return false, fmt.Sprintf("%s In [%s]: %s", r.Key, strings.Join(r.Values, ", "), desc())
	case OpNotIn:
		if !has || !slices.Contains(r.Values, v) {
			return true, ""
		}
		return false, fmt.Sprintf("%s NotIn [%s]: %s", r.Key, strings.Join(r.Values, ", "), desc())
	case OpExists:
		if has {
			return true, ""
		}
		return false, fmt.Sprintf("%s Exists: %s", r.Key, desc())
	case OpDoesNotExist:
		if !has {
			return true, ""
		}
		return false, fmt.Sprintf("%s DoesNotExist: %s", r.Key, desc())
	case OpGt, OpLt:
		if len(r.Values) != 1 {
			return false, fmt.Sprintf("%s %s needs exactly one value, has %d", r.Key, r.Operator, len(r.Values))
		}
		want, err := strconv.ParseInt(r.Values[0], 10, 64)
		if err != nil {
			return false, fmt.Sprintf("%s %s %s: the value is not an integer", r.Key, r.Operator, r.Values[0])
		}
		if !has {
			return false, fmt.Sprintf("%s %s %d: %s", r.Key, r.Operator, want, desc())
		}
		got, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false, fmt.Sprintf("%s %s %d: %s, not an integer", r.Key, r.Operator, want, desc())
		}
		if (r.Operator == OpGt && got > want) || (r.Operator == OpLt && got < want) {
			return true, ""
		}
		return false, fmt.Sprintf("%s %s %d: %s", r.Key, r.Operator, want, desc())
	default:
		return false, fmt.Sprintf("%s: unknown operator %q", r.Key, r.Operator)
	}
}

// ParseNodeLabels parses "key=value" pairs (as given by --node-label) into
// a label map; a pair without "=" is a label with an empty value. Later
// pairs override earlier ones.
func ParseNodeLabels(pairs []string) (map[string]string, error) {
	labels := map[string]string{}
	for _, p := range pairs {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if k == "" {
			return nil, fmt.Errorf("node label %q has no key", p)
		}
		labels[k] = strings.TrimSpace(v)
	}
	return labels, nil
}

// String formats n as "name{k=v,…}" with sorted labels.
func (n Node) String() string {
	keys := make([]string, 0, len(n.Labels))
	for k := range n.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(n.Name)
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + n.Labels[k])
	}
	b.WriteByte('}')
	return b.String()
}
