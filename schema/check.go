package schema

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/token"
	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/labels"

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

// at returns path followed by parts, without sharing path's array.
func at(path []cue.Selector, parts ...any) []cue.Selector {
	return append(slices.Clip(path), sel(parts...)...)
}

// checkMeta checks what the schema cannot say about metadata: the length of
// a label or annotation key's prefix, and annotations that ask for
// something berth does not do.
func checkMeta(x *validator, m *reconcile.ObjectMeta) {
	checkKeyPrefixes(x, sel("metadata"), m)
	checkAnnotations(x, sel("metadata"), m.Annotations)
}

// ignoredAnnotations are annotation prefixes that ask the kubelet for
// something berth does not do; they are warnings, errors with --strict.
var ignoredAnnotations = map[string]string{
	"container.apparmor.security.beta.kubernetes.io/": "AppArmor profiles are not applied by berth",
	"seccomp.security.alpha.kubernetes.io/":           "seccomp annotations are not read by berth; use securityContext.seccompProfile",
	"container.seccomp.security.alpha.kubernetes.io/": "seccomp annotations are not read by berth; use securityContext.seccompProfile",
}

func checkAnnotations(x *validator, path []cue.Selector, annotations map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		for prefix, why := range ignoredAnnotations {
			if strings.HasPrefix(k, prefix) {
				x.warnAt(at(path, "annotations", k), "annotation not honoured: "+why)
			}
		}
	}
}

func checkKeyPrefixes(x *validator, path []cue.Selector, m *reconcile.ObjectMeta) {
	for _, field := range []struct {
		name string
		keys map[string]string
	}{{"labels", m.Labels}, {"annotations", m.Annotations}} {
		for _, k := range slices.Sorted(maps.Keys(field.keys)) {
			if prefix, _, ok := strings.Cut(k, "/"); ok && len(prefix) > 253 {
				x.reportAt(at(path, field.name, k), "invalid key: the prefix must be at most 253 characters long")
			}
		}
	}
}

// podContext says where a pod spec sits in its object.
type podContext struct {
	// path is the path of the pod spec ("spec", "spec.template.spec").
	path []cue.Selector
	// kind is the owning object's kind.
	kind string
	// claims are a StatefulSet's volume claim template names, which mounts
	// may name like volumes.
	claims map[string]string
}

// checkTemplate checks a workload's pod template: the selector matches the
// template's labels, the restart policy suits the kind, and the pod spec.
func checkTemplate(x *validator, kind string, selector *reconcile.LabelSelector, t *reconcile.PodTemplateSpec, claims map[string]string, always bool) {
	checkKeyPrefixes(x, sel("spec", "template", "metadata"), &t.Metadata)
	checkAnnotations(x, sel("spec", "template", "metadata"), t.Metadata.Annotations)
	checkSelector(x, sel("spec"), selector, t.Metadata.Labels, true)
	if always && t.Spec.RestartPolicy != "" && t.Spec.RestartPolicy != reconcile.RestartAlways {
		x.reportAt(sel("spec", "template", "spec", "restartPolicy"),
			fmt.Sprintf("a %s's pods must restart Always, got %s", kind, t.Spec.RestartPolicy))
	}
	checkPodSpec(x, podContext{path: sel("spec", "template", "spec"), kind: kind, claims: claims}, &t.Spec)
}

// checkJob checks a Job spec at path.
func checkJob(x *validator, path []cue.Selector, j *reconcile.JobSpec) {
	checkReplicas(x, at(path, "parallelism"), j.Parallelism)
	tpath := at(path, "template")
	checkKeyPrefixes(x, at(tpath, "metadata"), &j.Template.Metadata)
	checkAnnotations(x, at(tpath, "metadata"), j.Template.Metadata.Annotations)
	switch j.Template.Spec.RestartPolicy {
	case reconcile.RestartOnFailure, reconcile.RestartNever:
	case "":
		x.reportAt(at(tpath, "spec", "restartPolicy"), "a Job's pods must set restartPolicy to OnFailure or Never")
	default:
		x.reportAt(at(tpath, "spec", "restartPolicy"), "a Job's pods must set restartPolicy to OnFailure or Never, got "+j.Template.Spec.RestartPolicy)
	}
	if j.Selector != nil {
		checkSelector(x, path, j.Selector, j.Template.Metadata.Labels, false)
	}
	if j.CompletionMode == "Indexed" && j.Completions == nil {
		x.reportAt(at(path, "completionMode"), "an Indexed Job must set completions")
	}
	checkPodSpec(x, podContext{path: at(tpath, "spec"), kind: "Job"}, &j.Template.Spec)
}

