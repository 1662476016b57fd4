package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/admit"
	"berth.dev/berth/reconcile/podspec"
)

// Admit reports every reason pod cannot run on this host, without side
// effects: the node policy and the pod's own content (admit.Check), then
// what depends on the host and what the spec translation refuses: the
// files of configMap, secret, downwardAPI and projected volumes, each
// container's environment, resources and mounts, Localhost seccomp
// profiles, the type of hostPath volumes that must already exist, and
// hostPath symlinks that lead outside the paths the policy allows.
// CreateSandbox calls it first, so a pod refused here changes nothing.
func (r *Runtime) Admit(pod *reconcile.DesiredPod) error {
	err := admit.Check(pod, r.admitPolicy())
	errs := []error{err, r.checkFreeSpace()}
	p := r.Paths(pod.ID)
	for i, v := range pod.Spec.Volumes {
		switch {
		case v.HostPath != nil:
			if e := checkHostPath(v, r.policy.HostPaths); e != nil {
				errs = append(errs, fmt.Errorf("spec.volumes[%d].hostPath: %w", i, e))
			}
		case v.ConfigMap != nil, v.Secret != nil, v.DownwardAPI != nil, v.Projected != nil:
			if _, e := podspec.VolumeFiles(pod, v, hostCapacity()); e != nil {
				errs = append(errs, fmt.Errorf("spec.volumes[%d] (%s): %w", i, v.Name, e))
			}
		}
	}
	if err != nil {
		// The checks below repeat what admit.Check found in other words.
		return errors.Join(errs...)
	}
	for _, kind := range []reconcile.ContainerKind{reconcile.InitContainer, reconcile.AppContainer} {
		list := pod.Spec.Containers
		if kind == reconcile.InitContainer {
			list = pod.Spec.InitContainers
		}
		for i := range list {
			c := &list[i]
			if _, e := podspec.ContainerEnv(podspec.EnvInput{Pod: pod, Container: c, Host: hostCapacity()}); e != nil {
				errs = append(errs, e)
			}
			if _, e := ContainerResources(c); e != nil {
				errs = append(errs, e)
			}
			if _, e := volumeMounts(pod, c, p, nil); e != nil {
				errs = append(errs, e)
			}
			if sp := podspec.Security(pod, c).Seccomp; sp != nil && sp.Type == podspec.SeccompLocalhost {
				if _, e := r.loadSeccompProfile(sp.LocalhostProfile); e != nil {
					errs = append(errs, fmt.Errorf("container %q: %w", c.Name, e))
				}
			} else if sp != nil && sp.Type != podspec.SeccompRuntimeDefault && sp.Type != podspec.SeccompUnconfined {
				errs = append(errs, fmt.Errorf("container %q: seccompProfile type %q is not known", c.Name, sp.Type))
			}
		}
	}
	return errors.Join(errs...)
}

// MinFreeSpace is how much free space the state directory's filesystem
// needs for berth to make a pod (its /etc files, volumes, logs): with
// less, a pod would be left half made, so none is started.
const MinFreeSpace = 8 << 20

// checkFreeSpace refuses new pods while the state directory's filesystem
// is (nearly) full, saying so; running pods are not touched.
func (r *Runtime) checkFreeSpace() error {
	var st unix.Statfs_t
	if err := unix.Statfs(r.stateDir, &st); err != nil {
		return nil
	}
	if free := st.Bavail * uint64(st.Bsize); free < MinFreeSpace {
		return fmt.Errorf("the filesystem of the state directory %s is full (%d KiB free, berth needs %d MiB to make a pod)", r.stateDir, free>>10, MinFreeSpace>>20)
	}
	return nil
}

func (r *Runtime) admitPolicy() admit.Policy {
	return admit.Policy{Node: r.policy, StateDir: r.stateDir}
}

// checkHostPath checks, without creating anything, that a hostPath
// volume's type matches what is on the host (the *OrCreate types and no
// type always do, see hostPathType), and that the path, with its
// symlinks resolved, is still inside a directory the policy allows: a
// symlink planted in an allowed directory must not mount another part of
// the host.
func checkHostPath(v reconcile.Volume, allowed []string) error {
	hp := filepath.Clean(v.HostPath.Path)
	resolved, err := filepath.EvalSymlinks(hp)
	if err == nil && resolved != hp && !underAny(resolved, allowed) {
		return fmt.Errorf("hostPath %q resolves to %q, which is outside the paths this node's policy allows", hp, resolved)
	}
	return hostPathType(v, true)
}

// hostPathType checks that what is at a hostPath volume's path is of its
// type; with missingOK, a missing path of a *OrCreate type passes (it
// will be created).
func hostPathType(v reconcile.Volume, missingOK bool) error {
	hp := v.HostPath.Path
	st, serr := os.Stat(hp)
	want := func(ok bool, what string) error {
		if serr != nil {
			return fmt.Errorf("hostPath %q (type %s): %w", hp, v.HostPath.Type, serr)
		}
		if !ok {
			return fmt.Errorf("hostPath %q is not a %s", hp, what)
		}
		return nil
	}
	switch v.HostPath.Type {
	case "", "Unset":
		return nil
	case "DirectoryOrCreate", "Directory":
		if serr != nil && missingOK && v.HostPath.Type == "DirectoryOrCreate" {
			return nil
		}
		return want(serr == nil && st.IsDir(), "directory")
	case "FileOrCreate", "File":
		if serr != nil && missingOK && v.HostPath.Type == "FileOrCreate" {
			return nil
		}
		return want(serr == nil && st.Mode().IsRegular(), "file")
	case "Socket":
		return want(serr == nil && st.Mode()&os.ModeSocket != 0, "socket")
	case "CharDevice":
		return want(serr == nil && st.Mode()&os.ModeCharDevice != 0, "character device")
	case "BlockDevice":
		return want(serr == nil && st.Mode()&os.ModeDevice != 0 && st.Mode()&os.ModeCharDevice == 0, "block device")
	default:
		return fmt.Errorf("hostPath type %q is not known", v.HostPath.Type)
	}
}

// underAny reports whether p is at or below one of dirs, taken as they
// are and with their own symlinks resolved.
func underAny(p string, dirs []string) bool {
	for _, d := range dirs {
		for _, d := range []string{filepath.Clean(d), resolve(d)} {
			if d == "/" || p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
	}
	return false
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

var _ reconcile.Admitter = (*Runtime)(nil)
