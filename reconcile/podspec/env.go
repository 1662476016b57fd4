package podspec

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"berth.dev/berth/reconcile"
)

// EnvInput is what a container's environment is computed from.
type EnvInput struct {
	Pod       *reconcile.DesiredPod
	Container *reconcile.Container
	// PodIP and HostIP answer fieldRef status.podIP and status.hostIP.
	PodIP, HostIP string
	// Host answers a resourceFieldRef to an unset limit.
	Host Capacity
}

var envNameRE = regexp.MustCompile(`^[-._a-zA-Z][-._a-zA-Z0-9]*$`)

// ContainerEnv returns the container's own environment (without the
// image's), in the kubelet's way: envFrom first (each key with its
// prefix; keys that are not valid variable names are skipped, a missing
// optional source gives nothing), then env in order, each value with
// $(VAR) references to variables defined before it expanded (`$$` is a
// literal `$`, unknown references stay as written), valueFrom resolved
// from the pod's ConfigMaps and Secrets, its fields and its resources. A
// later definition of a name replaces an earlier one in place.
func ContainerEnv(in EnvInput) ([]string, error) {
	c := in.Container
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, ef := range c.EnvFrom {
		var data map[string][]byte
		var kind, name string
		var optional *bool
		switch {
		case ef.ConfigMapRef != nil:
			kind, name, optional = "ConfigMap", ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional
			data = configMapBytes(in.Pod, name)
		case ef.SecretRef != nil:
			kind, name, optional = "Secret", ef.SecretRef.Name, ef.SecretRef.Optional
			data = secretBytes(in.Pod, name)
		default:
			continue
		}
		if data == nil {
			if optional != nil && *optional {
				continue
			}
			return nil, fmt.Errorf("container %q: envFrom %s %q is not declared in namespace %q", c.Name, kind, name, in.Pod.ID.Namespace)
		}
		keys := make([]string, 0, len(data))
		for k := range data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if name := ef.Prefix + k; envNameRE.MatchString(name) {
				set(name, string(data[k]))
			}
		}
	}
	lookup := func(name string) (string, bool) {
		v, ok := vals[name]
		return v, ok
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, Expand(e.Value, lookup))
			continue
		}
		v, ok, err := valueFrom(in, e)
		if err != nil {
			return nil, fmt.Errorf("container %q: env %s: %w", c.Name, e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

func valueFrom(in EnvInput, e reconcile.EnvVar) (string, bool, error) {
	src := e.ValueFrom
	optional := func(o *bool) bool { return o != nil && *o }
	switch {
	case src.FieldRef != nil:
		v, err := FieldValue(in.Pod, src.FieldRef.FieldPath, in.PodIP, in.HostIP)
		return v, err == nil, err
	case src.ResourceFieldRef != nil:
		v, err := ResourceValue(in.Pod, in.Container.Name, src.ResourceFieldRef, in.Host)
		return v, err == nil, err
	case src.ConfigMapKeyRef != nil:
		r := src.ConfigMapKeyRef
		data := configMapBytes(in.Pod, r.Name)
		if data == nil {
			if optional(r.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("ConfigMap %q is not declared in namespace %q", r.Name, in.Pod.ID.Namespace)
		}
		b, ok := data[r.Key]
		if !ok {
			if optional(r.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("ConfigMap %q has no key %q", r.Name, r.Key)
		}
		return string(b), true, nil
	case src.SecretKeyRef != nil:
		r := src.SecretKeyRef
		data := secretBytes(in.Pod, r.Name)
		if data == nil {
			if optional(r.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("Secret %q is not declared in namespace %q", r.Name, in.Pod.ID.Namespace)
		}
		b, ok := data[r.Key]
		if !ok {
			if optional(r.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("Secret %q has no key %q", r.Name, r.Key)
		}
		return string(b), true, nil
	}
	return "", false, fmt.Errorf("valueFrom names no source")
}

// Expand replaces $(NAME) in s with the value lookup gives for NAME, as
// Kubernetes expands command, args and env values: `$$` is a literal `$`,
// a reference to an unknown name and an unclosed `$(` stay as written.
func Expand(s string, lookup func(string) (string, bool)) string {
	var b bytes.Buffer
	checkpoint := 0
	for cur := 0; cur < len(s); cur++ {
		if s[cur] != '$' || cur+1 >= len(s) {
			continue
		}
		b.WriteString(s[checkpoint:cur])
		rest := s[cur+1:]
		advance := 1
		switch rest[0] {
		case '$':
			b.WriteByte('$')
		case '(':
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				b.WriteString("$(")
				break
			}
			name := rest[1:end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			advance = end + 1
		default:
			b.WriteByte('$')
			b.WriteByte(rest[0])
		}
		cur += advance
		checkpoint = cur + 1
	}
	b.WriteString(s[checkpoint:])
	return b.String()
}

// ExpandArgs expands $(VAR) in command or args with the container's env.
func ExpandArgs(args []string, env []string) []string {
	if len(args) == 0 {
		return args
	}
	vals := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vals[k] = v
	}
	lookup := func(n string) (string, bool) { v, ok := vals[n]; return v, ok }
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = Expand(a, lookup)
	}
	return out
}

var labelRefRE = regexp.MustCompile(`^metadata\.(labels|annotations)\['([^']+)'\]$`)

// FieldValue returns the value of a downward API field of pod:
// metadata.name, metadata.namespace, metadata.uid, metadata.labels,
// metadata.annotations (all, one "key=\"value\"" per line, sorted),
// metadata.labels['k'], metadata.annotations['k'], spec.nodeName,
// spec.serviceAccountName, status.podIP(s) and status.hostIP(s).
func FieldValue(pod *reconcile.DesiredPod, path, podIP, hostIP string) (string, error) {
	if m := labelRefRE.FindStringSubmatch(path); m != nil {
		if m[1] == "labels" {
			return pod.Labels[m[2]], nil
		}
		return pod.Annotations[m[2]], nil
	}
	switch path {
	case "metadata.name":
		return pod.ID.Name, nil
	case "metadata.namespace":
		return pod.ID.Namespace, nil
	case "metadata.uid":
		return PodUID(pod), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		if pod.NodeName != "" {
			return pod.NodeName, nil
		}
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return "default", nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	return "", fmt.Errorf("fieldRef %q is not supported", path)
}

// PodUID is a stable identifier of one incarnation of a pod (its identity
// and spec hash), formatted as a UUID, standing in for the UID an API
// server would assign.
func PodUID(pod *reconcile.DesiredPod) string {
	sum := sha256.Sum256([]byte(pod.ID.Namespace + "/" + pod.ID.Name + "/" + pod.Hash))
	h := fmt.Sprintf("%x", sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}
