package containerd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sync/errgroup"

	"berth.dev/berth/reconcile"
)

var _ reconcile.Runtime = (*Runtime)(nil)

// Defaults of Options.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultNamespace   = "berth"
	DefaultStateDir    = "/var/lib/berth"
	DefaultNetworkName = "berth"
	DefaultBridge      = "berth0"
	DefaultSubnet      = "10.87.0.0/16"
	// DefaultNetNSDir is where iproute2 keeps named network namespaces.
	DefaultNetNSDir = "/var/run/netns"
	snapshotter     = "overlayfs"
	runtimeName     = "io.containerd.runc.v2"
)

// DefaultCNIBinDirs are searched for CNI plugins when Options.CNIBinDirs is
// empty: Debian's containernetworking-plugins, then the upstream location.
var DefaultCNIBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// Options configure a Runtime. Zero fields take the defaults above.
type Options struct {
	// Address is containerd's socket.
	Address string
	// Namespace is the containerd namespace berth's objects live in.
	Namespace string
	// StateDir holds pod directories (volumes, logs, /etc files, pinned
	// IPC/UTS namespaces) and berth's CNI configuration; IP allocations
	// live in the network's own store under IPAMDir.
	StateDir string
	// CNIConfDir, when set, holds the user's CNI configuration: the first
	// configuration file in it (by name) is used instead of berth's own
	// bridge network, and NetworkName, Bridge and Subnet are ignored.
	CNIConfDir string
	// CNIBinDirs are searched for CNI plugins.
	CNIBinDirs []string
	// NetworkName, Bridge and Subnet describe berth's own bridge network,
	// written to <StateDir>/cni/net.d/10-<NetworkName>.conflist.
	NetworkName string
	Bridge      string
	Subnet      string
	// InsecureRegistries are registry hosts ("host" or "host:port") pulled
	// from over plain HTTP. Loopback hosts (localhost, 127.0.0.1, ::1) always
	// are.
	InsecureRegistries []string
	// Registry configures pulls: mirrors, more plain-HTTP registries and
	// the node's credentials file.
	Registry RegistryOptions
	// NetNSDir is where network namespaces are pinned; default
	// /var/run/netns, so `ip netns` lists them.
	NetNSDir string
	// LogDriver is the executable that runs a shim group's log daemon
	// (see package crilog); default: berth-log next to the running
	// executable if it is there, else the running executable, which must
	// then call crilog.DriverMain when crilog.IsDriver (berth and
	// testenv.Main do).
	LogDriver string
	// RawLogs makes the shims append containers' output to their log files
	// as it comes, without timestamps or rotation, and without a log
	// daemon.
	RawLogs bool
	// Policy is what this host allows pods beyond an unprivileged
	// container (privileged, host namespaces, added capabilities,
	// hostPort, hostPath); the zero value allows none of it.
	// CreateSandbox refuses a pod the policy does not allow.
	Policy reconcile.NodePolicy
	// LogMaxSize and LogMaxFiles bound each container's log (default 10
	// MiB, 5 files).
	LogMaxSize  int64
	LogMaxFiles int
	// PodsPerShim is how many pods share one runc shim process (default
	// DefaultPodsPerShim; 1: a shim per pod). Killing a shim kills the
	// containers of all its pods.
	PodsPerShim int
	// Logger receives the runtime's logs; default: discard.
	Logger hclog.Logger
}

// Runtime implements reconcile.Runtime on containerd.
type Runtime struct {
	client *client.Client
	// startRecs are the records New listed, for ListAtStart (nil: none
	// to use).
	startRecs   atomic.Pointer[[]containers.Container]
	ns          string
	stateDir    string
	netnsDir    string
	cni         *cniNetwork
	registry    RegistryOptions
	nodeAuth    DockerConfig
	logOpts     logOptions
	policy      reconcile.NodePolicy
	log         hclog.Logger
	podsPerShim int
	// groupMu serializes the choice of shim groups and guards groupBusy,
	// the starts in flight by group (shimGroup).
	groupMu   sync.Mutex
	groupBusy map[string]int
	// groups is what chooseShimGroup last listed, and the choices made
	// since; groupMu guards it.
	groups groupCensus
	// ownNetwork is the name of berth's own bridge network, empty when
	// the user's CNI configuration is used; ownSubnet is its subnet, and
	// masqDone says this process has written its masquerade rules.
	ownNetwork, ownSubnet string
	masqMu                sync.Mutex
	masqDone              bool
	// legacyChains are the nat chains as this process first read them
	// (legacyMasq); nil until then.
	legacyChains map[string]bool
	// gcBell asks RunGarbageCollection for a collection soon (netgc.go).
	gcBell chan struct{}
	// teardowns holds a token per pod teardown in progress
	// (teardownSlots).
	teardowns chan struct{}
}

