package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"

	"berth.dev/berth/reconcile"
)

// removeSlack bounds the teardown beyond the grace period.
const removeSlack = time.Minute

// RemovePod stops every container of the pod in parallel (SIGTERM, SIGKILL
// after grace), deletes their tasks, containers, snapshots and leases,
// detaches the network (CNI DEL, even when the namespace is gone), unpins
// the namespaces, removes the pod's directory and deletes the sandbox
// record last. It runs on a fresh context bounded by grace plus a minute,
// so a cancelled caller does not leave a half-removed pod. Removing a pod
// that does not exist succeeds.
func (r *Runtime) RemovePod(ctx context.Context, id reconcile.PodID, grace time.Duration) error {
	ctx, cancel := r.cleanupContext(ctx, grace+removeSlack)
	defer cancel()
	log := r.log.With("pod", id.String())
	sb := SandboxID(id)

	// A debug container, or one whose start was interrupted, is not
	// among the names podContainers goes by: it holds a lease, found
	// below.
	ctrs, err := r.podContainers(ctx, id)
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range ctrs {
		if c.ID == sb || c.Labels[LabelRole] == RoleSandbox {
			continue
		}
		wg.Add(1)
		go func(cid string) {
			defer wg.Done()
			if err := r.removeContainer(ctx, cid, grace); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(c.ID)
	}
	wg.Wait()
	// Leases (and their snapshots and containers) of starts that were
	// interrupted before the container record existed, and of debug
	// containers, which hold theirs for their life.
	ls, err := r.client.LeasesService().List(ctx, labelFilter(LabelManaged, "true", LabelSandboxID, sb))
	if err != nil {
		errs = append(errs, fmt.Errorf("list leases: %w", err))
	}
	for _, l := range ls {
		// With the pod's grace: a debug container found here runs.
		if err := r.removeContainer(ctx, l.ID, grace); err != nil {
			errs = append(errs, err)
		}
		if err := r.client.LeasesService().Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the network and the record: the pod still has containers.
		return fmt.Errorf("remove pod %s: %w", id, errors.Join(errs...))
	}

	log.Debug("containers removed")
	p := r.Paths(id)
	rec, err := r.client.ContainerService().Get(ctx, sb)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	if rec.Labels[LabelHostNetwork] != "true" {
		ports, perr := decodePorts(rec.Labels[LabelPorts])
		if perr != nil {
			log.Warn("host port mappings unreadable, removing the pod without them", "error", perr)
		}
		cid := cniID(id, rec.Labels)
		if err := r.cniDelRetry(ctx, id, cid, p.NetNS, ports); err != nil {
			if !ownCNIID(r.ns, cid) {
				return fmt.Errorf("remove pod %s: %w", id, err)
			}
			// The pod goes anyway, so its replacement is not blocked;
			// the next start of berth releases the attachment.
			log.Warn("cni del keeps failing; removing the pod and leaving its network to garbage collection", "error", err)
			r.CollectSoon()
		}
		log.Debug("network detached")
	}
	if err := r.unmountVolumes(p); err != nil {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	for _, path := range []string{p.NetNS, p.IPC, p.UTS} {
		if err := unpin(path); err != nil {
			return fmt.Errorf("remove pod %s: %w", id, err)
		}
	}
	if err := r.keepLogs(id, p); err != nil {
		// The logs are not worth keeping the pod for.
		log.Warn("cannot keep the containers' logs", "error", err)
	}
	if err := os.RemoveAll(p.Dir); err != nil {
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	rec, err = r.client.ContainerService().Get(ctx, sb)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("remove pod %s: %w", id, err)
	case rec.Labels[LabelManaged] != "true":
		log.Warn("container with the sandbox's id is not berth's, leaving it", "container", sb)
	default:
		if err := r.client.ContainerService().Delete(ctx, sb); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("remove pod %s: delete sandbox record: %w", id, err)
		}
	}
	log.Debug("pod removed")
	return nil
}
