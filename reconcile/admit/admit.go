// Package admit decides, without side effects, whether a pod can run on
// this host: the node policy (privileged containers, host namespaces,
// capabilities, hostPort, hostPath, and the controls that undo a
// container's confinement: an unmasked /proc, unsafe sysctls,
// Bidirectional mount propagation, an Unconfined seccomp profile), the
// names the host derives from the pod, ConfigMap and Secret keys that
// become file names, environment values, quantities and paths.
//
// Runtimes call Check before their first mutating call for a pod (see
// runtime/containerd's Admit and CreateSandbox), so everything a runtime
// could refuse because of the pod itself is refused before the host
// changes. It does no I/O.
package admit

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"berth.dev/berth/reconcile"
)

// Policy is what this host allows pods, and where berth keeps its state.
type Policy struct {
	// Node is the operator's node policy.
	Node reconcile.NodePolicy
	// StateDir is berth's state directory: no hostPath volume may point
	// into it, except a StatefulSet pod's own claim directories
	// (reconcile.ClaimDir) and paths inside it the node policy names
	// (other than the claims root, which reconcile.WithClaimDirs adds).
	// Empty: no such check.
	StateDir string
}

// MaxHostnameLen is the longest hostname the kernel and Kubernetes
// accept (a DNS label).
const MaxHostnameLen = 63

// MaxMemory and MaxCPU bound limits and requests: a larger value is
// surely a mistake, and a quantity too large for the cgroup files would
// silently mean "no limit".
const (
	MaxMemory = int64(1) << 50 // 1 PiB
	MaxCPU    = 1 << 20        // cores
)

// SafeSysctls are the sysctls every pod may set: namespaced, and unable
// to affect other pods or the host (the kubelet's safe set).
var SafeSysctls = []string{
	"kernel.shm_rmid_forced",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.ip_local_reserved_ports",
	"net.ipv4.ip_unprivileged_port_start",
	"net.ipv4.ping_group_range",
	"net.ipv4.tcp_fin_timeout",
	"net.ipv4.tcp_keepalive_intvl",
	"net.ipv4.tcp_keepalive_probes",
	"net.ipv4.tcp_keepalive_time",
	"net.ipv4.tcp_rmem",
	"net.ipv4.tcp_syncookies",
	"net.ipv4.tcp_wmem",
}

// Error is one reason a pod cannot run on this host.
type Error struct {
	// Field is the path of the offending field in the pod
	// ("spec.containers[0].securityContext.procMount").
	Field string
	// Problem says what is wrong with it.
	Problem string
}

func (e *Error) Error() string { return e.Field + ": " + e.Problem }

// Check returns every reason pod cannot run under pol, joined (each a
// *Error or a *reconcile.PolicyError); nil when it can.
func Check(pod *reconcile.DesiredPod, pol Policy) error {
	c := &checker{pod: pod, pol: pol}
	c.policy()
	c.names()
	c.volumes()
	for _, list := range []struct {
		field string
		cs    []reconcile.Container
	}{{"spec.initContainers", pod.Spec.InitContainers}, {"spec.containers", pod.Spec.Containers}} {
		for i := range list.cs {
			c.container(fmt.Sprintf("%s[%d]", list.field, i), &list.cs[i])
		}
	}
	c.objects()
	return errors.Join(c.errs...)
}

type checker struct {
	pod  *reconcile.DesiredPod
	pol  Policy
	errs []error
}

func (c *checker) fail(field, format string, args ...any) {
	c.errs = append(c.errs, &Error{Field: field, Problem: fmt.Sprintf(format, args...)})
}

func (c *checker) refuse(field, policy, what string) {
	c.errs = append(c.errs, &reconcile.PolicyError{Field: field, Policy: policy, What: what})
}

