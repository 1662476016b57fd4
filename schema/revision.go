package schema

import (
	"fmt"

	"cuelang.org/go/cue"

	"berth.dev/berth/reconcile"
)

// Rules across the objects of a revision. While an object is validated, the
// ConfigMaps and Secrets it refers to and the host ports its pods bind are
// recorded with their places (facts); once every object is loaded, they are
// checked against the whole revision, so that a reference to a ConfigMap the
// revision lacks, or two pods binding one host port, is refused by vet at
// the field's own line instead of by apply.

// facts are what one object refers to and claims on the host.
type facts struct {
	Refs  []configRef
	Ports []portUse
}

// configRef is a reference to a ConfigMap or Secret, and the keys it needs.
type configRef struct {
	Kind, Name string
	Optional   bool
	At         place
	Keys       []keyRef
}

// keyRef is one key a reference needs.
type keyRef struct {
	Key string
	At  place
}

// portUse is a host port the object's pods bind.
type portUse struct {
	Port     int32
	Protocol string
	HostIP   string
	At       place
}

// place is where a field is: its position and path.
type place struct {
	Pos  reconcile.Position
	Path string
}

func (x *validator) place(path []cue.Selector) place {
	return place{Pos: x.position(x.posAt(path)), Path: pathString(path)}
}

// recordRefs records the ConfigMaps and Secrets spec at pp refers to.
func recordRefs(x *validator, pp []cue.Selector, spec *reconcile.PodSpec) {
	add := func(kind, name string, optional *bool, path []cue.Selector, keys []keyRef) {
		x.facts.Refs = append(x.facts.Refs, configRef{Kind: kind, Name: name, Optional: optional != nil && *optional, At: x.place(path), Keys: keys})
	}
	items := func(path []cue.Selector, its []reconcile.KeyToPath) []keyRef {
		var keys []keyRef
		for i, it := range its {
			keys = append(keys, keyRef{Key: it.Key, At: x.place(at(path, "items", i, "key"))})
		}
		return keys
	}
	for i, v := range spec.Volumes {
		vp := at(pp, "volumes", i)
		switch {
		case v.ConfigMap != nil:
			add("ConfigMap", v.ConfigMap.Name, v.ConfigMap.Optional, at(vp, "configMap", "name"), items(at(vp, "configMap"), v.ConfigMap.Items))
		case v.Secret != nil:
			add("Secret", v.Secret.SecretName, v.Secret.Optional, at(vp, "secret", "secretName"), items(at(vp, "secret"), v.Secret.Items))
		case v.Projected != nil:
			for j, src := range v.Projected.Sources {
				sp := at(vp, "projected", "sources", j)
				if c := src.ConfigMap; c != nil {
					add("ConfigMap", c.Name, c.Optional, at(sp, "configMap", "name"), items(at(sp, "configMap"), c.Items))
				}
				if s := src.Secret; s != nil {
					add("Secret", s.Name, s.Optional, at(sp, "secret", "name"), items(at(sp, "secret"), s.Items))
				}
			}
		}
	}
	for _, g := range []struct {
		field      string
		containers []reconcile.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
		for i, c := range g.containers {
			cp := at(pp, g.field, i)
			for j, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				ep := at(cp, "env", j, "valueFrom")
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					add("ConfigMap", r.Name, r.Optional, at(ep, "configMapKeyRef", "name"), []keyRef{{r.Key, x.place(at(ep, "configMapKeyRef", "key"))}})
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					add("Secret", r.Name, r.Optional, at(ep, "secretKeyRef", "name"), []keyRef{{r.Key, x.place(at(ep, "secretKeyRef", "key"))}})
				}
			}
			for j, e := range c.EnvFrom {
				ep := at(cp, "envFrom", j)
				if r := e.ConfigMapRef; r != nil {
					add("ConfigMap", r.Name, r.Optional, at(ep, "configMapRef", "name"), nil)
				}
				if r := e.SecretRef; r != nil {
					add("Secret", r.Name, r.Optional, at(ep, "secretRef", "name"), nil)
				}
			}
		}
	}
	for i, ps := range spec.ImagePullSecrets {
		add("Secret", ps.Name, nil, at(pp, "imagePullSecrets", i, "name"), nil)
	}
}

// recordPort records a host port the pod binds.
func recordPort(x *validator, p []cue.Selector, port int32, protocol, hostIP string) {
	x.facts.Ports = append(x.facts.Ports, portUse{Port: port, Protocol: protocol, HostIP: hostIP, At: x.place(p)})
}

// configKeys are the keys of a revision's ConfigMaps and Secrets, by
// "Kind/namespace/name".
type configKeys map[string]map[string]bool

