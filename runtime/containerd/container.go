package containerd

import (
	"context"
	"fmt"
	"maps"
	"os"
	"syscall"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// StartContainer replaces the named container of pod: it removes an
// existing one (TERM, then KILL after the pod's grace period), creates a
// new container from the image (a snapshot with the container's ID as key,
// held by a lease with the same ID), and starts its task with stdout and
// stderr appended to the container's log file. The sandbox must be ready.
//
// Once it begins to change the runtime (removing the previous instance,
// creating the container and its task) it finishes on a context of its
// own, bounded by the grace period plus a minute: a caller cancelled
// midway — a pod manager dropping a restart for a newer spec — must not
// abort containerd's task deletion or shim start halfway, which leaves a
// task whose shim is gone and whose state calls then stall the pod's
// removal.
func (r *Runtime) StartContainer(ctx context.Context, pod *reconcile.DesiredPod, kind reconcile.ContainerKind, name string) error {
	ctx = r.nsctx(ctx)
	c := pod.Container(kind, name)
	if c == nil {
		return fmt.Errorf("pod %s has no %s container %q", pod.ID, kind, name)
	}
	sb, err := r.client.ContainerService().Get(ctx, SandboxID(pod.ID))
	if err != nil {
		return fmt.Errorf("sandbox of %s: %w", pod.ID, err)
	}
	p := r.Paths(pod.ID)
	if sb.Labels[LabelSandboxReady] != "true" || !sandboxPinned(pod, p) {
		return fmt.Errorf("pod %s: %w", pod.ID, errSandboxNotReady)
	}
	mctx, cancel := r.cleanupContext(ctx, pod.GracePeriod()+removeSlack)
	defer cancel()
	id, prev, err := r.nextInstance(mctx, pod.ID, name, pod.GracePeriod())
	if err != nil {
		return err
	}

	img, err := r.client.GetImage(ctx, NormalizeImage(c.Image))
	if err != nil {
		return fmt.Errorf("image %q: %w", c.Image, err)
	}
	if err := ensureUnpacked(ctx, img); err != nil {
		return err
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return fmt.Errorf("image %q config: %w", c.Image, err)
	}
	subPaths, err := r.stageSubPaths(pod, c, p)
	if err != nil {
		return err
	}
	group, started, err := r.shimGroup(ctx, sb)
	if err != nil {
		return err
	}
	defer started()
	in := SpecInput{Pod: pod, Container: c, Image: imgSpec.Config, Paths: p, SubPaths: subPaths, PodIP: sb.Labels[LabelIP], HostIP: hostIP(), ShimGroup: group}
	if sp := podspec.Security(pod, c).Seccomp; sp != nil && sp.Type == podspec.SeccompLocalhost {
		if in.SeccompProfile, err = r.loadSeccompProfile(sp.LocalhostProfile); err != nil {
			return fmt.Errorf("container %q: %w", name, err)
		}
	}
	if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace && !pod.Spec.HostPID {
		if in.PIDNamespace, err = r.podPIDNamespace(ctx, pod.ID, id); err != nil {
			return err
		}
	}
	specOpts, err := SpecOpts(in)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(p.logDir(), 0o755); err != nil {
		return err
	}

	labels := podLabels(pod)
	maps.Copy(labels, map[string]string{
		LabelRole:          RoleContainer,
		LabelContainerName: name,
		LabelContainerKind: string(kind),
		LabelImage:         c.Image,
	})
	hl, err := hookLabels(c, imgSpec.Config.StopSignal)
	if err != nil {
		return err
	}
	maps.Copy(labels, hl)
	// The lease holds the snapshot from its creation until the container
	// record does; a crash in between leaves a lease that New deletes
	// once this process is gone.
	if err := r.createLease(mctx, id, SandboxID(pod.ID)); err != nil {
		return fmt.Errorf("create lease: %w", err)
	}
	lctx := leases.WithLease(mctx, id)
	if err := r.client.SnapshotService(snapshotter).Remove(lctx, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove stale snapshot %s: %w", id, err)
	}
	ctr, err := r.client.NewContainer(lctx, id,
		client.WithImage(img),
		client.WithSnapshotter(snapshotter),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(runtimeName, nil),
		client.WithNewSpec(specOpts...),
		client.WithContainerLabels(labels),
	)
	if err != nil {
		r.cleanupFailedStart(ctx, id)
		return fmt.Errorf("create container %s: %w", id, err)
	}
	if err := keepPreviousLog(p, name); err != nil {
		r.cleanupFailedStart(ctx, id)
		return err
	}
	logTo, err := r.taskIO(group, id, p.LogPath(name))
	if err != nil {
		r.cleanupFailedStart(ctx, id)
		return err
	}
	task, err := ctr.NewTask(mctx, logTo)
	switch {
	case errdefs.IsAlreadyExists(err):
		// A zombie task of an earlier instance whose record was deleted
		// before it: the record exists again, so the delete RPC reaches it.
		if derr := r.deleteZombieTask(mctx, id); derr == nil {
			task, err = ctr.NewTask(mctx, logTo)
		}
	case err != nil && r.clearStaleBundle(err, id):
		task, err = ctr.NewTask(mctx, logTo)
	}
	if err != nil {
		r.cleanupFailedStart(ctx, id)
		return fmt.Errorf("create task %s: %w", id, err)
	}
	r.attachLog(group, id)
	if err := task.Start(mctx); err != nil {
		r.cleanupFailedStart(ctx, id)
		return fmt.Errorf("start task %s: %w", id, err)
	}
	if _, err := ctr.SetLabels(mctx, map[string]string{LabelStartedAt: time.Now().UTC().Format(time.RFC3339Nano)}); err != nil {
		r.log.Warn("record start time failed", "container", id, "error", err)
	}
	if prev != "" {
		// The last instance, exited, once the new one runs. Should this
		// fail, List shows the newer one and the next start or the pod's
		// removal takes it.
		if err := r.removeContainer(mctx, prev, 0); err != nil {
			r.log.Warn("remove the container's last instance", "container", prev, "error", err)
		}
	}
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		// As on a kubelet: a failed postStart hook kills the container.
		ports := map[string]int32{}
		for _, p := range c.Ports {
			if p.Name != "" {
				ports[p.Name] = p.ContainerPort
			}
		}
		if err := r.runHook(ctx, pod.ID, name, sb.Labels[LabelIP], ports, c.Lifecycle.PostStart); err != nil {
			kctx, cancel := r.cleanupContext(ctx, time.Minute)
			defer cancel()
			if kerr := r.terminate(kctx, ctr, task, 0); kerr != nil {
				r.log.Warn("kill after failed postStart hook", "container", id, "error", kerr)
			}
			return fmt.Errorf("container %q: postStart hook failed (FailedPostStartHook): %w", name, err)
		}
	}
	return nil
}

