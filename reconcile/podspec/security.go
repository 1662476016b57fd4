package podspec

import (
	"fmt"
	"strconv"
	"strings"

	"berth.dev/berth/reconcile"
)

// Seccomp profile types.
const (
	SeccompRuntimeDefault = "RuntimeDefault"
	SeccompUnconfined     = "Unconfined"
	SeccompLocalhost      = "Localhost"
)

// EffectiveSecurity is a container's security settings with the pod's
// filled in where the container sets none, as Kubernetes merges them.
type EffectiveSecurity struct {
	RunAsUser, RunAsGroup    *int64
	RunAsNonRoot             bool
	SupplementalGroups       []int64
	FSGroup                  *int64
	Privileged               bool
	ReadOnlyRootFilesystem   bool
	AllowPrivilegeEscalation *bool
	Capabilities             *reconcile.Capabilities
	Seccomp                  *reconcile.SeccompProfile
	Sysctls                  []reconcile.Sysctl
}

// Security merges the pod's and the container's securityContext.
func Security(pod *reconcile.DesiredPod, c *reconcile.Container) EffectiveSecurity {
	var e EffectiveSecurity
	if ps := pod.Spec.SecurityContext; ps != nil {
		e.RunAsUser, e.RunAsGroup = ps.RunAsUser, ps.RunAsGroup
		e.RunAsNonRoot = ps.RunAsNonRoot != nil && *ps.RunAsNonRoot
		e.SupplementalGroups, e.FSGroup = ps.SupplementalGroups, ps.FSGroup
		e.Seccomp, e.Sysctls = ps.SeccompProfile, ps.Sysctls
	}
	if cs := c.SecurityContext; cs != nil {
		if cs.RunAsUser != nil {
			e.RunAsUser = cs.RunAsUser
		}
		if cs.RunAsGroup != nil {
			e.RunAsGroup = cs.RunAsGroup
		}
		if cs.RunAsNonRoot != nil {
			e.RunAsNonRoot = *cs.RunAsNonRoot
		}
		if cs.SeccompProfile != nil {
			e.Seccomp = cs.SeccompProfile
		}
		e.Privileged = cs.Privileged != nil && *cs.Privileged
		e.ReadOnlyRootFilesystem = cs.ReadOnlyRootFilesystem != nil && *cs.ReadOnlyRootFilesystem
		e.AllowPrivilegeEscalation = cs.AllowPrivilegeEscalation
		e.Capabilities = cs.Capabilities
	}
	return e
}

// CheckNonRoot refuses a container that would run as root when
// runAsNonRoot is set: its runAsUser, else the image's user, must be a
// non-zero numeric UID (a user name cannot be verified, as on a kubelet).
func CheckNonRoot(name string, runAsUser *int64, imageUser string) error {
	if runAsUser != nil {
		if *runAsUser == 0 {
			return fmt.Errorf("container %q: runAsNonRoot is set and runAsUser is 0", name)
		}
		return nil
	}
	u, _, _ := strings.Cut(imageUser, ":")
	if u == "" || u == "root" {
		return fmt.Errorf("container %q: runAsNonRoot is set and the image runs as root", name)
	}
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return fmt.Errorf("container %q: runAsNonRoot is set and the image's user %q is not numeric, so it cannot be verified", name, u)
	}
	if uid == 0 {
		return fmt.Errorf("container %q: runAsNonRoot is set and the image runs as UID 0", name)
	}
	return nil
}
