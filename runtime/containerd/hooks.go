package containerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/signal"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/probe"
)

// Labels a container carries for its own termination.
const (
	// LabelPreStop holds the container's preStop hook (JSON) and
	// LabelHookPorts its named ports, so a stop that knows only the
	// container can run it.
	LabelPreStop   = "berth.dev/pre-stop"
	LabelHookPorts = "berth.dev/hook-ports"
	// LabelStopSignal is the image's STOPSIGNAL.
	LabelStopSignal = "berth.dev/stop-signal"
)

// stopSignal parses a STOPSIGNAL ("SIGQUIT", "QUIT", "3"); SIGTERM when
// empty or unknown.
func stopSignal(s string) syscall.Signal {
	if s == "" {
		return syscall.SIGTERM
	}
	sig, err := signal.ParseSignal(s)
	if err != nil {
		return syscall.SIGTERM
	}
	return sig
}

// hookLabels returns the labels that let a stop run the container's
// preStop hook and send its stop signal.
func hookLabels(c *reconcile.Container, stopSig string) (map[string]string, error) {
	out := map[string]string{}
	if stopSig != "" {
		out[LabelStopSignal] = stopSig
	}
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		b, err := json.Marshal(c.Lifecycle.PreStop)
		if err != nil {
			return nil, err
		}
		out[LabelPreStop] = string(b)
		ports := map[string]int32{}
		for _, p := range c.Ports {
			if p.Name != "" {
				ports[p.Name] = p.ContainerPort
			}
		}
		if len(ports) > 0 {
			b, _ := json.Marshal(ports)
			out[LabelHookPorts] = string(b)
		}
	}
	return out, nil
}

// runStoredHook runs the preStop hook recorded in a container's labels.
// It returns early when the container exits.
func (r *Runtime) runStoredHook(ctx context.Context, labels map[string]string, hook string, exited <-chan client.ExitStatus) error {
	var h reconcile.LifecycleHandler
	if err := json.Unmarshal([]byte(hook), &h); err != nil {
		return fmt.Errorf("preStop hook label: %w", err)
	}
	ports := map[string]int32{}
	if s := labels[LabelHookPorts]; s != "" {
		_ = json.Unmarshal([]byte(s), &ports)
	}
	id := reconcile.PodID{Namespace: labels[LabelPodNamespace], Name: labels[LabelPodName]}
	podIP := ""
	if sb, err := r.client.ContainerService().Get(ctx, SandboxID(id)); err == nil {
		podIP = sb.Labels[LabelIP]
	}
	done := make(chan error, 1)
	go func() { done <- r.runHook(ctx, id, labels[LabelContainerName], podIP, ports, &h) }()
	select {
	case err := <-done:
		return err
	case <-exited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("preStop hook: %w", ctx.Err())
	}
}

// runHook runs one lifecycle handler against a container: exec in it,
// an HTTP GET to the pod (status 200–399), a TCP connection, or a sleep.
func (r *Runtime) runHook(ctx context.Context, id reconcile.PodID, container, podIP string, ports map[string]int32, h *reconcile.LifecycleHandler) error {
	port := func(p reconcile.IntOrString) (int32, error) {
		if !p.IsString {
			return p.IntVal, nil
		}
		if n, ok := ports[p.StrVal]; ok {
			return n, nil
		}
		if n, err := strconv.Atoi(p.StrVal); err == nil {
			return int32(n), nil
		}
		return 0, fmt.Errorf("no port named %q", p.StrVal)
	}
	switch {
	case h.Exec != nil:
		res, err := r.ExecSync(ctx, id, container, h.Exec.Command, 0)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("exec %q exited with %d: %s", h.Exec.Command, res.ExitCode, strings.TrimSpace(string(res.Stderr)))
		}
		return nil
	case h.HTTPGet != nil:
		g := h.HTTPGet
		p, err := port(g.Port)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = podIP
		}
		if host == "" {
			host = "127.0.0.1"
		}
		ph := probe.HTTP{Scheme: g.Scheme, Host: host, Port: int(p), Path: g.Path}
		for _, hd := range g.HTTPHeaders {
			ph.Headers = append(ph.Headers, probe.Header{Name: hd.Name, Value: hd.Value})
		}
		// The hook's own context bounds it (the grace period).
		return probe.Get(ctx, ph, 0)
	case h.TCPSocket != nil:
		p, err := port(h.TCPSocket.Port)
		if err != nil {
			return err
		}
		host := h.TCPSocket.Host
		if host == "" {
			host = podIP
		}
		return probe.TCP(ctx, host, int(p))
	case h.Sleep != nil:
		select {
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.New("lifecycle handler has no action")
}

var _ reconcile.ContainerStopper = (*Runtime)(nil)

// StopContainer stops one container of a pod (preStop hook, stop signal,
// SIGKILL after grace) and leaves it in place, exited, for List to
// report. It implements reconcile.ContainerStopper. A container that is
// not running, or does not exist, is left alone.
func (r *Runtime) StopContainer(ctx context.Context, id reconcile.PodID, kind reconcile.ContainerKind, name string, grace time.Duration) error {
	ctx = r.nsctx(ctx)
	ctr, err := r.loadContainer(ctx, id, name)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cid := ctr.ID()
	labels, err := ctr.Labels(ctx)
	if err != nil {
		return err
	}
	if labels[LabelManaged] != "true" || labels[LabelContainerKind] != string(kind) {
		return fmt.Errorf("container %s is not the %s container %q of %s: %w", cid, kind, name, id, errdefs.ErrNotFound)
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return r.terminate(ctx, ctr, task, grace)
}
