package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Expand turns a revision's objects into the pods it wants on this host.
// It does no I/O. Objects of kinds that produce no pods are skipped.
func Expand(objs []Object, revision string) ([]DesiredPod, error) {
	var pods []DesiredPod
	seen := map[PodID]string{}
	configs := newConfigIndex(objs)
	for i := range objs {
		o := &objs[i]
		switch o.Kind {
		case "Pod":
			if o.Pod == nil {
				return nil, fmt.Errorf("%s: %s: object has no pod spec", o.Source, o.Key())
			}
			p := DesiredPod{
				ID:          PodID{Namespace: namespaceOr(o.Metadata.Namespace), Name: o.Metadata.Name},
				Labels:      copyMap(o.Metadata.Labels),
				Annotations: copyMap(o.Metadata.Annotations),
				Spec:        NormalizeSpec(*o.Pod),
				Owner:       o.Key(),
				Revision:    revision,
				Source:      o.Source,
			}
			if err := configs.resolve(&p); err != nil {
				return nil, fmt.Errorf("%s: %w", o.Source, err)
			}
			p.Hash = HashPod(&p)
			if prev, ok := seen[p.ID]; ok {
				return nil, fmt.Errorf("%s: pod %s is declared by both %s and %s", o.Source, p.ID, prev, o.Key())
			}
			seen[p.ID] = o.Key()
			pods = append(pods, p)
		}
	}
	sort.Slice(pods, func(i, j int) bool { return podLess(pods[i].ID, pods[j].ID) })
	return pods, nil
}

func namespaceOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func podLess(a, b PodID) bool {
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