// New connects to containerd, prepares the state directory and the CNI
// network, and deletes berth's stale leases: leases whose container does
// not exist, left by a start whose process died (a live process's lease,
// another apply's start in flight, is left alone).
func New(ctx context.Context, opts Options) (*Runtime, error) {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if len(opts.CNIBinDirs) == 0 {
		opts.CNIBinDirs = DefaultCNIBinDirs
	}
	if opts.NetworkName == "" {
		opts.NetworkName = DefaultNetworkName
	}
	if opts.Bridge == "" {
		opts.Bridge = DefaultBridge
	}
	if opts.Subnet == "" {
		opts.Subnet = DefaultSubnet
	}
	if opts.NetNSDir == "" {
		opts.NetNSDir = DefaultNetNSDir
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.PodsPerShim == 0 {
		opts.PodsPerShim = DefaultPodsPerShim
	}
	if opts.LogDriver == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("log driver: %w", err)
		}
		opts.LogDriver = exe
		if small := filepath.Join(filepath.Dir(exe), "berth-log"); isExecutable(small) {
			opts.LogDriver = small
		}
	}
	if _, _, err := net.ParseCIDR(opts.Subnet); err != nil {
		return nil, fmt.Errorf("subnet: %w", err)
	}
	if len(opts.Bridge) > 15 {
		return nil, fmt.Errorf("bridge name %q is longer than 15 characters", opts.Bridge)
	}
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(stateDir, ',') {
		// runc passes the namespace paths a container joins as one
		// comma-separated list.
		return nil, fmt.Errorf("state directory %q must not contain a comma", stateDir)
	}
	// The state directory holds volumes, logs and records: like the
	// kubelet's, it is not readable by other users.
	if err := os.MkdirAll(stateDir, 0o750); err != nil {
		return nil, err
	}
	if st, err := os.Stat(stateDir); err == nil && st.Mode().Perm()&0o027 != 0 {
		if err := os.Chmod(stateDir, st.Mode().Perm()&^0o027); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{filepath.Join(stateDir, "pods"), filepath.Join(stateDir, "cni", "net.d")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	cni, err := newCNI(stateDir, opts)
	if err != nil {
		return nil, err
	}
	cl, err := client.New(opts.Address, client.WithDefaultNamespace(opts.Namespace), client.WithDefaultRuntime(runtimeName))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", opts.Address, err)
	}
	r := &Runtime{
		client:      cl,
		ns:          opts.Namespace,
		stateDir:    stateDir,
		netnsDir:    opts.NetNSDir,
		cni:         cni,
		registry:    opts.Registry,
		policy:      opts.Policy,
		logOpts:     logOptions{raw: opts.RawLogs, driver: opts.LogDriver, maxSize: opts.LogMaxSize, maxFiles: opts.LogMaxFiles},
		log:         opts.Logger.Named("containerd"),
		podsPerShim: opts.PodsPerShim,
		groupBusy:   map[string]int{},
	}
	if opts.CNIConfDir == "" {
		r.ownNetwork, r.ownSubnet = opts.NetworkName, opts.Subnet
	}
	r.registry.Insecure = append(slices.Clone(opts.Registry.Insecure), opts.InsecureRegistries...)
	authFile, explicit := opts.Registry.AuthFile, opts.Registry.AuthFile != ""
	if !explicit {
		authFile = defaultAuthFile()
	}
	if r.nodeAuth, err = loadAuthFile(authFile, explicit); err != nil {
		cl.Close()
		return nil, err
	}
	r.gcBell = make(chan struct{}, 1)
	r.teardowns = make(chan struct{}, teardownSlots)
	_, listed, err := r.collect(ctx, true)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("delete stale leases: %w", err)
	}
	if listed != nil {
		// Kept for ListAtStart until the first list, without their OCI
		// specs (kilobytes each, which listing does not read).
		light := make([]containers.Container, len(listed))
		for i, c := range listed {
			light[i] = containers.Container{ID: c.ID, Labels: c.Labels, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt}
		}
		r.startRecs.Store(&light)
	}
	r.startLogDaemons()
	return r, nil
}

