package reconcile

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// LabelSelector selects objects by labels: every matchLabels entry and
// every expression must match.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is key, operator (In, NotIn, Exists,
// DoesNotExist) and values.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// DeploymentSpec is a Deployment: replicas of a template, rolled out by a
// strategy.
type DeploymentSpec struct {
	Replicas                *int32             `json:"replicas,omitempty"`
	Selector                *LabelSelector     `json:"selector"`
	Template                PodTemplateSpec    `json:"template"`
	Strategy                DeploymentStrategy `json:"strategy,omitempty"`
	MinReadySeconds         int32              `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit    *int32             `json:"revisionHistoryLimit,omitempty"`
	ProgressDeadlineSeconds *int32             `json:"progressDeadlineSeconds,omitempty"`
	Paused                  bool               `json:"paused,omitempty"`
}

// DeploymentStrategy is RollingUpdate (default) or Recreate.
type DeploymentStrategy struct {
	Type          string                   `json:"type,omitempty"`
	RollingUpdate *RollingUpdateDeployment `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDeployment bounds a rolling update: numbers or percentages.
type RollingUpdateDeployment struct {
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	MaxSurge       *IntOrString `json:"maxSurge,omitempty"`
}

// ReplicaSetSpec is a ReplicaSet: replicas of a template.
type ReplicaSetSpec struct {
	Replicas        *int32          `json:"replicas,omitempty"`
	Selector        *LabelSelector  `json:"selector"`
	Template        PodTemplateSpec `json:"template"`
	MinReadySeconds int32           `json:"minReadySeconds,omitempty"`
}

// DaemonSetSpec is a DaemonSet: one pod on this host when the template's
// node constraints match it.
type DaemonSetSpec struct {
	Selector             *LabelSelector          `json:"selector"`
	Template             PodTemplateSpec         `json:"template"`
	UpdateStrategy       DaemonSetUpdateStrategy `json:"updateStrategy,omitempty"`
	MinReadySeconds      int32                   `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit *int32                  `json:"revisionHistoryLimit,omitempty"`
}

// DaemonSetUpdateStrategy is RollingUpdate (default) or OnDelete.
type DaemonSetUpdateStrategy struct {
	Type          string                  `json:"type,omitempty"`
	RollingUpdate *RollingUpdateDaemonSet `json:"rollingUpdate,omitempty"`
}

// RollingUpdateDaemonSet bounds a DaemonSet's rolling update.
type RollingUpdateDaemonSet struct {
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
	MaxSurge       *IntOrString `json:"maxSurge,omitempty"`
}

// StatefulSetSpec is a StatefulSet: pods <name>-0…<name>-N-1 with stable
// names and per-ordinal volumes.
type StatefulSetSpec struct {
	Replicas                             *int32                                  `json:"replicas,omitempty"`
	Selector                             *LabelSelector                          `json:"selector"`
	Template                             PodTemplateSpec                         `json:"template"`
	ServiceName                          string                                  `json:"serviceName,omitempty"`
	PodManagementPolicy                  string                                  `json:"podManagementPolicy,omitempty"`
	UpdateStrategy                       StatefulSetUpdateStrategy               `json:"updateStrategy,omitempty"`
	VolumeClaimTemplates                 []PersistentVolumeClaimTemplate         `json:"volumeClaimTemplates,omitempty"`
	MinReadySeconds                      int32                                   `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit                 *int32                                  `json:"revisionHistoryLimit,omitempty"`
	PersistentVolumeClaimRetentionPolicy *StatefulSetPersistentVolumeClaimPolicy `json:"persistentVolumeClaimRetentionPolicy,omitempty"`
	Ordinals                             *StatefulSetOrdinals                    `json:"ordinals,omitempty"`
}

// StatefulSetUpdateStrategy is RollingUpdate (default) or OnDelete.
type StatefulSetUpdateStrategy struct {
	Type          string                            `json:"type,omitempty"`
	RollingUpdate *RollingUpdateStatefulSetStrategy `json:"rollingUpdate,omitempty"`
}

// RollingUpdateStatefulSetStrategy holds the partition (ordinals below it
// keep the old template) and maxUnavailable.
type RollingUpdateStatefulSetStrategy struct {
	Partition      *int32       `json:"partition,omitempty"`
	MaxUnavailable *IntOrString `json:"maxUnavailable,omitempty"`
}

// StatefulSetPersistentVolumeClaimPolicy says whether claims are kept
// (Retain, default) or deleted when the set is deleted or scaled down.
type StatefulSetPersistentVolumeClaimPolicy struct {
	WhenDeleted string `json:"whenDeleted,omitempty"`
	WhenScaled  string `json:"whenScaled,omitempty"`
}

// StatefulSetOrdinals moves the first ordinal.
type StatefulSetOrdinals struct {
	Start int32 `json:"start,omitempty"`
}

// PersistentVolumeClaimTemplate is a claim each StatefulSet pod gets; on a
// host it is a directory per ordinal.
type PersistentVolumeClaimTemplate struct {
	Metadata ObjectMeta                `json:"metadata"`
	Spec     PersistentVolumeClaimSpec `json:"spec"`
}

// PersistentVolumeClaimSpec is the part of a claim berth reads.
type PersistentVolumeClaimSpec struct {
	AccessModes      []string              `json:"accessModes,omitempty"`
	Resources        *ResourceRequirements `json:"resources,omitempty"`
	StorageClassName *string               `json:"storageClassName,omitempty"`
	VolumeMode       string                `json:"volumeMode,omitempty"`
}

// JobSpec is a Job: pods that run to completion.
type JobSpec struct {
	Parallelism             *int32          `json:"parallelism,omitempty"`
	Completions             *int32          `json:"completions,omitempty"`
	ActiveDeadlineSeconds   *int64          `json:"activeDeadlineSeconds,omitempty"`
	BackoffLimit            *int32          `json:"backoffLimit,omitempty"`
	CompletionMode          string          `json:"completionMode,omitempty"`
	Suspend                 *bool           `json:"suspend,omitempty"`
	TTLSecondsAfterFinished *int32          `json:"ttlSecondsAfterFinished,omitempty"`
	Selector                *LabelSelector  `json:"selector,omitempty"`
	ManualSelector          *bool           `json:"manualSelector,omitempty"`
	Template                PodTemplateSpec `json:"template"`
}

// CronJobSpec is a CronJob: Jobs made on a schedule.
type CronJobSpec struct {
	Schedule                   string          `json:"schedule"`
	TimeZone                   *string         `json:"timeZone,omitempty"`
	StartingDeadlineSeconds    *int64          `json:"startingDeadlineSeconds,omitempty"`
	ConcurrencyPolicy          string          `json:"concurrencyPolicy,omitempty"`
	Suspend                    *bool           `json:"suspend,omitempty"`
	JobTemplate                JobTemplateSpec `json:"jobTemplate"`
	SuccessfulJobsHistoryLimit *int32          `json:"successfulJobsHistoryLimit,omitempty"`
	FailedJobsHistoryLimit     *int32          `json:"failedJobsHistoryLimit,omitempty"`
}

// JobTemplateSpec is the Job a CronJob makes.
type JobTemplateSpec struct {
	Metadata ObjectMeta `json:"metadata,omitempty"`
	Spec     JobSpec    `json:"spec"`
}

// ConfigMapData is a ConfigMap's content.
type ConfigMapData struct {
	Data       map[string]string `json:"data,omitempty"`
	BinaryData map[string][]byte `json:"binaryData,omitempty"`
	Immutable  *bool             `json:"immutable,omitempty"`
}

// SecretData is a Secret's content: `data` decoded from base64 and
// `stringData` merged in (stringData wins, as in Kubernetes). Its values
// never appear in logs, plans, status or errors.
type SecretData struct {
	Type      string            `json:"type,omitempty"`
	Data      map[string][]byte `json:"-"`
	Immutable *bool             `json:"immutable,omitempty"`
	// Digests, when set, hold a keyed digest of each value of Data (an
	// HMAC with a device-local key, see package secrets), which stands for
	// the value in the spec hash: the hash then carries no unkeyed digest
	// of a secret value.
	Digests map[string][]byte `json:"-"`
}

// IntOrString is a Kubernetes int-or-string value (a port number or name,
// a count or a percentage).
type IntOrString struct {
	IsString bool
	IntVal   int32
	StrVal   string
}

// FromInt returns an IntOrString holding n.
func FromInt(n int32) IntOrString { return IntOrString{IntVal: n} }

// FromString returns an IntOrString holding s.
func FromString(s string) IntOrString { return IntOrString{IsString: true, StrVal: s} }

// String formats v as Kubernetes prints it.
func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// MarshalJSON writes a number or a string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString = true
		v.IntVal = 0
		return json.Unmarshal(b, &v.StrVal)
	}
	v.IsString = false
	v.StrVal = ""
	return json.Unmarshal(b, &v.IntVal)
}

// Scaled resolves v against total: a number as it is, a percentage of
// total rounded up (roundUp) or down.
func (v IntOrString) Scaled(total int, roundUp bool) (int, error) {
	if !v.IsString {
		return int(v.IntVal), nil
	}
	p, ok := strings.CutSuffix(v.StrVal, "%")
	if !ok {
		return 0, fmt.Errorf("%q is not a number or a percentage", v.StrVal)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number or a percentage", v.StrVal)
	}
	if roundUp {
		return (n*total + 99) / 100, nil
	}
	return n * total / 100, nil
}
