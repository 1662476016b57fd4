package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/mountinfo"
	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// Volume kinds berth backs with a tmpfs: memory emptyDirs, and volumes
// that may hold Secret material (secret, projected), which is never
// written in clear to the state directory's disk.
func onTmpfs(v reconcile.Volume) bool {
	switch {
	case v.EmptyDir != nil:
		return v.EmptyDir.Medium == "Memory"
	case v.Secret != nil, v.Projected != nil:
		return true
	}
	return false
}

// prepareVolumes makes the pod's volumes: emptyDir directories (a tmpfs
// of at most sizeLimit for medium Memory), hostPath checks (and creation
// for the *OrCreate types), and the files of configMap, secret,
// downwardAPI and projected volumes. Secret and projected volumes live on
// a tmpfs of their own. Calling it again rewrites the files.
func (r *Runtime) prepareVolumes(ctx context.Context, pod *reconcile.DesiredPod, p PodPaths) error {
	for _, v := range pod.Spec.Volumes {
		if err := r.prepareVolume(pod, p, v); err != nil {
			return fmt.Errorf("volume %q: %w", v.Name, err)
		}
	}
	return nil
}

func (r *Runtime) prepareVolume(pod *reconcile.DesiredPod, p PodPaths, v reconcile.Volume) error {
	if v.HostPath != nil {
		return prepareHostPath(v)
	}
	if v.PersistentVolumeClaim != nil {
		return errors.New("persistentVolumeClaim volumes are not supported by this runtime")
	}
	dir := p.volume(v.Name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if onTmpfs(v) && !isMountPoint(dir) {
		opts := "mode=0777"
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != "" {
			size, err := parseBytes(v.EmptyDir.SizeLimit)
			if err != nil {
				return fmt.Errorf("sizeLimit: %w", err)
			}
			opts += fmt.Sprintf(",size=%d", size)
		}
		if v.EmptyDir == nil {
			opts = "mode=0755,size=" + fmt.Sprint(64<<20)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return fmt.Errorf("mount tmpfs: %w", err)
		}
	}
	if v.EmptyDir != nil {
		// Pods run as root by default but may not; emptyDir is
		// world-writable like Kubernetes'. With an fsGroup it belongs to
		// that group, setgid, so files made in it do too.
		if g := fsGroup(pod); g != nil {
			if err := os.Lchown(dir, -1, int(*g)); err != nil {
				return err
			}
			return os.Chmod(dir, 0o777|os.ModeSetgid)
		}
		return os.Chmod(dir, 0o777)
	}
	files, err := podspec.VolumeFiles(pod, v, hostCapacity())
	if err != nil {
		return err
	}
	return writeVolumeFiles(dir, files, fsGroup(pod))
}

func fsGroup(pod *reconcile.DesiredPod) *int64 {
	if sc := pod.Spec.SecurityContext; sc != nil {
		return sc.FSGroup
	}
	return nil
}

// writeVolumeFiles makes dir hold exactly files. A file whose content is
// already right is left alone and others are replaced atomically, so a
// running container never sees one missing or half-written when a setup
// is replayed. With an fsGroup, files belong to that group and are
// group-readable, as on a kubelet.
func writeVolumeFiles(dir string, files []podspec.VolumeFile, group *int64) error {
	want := map[string]bool{}
	for _, f := range files {
		// The file and every directory on its way.
		for p := f.Path; p != "." && p != "/"; p = filepath.Dir(p) {
			want[p] = true
		}
	}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if !want[rel] {
			if err := os.RemoveAll(path); err != nil {
				return err
			}
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		mode := f.Mode
		if group != nil {
			mode |= 0o440
		}
		if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == mode {
			if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, f.Data) {
				continue
			}
		}
		if err := record.ReplaceFile(path, f.Data, mode); err != nil { // rewritten at each start if it differs
			return err
		}
		if group != nil {
			if err := os.Lchown(path, -1, int(*group)); err != nil {
				return err
			}
		}
	}
	if group != nil {
		return os.Lchown(dir, -1, int(*group))
	}
	return nil
}

// prepareHostPath creates a missing hostPath of type DirectoryOrCreate
// or FileOrCreate and checks the type of the others.
func prepareHostPath(v reconcile.Volume) error {
	hp := v.HostPath.Path
	if !filepath.IsAbs(hp) {
		return fmt.Errorf("hostPath %q must be absolute", hp)
	}
	if _, err := os.Lstat(hp); err != nil {
		switch v.HostPath.Type {
		case "DirectoryOrCreate":
			if err := os.MkdirAll(hp, 0o755); err != nil {
				return err
			}
		case "FileOrCreate":
			if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(hp, os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW, 0o644)
			if err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
	}
	return hostPathType(v, false)
}

// unmountVolumes unmounts the tmpfs volumes of a pod and its staged
// subPaths (and anything else mounted below them), deepest first.
func (r *Runtime) unmountVolumes(p PodPaths) error {
	if err := unmountAll(filepath.Join(p.Dir, "volume-subpaths")); err != nil {
		return err
	}
	return unmountAll(filepath.Join(p.Dir, "volumes"))
}

func isMountPoint(path string) bool {
	for _, m := range mountinfo.Under(path) {
		if m == path {
			return true
		}
	}
	return false
}