// checkSelector checks that the selector at path.selector is not empty,
// valid for apimachinery, and matches labels, the template's labels.
func checkSelector(x *validator, path []cue.Selector, s *reconcile.LabelSelector, lbls map[string]string, required bool) {
	spath := at(path, "selector")
	if s == nil {
		if required {
			x.reportAt(spath, "required field is missing")
		}
		return
	}
	if len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0 {
		x.reportAt(spath, "must not be empty: an empty selector would select every pod")
		return
	}
	sl, ok := labelSelector(x, spath, s)
	set := labels.Set(lbls)
	if !ok || sl.Matches(set) {
		return
	}
	tl := pathString(at(path, "template", "metadata", "labels"))
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		v := s.MatchLabels[k]
		got, ok := lbls[k]
		switch {
		case !ok:
			x.reportAt(at(spath, "matchLabels", k), fmt.Sprintf("selector %s=%s does not match the template: %s has no label %q", k, v, tl, k))
		case got != v:
			x.reportAt(at(spath, "matchLabels", k), fmt.Sprintf("selector %s=%s does not match the template: %s has %s=%s", k, v, tl, k, got))
		}
	}
	for i, r := range s.MatchExpressions {
		req, err := labels.NewRequirement(r.Key, selectionOps[r.Operator], r.Values)
		if err == nil && !req.Matches(set) {
			x.reportAt(at(spath, "matchExpressions", i), fmt.Sprintf("selector expression %s %s does not match the template's labels (%s)", r.Key, r.Operator, tl))
		}
	}
}

