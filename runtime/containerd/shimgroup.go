package containerd

import (
	"context"
	"fmt"
	"strconv"

	"github.com/containerd/containerd/v2/core/containers"
)

// LabelShimGroup names, on a pod's sandbox record, the shim group its
// containers run in ("shim-<n>"): up to Options.PodsPerShim pods share
// one runc shim process (and one log daemon, see logd.go).
const LabelShimGroup = "berth.dev/shim-group"

// DefaultPodsPerShim is the default of Options.PodsPerShim.
const DefaultPodsPerShim = 16

// shimGroup returns the shim group of the pod whose sandbox record is sb,
// choosing one the first time one of its containers starts: the
// lowest-numbered group with fewer than podsPerShim pods, recorded on the
// sandbox record so that every later container of the pod (a restart, an
// init container, after a berth restart) joins the same shim. Choices in
// this process are serialized, so a group never holds more than
// podsPerShim pods of one berth process; two berth processes starting pods
// at the same moment may each add one.
func (r *Runtime) shimGroup(ctx context.Context, sb containers.Container) (string, error) {
	if r.podsPerShim <= 1 {
		return sb.ID, nil
	}
	if g := sb.Labels[LabelShimGroup]; g != "" {
		return g, nil
	}
	r.groupMu.Lock()
	defer r.groupMu.Unlock()
	sbs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true", LabelRole, RoleSandbox))
	if err != nil {
		return "", fmt.Errorf("list sandboxes: %w", err)
	}
	count := map[string]int{}
	for _, s := range sbs {
		if s.ID == sb.ID {
			if g := s.Labels[LabelShimGroup]; g != "" {
				return g, nil
			}
			continue
		}
		count[s.Labels[LabelShimGroup]]++
	}
	var g string
	for n := 1; ; n++ {
		g = "shim-" + strconv.Itoa(n)
		if count[g] < r.podsPerShim {
			break
		}
	}
	if _, err := r.client.ContainerService().Update(ctx, containers.Container{ID: sb.ID, Labels: map[string]string{LabelShimGroup: g}}, "labels."+LabelShimGroup); err != nil {
		return "", fmt.Errorf("record shim group of %s: %w", sb.ID, err)
	}
	return g, nil
}