// Close closes the connection to containerd. Pods keep running.
func (r *Runtime) Close() error { return r.client.Close() }

// Client returns the containerd client the runtime uses.
func (r *Runtime) Client() *client.Client { return r.client }

// Namespace returns the containerd namespace the runtime works in.
func (r *Runtime) Namespace() string { return r.ns }

func (r *Runtime) nsctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.ns)
}

// cleanupContext returns a context for teardown that survives the
// cancellation of ctx, bounded by d.
func (r *Runtime) cleanupContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	return r.nsctx(c), cancel
}

func labelFilter(kv ...string) string {
	f := ""
	for i := 0; i+1 < len(kv); i += 2 {
		if f != "" {
			f += ","
		}
		f += "labels." + strconv.Quote(kv[i]) + "==" + strconv.Quote(kv[i+1])
	}
	return f
}

// deleteStaleLeases deletes the leases of ls that no live berth process
// holds (leaseStale) and whose container ctrs does not hold: what a start
// killed before its container record was made leaves.
func (r *Runtime) deleteStaleLeases(ctx context.Context, ls []leases.Lease, ctrs []containers.Container) error {
	now := time.Now()
	var stale []leases.Lease
	for _, l := range ls {
		// Else a start in flight in a live process (another apply).
		if leaseStale(l, now) {
			stale = append(stale, l)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	// Every container keeps its lease: the list of containers, made after
	// the leases were listed, tells a container's lease from a stale one
	// (a Get per lease cost 50 ms a command at 50 pods).
	exists := make(map[string]bool, len(ctrs))
	for _, c := range ctrs {
		exists[c.ID] = true
	}
	for _, l := range stale {
		if exists[l.ID] {
			continue
		}
		r.log.Info("deleting stale lease", "lease", l.ID)
		if err := r.client.LeasesService().Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
			return err
		}
	}
	return nil
}

// List rebuilds the pods berth manages from the labels of the containers in
// the runtime's namespace and the state of their tasks.
func (r *Runtime) List(ctx context.Context) ([]reconcile.ObservedPod, error) {
	r.startRecs.Store(nil) // older than this list: not to be used again
	ctx = r.nsctx(ctx)
	ctrs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true"))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return r.listFrom(ctx, ctrs)
}

// ListAtStart is List on the container records New read for its garbage
// collection, with their tasks as they are now, the first time it is
// called: a command that lists right after New reads the namespace's
// records once. It is List when called again, after a List, or when New's
// collection changed records. The records are as old as New: it suits a
// caller that holds the state lock (apply), so that no other berth
// changes pods in between.
func (r *Runtime) ListAtStart(ctx context.Context) ([]reconcile.ObservedPod, error) {
	recs := r.startRecs.Swap(nil)
	if recs == nil {
		return r.List(ctx)
	}
	return r.listFrom(r.nsctx(ctx), *recs)
}

// listFrom is List on the records ctrs.
func (r *Runtime) listFrom(ctx context.Context, ctrs []containers.Container) ([]reconcile.ObservedPod, error) {
	tasks, err := r.taskStates(ctx, ctrs)
	if err != nil {
		return nil, err
	}
	pods := r.observed(ctrs, tasks)
	slices.SortFunc(pods, func(a, b reconcile.ObservedPod) int {
		if c := strings.Compare(a.ID.Namespace, b.ID.Namespace); c != 0 {
			return c
		}
		return strings.Compare(a.ID.Name, b.ID.Name)
	})
	return pods, nil
}

// ObservePod is List for one pod: its records (podContainers) and their
// tasks one by one, so a pod worker's look at its own pod costs the same
// with 1 or 200 pods on the host. It returns nil when the pod does not
// exist.
func (r *Runtime) ObservePod(ctx context.Context, id reconcile.PodID) (*reconcile.ObservedPod, error) {
	ctx = r.nsctx(ctx)
	ctrs, err := r.podContainers(ctx, id)
	if err != nil {
		return nil, err
	}
	tasks, err := r.taskStates(ctx, ctrs)
	if err != nil {
		return nil, err
	}
	pods := r.observed(ctrs, tasks)
	for i := range pods {
		if pods[i].ID == id {
			return &pods[i], nil
		}
	}
	return nil, nil
}

// taskGets bounds the task Gets taskStates makes at once.
const taskGets = 8

// taskStates gets the task of each container of ctrs (none: not in the
// map), taskGets at a time: containerd 1.6 answers a task list by asking
// each task's shim in turn, 0.3 ms a task, and the Gets spread that over
// the shims.
func (r *Runtime) taskStates(ctx context.Context, ctrs []containers.Container) (map[string]*tasktypes.Process, error) {
	var mu sync.Mutex
	tasks := make(map[string]*tasktypes.Process, len(ctrs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(taskGets)
	for _, c := range ctrs {
		if c.Labels[LabelRole] != RoleContainer {
			continue
		}
		g.Go(func() error {
			resp, err := r.client.TaskService().Get(gctx, &tasksapi.GetRequest{ContainerID: c.ID})
			switch err = errgrpc.ToNative(err); {
			case err == nil:
				mu.Lock()
				tasks[c.ID] = resp.Process
				mu.Unlock()
			case !errdefs.IsNotFound(err):
				return fmt.Errorf("get task %s: %w", c.ID, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return tasks, nil
}

// podContainers returns the records of pod id: its sandbox's and those of
// both instances (InstanceIDs) of each container its sandbox record names
// (LabelContainerNames), got by ID. A pod whose sandbox record names no
// containers (gone, made by an older berth, or names too long for a label)
// is listed by label, which containerd answers by reading every record of
// the namespace.
func (r *Runtime) podContainers(ctx context.Context, id reconcile.PodID) ([]containers.Container, error) {
	get := func(cid string) (containers.Container, bool, error) {
		c, err := r.client.ContainerService().Get(ctx, cid)
		switch {
		case errdefs.IsNotFound(err):
			return c, false, nil
		case err != nil:
			return c, false, fmt.Errorf("container %s: %w", cid, err)
		}
		return c, true, nil
	}
	sb, found, err := get(SandboxID(id))
	if err != nil {
		return nil, err
	}
	if !found || sb.Labels[LabelContainerNames] == "" ||
		sb.Labels[LabelPodNamespace] != id.Namespace || sb.Labels[LabelPodName] != id.Name {
		recs, err := r.client.ContainerService().List(ctx, labelFilter(LabelManaged, "true", LabelSandboxID, SandboxID(id)))
		if err != nil {
			return nil, fmt.Errorf("list containers of %s: %w", id, err)
		}
		return recs, nil
	}
	recs := []containers.Container{sb}
	for _, name := range strings.Split(sb.Labels[LabelContainerNames], ",") {
		for _, cid := range InstanceIDs(id, name) {
			c, found, err := get(cid)
			if err != nil {
				return nil, err
			}
			if found {
				recs = append(recs, c)
			}
		}
	}
	return recs, nil
}

// observed groups containers into pods by their labels, with each
// container's state taken from its task in tasks (none: created).
func (r *Runtime) observed(ctrs []containers.Container, tasks map[string]*tasktypes.Process) []reconcile.ObservedPod {
	pods := map[reconcile.PodID]*reconcile.ObservedPod{}
	older := olderInstances(ctrs)
	get := func(l map[string]string) *reconcile.ObservedPod {
		id := reconcile.PodID{Namespace: l[LabelPodNamespace], Name: l[LabelPodName]}
		p, ok := pods[id]
		if !ok {
			p = &reconcile.ObservedPod{ID: id, Containers: []reconcile.ObservedContainer{}}
			pods[id] = p
		}
		return p
	}
	for _, c := range ctrs {
		l := c.Labels
		if l[LabelManaged] != "true" || l[LabelPodName] == "" {
			continue
		}
		p := get(l)
		switch l[LabelRole] {
		case RoleSandbox:
			setPodLabels(p, l)
			p.CreatedAt = c.CreatedAt
			p.IP = l[LabelIP]
			p.SandboxReady = l[LabelSandboxReady] == "true" && (l[LabelHostNetwork] == "true" || isPinned(r.Paths(p.ID).NetNS))
		case RoleContainer:
			if p.Hash == "" {
				setPodLabels(p, l)
			}
			// Of a container's two instances (a restart's new one and
			// the last one, about to be removed), the newer stands.
			if !older[c.ID] {
				p.Containers = append(p.Containers, r.observedContainer(c, tasks[c.ID]))
			}
		}
	}
	out := make([]reconcile.ObservedPod, 0, len(pods))
	for _, p := range pods {
		sort.Slice(p.Containers, func(i, j int) bool {
			a, b := p.Containers[i], p.Containers[j]
			if a.Kind != b.Kind {
				return a.Kind == reconcile.InitContainer
			}
			return a.Name < b.Name
		})
		out = append(out, *p)
	}
	return out
}

// olderInstances returns the IDs of the app containers of ctrs that a
// newer instance of the same container (see InstanceIDs) in ctrs
// supersedes.
func olderInstances(ctrs []containers.Container) map[string]bool {
	type key struct {
		pod        reconcile.PodID
		kind, name string
	}
	newest := map[key]containers.Container{}
	older := map[string]bool{}
	for _, c := range ctrs {
		l := c.Labels
		if l[LabelRole] != RoleContainer {
			continue
		}
		k := key{reconcile.PodID{Namespace: l[LabelPodNamespace], Name: l[LabelPodName]}, l[LabelContainerKind], l[LabelContainerName]}
		n, seen := newest[k]
		switch {
		case !seen:
			newest[k] = c
		case c.CreatedAt.After(n.CreatedAt):
			older[n.ID], newest[k] = true, c
		default:
			older[c.ID] = true
		}
	}
	return older
}

// observedContainer is one container as its labels and its task (nil:
// none) show it.
func (r *Runtime) observedContainer(c containers.Container, t *tasktypes.Process) reconcile.ObservedContainer {
	l := c.Labels
	oc := reconcile.ObservedContainer{
		Name:  l[LabelContainerName],
		Kind:  reconcile.ContainerKind(l[LabelContainerKind]),
		ID:    c.ID,
		Image: l[LabelImage],
		State: reconcile.StateCreated,
	}
	if t != nil {
		switch t.Status {
		case tasktypes.Status_CREATED:
			oc.State = reconcile.StateCreated
		case tasktypes.Status_RUNNING, tasktypes.Status_PAUSED, tasktypes.Status_PAUSING:
			oc.State = reconcile.StateRunning
			oc.PID = t.Pid
		case tasktypes.Status_STOPPED:
			oc.State = reconcile.StateExited
			oc.ExitCode = int(t.ExitStatus)
			oc.Reason = exitReason(r.ns, c.ID, oc.ExitCode)
			if t.ExitedAt != nil {
				oc.FinishedAt = t.ExitedAt.AsTime()
			}
		default:
			oc.State = reconcile.StateUnknown
		}
	} else if l[LabelStartedAt] != "" {
		// It ran, and containerd no longer has its task: its shim died
		// (killed, or out of memory), taking the tasks of every pod it
		// served with it. containerd reported each as an exit; the
		// container is gone, as after a SIGKILL. When is unknown: the
		// record's last update (its start) stands for it, the same at
		// every look, so that the restart backoff counts this death once.
		oc.State = reconcile.StateExited
		oc.ExitCode = 137
		oc.Reason = ReasonTaskLost
		oc.FinishedAt = c.UpdatedAt
	}
	if oc.State != reconcile.StateCreated {
		if ts, err := time.Parse(time.RFC3339Nano, l[LabelStartedAt]); err == nil {
			oc.StartedAt = ts
		} else {
			oc.StartedAt = c.CreatedAt
		}
	}
	return oc
}

// ReasonTaskLost is the reason of a container that ran and whose task
// containerd no longer has, as Kubernetes names a container whose state
// the runtime lost.
const ReasonTaskLost = "ContainerStatusUnknown"

func setPodLabels(p *reconcile.ObservedPod, l map[string]string) {
	p.Hash = l[LabelHash]
	p.Revision = l[LabelRevision]
	p.Owner = l[LabelOwner]
	if d, err := time.ParseDuration(l[LabelGracePeriod]); err == nil {
		p.GracePeriod = d
	}
}

// podLabels are the identity labels of the sandbox record and of every
// container of the pod.
func podLabels(pod *reconcile.DesiredPod) map[string]string {
	return map[string]string{
		LabelManaged:      "true",
		LabelPodNamespace: pod.ID.Namespace,
		LabelPodName:      pod.ID.Name,
		LabelOwner:        pod.Owner,
		LabelHash:         pod.Hash,
		LabelRevision:     pod.Revision,
		LabelGracePeriod:  pod.GracePeriod().String(),
		LabelSandboxID:    SandboxID(pod.ID),
	}
}

// errNotManaged is returned when an object with berth's ID lacks berth's
// label: berth leaves it alone.
var errNotManaged = errors.New("exists but is not managed by berth")

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Check reports whether containerd answers, within ctx: the agent's
// /healthz and /readyz fail while it does not.
func (r *Runtime) Check(ctx context.Context) error {
	if _, err := r.client.Version(ctx); err != nil {
		return fmt.Errorf("containerd does not answer: %w", err)
	}
	return nil
}
