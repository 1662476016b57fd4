package containerd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// CreateSandbox records the pod, then sets up its directories and volumes,
// its pinned IPC/UTS and network namespaces, its CNI attachment and its
// /etc files, and finally marks the record ready. Every step checks what
// exists, so calling it again completes an interrupted setup.
func (r *Runtime) CreateSandbox(ctx context.Context, pod *reconcile.DesiredPod) error {
	ctx = r.nsctx(ctx)
	log := r.log.With("pod", pod.ID.String())
	if err := r.Admit(pod); err != nil {
		return fmt.Errorf("pod %s: %w", pod.ID, err)
	}
	rec, fresh, err := r.ensureSandboxRecord(ctx, pod)
	if err != nil {
		return err
	}
	p := r.Paths(pod.ID)
	for _, d := range []string{p.Dir, p.logDir(), p.nsDir(), filepath.Dir(p.etc("hosts"))} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := r.restoreLogs(pod.ID, p); err != nil {
		log.Warn("cannot restore the logs of the pod's previous instance", "error", err)
	}
	hostname := podHostname(pod)
	pins := map[int]string{}
	if !pod.Spec.HostIPC {
		pins[unix.CLONE_NEWIPC] = p.IPC
	}
	if !pod.Spec.HostNetwork {
		// A hostNetwork pod shares the host's UTS namespace too, as on a
		// kubelet.
		pins[unix.CLONE_NEWUTS] = p.UTS
	}
	missing := false
	for _, path := range pins {
		missing = missing || !isPinned(path)
	}
	if missing {
		for _, path := range pins {
			if err := unpin(path); err != nil {
				return err
			}
		}
		if err := pinNamespaces(pins, hostname); err != nil {
			return fmt.Errorf("pin ipc and uts namespaces: %w", err)
		}
	}
	ip := rec.Labels[LabelIP]
	if pod.Spec.HostNetwork {
		ip = hostIP()
		if rec.Labels[LabelIP] != ip {
			if err := r.setLabels(ctx, rec.ID, map[string]string{LabelIP: ip}); err != nil {
				return err
			}
		}
	} else {
		ports := PortMappings(pod)
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
			// An earlier attempt may have attached and crashed before
			// recording the address: release it first so IPAM does not
			// leak. A record made by this call has a CNI container ID
			// nothing ever attached.
			if !fresh {
				if err := r.cniDel(ctx, pod.ID, cniID(pod.ID, rec.Labels), p.NetNS, ports); err != nil {
					log.Debug("cni del before add failed", "error", err)
				}
			}
			if ip, err = r.cniAdd(ctx, pod.ID, cniID(pod.ID, rec.Labels), p.NetNS, ports); err != nil {
				return err
			}
			if err := r.setLabels(ctx, rec.ID, map[string]string{LabelIP: ip}); err != nil {
				return err
			}
		}
	}
	host, err := hostFacts(pod.Spec.HostNetwork)
	if err != nil {
		return err
	}
	files := podspec.EtcFiles(pod, ip, host)
	for name, b := range files {
		// Not synced: a sandbox's files are written at each of its
		// starts, so a power cut costs nothing they hold.
		if err := record.ReplaceFile(p.etc(name), b, 0o644); err != nil {
			return err
		}
	}
	if err := r.prepareVolumes(ctx, pod, p); err != nil {
		return err
	}
	if rec.Labels[LabelSandboxReady] != "true" {
		if err := r.setLabels(ctx, rec.ID, map[string]string{LabelSandboxReady: "true"}); err != nil {
			return err
		}
	}
	log.Debug("sandbox ready", "ip", ip)
	return nil
}

// sandboxPinned reports whether the namespaces the pod's containers join
// are all pinned.
func sandboxPinned(pod *reconcile.DesiredPod, p PodPaths) bool {
	if !pod.Spec.HostIPC && !isPinned(p.IPC) {
		return false
	}
	if !pod.Spec.HostNetwork && (!isPinned(p.UTS) || !isPinned(p.NetNS)) {
		return false
	}
	return true
}

