package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"

	"berth.dev/berth/reconcile"
)

// removeSlack bounds the teardown beyond the grace period.
const removeSlack = time.Minute

// teardownSlots is how many pods' teardowns (task and record deletion,
// snapshots, CNI DEL, unmounts) run at once: the shims run one runc at a
// time, every runc reads the host's mount table, which grows with the
// pods, and 200 teardowns at once only queued behind each other.
// Stopping the containers is not bounded: a pod's grace period is its
// own (and runs from the signal's delivery, see terminate). Removing 200
// pods (bench/lib.sh pods, 2 CPUs) took 53-63 s before, 29-30 s with both;
// 50 pods 5.3-5.8 s either way.
const teardownSlots = 16

// RemovePod stops every container of the pod in parallel (SIGTERM, SIGKILL
// after grace), then, holding one of the runtime's teardown slots
// (teardownSlots), deletes their tasks, containers, snapshots and leases,
// detaches the network (CNI DEL, even when the namespace is gone), unpins
// the namespaces, removes the pod's directory and deletes the sandbox
// record last. Stopping and the teardown each run on a fresh context
// bounded by grace plus a minute, so a cancelled caller does not leave a
// half-removed pod. Removing a pod that does not exist succeeds.
func (r *Runtime) RemovePod(ctx context.Context, id reconcile.PodID, grace time.Duration) error {
	log := r.log.With("pod", id.String())
	sb := SandboxID(id)

	// A debug container, or one whose start was interrupted, is not
	// among the names podContainers goes by: it holds a lease, found
	// below.
	sctx, cancel := r.cleanupContext(ctx, grace+removeSlack)
	ctrs, err := r.podContainers(sctx, id)
	if err != nil {
		cancel()
		return fmt.Errorf("remove pod %s: %w", id, err)
	}
	r.stopContainers(sctx, ctrs, sb, grace)
	cancel()

	r.teardowns <- struct{}{}
	defer func() { <-r.teardowns }()
	ctx, cancel = r.cleanupContext(ctx, grace+removeSlack)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
	)
	eachContainer(ctrs, sb, func(cid string) {
		if err := r.removeContainer(ctx, cid, grace); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
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
		r.forgetShimGroups()
	}
	log.Debug("pod removed")
	return nil
}

// stopContainers stops the pod's containers in ctrs at once (terminate:
// SIGTERM, SIGKILL after grace) and waits for them, leaving their tasks
// for the teardown; a container that cannot be stopped here is stopped
// again, and reported, by the teardown.
func (r *Runtime) stopContainers(ctx context.Context, ctrs []containers.Container, sb string, grace time.Duration) {
	eachContainer(ctrs, sb, func(cid string) {
		ctr, err := r.client.LoadContainer(ctx, cid)
		if err != nil {
			return
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			return
		}
		if err := r.terminate(ctx, ctr, task, grace); err != nil {
			r.log.Debug("stop before teardown", "container", cid, "error", err)
		}
	})
}

// eachContainer runs f on the ID of every record of ctrs but the
// sandbox's (sb), all at once, and waits for them.
func eachContainer(ctrs []containers.Container, sb string, f func(id string)) {
	var wg sync.WaitGroup
	for _, c := range ctrs {
		if c.ID == sb || c.Labels[LabelRole] == RoleSandbox {
			continue
		}
		wg.Add(1)
		go func(cid string) {
			defer wg.Done()
			f(cid)
		}(c.ID)
	}
	wg.Wait()
}
