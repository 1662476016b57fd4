package containerd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/mountinfo"
	"berth.dev/berth/reconcile"
)

// subPathDir holds the staged subPath mounts of one container of a pod.
func (p PodPaths) subPathDir(container string) string {
	return filepath.Join(p.Dir, "volume-subpaths", container)
}

// stageSubPaths resolves each subPath of the container's volume mounts
// inside its volume without following a symlink out of it (openat2
// RESOLVE_IN_ROOT where the kernel has it, an equivalent walk where it
// does not, as runc does), creating the directory in an emptyDir or
// hostPath volume when it is missing, and bind-mounts what it found, by
// its file descriptor, onto <pod>/volume-subpaths/<container>/<index>, as
// the kubelet does. The container then mounts that staged path: a
// symlink a container plants in the volume later changes nothing, and
// berth never creates anything outside the volume. It returns the staged
// path by the mount's index.
func (r *Runtime) stageSubPaths(pod *reconcile.DesiredPod, c *reconcile.Container, p PodPaths) (map[int]string, error) {
	if err := unmountAll(p.subPathDir(c.Name)); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(p.subPathDir(c.Name)); err != nil {
		return nil, err
	}
	out := map[int]string{}
	for i, vm := range c.VolumeMounts {
		if vm.SubPath == "" {
			continue
		}
		root, err := volumeSource(pod, p, vm.Name)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", c.Name, err)
		}
		if !filepath.IsLocal(vm.SubPath) {
			return nil, fmt.Errorf("container %q: volumeMount %q: subPath %q must be a relative path inside the volume", c.Name, vm.Name, vm.SubPath)
		}
		target := filepath.Join(p.subPathDir(c.Name), strconv.Itoa(i))
		if err := stageSubPath(root, vm.SubPath, target, makesSubPath(pod, vm.Name)); err != nil {
			return nil, fmt.Errorf("container %q: volumeMount %q: subPath %q: %w", c.Name, vm.Name, vm.SubPath, err)
		}
		out[i] = target
	}
	return out, nil
}

// makesSubPath reports whether a missing subPath is created in the named
// volume (a directory, as the kubelet does): emptyDir and hostPath
// volumes, which the pod may write; the others are berth's read-only
// files.
func makesSubPath(pod *reconcile.DesiredPod, name string) bool {
	for _, v := range pod.Spec.Volumes {
		if v.Name == name {
			return v.EmptyDir != nil || v.HostPath != nil
		}
	}
	return false
}

func stageSubPath(root, sub, target string, mkdir bool) error {
	f, err := pathrs.OpenInRoot(root, sub)
	if err != nil && errors.Is(err, os.ErrNotExist) && mkdir {
		rootDir, rerr := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if rerr != nil {
			return rerr
		}
		f, err = pathrs.MkdirAllHandle(rootDir, sub, 0o777)
		rootDir.Close()
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	} else {
		t, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return err
		}
		t.Close()
	}
	// The descriptor's magic link is the object found, not a path to
	// resolve again.
	src := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", target, err)
	}
	return nil
}

// unmountAll unmounts everything mounted at or below dir, deepest first.
func unmountAll(dir string) error {
	for _, m := range mountinfo.Under(dir) {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	return nil
}
