package reconcile

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
)

// NodePolicy is what a host allows its pods beyond an ordinary,
// unprivileged container. The zero value allows none of it: no
// privileged containers, no host network, PID or IPC namespace, no
// capabilities beyond the default set, no hostPort and no hostPath. The
// operator opts in per host (edge devices often need device access).
type NodePolicy struct {
	// Privileged allows securityContext.privileged.
	Privileged bool `json:"privileged,omitempty"`
	// HostNamespaces allows hostNetwork, hostPID and hostIPC.
	HostNamespaces bool `json:"hostNamespaces,omitempty"`
	// HostPorts allows ports[].hostPort.
	HostPorts bool `json:"hostPorts,omitempty"`
	// Capabilities lists capabilities that may be added beyond the
	// default set ("NET_ADMIN"; "ALL" allows any).
	Capabilities []string `json:"capabilities,omitempty"`
	// HostPaths lists host directories under which hostPath volumes may
	// point ("/" allows any).
	HostPaths []string `json:"hostPaths,omitempty"`
}

// DefaultCapabilities is the capability set a container gets without
// asking (containerd's and Docker's default); adding one of them needs no
// permission.
var DefaultCapabilities = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// PolicyError is one thing a pod asks for that the node's policy refuses.
type PolicyError struct {
	// Field is the path of the offending field in the pod spec.
	Field string
	// Policy names the setting that would allow it.
	Policy string
	// What describes what was asked for.
	What string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("%s: %s is refused by this node's policy (allow it with %s)", e.Field, e.What, e.Policy)
}

// Policy setting names, as the command line spells them.
const (
	PolicyPrivileged     = "--allow-privileged"
	PolicyHostNamespaces = "--allow-host-namespaces"
	PolicyHostPorts      = "--allow-host-ports"
	PolicyCapability     = "--allow-capability"
	PolicyHostPath       = "--allow-host-path"
)

// CheckPolicy returns every part of spec that pol refuses, each as a
// *PolicyError naming the field and the setting that would allow it,
// joined; nil when the pod is allowed. It does no I/O.
func CheckPolicy(spec *PodSpec, pol NodePolicy) error {
	var errs []error
	refuse := func(field, policy, what string) {
		errs = append(errs, &PolicyError{Field: field, Policy: policy, What: what})
	}
	if !pol.HostNamespaces {
		if spec.HostNetwork {
			refuse("spec.hostNetwork", PolicyHostNamespaces, "the host's network namespace")
		}
		if spec.HostPID {
			refuse("spec.hostPID", PolicyHostNamespaces, "the host's PID namespace")
		}
		if spec.HostIPC {
			refuse("spec.hostIPC", PolicyHostNamespaces, "the host's IPC namespace")
		}
	}
	for i, v := range spec.Volumes {
		if v.HostPath == nil || hostPathAllowed(v.HostPath.Path, pol.HostPaths) {
			continue
		}
		refuse(fmt.Sprintf("spec.volumes[%d].hostPath.path", i), PolicyHostPath,
			fmt.Sprintf("hostPath %q", v.HostPath.Path))
	}
	for _, list := range []struct {
		field string
		cs    []Container
	}{{"spec.initContainers", spec.InitContainers}, {"spec.containers", spec.Containers}} {
		for i, c := range list.cs {
			base := fmt.Sprintf("%s[%d]", list.field, i)
			if sc := c.SecurityContext; sc != nil {
				if sc.Privileged != nil && *sc.Privileged && !pol.Privileged {
					refuse(base+".securityContext.privileged", PolicyPrivileged, "a privileged container")
				}
				if sc.Capabilities != nil {
					for j, cp := range sc.Capabilities.Add {
						if !capabilityAllowed(cp, pol.Capabilities) {
							refuse(fmt.Sprintf("%s.securityContext.capabilities.add[%d]", base, j), PolicyCapability+"="+normalizeCap(cp),
								fmt.Sprintf("capability %s (not in the default set)", normalizeCap(cp)))
						}
					}
				}
			}
			if !pol.HostPorts {
				for j, p := range c.Ports {
					if p.HostPort != 0 {
						refuse(fmt.Sprintf("%s.ports[%d].hostPort", base, j), PolicyHostPorts, fmt.Sprintf("hostPort %d", p.HostPort))
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

func normalizeCap(c string) string {
	return strings.TrimPrefix(strings.ToUpper(c), "CAP_")
}

func capabilityAllowed(c string, allowed []string) bool {
	c = normalizeCap(c)
	if slices.Contains(DefaultCapabilities, c) {
		return true
	}
	for _, a := range allowed {
		if a = normalizeCap(a); a == "ALL" || a == c {
			return true
		}
	}
	return false
}

// hostPathAllowed reports whether path lies at or below one of the
// allowed directories, compared after cleaning (so "/data/../etc" is
// /etc). Symlinks on the host are not followed here.
func hostPathAllowed(path string, allowed []string) bool {
	p := filepath.Clean(path)
	for _, a := range allowed {
		a = filepath.Clean(a)
		if a == "/" || p == a || strings.HasPrefix(p, a+"/") {
			return true
		}
	}
	return false
}