// checkPodSpec checks the rules of a pod spec that relate fields to each
// other: unique container names across init and app containers, exactly one
// source per volume and per env value, mounts naming declared volumes, port
// and probe references, sidecar rules and resource names.
func checkPodSpec(x *validator, ctx podContext, spec *reconcile.PodSpec) {
	pp := ctx.path
	groups := []struct {
		field      string
		containers []reconcile.Container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}}

	names := map[string]string{}
	for _, g := range groups {
		for i, c := range g.containers {
			p := at(pp, g.field, i, "name")
			if prev, ok := names[c.Name]; ok {
				x.reportAt(p, fmt.Sprintf("container name %q is already used by %s", c.Name, prev))
				continue
			}
			names[c.Name] = pathString(at(pp, g.field, i))
		}
	}

	for _, g := range groups {
		for i, c := range g.containers {
			for _, f := range []struct {
				name string
				set  bool
			}{{"stdin", c.Stdin}, {"stdinOnce", c.StdinOnce}, {"tty", c.TTY}} {
				if f.set {
					x.warnAt(at(pp, g.field, i, f.name), "not honoured: berth attaches no stdin or terminal to containers, so a program reading stdin sees end of file at once; use berth exec -it for an interactive shell")
				}
			}
		}
	}

	volumes := map[string]string{}
	for i, v := range spec.Volumes {
		p := at(pp, "volumes", i)
		if prev, ok := volumes[v.Name]; ok {
			x.reportAt(at(p, "name"), fmt.Sprintf("volume name %q is already used by %s", v.Name, prev))
		} else {
			volumes[v.Name] = pathString(p)
		}
		prev, isClaim := ctx.claims[v.Name]
		switch {
		case v.PersistentVolumeClaim != nil && !isClaim:
			x.reportAt(at(p, "persistentVolumeClaim"), noClaims)
		case v.PersistentVolumeClaim == nil && isClaim:
			x.reportAt(at(p, "name"), fmt.Sprintf("volume name %q is already used by %s", v.Name, prev))
		}
		checkVolume(x, p, v, names)
	}

	for _, f := range []string{"serviceAccountName", "serviceAccount"} {
		if x.plain.LookupPath(cue.MakePath(at(pp, f)...)).Exists() {
			x.warnAt(at(pp, f), "no service account token is mounted: berth has no API server for the pod to talk to")
		}
	}
	recordRefs(x, pp, spec)
	hostPorts := map[string]string{}
	portNames := map[string]string{}
	for _, g := range groups {
		for i, c := range g.containers {
			cp := at(pp, g.field, i)
			init := g.field == "initContainers"
			checkContainer(x, cp, c, init, names)
			for j, port := range c.Ports {
				p := at(cp, "ports", j)
				if port.Name != "" {
					if prev, ok := portNames[port.Name]; ok {
						x.reportAt(at(p, "name"), fmt.Sprintf("port name %q is already used by %s", port.Name, prev))
					} else {
						portNames[port.Name] = pathString(p)
					}
				}
				if spec.HostNetwork && port.HostPort != 0 && port.HostPort != port.ContainerPort {
					x.reportAt(at(p, "hostPort"), fmt.Sprintf("with hostNetwork, hostPort must equal containerPort (%d)", port.ContainerPort))
				}
				hp := port.HostPort
				if spec.HostNetwork {
					hp = port.ContainerPort
				}
				if hp != 0 {
					recordPort(x, p, hp, cmpOr(port.Protocol, "TCP"), port.HostIP)
					key := fmt.Sprintf("%s/%d/%s", port.HostIP, hp, cmpOr(port.Protocol, "TCP"))
					if prev, ok := hostPorts[key]; ok {
						x.reportAt(p, fmt.Sprintf("host port %d/%s is already used by %s", hp, cmpOr(port.Protocol, "TCP"), prev))
					} else {
						hostPorts[key] = pathString(p)
					}
				}
			}
			paths := map[string]string{}
			for j, m := range c.VolumeMounts {
				p := at(cp, "volumeMounts", j)
				_, isVolume := volumes[m.Name]
				_, isClaim := ctx.claims[m.Name]
				if !isVolume && !isClaim {
					where := "spec.volumes"
					if ctx.claims != nil {
						where = "spec.volumes or spec.volumeClaimTemplates"
					}
					x.reportAt(at(p, "name"), fmt.Sprintf("volume %q is not declared in %s", m.Name, where))
				}
				if prev, ok := paths[m.MountPath]; ok {
					x.reportAt(at(p, "mountPath"), fmt.Sprintf("path %q is already mounted by %s", m.MountPath, prev))
				} else {
					paths[m.MountPath] = pathString(p)
				}
			}
		}
	}

	if spec.DNSPolicy == "None" && (spec.DNSConfig == nil || len(spec.DNSConfig.Nameservers) == 0) {
		x.reportAt(at(pp, "dnsPolicy"), "dnsPolicy None needs dnsConfig.nameservers")
	}
	if spec.SecurityContext != nil {
		checkSeccomp(x, at(pp, "securityContext", "seccompProfile"), spec.SecurityContext.SeccompProfile)
	}
	for i, t := range spec.Tolerations {
		if t.Operator == "Exists" && t.Value != "" {
			x.reportAt(at(pp, "tolerations", i, "value"), "must be empty when operator is Exists")
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil {
		np := at(pp, "affinity", "nodeAffinity")
		if r := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; r != nil {
			for i, t := range r.NodeSelectorTerms {
				checkNodeTerm(x, at(np, "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", i), t)
			}
		}
		for i, t := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			checkNodeTerm(x, at(np, "preferredDuringSchedulingIgnoredDuringExecution", i, "preference"), t.Preference)
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkNodeTerm checks the operators and values of a node selector term.
func checkNodeTerm(x *validator, p []cue.Selector, t reconcile.NodeSelectorTerm) {
	for _, g := range []struct {
		field string
		reqs  []reconcile.NodeSelectorRequirement
	}{{"matchExpressions", t.MatchExpressions}, {"matchFields", t.MatchFields}} {
		for i, r := range g.reqs {
			rp := at(p, g.field, i)
			if g.field == "matchFields" {
				if r.Key != "metadata.name" {
					x.reportAt(at(rp, "key"), "must be metadata.name, the only node field berth knows")
				}
				if r.Operator != "In" && r.Operator != "NotIn" {
					x.reportAt(at(rp, "operator"), "must be In or NotIn for matchFields")
				}
			}
			switch r.Operator {
			case "In", "NotIn":
				if len(r.Values) == 0 {
					x.reportAt(at(rp, "values"), "operator "+r.Operator+" needs at least one value")
				}
			case "Exists", "DoesNotExist":
				if len(r.Values) > 0 {
					x.reportAt(at(rp, "values"), "operator "+r.Operator+" takes no values")
				}
			case "Gt", "Lt":
				if len(r.Values) != 1 {
					x.reportAt(at(rp, "values"), "operator "+r.Operator+" needs exactly one value")
				} else if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
					x.reportAt(at(rp, "values", 0), "must be an integer for operator "+r.Operator)
				}
			}
		}
	}
}

func checkSeccomp(x *validator, p []cue.Selector, s *reconcile.SeccompProfile) {
	if s == nil {
		return
	}
	if s.Type == "Localhost" && s.LocalhostProfile == "" {
		x.reportAt(p, "type Localhost needs localhostProfile")
	}
	if s.Type != "Localhost" && s.LocalhostProfile != "" {
		x.reportAt(at(p, "localhostProfile"), "is only allowed with type Localhost")
	}
}

// checkVolume checks that a volume has exactly one source and that its
// downward API files and projections are well formed.
func checkVolume(x *validator, p []cue.Selector, v reconcile.Volume, containers map[string]string) {
	var sources []string
	for _, s := range []struct {
		name string
		set  bool
	}{
		{"emptyDir", v.EmptyDir != nil}, {"hostPath", v.HostPath != nil}, {"configMap", v.ConfigMap != nil},
		{"secret", v.Secret != nil}, {"downwardAPI", v.DownwardAPI != nil}, {"projected", v.Projected != nil},
		{"persistentVolumeClaim", v.PersistentVolumeClaim != nil},
	} {
		if s.set {
			sources = append(sources, s.name)
		}
	}
	switch len(sources) {
	case 0:
		x.reportAt(p, "must set exactly one volume source: "+strings.Join(volumeSources, ", "))
		return
	case 1:
	default:
		x.reportAt(p, fmt.Sprintf("must set exactly one volume source, got %s", strings.Join(sources, " and ")))
		return
	}
	if e := v.EmptyDir; e != nil && e.SizeLimit != "" {
		checkQuantity(x, at(p, "emptyDir", "sizeLimit"), e.SizeLimit, false)
		if e.Medium != "Memory" {
			x.reportAt(at(p, "emptyDir", "sizeLimit"), "field not supported by berth: the size of an emptyDir on disk is not limited; use medium: Memory (a tmpfs of that size) or remove sizeLimit")
		}
	}
	if v.DownwardAPI != nil {
		checkDownwardFiles(x, at(p, "downwardAPI", "items"), v.DownwardAPI.Items, containers)
	}
	if v.Projected != nil {
		for i, src := range v.Projected.Sources {
			sp := at(p, "projected", "sources", i)
			n := 0
			for _, set := range []bool{src.ConfigMap != nil, src.Secret != nil, src.DownwardAPI != nil} {
				if set {
					n++
				}
			}
			if n != 1 {
				x.reportAt(sp, "must set exactly one of configMap, secret and downwardAPI")
			}
			if src.DownwardAPI != nil {
				checkDownwardFiles(x, at(sp, "downwardAPI", "items"), src.DownwardAPI.Items, containers)
			}
		}
	}
}

func checkDownwardFiles(x *validator, p []cue.Selector, items []reconcile.DownwardAPIVolumeFile, containers map[string]string) {
	for i, it := range items {
		ip := at(p, i)
		switch {
		case it.FieldRef == nil && it.ResourceFieldRef == nil:
			x.reportAt(ip, "must set one of fieldRef and resourceFieldRef")
		case it.FieldRef != nil && it.ResourceFieldRef != nil:
			x.reportAt(ip, "must set only one of fieldRef and resourceFieldRef")
		case it.ResourceFieldRef != nil:
			r := it.ResourceFieldRef
			if r.Divisor != "" {
				checkQuantity(x, at(ip, "resourceFieldRef", "divisor"), r.Divisor, true)
			}
			if r.ContainerName == "" {
				x.reportAt(at(ip, "resourceFieldRef"), "must name a container (containerName) in a volume")
			} else if _, ok := containers[r.ContainerName]; !ok {
				x.reportAt(at(ip, "resourceFieldRef", "containerName"), fmt.Sprintf("container %q is not declared in this pod", r.ContainerName))
			}
		}
	}
}

// checkContainer checks one container at p.
func checkContainer(x *validator, p []cue.Selector, c reconcile.Container, init bool, containers map[string]string) {
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		x.reportAt(at(p, "image"), fmt.Sprintf("%q is not a valid image reference: %v", c.Image, err))
	}
	sidecar := init && c.RestartPolicy == reconcile.RestartAlways
	if !init && c.RestartPolicy != "" {
		x.reportAt(at(p, "restartPolicy"), "only an init container may set restartPolicy (Always makes it a sidecar)")
	}
	if init && !sidecar {
		for _, f := range []struct {
			name string
			set  bool
		}{{"livenessProbe", c.LivenessProbe != nil}, {"readinessProbe", c.ReadinessProbe != nil}, {"startupProbe", c.StartupProbe != nil}, {"lifecycle", c.Lifecycle != nil}} {
			if f.set {
				x.reportAt(at(p, f.name), "an init container may have "+f.name+" only as a sidecar (restartPolicy: Always)")
			}
		}
	}
	for i, e := range c.Env {
		ep := at(p, "env", i)
		if e.ValueFrom == nil {
			continue
		}
		if e.Value != "" {
			x.reportAt(at(ep, "valueFrom"), "must not be set together with value")
			continue
		}
		var set []string
		vf := e.ValueFrom
		for _, s := range []struct {
			name string
			ok   bool
		}{{"fieldRef", vf.FieldRef != nil}, {"resourceFieldRef", vf.ResourceFieldRef != nil}, {"configMapKeyRef", vf.ConfigMapKeyRef != nil}, {"secretKeyRef", vf.SecretKeyRef != nil}} {
			if s.ok {
				set = append(set, s.name)
			}
		}
		switch len(set) {
		case 0:
			x.reportAt(at(ep, "valueFrom"), "must set exactly one of fieldRef, resourceFieldRef, configMapKeyRef and secretKeyRef")
		case 1:
		default:
			x.reportAt(at(ep, "valueFrom"), "must set exactly one source, got "+strings.Join(set, " and "))
		}
		if r := vf.ResourceFieldRef; r != nil && r.Divisor != "" {
			checkQuantity(x, at(ep, "valueFrom", "resourceFieldRef", "divisor"), r.Divisor, true)
		}
		if r := vf.ResourceFieldRef; r != nil && r.ContainerName != "" {
			if _, ok := containers[r.ContainerName]; !ok {
				x.reportAt(at(ep, "valueFrom", "resourceFieldRef", "containerName"), fmt.Sprintf("container %q is not declared in this pod", r.ContainerName))
			}
		}
	}
	for i, e := range c.EnvFrom {
		if (e.ConfigMapRef == nil) == (e.SecretRef == nil) {
			x.reportAt(at(p, "envFrom", i), "must set exactly one of configMapRef and secretRef")
		}
	}
	checkResources(x, p, c.Resources)
	if c.SecurityContext != nil {
		checkSeccomp(x, at(p, "securityContext", "seccompProfile"), c.SecurityContext.SeccompProfile)
	}
	ports := map[string]bool{}
	for _, port := range c.Ports {
		if port.Name != "" {
			ports[port.Name] = true
		}
	}
	for _, pr := range []struct {
		name  string
		probe *reconcile.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if pr.probe == nil {
			continue
		}
		pp := at(p, pr.name)
		h := pr.probe.ProbeHandler
		n := countSet(h.Exec != nil, h.HTTPGet != nil, h.TCPSocket != nil, h.GRPC != nil)
		if n != 1 {
			x.reportAt(pp, "must set exactly one of exec, httpGet, tcpSocket and grpc")
		}
		if pr.name != "livenessProbe" && pr.name != "startupProbe" && pr.probe.TerminationGracePeriodSeconds != nil {
			x.reportAt(at(pp, "terminationGracePeriodSeconds"), "is only allowed on liveness and startup probes")
		}
		if (pr.name == "livenessProbe" || pr.name == "startupProbe") && pr.probe.SuccessThreshold > 1 {
			x.reportAt(at(pp, "successThreshold"), "must be 1 for a "+pr.name)
		}
		checkPortRef(x, at(pp, "httpGet", "port"), h.HTTPGet != nil, func() reconcile.IntOrString { return h.HTTPGet.Port }, ports)
		checkPortRef(x, at(pp, "tcpSocket", "port"), h.TCPSocket != nil, func() reconcile.IntOrString { return h.TCPSocket.Port }, ports)
	}
	if lc := c.Lifecycle; lc != nil {
		for _, hk := range []struct {
			name string
			h    *reconcile.LifecycleHandler
		}{{"postStart", lc.PostStart}, {"preStop", lc.PreStop}} {
			if hk.h == nil {
				continue
			}
			hp := at(p, "lifecycle", hk.name)
			if countSet(hk.h.Exec != nil, hk.h.HTTPGet != nil, hk.h.TCPSocket != nil, hk.h.Sleep != nil) != 1 {
				x.reportAt(hp, "must set exactly one of exec, httpGet, tcpSocket and sleep")
			}
			checkPortRef(x, at(hp, "httpGet", "port"), hk.h.HTTPGet != nil, func() reconcile.IntOrString { return hk.h.HTTPGet.Port }, ports)
			checkPortRef(x, at(hp, "tcpSocket", "port"), hk.h.TCPSocket != nil, func() reconcile.IntOrString { return hk.h.TCPSocket.Port }, ports)
		}
	}
}

// checkPortRef checks that a port given by name names a port of the
// container.
func checkPortRef(x *validator, p []cue.Selector, set bool, port func() reconcile.IntOrString, ports map[string]bool) {
	if !set {
		return
	}
	if v := port(); v.IsString && !ports[v.StrVal] {
		x.reportAt(p, fmt.Sprintf("port %q is not a named port of this container", v.StrVal))
	}
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// maxDataSize is the most a ConfigMap or Secret may hold, keys and
// values: Kubernetes stores no larger object.
const maxDataSize = 1 << 20

// checkDataSize bounds the bytes of a ConfigMap's or Secret's data.
func checkDataSize(x *validator, n int) {
	if n > maxDataSize {
		x.report(token.NoPos, nil, fmt.Sprintf("data of %d bytes is more than the limit of 1 MiB (Kubernetes' own)", n))
	}
}

// checkReplicas bounds the pods a workload asks for at once, before any of
// them is planned.
func checkReplicas(x *validator, path []cue.Selector, n *int32) {
	if n != nil && *n > x.maxReplicas {
		x.reportAt(path, fmt.Sprintf("%d pods is more than the limit of %d per workload (--max-replicas raises it)", *n, x.maxReplicas))
	}
}
