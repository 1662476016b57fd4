package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/reconcile"
)

// RoleDebug marks an ephemeral debug container: List does not show it,
// RemovePod removes it with its pod.
const RoleDebug = "debug"

// DebugOptions describe an ephemeral debug container.
type DebugOptions struct {
	// Image is the debug container's image, pulled if missing.
	Image string
	// Command runs in it (default: the image's entrypoint and cmd).
	Command []string
	// Target, when set, names a running container of the pod whose PID
	// namespace the debug container joins, to see its processes.
	Target string
	ExecOptions
}

// Debug runs an ephemeral container in the pod's network, IPC and UTS
// namespaces (so it reaches the pod's localhost and sees its hostname),
// attached to the given streams, and removes it when it exits. It
// returns the container's exit code.
func (r *Runtime) Debug(ctx context.Context, id reconcile.PodID, opts DebugOptions) (int, error) {
	ctx = r.nsctx(ctx)
	sb, err := r.client.ContainerService().Get(ctx, SandboxID(id))
	if err != nil {
		return 0, fmt.Errorf("pod %s: %w", id, err)
	}
	p := r.Paths(id)
	if sb.Labels[LabelManaged] != "true" || sb.Labels[LabelSandboxReady] != "true" {
		return 0, fmt.Errorf("pod %s: %w", id, errSandboxNotReady)
	}
	if err := r.EnsureImage(ctx, opts.Image, reconcile.PullIfNotPresent); err != nil {
		return 0, err
	}
	img, err := r.client.GetImage(ctx, NormalizeImage(opts.Image))
	if err != nil {
		return 0, err
	}
	imgSpec, err := img.Spec(ctx)
	if err != nil {
		return 0, err
	}
	hostname, _ := os.ReadFile(p.etc("hostname"))
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "debug-" + hex.EncodeToString(suffix[:])
	pod := &reconcile.DesiredPod{ID: id, Spec: reconcile.PodSpec{
		Hostname:    strings.TrimSpace(string(hostname)),
		HostNetwork: sb.Labels[LabelHostNetwork] == "true",
	}}
	c := &reconcile.Container{Name: name, Image: opts.Image, Command: opts.Command, TTY: opts.TTY, Stdin: opts.Stdin != nil}
	pod.Spec.Containers = []reconcile.Container{*c}
	specOpts, err := SpecOpts(SpecInput{Pod: pod, Container: c, Image: imgSpec.Config, Paths: p, PodIP: sb.Labels[LabelIP]})
	if err != nil {
		return 0, err
	}
	if opts.TTY {
		specOpts = append(specOpts, oci.WithTTY)
	}
	if opts.Target != "" {
		t, err := r.loadContainer(ctx, id, opts.Target)
		if err != nil {
			return 0, fmt.Errorf("target container %q: %w", opts.Target, err)
		}
		tt, err := t.Task(ctx, nil)
		if err != nil {
			return 0, fmt.Errorf("target container %q is not running: %w", opts.Target, err)
		}
		specOpts = append(specOpts, oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", tt.Pid())}))
	}
	// Not in the pod's shim group: the debug container's shim goes with it.
	specOpts = append(specOpts, oci.WithAnnotations(map[string]string{shimGroupAnnotation: ContainerID(id, name)}))

	cid := ContainerID(id, name)
	labels := podLabels(pod)
	// Keep the pod's own identity labels as recorded on its sandbox.
	for _, k := range []string{LabelOwner, LabelHash, LabelRevision, LabelGracePeriod} {
		labels[k] = sb.Labels[k]
	}
	maps.Copy(labels, map[string]string{LabelRole: RoleDebug, LabelContainerName: name, LabelImage: opts.Image})
	if err := r.createLease(ctx, cid, SandboxID(id)); err != nil {
		return 0, fmt.Errorf("create lease: %w", err)
	}
	defer func() {
		cctx, cancel := r.cleanupContext(ctx, time.Minute)
		defer cancel()
		if err := r.removeContainer(cctx, cid, 0); err != nil {
			r.log.Warn("remove debug container", "container", cid, "error", err)
		}
	}()
	lctx := leases.WithLease(ctx, cid)
	ctr, err := r.client.NewContainer(lctx, cid,
		client.WithImage(img),
		client.WithSnapshotter(snapshotter),
		client.WithNewSnapshot(cid, img),
		client.WithRuntime(runtimeName, nil),
		client.WithNewSpec(specOpts...),
		client.WithContainerLabels(labels),
	)
	if err != nil {
		return 0, fmt.Errorf("create debug container: %w", err)
	}
	stdout, stderr := opts.Stdout, opts.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	fifoDir := filepath.Join(p.Dir, "exec")
	if err := os.MkdirAll(fifoDir, 0o700); err != nil {
		return 0, err
	}
	var task client.Task
	started := make(chan struct{})
	var startOnce sync.Once
	markStarted := func() { startOnce.Do(func() { close(started) }) }
	defer markStarted()
	stdin := opts.Stdin
	if stdin != nil && !opts.TTY {
		stdin = &eofReader{r: opts.Stdin, onEOF: func() {
			<-started
			if task != nil {
				_ = task.CloseIO(context.WithoutCancel(ctx), client.WithStdinCloser)
			}
		}}
	}
	ioOpts := []cio.Opt{cio.WithStreams(stdin, stdout, stderr), cio.WithFIFODir(fifoDir)}
	if opts.TTY {
		ioOpts = append(ioOpts, cio.WithTerminal)
	}
	t, err := ctr.NewTask(ctx, cio.NewCreator(ioOpts...))
	if err != nil {
		return 0, fmt.Errorf("create debug task: %w", err)
	}
	exited, err := t.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return 0, err
	}
	if err := t.Start(ctx); err != nil {
		return 0, fmt.Errorf("start debug container: %w", err)
	}
	task = t
	markStarted()
	if opts.Resize != nil {
		go func() {
			for sz := range opts.Resize {
				_ = task.Resize(ctx, sz[0], sz[1])
			}
		}()
	}
	select {
	case st := <-exited:
		task.IO().Wait()
		code, _, err := st.Result()
		return int(code), err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
