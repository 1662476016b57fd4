package containerd

import (
	"context"
	"fmt"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/typeurl/v2"

	"berth.dev/berth/reconcile"
)

var _ reconcile.ExitWatcher = (*Runtime)(nil)

// WatchExits calls exited with the pod of every berth container whose
// task exits in the runtime's namespace, as containerd reports it, until
// ctx ends or the event stream breaks (its error is returned; the caller
// subscribes again). Exits of containers berth does not manage are
// ignored.
func (r *Runtime) WatchExits(ctx context.Context, exited func(reconcile.PodID)) error {
	ctx = namespaces.WithNamespace(ctx, r.ns)
	ch, errs := r.client.EventService().Subscribe(ctx, `topic=="/tasks/exit"`)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("containerd events: %w", err)
		case ev := <-ch:
			if ev == nil || ev.Namespace != r.ns || ev.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(ev.Event)
			if err != nil {
				continue
			}
			te, ok := v.(*apievents.TaskExit)
			// Exits of exec processes (probes, hooks, berth exec) carry
			// their own ID; only a container's own process counts.
			if !ok || te.ID != te.ContainerID {
				continue
			}
			if id, ok := r.podOfContainer(ctx, te.ContainerID); ok {
				exited(id)
			}
		}
	}
}

// podOfContainer returns the pod a berth container belongs to.
func (r *Runtime) podOfContainer(ctx context.Context, containerID string) (reconcile.PodID, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := r.client.ContainerService().Get(ctx, containerID)
	if err != nil || c.Labels[LabelManaged] != "true" || c.Labels[LabelPodName] == "" {
		return reconcile.PodID{}, false
	}
	return reconcile.PodID{Namespace: c.Labels[LabelPodNamespace], Name: c.Labels[LabelPodName]}, true
}
