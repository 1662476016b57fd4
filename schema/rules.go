package schema

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"cuelang.org/go/cue"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"berth.dev/berth/reconcile"
)

// This file holds the rules that the schema's shapes cannot say and that
// would otherwise be found only when a revision is applied: schedules and
// time zones through the controller's own parser, quantities and label
// selectors through k8s.io/apimachinery, and resources berth cannot
// enforce.

// checkSchedule checks a CronJob's schedule and time zone with
// reconcile.ParseSchedule, the parser the CronJob controller uses.
func checkSchedule(x *validator, s string, timeZone *string) {
	p := sel("spec", "schedule")
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		x.reportAt(p, "must not set a time zone in the schedule; use spec.timeZone")
		return
	}
	if _, err := reconcile.ParseSchedule(s, nil); err != nil {
		x.reportAt(p, "not a cron schedule (five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, …): "+cronError(err))
		return
	}
	if _, err := reconcile.ParseSchedule(s, timeZone); err != nil {
		x.reportAt(sel("spec", "timeZone"), fmt.Sprintf("unknown time zone %q: use an IANA name such as Europe/Berlin or Etc/UTC", *timeZone))
	}
}

// cronError is the parser's error without the schedule it repeats.
func cronError(err error) string {
	s := err.Error()
	if i := strings.Index(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// checkQuantity parses the quantity q at p as Kubernetes does and refuses a
// negative one, or one too large for the runtime to represent.
func checkQuantity(x *validator, p []cue.Selector, q string, milli bool) {
	v, err := resource.ParseQuantity(q)
	if err != nil {
		x.reportAt(p, fmt.Sprintf("%q is not a quantity (such as 500m, 64Mi or 1G): %v", q, err))
		return
	}
	if v.Sign() < 0 {
		x.reportAt(p, fmt.Sprintf("must not be negative, got %s", q))
		return
	}
	limit := resource.NewQuantity(math.MaxInt64, resource.DecimalSI)
	if milli {
		limit = resource.NewMilliQuantity(math.MaxInt64, resource.DecimalSI)
	}
	if v.Cmp(*limit) > 0 {
		x.reportAt(p, fmt.Sprintf("%s is too large (at most %s)", q, limit))
	}
}

// checkResources checks a container's requests and limits: known resource
// names that berth enforces, and quantities.
func checkResources(x *validator, p []cue.Selector, r *reconcile.ResourceRequirements) {
	if r == nil {
		return
	}
	for _, m := range []struct {
		field string
		q     map[string]string
	}{{"limits", r.Limits}, {"requests", r.Requests}} {
		for _, name := range slices.Sorted(maps.Keys(m.q)) {
			rp := at(p, "resources", m.field, name)
			switch {
			case name == "cpu" || name == "memory":
				checkQuantity(x, rp, m.q[name], name == "cpu")
			case name == "ephemeral-storage" && m.field == "requests":
				checkQuantity(x, rp, m.q[name], false)
				x.warnAt(rp, "decides nothing: an ephemeral-storage request places pods across a cluster, and berth does not limit a container's disk use")
			case name == "ephemeral-storage":
				x.reportAt(rp, "field not supported by berth: an ephemeral-storage limit is not enforced (berth does not limit a container's disk use); remove it")
			case strings.HasPrefix(name, "hugepages-"):
				x.reportAt(rp, "field not supported by berth: huge pages are not reserved for containers")
			default:
				x.reportAt(rp, fmt.Sprintf("extended resource %q is not supported: berth accounts only for cpu and memory", name))
			}
		}
	}
}

// selectionOps maps LabelSelectorRequirement operators to apimachinery's.
var selectionOps = map[string]selection.Operator{
	"In": selection.In, "NotIn": selection.NotIn, "Exists": selection.Exists, "DoesNotExist": selection.DoesNotExist,
}

// labelSelector builds s as an apimachinery selector, reporting each
// requirement it refuses (bad keys or values, values with Exists, none
// with In) at its place under spath. ok is false when one was refused.
func labelSelector(x *validator, spath []cue.Selector, s *reconcile.LabelSelector) (labels.Selector, bool) {
	sl, ok := labels.NewSelector(), true
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		r, err := labels.NewRequirement(k, selection.Equals, []string{s.MatchLabels[k]})
		if err != nil {
			x.reportAt(at(spath, "matchLabels", k), requirementMessage(err))
			ok = false
			continue
		}
		sl = sl.Add(*r)
	}
	for i, e := range s.MatchExpressions {
		p := at(spath, "matchExpressions", i)
		op, known := selectionOps[e.Operator]
		if !known {
			x.reportAt(at(p, "operator"), fmt.Sprintf("must be In, NotIn, Exists or DoesNotExist, got %q", e.Operator))
			ok = false
			continue
		}
		r, err := labels.NewRequirement(e.Key, op, e.Values)
		if err != nil {
			x.reportAt(p, requirementMessage(err))
			ok = false
			continue
		}
		sl = sl.Add(*r)
	}
	return sl, ok
}

// requirementMessage shortens apimachinery's field errors, a list in
// brackets.
func requirementMessage(err error) string {
	return strings.TrimSuffix(strings.TrimPrefix(err.Error(), "["), "]")
}