// ensureSandboxRecord creates the pod's sandbox record or returns the
// existing one, with its identity labels brought up to date; fresh says
// this call made it.
func (r *Runtime) ensureSandboxRecord(ctx context.Context, pod *reconcile.DesiredPod) (rec containers.Container, fresh bool, err error) {
	id := SandboxID(pod.ID)
	labels := podLabels(pod)
	labels[LabelRole] = RoleSandbox
	labels[LabelHostNetwork] = strconv.FormatBool(pod.Spec.HostNetwork)
	labels[LabelPorts] = encodePorts(PortMappings(pod))
	// Empty when the names do not fit: an older value must not stay.
	labels[LabelContainerNames] = containerNames(pod)
	created := maps.Clone(labels)
	created[LabelCNIID] = newCNIID(r.ns, pod.ID)
	// Under a lease of berth's own: without one, containerd's client
	// makes a temporary lease that a berth killed meanwhile leaves for a
	// day; this one New deletes once this process is gone.
	lease := shortID(id + ".record")
	if err := r.createLease(ctx, lease, id); err != nil {
		return containers.Container{}, false, fmt.Errorf("create lease: %w", err)
	}
	_, err = r.client.NewContainer(leases.WithLease(ctx, lease), id,
		client.WithContainerLabels(created),
		client.WithRuntime(runtimeName, nil),
		client.WithSpec(&oci.Spec{Version: specs.Version}),
	)
	if derr := r.client.LeasesService().Delete(ctx, leases.Lease{ID: lease}); derr != nil && !errdefs.IsNotFound(derr) {
		r.log.Warn("delete lease", "lease", lease, "error", derr)
	}
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return containers.Container{}, false, fmt.Errorf("create sandbox record: %w", err)
	}
	fresh = err == nil
	rec, err = r.client.ContainerService().Get(ctx, id)
	if err != nil {
		return containers.Container{}, false, fmt.Errorf("load sandbox record: %w", err)
	}
	if rec.Labels[LabelManaged] != "true" {
		return containers.Container{}, false, fmt.Errorf("container %s: %w", id, errNotManaged)
	}
	if old := rec.Labels[LabelContainerNames]; old != "" && labels[LabelContainerNames] != "" {
		// A record made for another spec of the pod (a removal cut short)
		// may still have containers of the old names: observing keeps
		// seeing them.
		labels[LabelContainerNames] = unionNames(old, labels[LabelContainerNames])
	}
	stale := map[string]string{}
	for k, v := range labels {
		if rec.Labels[k] != v {
			stale[k] = v
		}
	}
	if len(stale) > 0 {
		if err := r.setLabels(ctx, id, stale); err != nil {
			return containers.Container{}, false, err
		}
		maps.Copy(rec.Labels, stale)
	}
	return rec, fresh, nil
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

var errSandboxNotReady = errors.New("sandbox is not ready")

// maxNamesLabel bounds LabelContainerNames well inside containerd's 4096
// bytes for a label's key and value.
const maxNamesLabel = 3000

// containerNames is the value of LabelContainerNames for pod: its init and
// app containers' names, or "" when they do not fit.
func containerNames(pod *reconcile.DesiredPod) string {
	var names []string
	for _, c := range pod.Spec.InitContainers {
		names = append(names, c.Name)
	}
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	return namesLabel(names)
}

// unionNames joins two values of LabelContainerNames, a's names first,
// or returns "" when the result does not fit.
func unionNames(a, b string) string {
	names := strings.Split(a, ",")
	for _, n := range strings.Split(b, ",") {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return namesLabel(names)
}

// namesLabel joins names into a value of LabelContainerNames, or returns
// "" when it would be longer than maxNamesLabel.
func namesLabel(names []string) string {
	if s := strings.Join(names, ","); len(s) <= maxNamesLabel {
		return s
	}
	return ""
}