// An invalid ConfigMap or Secret is still declared (its own errors are
// reported); its keys, unknown, are nil.
func newConfigKeys(objs []loaded) configKeys {
	ck := configKeys{}
	for _, lo := range objs {
		o := &lo.Obj
		keys := map[string]bool{}
		switch {
		case o.Kind != "ConfigMap" && o.Kind != "Secret":
			continue
		case !lo.OK:
			keys = nil
		case o.ConfigMap != nil:
			for k := range o.ConfigMap.Data {
				keys[k] = true
			}
			for k := range o.ConfigMap.BinaryData {
				keys[k] = true
			}
		case o.Secret != nil:
			for k := range o.Secret.Data {
				keys[k] = true
			}
		}
		ck[o.Kind+"/"+o.Metadata.Namespace+"/"+o.Metadata.Name] = keys
	}
	return ck
}

// checkRevision checks the facts of the objects that were decoded (valid
// or not, so that every problem shows in one run) against the whole
// revision: references to ConfigMaps and Secrets (and their keys) that it
// does not declare, unless optional, and host ports that two pods on node
// would bind. It returns the problems.
func checkRevision(objs []loaded, node reconcile.Node, maxPods int) []Diagnostic {
	var diags []Diagnostic
	report := func(o *reconcile.Object, at place, msg string) {
		diags = append(diags, Diagnostic{Pos: at.Pos, Object: o.Key(), Path: at.Path, Message: msg})
	}
	ck := newConfigKeys(objs)
	type binder struct {
		obj  *reconcile.Object
		use  portUse
		pods int
	}
	ports := map[string][]binder{}
	total := 0
	for i := range objs {
		lo := &objs[i]
		o := &lo.Obj
		if lo.OK && runsPods(o) && len(reconcile.NotForNodes([]reconcile.Object{*o}, node)) == 0 {
			if total += podsOnHost(o); total > maxPods && total-podsOnHost(o) <= maxPods {
				report(o, place{Pos: o.Source}, fmt.Sprintf("with this %s the revision runs %d pods on this host, more than the limit of %d (--max-pods raises it)", o.Kind, total, maxPods))
			}
		}
		for _, r := range lo.Facts.Refs {
			keys, ok := ck[r.Kind+"/"+o.Metadata.Namespace+"/"+r.Name]
			if r.Optional {
				continue
			}
			if !ok {
				report(o, r.At, fmt.Sprintf("%s %q is not declared in this revision (namespace %q): declare it, or set optional: true", r.Kind, r.Name, o.Metadata.Namespace))
				continue
			}
			for _, k := range r.Keys {
				if keys != nil && !keys[k.Key] {
					report(o, k.At, fmt.Sprintf("%s %q has no key %q", r.Kind, r.Name, k.Key))
				}
			}
		}
		if len(lo.Facts.Ports) == 0 {
			continue
		}
		if len(reconcile.NotForNodes([]reconcile.Object{*o}, node)) > 0 {
			continue // its pods do not run here
		}
		pods := podsOnHost(o)
		if pods == 0 {
			continue
		}
		for _, u := range lo.Facts.Ports {
			key := fmt.Sprintf("%d/%s", u.Port, u.Protocol)
			if pods > 1 {
				report(o, u.At, fmt.Sprintf("host port %s would be bound by each of the %d pods of %s on this host; only one can bind it", key, pods, o.Key()))
			}
			for _, b := range ports[key] {
				if b.obj != o && sameAddress(b.use.HostIP, u.HostIP) {
					report(o, u.At, fmt.Sprintf("host port %s is already bound by %s (%s)", key, b.obj.Key(), b.use.At.Pos))
					break
				}
			}
			ports[key] = append(ports[key], binder{obj: o, use: u, pods: pods})
		}
	}
	return diags
}

// sameAddress reports whether two host IPs of a port overlap: equal, or
// either unset (every address).
func sameAddress(a, b string) bool {
	unset := func(s string) bool { return s == "" || s == "0.0.0.0" || s == "::" }
	return a == b || unset(a) || unset(b)
}

// runsPods reports whether o is a pod or a workload that makes pods.
func runsPods(o *reconcile.Object) bool {
	return o.Pod != nil || o.Deployment != nil || o.ReplicaSet != nil || o.StatefulSet != nil ||
		o.DaemonSet != nil || o.Job != nil || o.CronJob != nil
}

// podsOnHost is how many pods of o run on the host at once.
func podsOnHost(o *reconcile.Object) int {
	n := func(p *int32) int {
		if p == nil {
			return 1
		}
		return int(*p)
	}
	switch {
	case o.Deployment != nil:
		return n(o.Deployment.Replicas)
	case o.ReplicaSet != nil:
		return n(o.ReplicaSet.Replicas)
	case o.StatefulSet != nil:
		return n(o.StatefulSet.Replicas)
	case o.Job != nil:
		return min(n(o.Job.Parallelism), n(o.Job.Completions))
	}
	return 1
}
