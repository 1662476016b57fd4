package reconcile

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// PodPhase is a pod's phase, as in Kubernetes.
type PodPhase string

// Pod phases.
const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
)

// Container state names, as in Kubernetes' ContainerState.
const (
	Waiting    = "Waiting"
	Running    = "Running"
	Terminated = "Terminated"
)

// Reasons a container waits or terminated, and a pod failed, as kubelet
// reports them.
const (
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
	ReasonImagePullBackOff  = "ImagePullBackOff"
	ReasonErrImagePull      = "ErrImagePull"
	ReasonContainerCreating = "ContainerCreating"
	ReasonPodInitializing   = "PodInitializing"
	ReasonCompleted         = "Completed"
	ReasonError             = "Error"
	ReasonOOMKilled         = "OOMKilled"
	ReasonDeadlineExceeded  = "DeadlineExceeded"
	// ReasonSandboxChanged: a pod with restartPolicy Never lost its
	// sandbox after it ran (a reboot); it is not run again.
	ReasonSandboxChanged = "SandboxChanged"
	// ReasonWorkerPanic: berth's worker for the pod failed unexpectedly;
	// the pod is left as it is until its spec changes.
	ReasonWorkerPanic = "WorkerPanic"
)

// ContainerStatus is the state of one container of a pod.
type ContainerStatus struct {
	Name string        `json:"name"`
	Kind ContainerKind `json:"kind"`
	// State is Waiting, Running or Terminated.
	State        string `json:"state"`
	Reason       string `json:"reason,omitempty"`
	ExitCode     int    `json:"exitCode,omitempty"`
	RestartCount int    `json:"restartCount"`
	Ready        bool   `json:"ready"`
	Started      bool   `json:"started"`
	// Sidecar is set for an init container with restartPolicy Always.
	Sidecar    bool      `json:"sidecar,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// PodStatus is the state of a pod as berth sees it: from the runtime's
// record of containers and berth's pod records.
type PodStatus struct {
	ID       PodID    `json:"id"`
	Owner    string   `json:"owner,omitempty"`
	Hash     string   `json:"hash,omitempty"`
	Revision string   `json:"revision,omitempty"`
	IP       string   `json:"ip,omitempty"`
	Phase    PodPhase `json:"phase"`
	// Reason is why the pod failed (DeadlineExceeded, …).
	Reason string `json:"reason,omitempty"`
	// Ready is the pod's Ready condition; ReadySince when it last became
	// true.
	Ready          bool              `json:"ready"`
	ReadySince     time.Time         `json:"readySince,omitzero"`
	CreatedAt      time.Time         `json:"createdAt,omitzero"`
	InitContainers []ContainerStatus `json:"initContainers,omitempty"`
	Containers     []ContainerStatus `json:"containers"`
}

// Restarts is the sum of the restart counts of the pod's containers.
func (s PodStatus) Restarts() int {
	n := 0
	for _, c := range s.InitContainers {
		n += c.RestartCount
	}
	for _, c := range s.Containers {
		n += c.RestartCount
	}
	return n
}

// ReadyCount returns how many app and sidecar containers are ready, of
// how many, as kubectl's READY column counts them.
func (s PodStatus) ReadyCount() (ready, total int) {
	for _, c := range s.InitContainers {
		if c.Sidecar {
			total++
			if c.Ready {
				ready++
			}
		}
	}
	for _, c := range s.Containers {
		total++
		if c.Ready {
			ready++
		}
	}
	return ready, total
}

// Display is the STATUS column kubectl shows for the pod: the pod's
// failure reason; Init:N/M, Init:<reason> while init containers run; the
// reason of a waiting or terminated app container (CrashLoopBackOff,
// ImagePullBackOff, OOMKilled, Error, Completed); else the phase.
func (s PodStatus) Display() string {
	if s.Reason != "" {
		return s.Reason
	}
	if s.Phase == PodSucceeded {
		return ReasonCompleted
	}
	regular := 0
	for _, c := range s.InitContainers {
		regular++
		switch {
		case c.State == Terminated && c.ExitCode == 0:
			continue
		case c.State == Terminated:
			if c.Reason != "" {
				return "Init:" + c.Reason
			}
			return fmt.Sprintf("Init:ExitCode:%d", c.ExitCode)
		case c.State == Waiting && c.Reason != "" && c.Reason != ReasonPodInitializing:
			return "Init:" + c.Reason
		case c.State == Running && c.Started:
			// A sidecar that runs is done initializing.
			continue
		default:
			return fmt.Sprintf("Init:%d/%d", regular-1, len(s.InitContainers))
		}
	}
	reason := ""
	running := false
	for i := len(s.Containers) - 1; i >= 0; i-- {
		c := s.Containers[i]
		switch {
		case c.State == Waiting && c.Reason != "":
			reason = c.Reason
		case c.State == Terminated && c.Reason != "":
			reason = c.Reason
		case c.State == Terminated:
			reason = fmt.Sprintf("ExitCode:%d", c.ExitCode)
		case c.State == Running:
			running = true
		}
	}
	if reason == ReasonCompleted && running {
		return string(PodRunning)
	}
	if reason != "" {
		return reason
	}
	if s.Phase == "" {
		return string(PodPending)
	}
	return string(s.Phase)
}

// TerminatedReason is the reason kubelet gives a terminated container.
func TerminatedReason(c *ObservedContainer) string {
	if r := observedReason(c); r != "" {
		return r
	}
	if c.ExitCode == 0 {
		return ReasonCompleted
	}
	return ReasonError
}

// observedReason is the runtime's reason for a termination (OOMKilled), if
// it reports one.
func observedReason(c *ObservedContainer) string { return c.Reason }

// ObservePod derives a pod's status from what the runtime reports and the
// pod's record (restart counts, backoff, terminal phase), without the
// live probe results only a running agent has: a running container counts
// as ready unless the record says otherwise.
func ObservePod(o *ObservedPod, rec *PodRecord, spec *PodSpec) PodStatus {
	if rec != nil && rec.Hash != o.Hash {
		rec = nil
	}
	st := PodStatus{
		ID: o.ID, Owner: o.Owner, Hash: o.Hash, Revision: o.Revision, IP: o.IP, CreatedAt: o.CreatedAt,
		Phase: PodPending, Containers: []ContainerStatus{},
	}
	crec := func(kind ContainerKind, name string) *ContainerRecord {
		if rec == nil {
			return nil
		}
		return rec.Containers[string(kind)+"/"+name]
	}
	conv := func(c *ObservedContainer) ContainerStatus {
		cs := ContainerStatus{Name: c.Name, Kind: c.Kind, StartedAt: c.StartedAt, FinishedAt: c.FinishedAt}
		r := crec(c.Kind, c.Name)
		if r != nil {
			cs.RestartCount = r.Restarts
		}
		switch c.State {
		case StateRunning:
			cs.State, cs.Started = Running, true
			cs.Ready = r == nil || r.Ready
		case StateExited:
			cs.State, cs.ExitCode, cs.Reason = Terminated, c.ExitCode, TerminatedReason(c)
			if r != nil && r.Waiting != "" {
				cs.State, cs.Reason = Waiting, r.Waiting
			}
		default:
			cs.State, cs.Reason = Waiting, ReasonContainerCreating
			if r != nil && r.Waiting != "" {
				cs.Reason = r.Waiting
			}
		}
		return cs
	}
	missing := func(kind ContainerKind, name string) ContainerStatus {
		cs := ContainerStatus{Name: name, Kind: kind, State: Waiting, Reason: ReasonContainerCreating}
		if kind == InitContainer {
			cs.Reason = ReasonPodInitializing
		}
		if r := crec(kind, name); r != nil {
			cs.RestartCount = r.Restarts
			if r.Waiting != "" {
				cs.Reason = r.Waiting
			}
		}
		return cs
	}
	inSpec := map[string]bool{}
	if spec != nil {
		// In the spec's order, with the containers not (yet) made.
		for _, c := range spec.InitContainers {
			inSpec["init/"+c.Name] = true
			cs := missing(InitContainer, c.Name)
			if oc := o.Container(InitContainer, c.Name); oc != nil {
				cs = conv(oc)
			}
			cs.Sidecar = c.RestartPolicy == RestartAlways
			st.InitContainers = append(st.InitContainers, cs)
		}
		for _, c := range spec.Containers {
			inSpec["app/"+c.Name] = true
			if oc := o.Container(AppContainer, c.Name); oc != nil {
				st.Containers = append(st.Containers, conv(oc))
			} else {
				st.Containers = append(st.Containers, missing(AppContainer, c.Name))
			}
		}
	}
	appStarted := false
	for i := range o.Containers {
		if o.Containers[i].Kind == AppContainer && o.Containers[i].State != StateCreated {
			appStarted = true
		}
	}
	for i := range o.Containers {
		c := &o.Containers[i]
		if inSpec[string(c.Kind)+"/"+c.Name] {
			continue
		}
		if c.Kind == InitContainer {
			cs := conv(c)
			// Without the spec: an init container that still runs next to
			// started app containers is a sidecar.
			cs.Sidecar = spec == nil && appStarted && c.State == StateRunning
			st.InitContainers = append(st.InitContainers, cs)
		} else {
			st.Containers = append(st.Containers, conv(c))
		}
	}
	policy := ""
	if spec != nil {
		policy = spec.RestartPolicy
	}
	st.Phase = phaseOf(&st, policy)
	if rec != nil && rec.Phase != "" {
		st.Phase, st.Reason = rec.Phase, rec.Reason
	}
	ready, total := st.ReadyCount()
	st.Ready = total > 0 && ready == total && st.Phase == PodRunning
	return st
}

// phaseOf derives the phase from container states: Running once any app
// container runs, or exited and is to be restarted under the restart
// policy (when known); Succeeded when all terminated with 0; Failed when
// all terminated and one failed; Pending otherwise.
func phaseOf(s *PodStatus, policy string) PodPhase {
	if len(s.Containers) == 0 {
		return PodPending
	}
	terminated, failed, running := 0, 0, 0
	for _, c := range s.Containers {
		switch {
		case c.State == Running:
			running++
		case c.State == Terminated && policy != "" && ShouldRestart(policy, c.ExitCode):
			running++ // about to be restarted
		case c.State == Terminated:
			terminated++
			if c.ExitCode != 0 {
				failed++
			}
		case c.State == Waiting && c.RestartCount > 0:
			running++ // restarting (CrashLoopBackOff)
		}
	}
	switch {
	case running > 0:
		return PodRunning
	case terminated == len(s.Containers) && failed == 0:
		return PodSucceeded
	case terminated == len(s.Containers):
		return PodFailed
	case terminated > 0:
		return PodRunning
	}
	return PodPending
}

// WorkloadStatus is the state of a workload, as kubectl's columns show
// it: desired, ready, up-to-date and available replicas.
type WorkloadStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Desired   int    `json:"desired"`
	Current   int    `json:"current"`
	Ready     int    `json:"ready"`
	UpToDate  int    `json:"upToDate"`
	Available int    `json:"available"`
	// Succeeded and Failed count a Job's pods; Condition is a Job's
	// Complete/Failed or a Deployment's ProgressDeadlineExceeded.
	Succeeded int    `json:"succeeded,omitempty"`
	Failed    int    `json:"failed,omitempty"`
	Condition string `json:"condition,omitempty"`
	// LastSchedule is a CronJob's last scheduled time.
	LastSchedule time.Time `json:"lastSchedule,omitzero"`
}

// Key is the workload's "Kind/namespace/name".
func (w *WorkloadStatus) Key() string { return w.Kind + "/" + w.Namespace + "/" + w.Name }

// SplitOwner splits an owner key "Kind/namespace/name".
func SplitOwner(owner string) (kind, namespace, name string) {
	parts := strings.SplitN(owner, "/", 3)
	for len(parts) < 3 {
		parts = append(parts, "")
	}
	return parts[0], parts[1], parts[2]
}

// WorkloadsFromPods sums pods by owning workload, for a host where no
// controller reports the workloads (no agent runs): every pod counts as
// desired and up to date.
func WorkloadsFromPods(pods []PodStatus) []WorkloadStatus {
	by := map[string]*WorkloadStatus{}
	var keys []string
	for _, p := range pods {
		kind, _, name := SplitOwner(p.Owner)
		if kind == "" || kind == "Pod" {
			continue
		}
		w := by[p.Owner]
		if w == nil {
			w = &WorkloadStatus{Kind: kind, Namespace: p.ID.Namespace, Name: name}
			by[p.Owner] = w
			keys = append(keys, p.Owner)
		}
		w.Desired++
		w.Current++
		w.UpToDate++
		switch p.Phase {
		case PodSucceeded:
			w.Succeeded++
		case PodFailed:
			w.Failed++
		}
		if p.Ready {
			w.Ready++
			w.Available++
		}
	}
	sort.Strings(keys)
	out := make([]WorkloadStatus, 0, len(keys))
	for _, k := range keys {
		out = append(out, *by[k])
	}
	return out
}
