package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
)

// Node is the host berth runs on, as objects see it: its name and labels.
type Node struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// configRefs lists the ConfigMaps and Secrets a pod spec refers to, with
// whether each reference is optional (a name referred to both ways is
// required).
func configRefs(s *PodSpec) (configMaps, secrets map[string]bool) {
	configMaps, secrets = map[string]bool{}, map[string]bool{}
	add := func(m map[string]bool, name string, optional *bool) {
		opt := optional != nil && *optional
		if prev, ok := m[name]; ok {
			m[name] = prev && opt
			return
		}
		m[name] = opt
	}
	for _, v := range s.Volumes {
		switch {
		case v.ConfigMap != nil:
			add(configMaps, v.ConfigMap.Name, v.ConfigMap.Optional)
		case v.Secret != nil:
			add(secrets, v.Secret.SecretName, v.Secret.Optional)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					add(configMaps, src.ConfigMap.Name, src.ConfigMap.Optional)
				}
				if src.Secret != nil {
					add(secrets, src.Secret.Name, src.Secret.Optional)
				}
			}
		}
	}
	for _, cs := range [][]Container{s.InitContainers, s.Containers} {
		for _, c := range cs {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					add(configMaps, r.Name, r.Optional)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					add(secrets, r.Name, r.Optional)
				}
			}
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					add(configMaps, e.ConfigMapRef.Name, e.ConfigMapRef.Optional)
				}
				if e.SecretRef != nil {
					add(secrets, e.SecretRef.Name, e.SecretRef.Optional)
				}
			}
		}
	}
	for _, ps := range s.ImagePullSecrets {
		add(secrets, ps.Name, nil)
	}
	return configMaps, secrets
}

// configIndex holds a revision's ConfigMaps and Secrets by namespace/name.
type configIndex struct {
	configMaps map[string]*Object
	secrets    map[string]*Object
}

func newConfigIndex(objs []Object) *configIndex {
	ix := &configIndex{configMaps: map[string]*Object{}, secrets: map[string]*Object{}}
	for i := range objs {
		o := &objs[i]
		key := NamespaceOr(o.Metadata.Namespace) + "/" + o.Metadata.Name
		switch {
		case o.Kind == "ConfigMap" && o.ConfigMap != nil:
			ix.configMaps[key] = o
		case o.Kind == "Secret" && o.Secret != nil:
			ix.secrets[key] = o
		}
	}
	return ix
}

// resolve attaches the ConfigMaps and Secrets p refers to. A missing
// reference that is not optional is an error naming it; Kubernetes would
// keep such a pod waiting, berth refuses the revision instead.
func (ix *configIndex) resolve(p *DesiredPod) error {
	cms, secs := configRefs(&p.Spec)
	for _, name := range sortedKeys(cms) {
		o, ok := ix.configMaps[p.ID.Namespace+"/"+name]
		if !ok {
			if cms[name] {
				continue
			}
			return fmt.Errorf("pod %s refers to ConfigMap %q, which the revision does not declare in namespace %q", p.ID, name, p.ID.Namespace)
		}
		if p.ConfigMaps == nil {
			p.ConfigMaps = map[string]*ConfigMapData{}
		}
		p.ConfigMaps[name] = o.ConfigMap
	}
	for _, name := range sortedKeys(secs) {
		o, ok := ix.secrets[p.ID.Namespace+"/"+name]
		if !ok {
			if secs[name] {
				continue
			}
			return fmt.Errorf("pod %s refers to Secret %q, which the revision does not declare in namespace %q", p.ID, name, p.ID.Namespace)
		}
		if p.Secrets == nil {
			p.Secrets = map[string]*SecretData{}
		}
		p.Secrets[name] = o.Secret
	}
	return nil
}

// configDigest is a digest of the content of the pod's ConfigMaps and
// Secrets, for the spec hash. Secret values enter only through their keyed
// digests (SecretData.Digests) or, without them, SHA-256.
func configDigest(p *DesiredPod) string {
	if len(p.ConfigMaps) == 0 && len(p.Secrets) == 0 {
		return ""
	}
	h := sha256.New()
	for _, name := range sortedKeys(p.ConfigMaps) {
		cm := p.ConfigMaps[name]
		fmt.Fprintf(h, "configmap %q\n", name)
		for _, k := range sortedKeys(cm.Data) {
			fmt.Fprintf(h, "data %q %q\n", k, cm.Data[k])
		}
		for _, k := range sortedKeys(cm.BinaryData) {
			fmt.Fprintf(h, "binary %q %x\n", k, cm.BinaryData[k])
		}
	}
	for _, name := range sortedKeys(p.Secrets) {
		sec := p.Secrets[name]
		fmt.Fprintf(h, "secret %q %q\n", name, sec.Type)
		for _, k := range sortedKeys(sec.Data) {
			if d, ok := sec.Digests[k]; ok {
				fmt.Fprintf(h, "keyed %q %x\n", k, d)
				continue
			}
			sum := sha256.Sum256(sec.Data[k])
			fmt.Fprintf(h, "data %q %x\n", k, sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
