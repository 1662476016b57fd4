package reconcile

import (
	"runtime"
	"strings"
)

// Labels kubelet sets on every node, which manifests select nodes by.
const (
	LabelHostname = "kubernetes.io/hostname"
	LabelOS       = "kubernetes.io/os"
	LabelArch     = "kubernetes.io/arch"
	LabelBetaOS   = "beta.kubernetes.io/os"
	LabelBetaArch = "beta.kubernetes.io/arch"
)

// HostNode returns this host as a node named name: the labels kubelet sets
// (kubernetes.io/hostname as the lower-cased name, kubernetes.io/os and
// kubernetes.io/arch from the running binary's GOOS and GOARCH, and their
// beta.kubernetes.io forms), then labels on top, so that a user's label
// overrides a default one.
func HostNode(name string, labels map[string]string) Node {
	return KubeletNode(name, runtime.GOOS, runtime.GOARCH, labels)
}

// KubeletNode is HostNode for a given operating system and architecture
// (a device other than this host).
func KubeletNode(name, goos, goarch string, labels map[string]string) Node {
	l := map[string]string{
		LabelOS: goos, LabelBetaOS: goos,
		LabelArch: goarch, LabelBetaArch: goarch,
	}
	if name != "" {
		l[LabelHostname] = strings.ToLower(name)
	}
	for k, v := range labels {
		l[k] = v
	}
	return Node{Name: name, Labels: l}
}

// NotForNode is an object whose pods do not run on a node, and why.
type NotForNode struct {
	// Object is the object's key, "Kind/namespace/name".
	Object string `json:"object"`
	// Source is where the object starts in the repository.
	Source Position `json:"source"`
	// Reason is what Node.Matches said of its pod template.
	Reason string `json:"reason"`
}

// String formats m as "Kind/namespace/name (file:line:col): not for this
// node: reason".
func (m NotForNode) String() string {
	s := m.Object
	if src := m.Source.String(); src != "" {
		s += " (" + src + ")"
	}
	return s + ": not for this node: " + m.Reason
}

// NotForNodes lists, in the order of objs, the objects that would run
// pods but whose pod template does not match node (nodeName, nodeSelector,
// required node affinity), with the reason. Expand makes no pods for them.
func NotForNodes(objs []Object, node Node) []NotForNode {
	var out []NotForNode
	for i := range objs {
		o := &objs[i]
		spec := podTemplate(o)
		if spec == nil {
			continue
		}
		if ok, why := node.Matches(spec); !ok {
			out = append(out, NotForNode{Object: o.Key(), Source: o.Source, Reason: why})
		}
	}
	return out
}

// podTemplate is the pod spec o runs pods from, nil for kinds without one.
func podTemplate(o *Object) *PodSpec {
	switch {
	case o.Pod != nil:
		return o.Pod
	case o.Deployment != nil:
		return &o.Deployment.Template.Spec
	case o.ReplicaSet != nil:
		return &o.ReplicaSet.Template.Spec
	case o.DaemonSet != nil:
		return &o.DaemonSet.Template.Spec
	case o.StatefulSet != nil:
		return &o.StatefulSet.Template.Spec
	case o.Job != nil:
		return &o.Job.Template.Spec
	case o.CronJob != nil:
		return &o.CronJob.JobTemplate.Spec.Template.Spec
	}
	return nil
}
