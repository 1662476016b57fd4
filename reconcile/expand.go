package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// ExpandOptions are the inputs of Expand besides the objects: the node the
// pods are for, where StatefulSet volumes live, what berth remembers of
// Jobs and CronJobs, and the time. Expand reads them and does no I/O.
type ExpandOptions struct {
	// Node is this host; objects whose pod template does not match it
	// (nodeName, nodeSelector, required node affinity) yield no pods, and
	// every pod's NodeName is Node.Name.
	Node Node
	// StateDir is berth's state directory; a StatefulSet's
	// volumeClaimTemplates become host directories under
	// StateDir/volumes/ (default DefaultStateDir).
	StateDir string
	// Records are the durable Job and CronJob records; nil means none.
	Records *Records
	// Now is the time, for Job backoff and ttlSecondsAfterFinished (zero:
	// no time-based decision is made).
	Now time.Time
}

// DefaultStateDir is berth's default state directory.
const DefaultStateDir = "/var/lib/berth"

// Expand turns a revision's objects into the pods it wants on this host:
// a Pod as it is; a Deployment's or ReplicaSet's replicas; a StatefulSet's
// ordinals; a DaemonSet's one pod when its template matches the node; a
// Job's pods as its record says; the Jobs a CronJob made. It does no I/O.
// Objects of kinds that produce no pods are skipped.
func Expand(objs []Object, revision string, opts ExpandOptions) ([]DesiredPod, error) {
	x, err := ExpandAll(objs, revision, opts)
	if err != nil {
		return nil, err
	}
	return x.Pods, nil
}

// Expansion is Expand's full result: the pods, and the earliest time at
// which the same inputs would expand differently (a Job's next attempt
// after backoff, a finished Job's ttl), zero when none.
type Expansion struct {
	Pods []DesiredPod
	Wake time.Time
	// jobs are the Jobs expanded, by record key, for the Job controller.
	Jobs map[string]*JobInfo
}

func (x *Expansion) wakeAt(t time.Time) {
	if !t.IsZero() && (x.Wake.IsZero() || t.Before(x.Wake)) {
		x.Wake = t
	}
}

// ExpandAll is Expand with the Jobs it expanded and when to expand again,
// for the Job controller.
func ExpandAll(objs []Object, revision string, opts ExpandOptions) (*Expansion, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.Records == nil {
		opts.Records = &Records{}
	}
	e := &expander{
		opts: opts, revision: revision, configs: newConfigIndex(objs),
		seen: map[PodID]string{}, x: &Expansion{Jobs: map[string]*JobInfo{}},
	}
	for i := range objs {
		if err := e.object(&objs[i]); err != nil {
			return nil, err
		}
	}
	pods := e.x.Pods
	sort.Slice(pods, func(i, j int) bool { return PodLess(pods[i].ID, pods[j].ID) })
	return e.x, nil
}

// expander holds the state of one Expansion.
type expander struct {
	opts     ExpandOptions
	revision string
	configs  *configIndex
	seen     map[PodID]string
	x        *Expansion
}

// pod makes the desired pod name in namespace from o's template meta and
// spec, resolves its configuration, hashes it and adds it. It returns the
// pod as added, or nil when the node does not match.
func (e *expander) pod(o *Object, name string, meta ObjectMeta, spec PodSpec, edit func(*DesiredPod)) (*DesiredPod, error) {
	if ok, _ := e.opts.Node.Matches(&spec); !ok {
		return nil, nil
	}
	p := DesiredPod{
		ID:          PodID{Namespace: NamespaceOr(o.Metadata.Namespace), Name: name},
		Labels:      copyMap(meta.Labels),
		Annotations: copyMap(meta.Annotations),
		Spec:        NormalizeSpec(spec),
		Owner:       o.Key(),
		Revision:    e.revision,
		Source:      o.Source,
		NodeName:    e.opts.Node.Name,
	}
	if err := e.configs.resolve(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", o.Source, err)
	}
	if edit != nil {
		edit(&p)
	}
	p.Hash = HashPod(&p)
	if prev, ok := e.seen[p.ID]; ok {
		return nil, fmt.Errorf("%s: pod %s is declared by both %s and %s", o.Source, p.ID, prev, o.Key())
	}
	e.seen[p.ID] = o.Key()
	e.x.Pods = append(e.x.Pods, p)
	return &e.x.Pods[len(e.x.Pods)-1], nil
}