// policy checks the node policy. hostPath volumes into the state
// directory are judged here (only a StatefulSet pod's own claim
// directories), the others by reconcile.CheckPolicy, with the claims root
// taken out of the allowed paths.
func (c *checker) policy() {
	spec := c.pod.Spec
	node := c.pol.Node
	if c.pol.StateDir != "" {
		state := filepath.Clean(c.pol.StateDir)
		root := reconcile.ClaimsRoot(state)
		node.HostPaths = slices.DeleteFunc(slices.Clone(node.HostPaths), func(p string) bool { return filepath.Clean(p) == root })
		own := c.ownClaimDirs()
		spec.Volumes = nil
		for i, v := range c.pod.Spec.Volumes {
			if v.HostPath != nil {
				p := filepath.Clean(v.HostPath.Path)
				if (p == state || strings.HasPrefix(p, state+"/")) && !under(p, node.HostPaths, state) {
					if own[v.Name] != p {
						c.fail(fmt.Sprintf("spec.volumes[%d].hostPath.path", i),
							"hostPath %q is inside berth's state directory, where a pod may only mount its own StatefulSet claim directory", v.HostPath.Path)
					}
					continue
				}
			}
			spec.Volumes = append(spec.Volumes, v)
		}
	}
	if err := reconcile.CheckPolicy(&spec, node); err != nil {
		c.errs = append(c.errs, err)
	}
	allowed := node.Privileged
	if sc := spec.SecurityContext; sc != nil {
		if p := sc.SeccompProfile; p != nil && p.Type == "Unconfined" && !allowed {
			c.refuse("spec.securityContext.seccompProfile.type", reconcile.PolicyPrivileged, "seccomp profile Unconfined")
		}
		for i, s := range sc.Sysctls {
			c.sysctl(fmt.Sprintf("spec.securityContext.sysctls[%d].name", i), s.Name, allowed)
		}
	}
	for _, list := range []struct {
		field string
		cs    []reconcile.Container
	}{{"spec.initContainers", spec.InitContainers}, {"spec.containers", spec.Containers}} {
		for i, ctr := range list.cs {
			base := fmt.Sprintf("%s[%d]", list.field, i)
			sc := ctr.SecurityContext
			privileged := sc != nil && sc.Privileged != nil && *sc.Privileged
			if sc != nil {
				if sc.ProcMount != "" && sc.ProcMount != "Default" && !allowed {
					c.refuse(base+".securityContext.procMount", reconcile.PolicyPrivileged, fmt.Sprintf("procMount %s (the host's /proc/sys and /proc/sysrq-trigger writable)", sc.ProcMount))
				}
				if p := sc.SeccompProfile; p != nil && p.Type == "Unconfined" && !allowed {
					c.refuse(base+".securityContext.seccompProfile.type", reconcile.PolicyPrivileged, "seccomp profile Unconfined")
				}
			}
			for j, vm := range ctr.VolumeMounts {
				if vm.MountPropagation == "Bidirectional" && !privileged {
					c.fail(fmt.Sprintf("%s.volumeMounts[%d].mountPropagation", base, j),
						"Bidirectional propagation is only allowed in a privileged container (mounts made in the container would reach the host)")
				}
			}
		}
	}
}

// under reports whether p is at or below one of the allowed paths that
// are themselves inside the state directory: the operator allowed that
// part of it by name.
func under(p string, allowed []string, state string) bool {
	for _, a := range allowed {
		a = filepath.Clean(a)
		if (a == state || strings.HasPrefix(a, state+"/")) && (p == a || strings.HasPrefix(p, a+"/")) {
			return true
		}
	}
	return false
}

// ownClaimDirs returns, by volume name, the claim directories a
// StatefulSet pod owns: reconcile.ClaimDir of its set and ordinal.
func (c *checker) ownClaimDirs() map[string]string {
	kind, rest, _ := strings.Cut(c.pod.Owner, "/")
	ns, set, _ := strings.Cut(rest, "/")
	if kind != "StatefulSet" || ns != c.pod.ID.Namespace {
		return nil
	}
	ord := reconcile.StatefulSetOrdinal(set, c.pod.ID.Name)
	if ord < 0 {
		return nil
	}
	out := map[string]string{}
	for _, v := range c.pod.Spec.Volumes {
		out[v.Name] = reconcile.ClaimDir(c.pol.StateDir, ns, v.Name, set, ord)
	}
	return out
}

