package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/mountinfo"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/admit"
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

// defaultFileMode is Kubernetes' defaultMode of configMap, secret,
// downwardAPI and projected volumes.
const defaultFileMode = 0o644

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
	files, err := VolumeFiles(pod, v)
	if err != nil {
		return err
	}
	return writeVolumeFiles(dir, files, fsGroup(pod))
}

// VolumeFile is one file of a configMap, secret, downwardAPI or projected
// volume.
type VolumeFile struct {
	Path string
	Data []byte
	Mode os.FileMode
}

// VolumeFiles returns the files of a configMap, secret, downwardAPI or
// projected volume of pod, sorted by path, with Kubernetes' rules: every
// key unless items are given, items map keys to relative paths with their
// own mode, defaultMode (0644) otherwise; a missing optional source gives
// no files; a key named in items that does not exist is an error unless
// the source is optional.
func VolumeFiles(pod *reconcile.DesiredPod, v reconcile.Volume) ([]VolumeFile, error) {
	var files []VolumeFile
	mode := func(m *int32, def os.FileMode) os.FileMode {
		if m != nil {
			return os.FileMode(*m) & 0o777
		}
		return def
	}
	addKeys := func(kind, name string, data map[string][]byte, items []reconcile.KeyToPath, optional *bool, def os.FileMode) error {
		if data == nil {
			if optional != nil && *optional {
				return nil
			}
			return fmt.Errorf("%s %q is not declared in namespace %q", kind, name, pod.ID.Namespace)
		}
		if len(items) == 0 {
			for k, b := range data {
				files = append(files, VolumeFile{Path: k, Data: b, Mode: def})
			}
			return nil
		}
		for _, it := range items {
			b, ok := data[it.Key]
			if !ok {
				if optional != nil && *optional {
					continue
				}
				return fmt.Errorf("%s %q has no key %q", kind, name, it.Key)
			}
			files = append(files, VolumeFile{Path: it.Path, Data: b, Mode: mode(it.Mode, def)})
		}
		return nil
	}
	addDownward := func(items []reconcile.DownwardAPIVolumeFile, def os.FileMode) error {
		for _, it := range items {
			var val string
			var err error
			switch {
			case it.FieldRef != nil:
				val, err = FieldValue(pod, it.FieldRef.FieldPath, "", "")
			case it.ResourceFieldRef != nil:
				val, err = ResourceValue(pod, "", it.ResourceFieldRef)
			default:
				err = errors.New("downwardAPI item has neither fieldRef nor resourceFieldRef")
			}
			if err != nil {
				return fmt.Errorf("downwardAPI %q: %w", it.Path, err)
			}
			files = append(files, VolumeFile{Path: it.Path, Data: []byte(val), Mode: mode(it.Mode, def)})
		}
		return nil
	}
	var err error
	switch {
	case v.ConfigMap != nil:
		err = addKeys("ConfigMap", v.ConfigMap.Name, configMapBytes(pod, v.ConfigMap.Name), v.ConfigMap.Items, v.ConfigMap.Optional, mode(v.ConfigMap.DefaultMode, defaultFileMode))
	case v.Secret != nil:
		err = addKeys("Secret", v.Secret.SecretName, secretBytes(pod, v.Secret.SecretName), v.Secret.Items, v.Secret.Optional, mode(v.Secret.DefaultMode, defaultFileMode))
	case v.DownwardAPI != nil:
		err = addDownward(v.DownwardAPI.Items, mode(v.DownwardAPI.DefaultMode, defaultFileMode))
	case v.Projected != nil:
		def := mode(v.Projected.DefaultMode, defaultFileMode)
		for _, src := range v.Projected.Sources {
			switch {
			case src.ConfigMap != nil:
				err = addKeys("ConfigMap", src.ConfigMap.Name, configMapBytes(pod, src.ConfigMap.Name), src.ConfigMap.Items, src.ConfigMap.Optional, def)
			case src.Secret != nil:
				err = addKeys("Secret", src.Secret.Name, secretBytes(pod, src.Secret.Name), src.Secret.Items, src.Secret.Optional, def)
			case src.DownwardAPI != nil:
				err = addDownward(src.DownwardAPI.Items, def)
			default:
				err = errors.New("projected source has none of configMap, secret, downwardAPI")
			}
			if err != nil {
				break
			}
		}
	default:
		return nil, errors.New("no supported source")
	}
	if err != nil {
		return nil, err
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for i, f := range files {
		if err := admit.FilePath(f.Path); err != nil || !filepath.IsLocal(f.Path) || strings.HasPrefix(f.Path, "..") {
			return nil, fmt.Errorf("path %q must name a file inside the volume, and not start with '..'", f.Path)
		}
		if i > 0 && files[i-1].Path == f.Path {
			return nil, fmt.Errorf("path %q is projected twice", f.Path)
		}
	}
	return files, nil
}

func configMapBytes(pod *reconcile.DesiredPod, name string) map[string][]byte {
	cm := pod.ConfigMaps[name]
	if cm == nil {
		return nil
	}
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out
}

func secretBytes(pod *reconcile.DesiredPod, name string) map[string][]byte {
	s := pod.Secrets[name]
	if s == nil {
		return nil
	}
	if s.Data == nil {
		return map[string][]byte{}
	}
	return s.Data
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
func writeVolumeFiles(dir string, files []VolumeFile, group *int64) error {
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
		if err := writeFileAtomic(path, f.Data, mode); err != nil {
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
