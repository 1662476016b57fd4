package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/reconcile"
)

// CreateSandbox records the pod, then sets up its directories and volumes,
// its pinned IPC/UTS and network namespaces, its CNI attachment and its
// /etc files, and finally marks the record ready. Every step checks what
// exists, so calling it again completes an interrupted setup.
func (r *Runtime) CreateSandbox(ctx context.Context, pod *reconcile.DesiredPod) error {
	ctx = r.nsctx(ctx)
	log := r.log.With("pod", pod.ID.String())
	rec, err := r.ensureSandboxRecord(ctx, pod)
	if err != nil {
		return err
	}
	p := r.Paths(pod.ID)
	for _, d := range []string{p.Dir, p.logDir(), p.nsDir(), filepath.Dir(p.etc("hosts"))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := prepareVolumes(pod, p); err != nil {
		return err
	}
	hostname := PodHostname(pod)
	if !isPinned(p.IPC) || !isPinned(p.UTS) {
		for _, path := range []string{p.IPC, p.UTS} {
			if err := unpin(path); err != nil {
				return err
			}
		}
		if err := pinNamespaces(map[int]string{unix.CLONE_NEWIPC: p.IPC, unix.CLONE_NEWUTS: p.UTS}, hostname); err != nil {
			return fmt.Errorf("pin ipc and uts namespaces: %w", err)
		}
	}
	ip := rec.Labels[LabelIP]
	if !isPinned(p.NetNS) {
		if err := ensureNetNSDir(r.netnsDir); err != nil {
			return err
		}
		if err := unpin(p.NetNS); err != nil {
			return err
		}
		if err := pinNamespaces(map[int]string{unix.CLONE_NEWNET: p.NetNS}, ""); err != nil {
			return fmt.Errorf("pin network namespace: %w", err)
		}
		ip = "" // a new namespace needs a new attachment
	}
	if ip == "" {
		// An earlier attempt may have attached and crashed before recording
		// the address: release it first so IPAM does not leak.
		if err := r.cniDel(ctx, pod.ID, p.NetNS); err != nil {
			log.Debug("cni del before add failed", "error", err)
		}
		if ip, err = r.cniAdd(ctx, pod.ID, p.NetNS); err != nil {
			return err
		}
		if err := r.setLabels(ctx, rec.ID, map[string]string{LabelIP: ip}); err != nil {
			return err
		}
	}
	hostResolv, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	files := map[string][]byte{
		"hosts":       HostsFile(ip, hostname),
		"hostname":    []byte(hostname + "\n"),
		"resolv.conf": ResolvConf(hostResolv),
	}
	for name, b := range files {
		if err := writeFileAtomic(p.etc(name), b, 0o644); err != nil {
			return err
		}
	}
	if rec.Labels[LabelSandboxReady] != "true" {
		if err := r.setLabels(ctx, rec.ID, map[string]string{LabelSandboxReady: "true"}); err != nil {
			return err
		}
	}
	log.Debug("sandbox ready", "ip", ip)
	return nil
}

// ensureSandboxRecord creates the pod's sandbox record or returns the
// existing one, with its identity labels brought up to date.
func (r *Runtime) ensureSandboxRecord(ctx context.Context, pod *reconcile.DesiredPod) (containers.Container, error) {
	id := SandboxID(pod.ID)
	labels := podLabels(pod)
	labels[LabelRole] = RoleSandbox
	_, err := r.client.NewContainer(ctx, id,
		client.WithContainerLabels(labels),
		client.WithRuntime(runtimeName, nil),
		client.WithSpec(&oci.Spec{Version: specs.Version}),
	)
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return containers.Container{}, fmt.Errorf("create sandbox record: %w", err)
	}
	rec, err := r.client.ContainerService().Get(ctx, id)
	if err != nil {
		return containers.Container{}, fmt.Errorf("load sandbox record: %w", err)
	}
	if rec.Labels[LabelManaged] != "true" {
		return containers.Container{}, fmt.Errorf("container %s: %w", id, errNotManaged)
	}
	stale := map[string]string{}
	for k, v := range labels {
		if rec.Labels[k] != v {
			stale[k] = v
		}
	}
	if len(stale) > 0 {
		if err := r.setLabels(ctx, id, stale); err != nil {
			return containers.Container{}, err
		}
		maps.Copy(rec.Labels, stale)
	}
	return rec, nil
}

func (r *Runtime) setLabels(ctx context.Context, id string, labels map[string]string) error {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return fmt.Errorf("set labels on %s: %w", id, err)
	}
	if _, err := c.SetLabels(ctx, labels); err != nil {
		return fmt.Errorf("set labels on %s: %w", id, err)
	}
	return nil
}

// prepareVolumes creates emptyDir directories and checks (or creates, for
// the *OrCreate types) hostPath volumes.
func prepareVolumes(pod *reconcile.DesiredPod, p PodPaths) error {
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(p.volume(v.Name), 0o777); err != nil {
				return fmt.Errorf("volume %q: %w", v.Name, err)
			}
			// Pods run as root by default but may not; emptyDir is
			// world-writable like Kubernetes'.
			if err := os.Chmod(p.volume(v.Name), 0o777); err != nil {
				return err
			}
		case v.HostPath != nil:
			if err := prepareHostPath(v); err != nil {
				return fmt.Errorf("volume %q: %w", v.Name, err)
			}
		}
	}
	return nil
}

func prepareHostPath(v reconcile.Volume) error {
	hp := v.HostPath.Path
	if !filepath.IsAbs(hp) {
		return fmt.Errorf("hostPath %q must be absolute", hp)
	}
	st, err := os.Stat(hp)
	switch v.HostPath.Type {
	case "", "Unset":
		return nil
	case "DirectoryOrCreate":
		if err != nil {
			return os.MkdirAll(hp, 0o755)
		}
		if !st.IsDir() {
			return fmt.Errorf("hostPath %q is not a directory", hp)
		}
	case "Directory":
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("hostPath %q is not a directory", hp)
		}
	case "FileOrCreate":
		if err != nil {
			if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		if st.IsDir() {
			return fmt.Errorf("hostPath %q is a directory", hp)
		}
	case "File":
		if err != nil {
			return err
		}
		if st.IsDir() {
			return fmt.Errorf("hostPath %q is a directory", hp)
		}
	default:
		if err != nil {
			return err
		}
	}
	return nil
}

var errSandboxNotReady = errors.New("sandbox is not ready")
