package reconcile

import (
	"context"
	"time"
)

// PodID identifies a pod on the host.
type PodID struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// String formats id as namespace/name.
func (id PodID) String() string { return id.Namespace + "/" + id.Name }

// DesiredPod is a pod a revision wants on this host, after Expansion and
// normalization.
type DesiredPod struct {
	ID          PodID             `json:"id"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Spec is normalized: defaults are filled in (restartPolicy,
	// imagePullPolicy, protocol, grace period), so equal specs hash equally.
	Spec PodSpec `json:"spec"`
	// Hash is the spec hash: hex, 16 characters, over the normalized spec,
	// labels and annotations.
	Hash string `json:"hash"`
	// Owner is the object that declared the pod, "Kind/namespace/name".
	Owner string `json:"owner"`
	// Revision is the commit (or content digest) the pod comes from.
	Revision string `json:"revision"`
	// Source is where the owning object is declared.
	Source Position `json:"source"`
	// NodeName is the node the pod runs on (this host's --node-name).
	NodeName string `json:"nodeName,omitempty"`
	// Finished is set when the records say the pod already ran to
	// completion (a Job's pod): it is kept as it is and never started again.
	Finished PodPhase `json:"finished,omitempty"`
	// ConfigMaps and Secrets are the ones the pod refers to (volumes, env,
	// envFrom), by name, from the pod's namespace in the same revision.
	// Their content is part of Hash, so changing one in Git replaces
	// exactly the pods that use it. Optional ones that do not exist are
	// absent.
	ConfigMaps map[string]*ConfigMapData `json:"-"`
	Secrets    map[string]*SecretData    `json:"-"`
}

// Container returns the spec of the pod's container with the given kind
// and name, or nil.
func (p *DesiredPod) Container(kind ContainerKind, name string) *Container {
	list := p.Spec.Containers
	if kind == InitContainer {
		list = p.Spec.InitContainers
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

// GracePeriod returns the pod's termination grace period.
func (p *DesiredPod) GracePeriod() time.Duration {
	if p.Spec.TerminationGracePeriodSeconds == nil {
		return DefaultGracePeriod
	}
	return time.Duration(*p.Spec.TerminationGracePeriodSeconds) * time.Second
}

// DefaultGracePeriod is Kubernetes' default terminationGracePeriodSeconds.
const DefaultGracePeriod = 30 * time.Second

// ContainerKind tells init containers from app containers.
type ContainerKind string

// Container kinds.
const (
	InitContainer ContainerKind = "init"
	AppContainer  ContainerKind = "app"
)

// ContainerState is the coarse state of an observed container.
type ContainerState string

// Container states.
const (
	// StateCreated: the container exists but its task never started.
	StateCreated ContainerState = "created"
	// StateRunning: the task is running.
	StateRunning ContainerState = "running"
	// StateExited: the task ran and exited; ExitCode is set.
	StateExited ContainerState = "exited"
	// StateUnknown: the runtime could not tell.
	StateUnknown ContainerState = "unknown"
)

// ObservedContainer is one container of an observed pod.
type ObservedContainer struct {
	Name       string         `json:"name"`
	Kind       ContainerKind  `json:"kind"`
	ID         string         `json:"id"`
	Image      string         `json:"image"`
	State      ContainerState `json:"state"`
	PID        uint32         `json:"pid,omitempty"`
	ExitCode   int            `json:"exitCode"`
	StartedAt  time.Time      `json:"startedAt,omitzero"`
	FinishedAt time.Time      `json:"finishedAt,omitzero"`
	// Reason says why an exited container ended, as Kubernetes does:
	// "OOMKilled" (killed for memory), "Error" (non-zero exit) or
	// "Completed"; empty while it runs.
	Reason string `json:"reason,omitempty"`
}

// ObservedPod is a pod berth finds in the runtime, rebuilt from the labels
// on its containers: berth keeps no database of pods.
type ObservedPod struct {
	ID       PodID  `json:"id"`
	Hash     string `json:"hash"`
	Revision string `json:"revision"`
	Owner    string `json:"owner"`
	// IP is the pod's address on its network, if it has one.
	IP string `json:"ip,omitempty"`
	// GracePeriod is the termination grace period recorded at creation.
	GracePeriod time.Duration `json:"gracePeriod"`
	CreatedAt   time.Time     `json:"createdAt,omitzero"`
	// Ready is true when the sandbox finished setting up (network and
	// volumes). A pod whose sandbox is not ready was interrupted mid-create.
	SandboxReady bool                `json:"sandboxReady"`
	Containers   []ObservedContainer `json:"containers"`
}

// Container returns the observed container with the given kind and name.
func (p *ObservedPod) Container(kind ContainerKind, name string) *ObservedContainer {
	for i := range p.Containers {
		if p.Containers[i].Kind == kind && p.Containers[i].Name == name {
			return &p.Containers[i]
		}
	}
	return nil
}

// Runtime is what reconcile needs from a container runtime. It is declared
// here, where it is used; runtime/containerd and runtime/fake implement it.
//
// Every method is safe to call again after an interruption: IDs are derived
// from the pod identity, so a replayed call finds what an earlier one made.
// A Runtime never touches containers that do not carry berth's labels.
type Runtime interface {
	// List returns every pod berth manages in the runtime's namespace.
	List(ctx context.Context) ([]ObservedPod, error)
	// EnsureImage makes image available under the given pull policy
	// (PullAlways, PullIfNotPresent, PullNever).
	EnsureImage(ctx context.Context, image, policy string) error
	// CreateSandbox records the pod (identity, hash, revision, grace period
	// as labels) and then sets up what its containers share: network, IPC
	// and UTS namespaces (hostname = pod hostname or name), and emptyDir
	// volumes. Calling it again for the same pod completes a partial setup.
	CreateSandbox(ctx context.Context, pod *DesiredPod) error
	// StartContainer creates and starts the named container of pod in its
	// sandbox. An existing container of the same pod and name is removed
	// first.
	StartContainer(ctx context.Context, pod *DesiredPod, kind ContainerKind, name string) error
	// WaitContainer blocks until the named container's task exits and
	// returns its exit code.
	WaitContainer(ctx context.Context, id PodID, kind ContainerKind, name string) (int, error)
	// RemovePod stops every container of the pod (SIGTERM, then SIGKILL
	// after grace), removes containers, snapshots and leases, tears down the
	// network (CNI DEL even when the namespace is gone) and deletes the
	// pod's volume directories. Removing a pod that does not exist is not an
	// error.
	RemovePod(ctx context.Context, id PodID, grace time.Duration) error
}

// ExecResult is the outcome of a command run in a container.
type ExecResult struct {
	ExitCode int
	Stdout   []byte
	Stderr   []byte
}

// Execer runs a command inside a running container of a pod and waits for
// it (exec probes, lifecycle hooks). Runtimes that can, implement it.
type Execer interface {
	ExecSync(ctx context.Context, id PodID, container string, cmd []string, timeout time.Duration) (ExecResult, error)
}

// ContainerStopper is implemented by runtimes that can stop one container
// of a pod (TERM, then KILL after grace) and leave it in place, exited.
// The pod lifecycle uses it for liveness failures, activeDeadlineSeconds
// and sidecars of finished pods; without it, a liveness failure replaces
// the container and a deadline removes the pod.
type ContainerStopper interface {
	StopContainer(ctx context.Context, id PodID, kind ContainerKind, name string, grace time.Duration) error
}

// Admitter is implemented by runtimes that can tell, without side
// effects, why a pod cannot run on this host (node policy, names, paths,
// values the runtime cannot pass on). Sync asks it about every pod a
// revision would create or replace before anything changes, so a refused
// revision changes nothing.
type Admitter interface {
	Admit(pod *DesiredPod) error
}

// PodObserver is implemented by runtimes that can observe one pod without
// listing every pod: a pod worker looks at its own pod after each change
// and after each exit, and should not pay for the other pods on the host.
// ObservePod returns what List would return for the pod, or nil when the
// pod does not exist.
type PodObserver interface {
	ObservePod(ctx context.Context, id PodID) (*ObservedPod, error)
}

// ExitWatcher is implemented by runtimes that report container exits as
// they happen: the manager wakes the pod's worker at once instead of
// waiting for a resync. WatchExits returns when ctx ends (nil) or the
// stream breaks (an error; the manager subscribes again).
type ExitWatcher interface {
	WatchExits(ctx context.Context, exited func(PodID)) error
}
