package schema

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"cuelang.org/go/cue"

	"berth.dev/berth/reconcile"
)

// Cross-field rules. They run on objects that passed the schema, work on the
// decoded Go value, and take positions from the user's value.

func sel(parts ...any) []cue.Selector {
	sels := make([]cue.Selector, len(parts))
	for i, p := range parts {
		switch p := p.(type) {
		case string:
			sels[i] = cue.Str(p)
		case int:
			sels[i] = cue.Index(p)
		}
	}
	return sels
}

// checkMeta checks what the schema cannot say about metadata: the length of
// a label or annotation key's prefix.
func checkMeta(x *validator, m *reconcile.ObjectMeta) {
	for _, field := range []struct {
		name string
		keys map[string]string
	}{{"labels", m.Labels}, {"annotations", m.Annotations}} {
		for _, k := range slices.Sorted(maps.Keys(field.keys)) {
			if prefix, _, ok := strings.Cut(k, "/"); ok && len(prefix) > 253 {
				x.reportAt(sel("metadata", field.name, k), "invalid key: the prefix must be at most 253 characters long")
			}
		}
	}
}

// checkPod checks that container names are unique across init and app
// containers, that volume names are unique and each volume has exactly one
// source, and that every mount names a declared volume at a path not already
// mounted in that container.
func checkPod(x *validator, obj *reconcile.Object) {
	spec := obj.Pod
	groups := []struct {
		field      string
		containers []reconcile.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}}

	names := map[string]string{}
	for _, g := range groups {
		for i, c := range g.containers {
			p := sel("spec", g.field, i, "name")
			if prev, ok := names[c.Name]; ok {
				x.reportAt(p, fmt.Sprintf("container name %q is already used by %s", c.Name, prev))
				continue
			}
			names[c.Name] = pathString(p[:3])
		}
	}

	volumes := map[string]string{}
	for i, v := range spec.Volumes {
		p := sel("spec", "volumes", i)
		if prev, ok := volumes[v.Name]; ok {
			x.reportAt(append(p, cue.Str("name")), fmt.Sprintf("volume name %q is already used by %s", v.Name, prev))
		} else {
			volumes[v.Name] = pathString(p)
		}
		var sources []string
		if v.EmptyDir != nil {
			sources = append(sources, "emptyDir")
		}
		if v.HostPath != nil {
			sources = append(sources, "hostPath")
		}
		switch len(sources) {
		case 0:
			x.reportAt(p, "must set exactly one volume source: emptyDir or hostPath")
		case 1:
		default:
			x.reportAt(p, fmt.Sprintf("must set exactly one volume source, got %s", strings.Join(sources, " and ")))
		}
	}

	for _, g := range groups {
		for i, c := range g.containers {
			paths := map[string]string{}
			for j, m := range c.VolumeMounts {
				p := sel("spec", g.field, i, "volumeMounts", j)
				if _, ok := volumes[m.Name]; !ok {
					x.reportAt(append(p, cue.Str("name")), fmt.Sprintf("volume %q is not declared in spec.volumes", m.Name))
				}
				if prev, ok := paths[m.MountPath]; ok {
					x.reportAt(append(p, cue.Str("mountPath")), fmt.Sprintf("path %q is already mounted by %s", m.MountPath, prev))
				} else {
					paths[m.MountPath] = pathString(p)
				}
			}
		}
	}
}
