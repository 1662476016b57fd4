package reconcile

import (
	"time"
)

// Records are what berth remembers of workloads between runs, in place of
// the API server: Job results, CronJob schedules, pod restart counts and
// rollout progress. They live as small JSON files under the state
// directory (see RecordStore) and are read by Expand as plain data.
type Records struct {
	// Jobs by "namespace/name".
	Jobs map[string]*JobRecord `json:"jobs,omitempty"`
	// CronJobs by "namespace/name".
	CronJobs map[string]*CronJobRecord `json:"cronJobs,omitempty"`
}

// Job conditions.
const (
	JobComplete = "Complete"
	JobFailed   = "Failed"
)

// JobRecord is what berth keeps of one Job.
type JobRecord struct {
	// Hash is the Job's spec hash; a Job whose spec changes starts afresh.
	Hash string `json:"hash"`
	// StartTime is when berth first ran the Job.
	StartTime time.Time `json:"startTime,omitzero"`
	// CompletionTime is when the Job completed or failed.
	CompletionTime time.Time `json:"completionTime,omitzero"`
	// Condition is "", JobComplete or JobFailed.
	Condition string `json:"condition,omitempty"`
	// Reason is why the Job failed (BackoffLimitExceeded,
	// DeadlineExceeded).
	Reason string `json:"reason,omitempty"`
	// Pods are the Job's finished pods.
	Pods []JobPod `json:"pods,omitempty"`
	// Failed counts failures toward backoffLimit: failed pods and, for
	// restartPolicy OnFailure, container restarts.
	Failed int `json:"failed,omitempty"`
	// Restarts are the container restarts counted so far, by pod.
	Restarts map[string]int `json:"restarts,omitempty"`
	// LastFailure is when the last failure was counted.
	LastFailure time.Time `json:"lastFailure,omitzero"`
}

// JobPod is a finished pod of a Job.
type JobPod struct {
	Name string `json:"name"`
	// Slot is the completion index (Indexed) or the pod's position.
	Slot     int       `json:"slot"`
	Phase    PodPhase  `json:"phase"`
	Finished time.Time `json:"finished,omitzero"`
}

// Finished reports whether the Job completed or failed.
func (r *JobRecord) Finished() bool {
	return r != nil && (r.Condition == JobComplete || r.Condition == JobFailed)
}

// Succeeded counts the Job's distinct completed slots.
func (r *JobRecord) Succeeded() int {
	if r == nil {
		return 0
	}
	seen := map[int]bool{}
	for _, p := range r.Pods {
		if p.Phase == PodSucceeded {
			seen[p.Slot] = true
		}
	}
	return len(seen)
}

// CronJobRecord is what berth keeps of one CronJob.
type CronJobRecord struct {
	// FirstSeen stands in for the creation time: missed schedules are
	// counted from it when the CronJob never ran.
	FirstSeen time.Time `json:"firstSeen"`
	// LastScheduleTime is the scheduled time of the last Job made.
	LastScheduleTime time.Time `json:"lastScheduleTime,omitzero"`
	// LastSuccessfulTime is when a Job of the CronJob last completed.
	LastSuccessfulTime time.Time `json:"lastSuccessfulTime,omitzero"`
	// Runs are the Jobs the CronJob made that still exist, oldest first.
	Runs []CronRun `json:"runs,omitempty"`
}

// CronRun is one Job made by a CronJob.
type CronRun struct {
	Name          string    `json:"name"`
	ScheduledTime time.Time `json:"scheduledTime"`
}

// PodRecord is what berth keeps of one pod between runs: restart counts
// and CrashLoopBackOff state per container, and the pod's terminal phase.
// The runtime's labels say what exists; this says how it got there.
type PodRecord struct {
	// Hash is the pod's spec hash; a record for another hash is stale.
	Hash string `json:"hash"`
	// StartTime is when berth first started the pod (activeDeadlineSeconds
	// counts from it).
	StartTime time.Time `json:"startTime,omitzero"`
	// Phase is set once the pod is Succeeded or Failed.
	Phase  PodPhase `json:"phase,omitempty"`
	Reason string   `json:"reason,omitempty"`
	// Containers by "kind/name".
	Containers map[string]*ContainerRecord `json:"containers,omitempty"`
	// Ready mirrors the pod's Ready condition, for `berth status`.
	Ready bool `json:"ready,omitempty"`
}

// ContainerRecord is one container's restart history.
type ContainerRecord struct {
	Restarts int `json:"restarts"`
	// Started is set once berth started the container.
	Started bool `json:"started,omitempty"`
	// Backoff is the current CrashLoopBackOff delay and LastDeath the
	// time it was last extended.
	Backoff   time.Duration `json:"backoff,omitempty"`
	LastDeath time.Time     `json:"lastDeath,omitzero"`
	// Waiting is the reason the container is not running (CrashLoopBackOff,
	// ImagePullBackOff, …) and Until when berth tries again.
	Waiting string    `json:"waiting,omitempty"`
	Until   time.Time `json:"until,omitzero"`
	// LastExitCode and LastReason describe the last termination.
	LastExitCode int    `json:"lastExitCode,omitempty"`
	LastReason   string `json:"lastReason,omitempty"`
	Ready        bool   `json:"ready,omitempty"`
}

// DeploymentRecord is the rollout state of a Deployment.
type DeploymentRecord struct {
	// Hash is the template hash being rolled out.
	Hash string `json:"hash"`
	// Since is when that rollout began; LastProgress when it last made
	// progress (a new pod became available).
	Since        time.Time `json:"since"`
	LastProgress time.Time `json:"lastProgress"`
	// Available is the most new pods seen available in this rollout.
	Available int `json:"available,omitempty"`
	// Complete is set when every replica runs the new template and is
	// available.
	Complete bool `json:"complete,omitempty"`
	// Failed is set when progressDeadlineSeconds passed without progress
	// (reason ProgressDeadlineExceeded).
	Failed bool `json:"failed,omitempty"`
}

// Container returns the record of a container of the pod, making it when
// there is none.
func (r *PodRecord) Container(kind ContainerKind, name string) *ContainerRecord {
	k := string(kind) + "/" + name
	c := r.Containers[k]
	if c == nil {
		c = &ContainerRecord{}
		r.Containers[k] = c
	}
	return c
}

// AnyStarted reports whether berth started any container of the pod.
func (r *PodRecord) AnyStarted() bool {
	for _, c := range r.Containers {
		if c.Started {
			return true
		}
	}
	return false
}