// sysctl: the safe set is always allowed; other namespaced sysctls need
// the privileged policy; sysctls that are not namespaced would change the
// host and are refused.
func (c *checker) sysctl(field, name string, allowed bool) {
	n := strings.ReplaceAll(name, "/", ".")
	if slices.Contains(SafeSysctls, n) {
		if strings.HasPrefix(n, "net.") && c.pod.Spec.HostNetwork {
			c.fail(field, "sysctl %q would change the host's network namespace (the pod has hostNetwork)", name)
		}
		return
	}
	namespaced := strings.HasPrefix(n, "net.") && !c.pod.Spec.HostNetwork ||
		strings.HasPrefix(n, "kernel.shm") || strings.HasPrefix(n, "kernel.msg") || n == "kernel.sem" ||
		strings.HasPrefix(n, "fs.mqueue.") && !c.pod.Spec.HostIPC
	switch {
	case !namespaced:
		c.fail(field, "sysctl %q is not namespaced: setting it would change the host", name)
	case !allowed:
		c.refuse(field, reconcile.PolicyPrivileged, fmt.Sprintf("unsafe sysctl %q", name))
	}
}

var dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// names checks the names the host derives from the pod.
func (c *checker) names() {
	if h := c.pod.Spec.Hostname; h != "" && (len(h) > MaxHostnameLen || !dnsLabelRE.MatchString(h)) {
		c.fail("spec.hostname", "%q is not a DNS label of at most %d characters", h, MaxHostnameLen)
	}
	if s := c.pod.Spec.Subdomain; s != "" && (len(s) > MaxHostnameLen || !dnsLabelRE.MatchString(s)) {
		c.fail("spec.subdomain", "%q is not a DNS label of at most %d characters", s, MaxHostnameLen)
	}
	if n := c.pod.ID.Name; len(n) > 253 {
		c.fail("metadata.name", "pod name of %d characters is longer than 253", len(n))
	}
}

var keyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// FileKey reports why a ConfigMap or Secret key cannot be a file name in
// a volume (Kubernetes' rule: [-._a-zA-Z0-9]+, at most 253 characters,
// not "." or ".."); nil when it can.
func FileKey(k string) error {
	switch {
	case k == "." || k == "..":
		return fmt.Errorf("key %q is not a file name", k)
	case len(k) > 253:
		return fmt.Errorf("key of %d characters is longer than 253", len(k))
	case !keyRE.MatchString(k):
		return fmt.Errorf("key %q may hold only letters, digits, '-', '_' and '.'", k)
	}
	return nil
}

// FilePath reports why p cannot be the path of a projected file inside a
// volume: it must be relative, have no ".." element and not be empty or
// "."; nil when it can.
func FilePath(p string) error {
	if p == "" || path.IsAbs(p) || path.Clean(p) == "." || strings.ContainsRune(p, 0) {
		return fmt.Errorf("path %q must name a file inside the volume", p)
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return fmt.Errorf("path %q must not contain '..'", p)
	}
	return nil
}

// volumes checks quantities and projected paths.
func (c *checker) volumes() {
	names := map[string]bool{}
	for i, v := range c.pod.Spec.Volumes {
		base := fmt.Sprintf("spec.volumes[%d]", i)
		if names[v.Name] {
			c.fail(base+".name", "volume %q is declared twice", v.Name)
		}
		names[v.Name] = true
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != "" {
			c.bytes(base+".emptyDir.sizeLimit", v.EmptyDir.SizeLimit)
		}
		if v.HostPath != nil && !path.IsAbs(v.HostPath.Path) {
			c.fail(base+".hostPath.path", "%q must be absolute", v.HostPath.Path)
		}
		items := func(field string, its []reconcile.KeyToPath) {
			for j, it := range its {
				if err := FilePath(it.Path); err != nil {
					c.fail(fmt.Sprintf("%s.items[%d].path", field, j), "%v", err)
				}
			}
		}
		switch {
		case v.ConfigMap != nil:
			items(base+".configMap", v.ConfigMap.Items)
		case v.Secret != nil:
			items(base+".secret", v.Secret.Items)
		case v.DownwardAPI != nil:
			c.downward(base+".downwardAPI", v.DownwardAPI.Items)
		case v.Projected != nil:
			for k, src := range v.Projected.Sources {
				f := fmt.Sprintf("%s.projected.sources[%d]", base, k)
				switch {
				case src.ConfigMap != nil:
					items(f+".configMap", src.ConfigMap.Items)
				case src.Secret != nil:
					items(f+".secret", src.Secret.Items)
				case src.DownwardAPI != nil:
					c.downward(f+".downwardAPI", src.DownwardAPI.Items)
				}
			}
		}
	}
}