func (r *Runtime) cleanupFailedStart(ctx context.Context, id string) {
	cctx, cancel := r.cleanupContext(ctx, time.Minute)
	defer cancel()
	if err := r.removeContainer(cctx, id, 0); err != nil {
		r.log.Warn("clean up failed start", "container", id, "error", err)
	}
}

// nextInstance returns the ID the next instance of the named container
// of pod is made with (see InstanceIDs) and the ID of its last instance
// to remove once the new one runs ("" when there is none to remove then).
// A last instance that still runs is removed now (TERM, KILL after
// grace), so two instances never run at once; so is anything left in the
// new instance's slot.
func (r *Runtime) nextInstance(ctx context.Context, pod reconcile.PodID, name string, grace time.Duration) (id, prev string, err error) {
	slots := InstanceIDs(pod, name)
	last, err := r.latestInstance(ctx, pod, name)
	if err != nil {
		return "", "", err
	}
	id = slots[0]
	if last != nil {
		prev = last.ID
		if last.ID == slots[0] {
			id = slots[1]
		}
		// Only a task known to have exited (or to be gone) may outlive
		// the new one's start: when containerd cannot say, the last
		// instance is removed first, as one that runs.
		if !r.taskExited(ctx, last.ID) {
			if err := r.removeContainer(ctx, last.ID, grace); err != nil {
				return "", "", fmt.Errorf("remove previous container %s: %w", last.ID, err)
			}
			prev = ""
		}
	}
	if err := r.removeContainer(ctx, id, grace); err != nil {
		return "", "", fmt.Errorf("remove previous container %s: %w", id, err)
	}
	return id, prev, nil
}

// taskExited reports whether containerd says the task of container id
// has exited or does not exist; false when it runs or containerd cannot
// say.
func (r *Runtime) taskExited(ctx context.Context, id string) bool {
	resp, err := r.client.TaskService().Get(ctx, &tasksapi.GetRequest{ContainerID: id})
	err = errgrpc.ToNative(err)
	return errdefs.IsNotFound(err) || (err == nil && resp.Process.Status == tasktypes.Status_STOPPED)
}

