package containerd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// capName turns a Kubernetes capability name ("NET_ADMIN") into the OCI
// one ("CAP_NET_ADMIN").
func capName(s string) string {
	s = strings.ToUpper(s)
	if !strings.HasPrefix(s, "CAP_") {
		s = "CAP_" + s
	}
	return s
}

// securityOpts translates the effective securityContext into spec
// options: user and groups (fsGroup and supplementalGroups are added
// groups), runAsNonRoot checked against the user the container would run
// as, privileged (all capabilities and host devices, no seccomp),
// capabilities dropped and added over containerd's default set ("ALL"
// drops everything first), no_new_privs when allowPrivilegeEscalation is
// false, a read-only root filesystem, the seccomp profile and namespaced
// sysctls.
func securityOpts(in SpecInput) ([]oci.SpecOpts, error) {
	c := in.Container
	e := podspec.Security(in.Pod, c)
	var opts []oci.SpecOpts
	switch {
	case e.RunAsUser != nil && e.RunAsGroup != nil:
		opts = append(opts, oci.WithUIDGID(uint32(*e.RunAsUser), uint32(*e.RunAsGroup)))
	case e.RunAsUser != nil:
		opts = append(opts, oci.WithUserID(uint32(*e.RunAsUser)))
	case in.Image.User != "":
		opts = append(opts, oci.WithUser(in.Image.User))
	}
	if e.RunAsGroup != nil && e.RunAsUser == nil {
		gid := uint32(*e.RunAsGroup)
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Process.User.GID = gid
			return nil
		})
	}
	if e.RunAsNonRoot {
		if err := podspec.CheckNonRoot(c.Name, e.RunAsUser, in.Image.User); err != nil {
			return nil, err
		}
	}
	groups := slices.Clone(e.SupplementalGroups)
	if e.FSGroup != nil {
		groups = append(groups, *e.FSGroup)
	}
	if len(groups) > 0 {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			for _, g := range groups {
				if !slices.Contains(s.Process.User.AdditionalGids, uint32(g)) {
					s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
				}
			}
			return nil
		})
	}
	if e.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed)
	} else if caps := e.Capabilities; caps != nil {
		var add, drop []string
		dropAll := false
		for _, a := range caps.Add {
			add = append(add, capName(a))
		}
		for _, d := range caps.Drop {
			if strings.EqualFold(d, "ALL") {
				dropAll = true
				continue
			}
			drop = append(drop, capName(d))
		}
		if dropAll {
			opts = append(opts, oci.WithCapabilities(nil))
		}
		if len(add) > 0 {
			opts = append(opts, oci.WithAddedCapabilities(add))
		}
		if len(drop) > 0 {
			opts = append(opts, oci.WithDroppedCapabilities(drop))
		}
	}
	if e.AllowPrivilegeEscalation != nil && !*e.AllowPrivilegeEscalation && !e.Privileged {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if sc := c.SecurityContext; sc != nil && sc.ProcMount == "Unmasked" {
		opts = append(opts, oci.WithMaskedPaths(nil), oci.WithReadonlyPaths(nil))
	}
	if e.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if len(e.Sysctls) > 0 {
		sysctls := map[string]string{}
		for _, s := range e.Sysctls {
			sysctls[s.Name] = s.Value
		}
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			s.Linux.Sysctl = sysctls
			return nil
		})
	}
	// Seccomp last: the default profile depends on the capabilities. A
	// container that asks for no profile gets the runtime's default, as
	// podman's do (and Pod Security "restricted" requires).
	if !e.Privileged {
		prof := e.Seccomp
		if prof == nil {
			prof = &reconcile.SeccompProfile{Type: podspec.SeccompRuntimeDefault}
		}
		switch prof.Type {
		case podspec.SeccompRuntimeDefault:
			opts = append(opts, seccomp.WithDefaultProfile(), withoutX32)
		case podspec.SeccompUnconfined:
		case podspec.SeccompLocalhost:
			if len(in.SeccompProfile) == 0 {
				return nil, fmt.Errorf("container %q: seccomp profile %q is empty or was not loaded", c.Name, prof.LocalhostProfile)
			}
			var loaded specs.LinuxSeccomp
			if err := json.Unmarshal(in.SeccompProfile, &loaded); err != nil {
				return nil, fmt.Errorf("container %q: seccomp profile %q: %w", c.Name, prof.LocalhostProfile, err)
			}
			opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				p := loaded
				s.Linux.Seccomp = &p
				return nil
			})
		default:
			return nil, fmt.Errorf("container %q: seccompProfile type %q is not known", c.Name, prof.Type)
		}
	}
	return opts, nil
}

// withoutX32 takes the x32 ABI out of the default profile's
// architectures, which leaves x86_64 and i386 on amd64 (containerd's
// profile lists all three). Syscalls of an architecture the filter does
// not list are refused (libseccomp's x86_64 filter checks the x32 bit
// itself), so this only narrows what a container may call: x32 is off in
// Debian's and Ubuntu's kernels and has no images to speak of. runc
// compiles the filter for every architecture it lists in each container's
// init; without x32 that costs about 7 ms less CPU a container
// (docs/performance.md).
func withoutX32(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Linux == nil || s.Linux.Seccomp == nil {
		return nil
	}
	sc := s.Linux.Seccomp
	sc.Architectures = slices.DeleteFunc(slices.Clone(sc.Architectures), func(a specs.Arch) bool { return a == specs.ArchX32 })
	return nil
}

// loadSeccompProfile reads a Localhost seccomp profile from
// <StateDir>/seccomp, where the operator installs them (as the kubelet
// reads <root>/seccomp).
func (r *Runtime) loadSeccompProfile(name string) ([]byte, error) {
	if !filepath.IsLocal(name) {
		return nil, fmt.Errorf("seccomp localhostProfile %q must be a relative path inside %s", name, filepath.Join(r.stateDir, "seccomp"))
	}
	b, err := os.ReadFile(filepath.Join(r.stateDir, "seccomp", name))
	if err != nil {
		return nil, fmt.Errorf("seccomp localhostProfile: %w", err)
	}
	return b, nil
}