func (c *checker) downward(field string, items []reconcile.DownwardAPIVolumeFile) {
	for j, it := range items {
		if err := FilePath(it.Path); err != nil {
			c.fail(fmt.Sprintf("%s.items[%d].path", field, j), "%v", err)
		}
	}
}

// objects checks the keys of the ConfigMaps and Secrets a volume
// projects whole (without items): each becomes a file name.
func (c *checker) objects() {
	whole := func(field, kind, name string, keys []string) {
		for _, k := range keys {
			if err := FileKey(k); err != nil {
				c.fail(field, "%s %q: %v", kind, name, err)
			}
		}
	}
	cmKeys := func(name string) []string {
		cm := c.pod.ConfigMaps[name]
		if cm == nil {
			return nil
		}
		return slices.Sorted(func(yield func(string) bool) {
			for k := range maps.Keys(cm.Data) {
				if !yield(k) {
					return
				}
			}
			for k := range maps.Keys(cm.BinaryData) {
				if !yield(k) {
					return
				}
			}
		})
	}
	secKeys := func(name string) []string {
		if s := c.pod.Secrets[name]; s != nil {
			return slices.Sorted(maps.Keys(s.Data))
		}
		return nil
	}
	for i, v := range c.pod.Spec.Volumes {
		base := fmt.Sprintf("spec.volumes[%d]", i)
		switch {
		case v.ConfigMap != nil && len(v.ConfigMap.Items) == 0:
			whole(base+".configMap", "ConfigMap", v.ConfigMap.Name, cmKeys(v.ConfigMap.Name))
		case v.Secret != nil && len(v.Secret.Items) == 0:
			whole(base+".secret", "Secret", v.Secret.SecretName, secKeys(v.Secret.SecretName))
		case v.Projected != nil:
			for k, src := range v.Projected.Sources {
				f := fmt.Sprintf("%s.projected.sources[%d]", base, k)
				switch {
				case src.ConfigMap != nil && len(src.ConfigMap.Items) == 0:
					whole(f+".configMap", "ConfigMap", src.ConfigMap.Name, cmKeys(src.ConfigMap.Name))
				case src.Secret != nil && len(src.Secret.Items) == 0:
					whole(f+".secret", "Secret", src.Secret.Name, secKeys(src.Secret.Name))
				}
			}
		}
	}
}