// latestInstance returns the record of the newest instance of the named
// container of pod (nil: none).
func (r *Runtime) latestInstance(ctx context.Context, pod reconcile.PodID, name string) (*containers.Container, error) {
	var latest *containers.Container
	for _, cid := range InstanceIDs(pod, name) {
		c, err := r.client.ContainerService().Get(ctx, cid)
		switch {
		case errdefs.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("container %s: %w", cid, err)
		}
		if latest == nil || c.CreatedAt.After(latest.CreatedAt) {
			latest = &c
		}
	}
	return latest, nil
}

// loadContainer loads the newest instance of the named container of pod;
// an error wrapping errdefs.ErrNotFound when there is none.
func (r *Runtime) loadContainer(ctx context.Context, pod reconcile.PodID, name string) (client.Container, error) {
	c, err := r.latestInstance(ctx, pod, name)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("container %q of %s: %w", name, pod, errdefs.ErrNotFound)
	}
	return r.client.LoadContainer(ctx, c.ID)
}

// WaitContainer blocks until the task of the named container exits and
// returns its exit code. A task that already exited returns at once.
func (r *Runtime) WaitContainer(ctx context.Context, id reconcile.PodID, kind reconcile.ContainerKind, name string) (int, error) {
	ctx = r.nsctx(ctx)
	ctr, err := r.loadContainer(ctx, id, name)
	if err != nil {
		return 0, err
	}
	cid := ctr.ID()
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return 0, err
	}
	if labels[LabelManaged] != "true" || labels[LabelContainerKind] != string(kind) {
		return 0, fmt.Errorf("container %s is not the %s container %q of %s: %w", cid, kind, name, id, errdefs.ErrNotFound)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("task %s: %w", cid, err)
	}
	ch, err := task.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("wait %s: %w", cid, err)
	}
	select {
	case st := <-ch:
		code, _, err := st.Result()
		if err != nil {
			return 0, fmt.Errorf("wait %s: %w", cid, err)
		}
		return int(code), nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// removeContainer stops the container's task (TERM, KILL after grace),
// deletes the task, the container and its snapshot, and the lease. Each
// part that is already gone is skipped. A container that is not berth's is
// left alone and reported.
func (r *Runtime) removeContainer(ctx context.Context, id string, grace time.Duration) error {
	ctr, err := r.client.LoadContainer(ctx, id)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return err
	default:
		labels, err := ctr.Labels(ctx)
		if err != nil && !errdefs.IsNotFound(err) {
			return err
		}
		if err == nil && labels[LabelManaged] != "true" {
			return fmt.Errorf("container %s: %w", id, errNotManaged)
		}
		if err := r.stopTask(ctx, ctr, grace); err != nil {
			return err
		}
		r.log.Debug("task deleted", "container", id)
		if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete container %s: %w", id, err)
		}
	}
	if err := r.client.SnapshotService(snapshotter).Remove(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("remove snapshot %s: %w", id, err)
	}
	if err := r.client.LeasesService().Delete(ctx, leases.Lease{ID: id}, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete lease %s: %w", id, err)
	}
	return r.releaseLog(id)
}

// stopTask stops a running task (see terminate) and deletes it. A task
// containerd does not show may still hold a shim and a bundle (a zombie:
// its runc state is gone after a delete that was killed halfway, and
// every later create of the container fails with "already exists"), so
// "not found" is answered with the task delete RPC, which reaches it
// while the container record exists; the record is deleted only after.
func (r *Runtime) stopTask(ctx context.Context, ctr client.Container, grace time.Duration) error {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return r.deleteZombieTask(ctx, ctr.ID())
	}
	if err != nil {
		return fmt.Errorf("task %s: %w", ctr.ID(), err)
	}
	if err := r.terminate(ctx, ctr, task, grace); err != nil {
		return err
	}
	r.log.Debug("task stopped", "container", ctr.ID())
	return r.deleteTask(ctx, ctr, task)
}

// deleteZombieTask deletes the task of container id through containerd's
// task service, also when containerd cannot report its state; a task
// that does not exist is no error.
func (r *Runtime) deleteZombieTask(ctx context.Context, id string) error {
	_, err := r.client.TaskService().Delete(ctx, &tasksapi.DeleteTaskRequest{ContainerID: id})
	if err = errgrpc.ToNative(err); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task %s: %w", id, err)
	}
	if err == nil {
		r.log.Info("deleted a task containerd did not report", "container", id)
	}
	return nil
}