func (e *expander) object(o *Object) error {
	missing := func() error {
		return fmt.Errorf("%s: %s: object has no %s spec", o.Source, o.Key(), strings.ToLower(o.Kind))
	}
	switch o.Kind {
	case "Pod":
		if o.Pod == nil {
			return missing()
		}
		_, err := e.pod(o, o.Metadata.Name, o.Metadata, *o.Pod, nil)
		return err
	case "Deployment":
		if o.Deployment == nil {
			return missing()
		}
		return e.replicas(o, o.Deployment.Template, o.Deployment.Replicas, true)
	case "ReplicaSet":
		if o.ReplicaSet == nil {
			return missing()
		}
		return e.replicas(o, o.ReplicaSet.Template, o.ReplicaSet.Replicas, false)
	case "StatefulSet":
		if o.StatefulSet == nil {
			return missing()
		}
		return e.statefulSet(o)
	case "DaemonSet":
		if o.DaemonSet == nil {
			return missing()
		}
		return e.daemonSet(o)
	case "Job":
		if o.Job == nil {
			return missing()
		}
		return e.job(o, o.Metadata, *o.Job, "")
	case "CronJob":
		if o.CronJob == nil {
			return missing()
		}
		return e.cronJob(o)
	}
	return nil
}

func NamespaceOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func PodLess(a, b PodID) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}

// HashPod returns the spec hash of p: the first 16 hex digits of the SHA-256
// of the canonical JSON of its normalized spec, labels, annotations, node
// name and the content of the ConfigMaps and Secrets it uses. The revision
// and the owner's source position are not part of it, so a commit that
// does not change a pod leaves its hash alone.
func HashPod(p *DesiredPod) string {
	b, err := json.Marshal(struct {
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
		Spec        PodSpec           `json:"spec"`
		NodeName    string            `json:"nodeName,omitempty"`
		Config      string            `json:"config,omitempty"`
	}{p.Labels, p.Annotations, p.Spec, p.NodeName, configDigest(p)})
	if err != nil {
		// Marshalling plain structs of strings and numbers cannot fail.
		panic(fmt.Sprintf("hash pod %s: %v", p.ID, err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// NormalizeSpec returns a copy of s with Kubernetes defaults filled in and
// empty lists and maps made nil, so two specs that mean the same thing are
// equal and hash the same.
func NormalizeSpec(s PodSpec) PodSpec {
	out := s
	if out.RestartPolicy == "" {
		out.RestartPolicy = RestartAlways
	}
	if out.TerminationGracePeriodSeconds == nil {
		g := int64(DefaultGracePeriod.Seconds())
		out.TerminationGracePeriodSeconds = &g
	} else {
		g := *out.TerminationGracePeriodSeconds
		out.TerminationGracePeriodSeconds = &g
	}
	out.InitContainers = normalizeContainers(s.InitContainers)
	out.Containers = normalizeContainers(s.Containers)
	if len(s.Volumes) == 0 {
		out.Volumes = nil
	} else {
		out.Volumes = make([]Volume, len(s.Volumes))
		for i, v := range s.Volumes {
			if v.EmptyDir != nil {
				e := *v.EmptyDir
				v.EmptyDir = &e
			}
			if v.HostPath != nil {
				h := *v.HostPath
				v.HostPath = &h
			}
			out.Volumes[i] = v
		}
	}
	return out
}

func normalizeContainers(cs []Container) []Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]Container, len(cs))
	for i, c := range cs {
		if c.ImagePullPolicy == "" {
			c.ImagePullPolicy = DefaultPullPolicy(c.Image)
		}
		c.Command = nilIfEmpty(c.Command)
		c.Args = nilIfEmpty(c.Args)
		if len(c.Env) == 0 {
			c.Env = nil
		} else {
			c.Env = append([]EnvVar(nil), c.Env...)
		}
		if len(c.Ports) == 0 {
			c.Ports = nil
		} else {
			ports := make([]ContainerPort, len(c.Ports))
			for j, p := range c.Ports {
				if p.Protocol == "" {
					p.Protocol = "TCP"
				}
				ports[j] = p
			}
			c.Ports = ports
		}
		if len(c.VolumeMounts) == 0 {
			c.VolumeMounts = nil
		} else {
			c.VolumeMounts = append([]VolumeMount(nil), c.VolumeMounts...)
		}
		out[i] = c
	}
	return out
}

// DefaultPullPolicy is Kubernetes' default imagePullPolicy for image:
// Always for the tag "latest" or no tag (and no digest), IfNotPresent
// otherwise.
func DefaultPullPolicy(image string) string {
	if strings.Contains(image, "@") {
		return PullIfNotPresent
	}
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || name[i+1:] == "latest" {
		return PullAlways
	}
	return PullIfNotPresent
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return append([]string(nil), s...)
}

func copyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