// container checks one container's environment, arguments, quantities
// and mounts.
func (c *checker) container(base string, ctr *reconcile.Container) {
	nul := func(field, s string) {
		if strings.ContainsRune(s, 0) {
			c.fail(field, "contains a NUL byte, which no process argument or environment can hold")
		}
	}
	for i, a := range ctr.Command {
		nul(fmt.Sprintf("%s.command[%d]", base, i), a)
	}
	for i, a := range ctr.Args {
		nul(fmt.Sprintf("%s.args[%d]", base, i), a)
	}
	nul(base+".workingDir", ctr.WorkingDir)
	for i, e := range ctr.Env {
		f := fmt.Sprintf("%s.env[%d]", base, i)
		nul(f+".name", e.Name)
		nul(f+".value", e.Value)
		if e.Name == "" || strings.ContainsRune(e.Name, '=') {
			c.fail(f+".name", "%q is not an environment variable name", e.Name)
		}
		if vf := e.ValueFrom; vf != nil {
			switch {
			case vf.ConfigMapKeyRef != nil:
				if cm := c.pod.ConfigMaps[vf.ConfigMapKeyRef.Name]; cm != nil {
					if v, ok := cm.Data[vf.ConfigMapKeyRef.Key]; ok && strings.ContainsRune(v, 0) {
						c.fail(f+".valueFrom.configMapKeyRef", "ConfigMap %q key %q contains a NUL byte, which no environment can hold", vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
					}
					if v, ok := cm.BinaryData[vf.ConfigMapKeyRef.Key]; ok && slices.Contains(v, 0) {
						c.fail(f+".valueFrom.configMapKeyRef", "ConfigMap %q key %q contains a NUL byte, which no environment can hold", vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
					}
				}
			case vf.SecretKeyRef != nil:
				if s := c.pod.Secrets[vf.SecretKeyRef.Name]; s != nil {
					if v, ok := s.Data[vf.SecretKeyRef.Key]; ok && slices.Contains(v, 0) {
						c.fail(f+".valueFrom.secretKeyRef", "Secret %q key %q contains a NUL byte, which no environment can hold", vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
					}
				}
			}
		}
	}
	for i, ef := range ctr.EnvFrom {
		f := fmt.Sprintf("%s.envFrom[%d]", base, i)
		switch {
		case ef.ConfigMapRef != nil:
			if cm := c.pod.ConfigMaps[ef.ConfigMapRef.Name]; cm != nil {
				for k, v := range cm.Data {
					if strings.ContainsRune(v, 0) {
						c.fail(f+".configMapRef", "ConfigMap %q key %q contains a NUL byte, which no environment can hold", ef.ConfigMapRef.Name, k)
					}
				}
			}
		case ef.SecretRef != nil:
			if s := c.pod.Secrets[ef.SecretRef.Name]; s != nil {
				for k, v := range s.Data {
					if slices.Contains(v, 0) {
						c.fail(f+".secretRef", "Secret %q key %q contains a NUL byte, which no environment can hold", ef.SecretRef.Name, k)
					}
				}
			}
		}
	}
	if r := ctr.Resources; r != nil {
		for _, m := range []struct {
			field string
			q     map[string]string
		}{{base + ".resources.limits", r.Limits}, {base + ".resources.requests", r.Requests}} {
			for k, s := range m.q {
				f := m.field + "." + k
				switch k {
				case "cpu":
					c.cpu(f, s)
				case "memory", "ephemeral-storage":
					c.bytes(f, s)
				default:
					c.quantity(f, s)
				}
			}
		}
	}
	for i, vm := range ctr.VolumeMounts {
		f := fmt.Sprintf("%s.volumeMounts[%d]", base, i)
		if !c.hasVolume(vm.Name) {
			c.fail(f+".name", "volume %q is not declared in the pod", vm.Name)
		}
		if !path.IsAbs(vm.MountPath) || strings.ContainsRune(vm.MountPath, 0) {
			c.fail(f+".mountPath", "%q must be an absolute path", vm.MountPath)
		}
		if vm.SubPath != "" {
			if path.IsAbs(vm.SubPath) || slices.Contains(strings.Split(vm.SubPath, "/"), "..") || strings.ContainsRune(vm.SubPath, 0) {
				c.fail(f+".subPath", "%q must be a relative path inside the volume, without '..'", vm.SubPath)
			}
		}
	}
}

func (c *checker) hasVolume(name string) bool {
	for _, v := range c.pod.Spec.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

func (c *checker) quantity(field, s string) (resource.Quantity, bool) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		c.fail(field, "quantity %q: %v", s, err)
		return q, false
	}
	if q.Sign() < 0 {
		c.fail(field, "quantity %q is negative", s)
		return q, false
	}
	return q, true
}

// bytes checks a quantity of bytes: not negative, at most MaxMemory.
func (c *checker) bytes(field, s string) {
	q, ok := c.quantity(field, s)
	if ok && q.CmpInt64(MaxMemory) > 0 {
		c.fail(field, "quantity %q is more than %s", s, resource.NewQuantity(MaxMemory, resource.BinarySI))
	}
}

// cpu checks a CPU quantity: not negative, at most MaxCPU cores.
func (c *checker) cpu(field, s string) {
	q, ok := c.quantity(field, s)
	if ok && q.CmpInt64(MaxCPU) > 0 {
		c.fail(field, "quantity %q is more than %d CPUs", s, MaxCPU)
	}
}