// terminate ends a running task the way a kubelet does: the container's
// preStop hook first (its time counts against grace), then the image's
// STOPSIGNAL (SIGTERM by default), then SIGKILL to every process of the
// container once grace is over. A task that is not running is left as it
// is.
func (r *Runtime) terminate(ctx context.Context, ctr client.Container, task client.Task, grace time.Duration) error {
	st, err := task.Status(ctx)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("task %s status: %w", ctr.ID(), err)
	}
	if err != nil || st.Status == client.Stopped || st.Status == client.Created {
		return nil
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	exited, err := task.Wait(wctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("wait %s: %w", ctr.ID(), err)
	}
	deadline := time.Now().Add(grace)
	labels, _ := ctr.Labels(ctx)
	if h := labels[LabelPreStop]; h != "" {
		hctx, hcancel := context.WithDeadline(ctx, deadline)
		if err := r.runStoredHook(hctx, labels, h, exited); err != nil {
			r.log.Warn("preStop hook failed", "container", ctr.ID(), "error", err)
		}
		hcancel()
	}
	// No grace left (terminationGracePeriodSeconds: 0, or a preStop hook
	// that used it all) means "stop immediately via the kill signal", as
	// the API says and containerd's CRI does for a zero timeout: no stop
	// signal first, which would cost a runc run for nothing.
	if time.Until(deadline) > 0 {
		sig := stopSignal(labels[LabelStopSignal])
		asked := time.Now()
		if err := task.Kill(ctx, sig); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("kill %s: %w", ctr.ID(), err)
		}
		// The wait for the signal's delivery does not count against the
		// grace period: a shim runs one runc at a time, and when 200 pods
		// are removed at once the last SIGTERM of a shim left seconds
		// after the first, so half the containers were killed before they
		// had it.
		deadline = deadline.Add(time.Since(asked))
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		select {
		case <-exited:
			return nil
		case <-timer.C:
			r.log.Debug("grace period over, killing", "container", ctr.ID())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill %s: %w", ctr.ID(), err)
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// deleteTask deletes a stopped task. The containers of a pod share one
// shim, which exits once its last task is deleted; a delete racing with
// that exit can fail with a closed connection although the task is gone.
// So a failed delete is checked against the task list and retried a few
// times before it counts as an error.
func (r *Runtime) deleteTask(ctx context.Context, ctr client.Container, task client.Task) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
			t, terr := ctr.Task(ctx, nil)
			if errdefs.IsNotFound(terr) {
				return nil
			}
			if terr == nil {
				task = t
			}
		}
		// The first attempt does not kill: the task has stopped, and runc's
		// delete kills what is left in the container's cgroup when the
		// container has no PID namespace of its own (the shim already did
		// as the process exited); a kill first cost one more runc run a
		// container. A later attempt kills, in case the task still runs.
		opts := []client.ProcessDeleteOpts{client.WithProcessKill}
		if attempt == 0 {
			opts = nil
		}
		if _, err = task.Delete(ctx, opts...); err == nil || errdefs.IsNotFound(err) {
			return nil
		}
		r.log.Debug("delete task failed, checking again", "container", ctr.ID(), "error", err)
	}
	return fmt.Errorf("delete task %s: %w", ctr.ID(), err)
}

type logOptions struct {
	raw      bool
	driver   string
	maxSize  int64
	maxFiles int
}

// keepPreviousLog moves the log of an earlier instance of the container
// (with its rotated files) aside, replacing the one kept before, so
// `logs --previous` shows it.
func keepPreviousLog(p PodPaths, name string) error {
	if err := moveLog(p.LogPath(name), p.PreviousLogPath(name)); err != nil {
		return fmt.Errorf("keep previous log: %w", err)
	}
	return nil
}

// podPIDNamespace returns the PID namespace of a running container of the
// pod other than except, for a pod that shares one (berth runs no pause
// container: the first container to start makes the namespace, and it
// lasts as long as any process of the pod runs in it). Empty when none
// runs.
func (r *Runtime) podPIDNamespace(ctx context.Context, id reconcile.PodID, except string) (string, error) {
	ctrs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true", LabelSandboxID, SandboxID(id), LabelRole, RoleContainer))
	if err != nil {
		return "", err
	}
	for _, c := range ctrs {
		if c.ID == except {
			continue
		}
		ctr, err := r.client.LoadContainer(ctx, c.ID)
		if err != nil {
			continue
		}
		task, err := ctr.Task(ctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(ctx)
		if err != nil || st.Status != client.Running {
			continue
		}
		ns := fmt.Sprintf("/proc/%d/ns/pid", task.Pid())
		if _, err := os.Stat(ns); err == nil {
			return ns, nil
		}
	}
	return "", nil
}
