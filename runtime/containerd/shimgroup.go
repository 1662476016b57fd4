package containerd

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
)

// LabelShimGroup names, on a pod's sandbox record, the shim group its
// containers run in ("shim-<n>"): up to Options.PodsPerShim pods share
// one runc shim process (and one log daemon, see logd.go).
const LabelShimGroup = "berth.dev/shim-group"

// DefaultPodsPerShim is the default of Options.PodsPerShim.
const DefaultPodsPerShim = 16

// shimGroup returns the shim group of the pod whose sandbox record is sb,
// choosing one the first time one of its containers starts, and counts a
// start in flight in that group until done is called. The choice is the
// lowest-numbered group with fewer than podsPerShim pods and no start in
// flight in this process (a shim creates and starts one container at a
// time, so concurrent starts go to different shims), recorded on the
// sandbox record so that every later container of the pod (a restart, an
// init container, after a berth restart) joins the same shim. Choices in
// this process are serialized, so a group never holds more than
// podsPerShim pods of one berth process; two berth processes starting pods
// within groupCensusTTL of each other may each add some.
func (r *Runtime) shimGroup(ctx context.Context, sb containers.Container) (group string, done func(), err error) {
	if r.podsPerShim <= 1 {
		return sb.ID, func() {}, nil
	}
	r.groupMu.Lock()
	defer r.groupMu.Unlock()
	if group, err = r.chooseShimGroup(ctx, sb); err != nil {
		return "", nil, err
	}
	r.groupBusy[group]++
	return group, func() {
		r.groupMu.Lock()
		defer r.groupMu.Unlock()
		if r.groupBusy[group]--; r.groupBusy[group] <= 0 {
			delete(r.groupBusy, group)
		}
	}, nil
}

// groupCensusTTL is how long chooseShimGroup trusts its list of the
// sandbox records.
const groupCensusTTL = 2 * time.Second

// groupCensus is the shim group of each sandbox record, as a list of the
// records said at, plus the choices this process made since.
type groupCensus struct {
	at     time.Time
	chosen map[string]string
}

// chooseShimGroup returns sb's recorded group or records a new choice;
// r.groupMu is held. It lists the sandbox records to count the pods of
// each group (containerd reads every record of the namespace for that),
// and trusts that list, with its own choices added, for groupCensusTTL or
// until a pod is removed: a list for each pod made starting N pods cost
// N² record reads, under the lock every start takes.
func (r *Runtime) chooseShimGroup(ctx context.Context, sb containers.Container) (string, error) {
	if g := sb.Labels[LabelShimGroup]; g != "" {
		return g, nil
	}
	c := &r.groups
	if c.chosen == nil || time.Since(c.at) > groupCensusTTL {
		sbs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true", LabelRole, RoleSandbox))
		if err != nil {
			return "", fmt.Errorf("list sandboxes: %w", err)
		}
		*c = groupCensus{at: time.Now(), chosen: map[string]string{}}
		for _, s := range sbs {
			if g := s.Labels[LabelShimGroup]; g != "" {
				c.chosen[s.ID] = g
			}
		}
	}
	// sb may be older than a choice made for it since it was read: by a
	// concurrent start of another of the pod's containers.
	if g := c.chosen[sb.ID]; g != "" {
		return g, nil
	}
	count := map[string]int{}
	for _, g := range c.chosen {
		count[g]++
	}
	var g string
	for n := 1; ; n++ {
		g = "shim-" + strconv.Itoa(n)
		if count[g] < r.podsPerShim && r.groupBusy[g] == 0 {
			break
		}
	}
	if _, err := r.client.ContainerService().Update(ctx, containers.Container{ID: sb.ID, Labels: map[string]string{LabelShimGroup: g}}, "labels."+LabelShimGroup); err != nil {
		return "", fmt.Errorf("record shim group of %s: %w", sb.ID, err)
	}
	c.chosen[sb.ID] = g
	return g, nil
}

// forgetShimGroups drops chooseShimGroup's census: a pod is gone.
func (r *Runtime) forgetShimGroups() {
	r.groupMu.Lock()
	r.groups = groupCensus{}
	r.groupMu.Unlock()
}
