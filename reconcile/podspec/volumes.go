package podspec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/admit"
)

// DefaultFileMode is Kubernetes' defaultMode of configMap, secret,
// downwardAPI and projected volumes.
const DefaultFileMode = 0o644

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
func VolumeFiles(pod *reconcile.DesiredPod, v reconcile.Volume, host Capacity) ([]VolumeFile, error) {
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
				val, err = ResourceValue(pod, "", it.ResourceFieldRef, host)
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
		err = addKeys("ConfigMap", v.ConfigMap.Name, configMapBytes(pod, v.ConfigMap.Name), v.ConfigMap.Items, v.ConfigMap.Optional, mode(v.ConfigMap.DefaultMode, DefaultFileMode))
	case v.Secret != nil:
		err = addKeys("Secret", v.Secret.SecretName, secretBytes(pod, v.Secret.SecretName), v.Secret.Items, v.Secret.Optional, mode(v.Secret.DefaultMode, DefaultFileMode))
	case v.DownwardAPI != nil:
		err = addDownward(v.DownwardAPI.Items, mode(v.DownwardAPI.DefaultMode, DefaultFileMode))
	case v.Projected != nil:
		def := mode(v.Projected.DefaultMode, DefaultFileMode)
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
