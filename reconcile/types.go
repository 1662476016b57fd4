package reconcile

import "strconv"

// This file holds berth's domain model: the objects a revision declares, in
// the shape Kubernetes gives them (JSON field names match the Kubernetes API),
// restricted to what berth supports. The schema package decodes validated
// objects into these types; everything downstream works on them.

// Position is a place in a file of the repository. File is relative to the
// repository root and starts with "./".
type Position struct {
	File   string `json:"file"`
	Line   int    `json:"line"`
	Column int    `json:"column"`
}

// String formats p as file:line:col.
func (p Position) String() string {
	if p.File == "" {
		return ""
	}
	if p.Line == 0 {
		return p.File
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Column)
}

// ObjectMeta is the metadata every object carries.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// TypeMeta names an object's kind.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// Object is one validated object of a revision together with where it was
// declared.
type Object struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	// Source is where the object starts in the repository.
	Source Position `json:"-"`
	// Pod is set when Kind is "Pod".
	Pod *PodSpec `json:"-"`
}

// Key returns the object's identity, "Kind/namespace/name".
func (o *Object) Key() string {
	return o.Kind + "/" + o.Metadata.Namespace + "/" + o.Metadata.Name
}

// PodSpec is the subset of the Kubernetes PodSpec berth runs.
type PodSpec struct {
	InitContainers                []Container `json:"initContainers,omitempty"`
	Containers                    []Container `json:"containers"`
	Volumes                       []Volume    `json:"volumes,omitempty"`
	RestartPolicy                 string      `json:"restartPolicy,omitempty"`
	TerminationGracePeriodSeconds *int64      `json:"terminationGracePeriodSeconds,omitempty"`
	Hostname                      string      `json:"hostname,omitempty"`
}

// Restart policies.
const (
	RestartAlways    = "Always"
	RestartOnFailure = "OnFailure"
	RestartNever     = "Never"
)

// Image pull policies.
const (
	PullAlways       = "Always"
	PullIfNotPresent = "IfNotPresent"
	PullNever        = "Never"
)

// Container is one container of a pod.
type Container struct {
	Name            string          `json:"name"`
	Image           string          `json:"image"`
	ImagePullPolicy string          `json:"imagePullPolicy,omitempty"`
	Command         []string        `json:"command,omitempty"`
	Args            []string        `json:"args,omitempty"`
	WorkingDir      string          `json:"workingDir,omitempty"`
	Env             []EnvVar        `json:"env,omitempty"`
	Ports           []ContainerPort `json:"ports,omitempty"`
	VolumeMounts    []VolumeMount   `json:"volumeMounts,omitempty"`
}

// EnvVar is an environment variable with a plain value.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ContainerPort is a port a container listens on.
type ContainerPort struct {
	Name          string `json:"name,omitempty"`
	ContainerPort int32  `json:"containerPort"`
	HostPort      int32  `json:"hostPort,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
	Protocol      string `json:"protocol,omitempty"`
}

// VolumeMount mounts a pod volume into a container.
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
	SubPath   string `json:"subPath,omitempty"`
}

// Volume is a pod volume; exactly one source is set.
type Volume struct {
	Name     string                `json:"name"`
	EmptyDir *EmptyDirVolumeSource `json:"emptyDir,omitempty"`
	HostPath *HostPathVolumeSource `json:"hostPath,omitempty"`
}

// EmptyDirVolumeSource is a directory that lives as long as the pod.
type EmptyDirVolumeSource struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// HostPathVolumeSource is a path on the host.
type HostPathVolumeSource struct {
	Path string `json:"path"`
	Type string `json:"type,omitempty"`
}
