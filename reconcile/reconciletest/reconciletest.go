// Package reconciletest holds the small objects the tests of the engine's
// core and of its pod manager are written with.
package reconciletest

import (
	"context"
	"testing"

	"berth.dev/berth/reconcile"
)

// Img is the image every fixture runs (the fake runtime holds it).
const Img = "example.local/busybox:1"

// Node is the node fixtures are expanded for.
var Node = reconcile.Node{Name: "edge-1", Labels: map[string]string{"disk": "ssd"}}

// Ptr returns a pointer to v.
func Ptr[T any](v T) *T { return &v }

// PodObj is a bare Pod running "sleep args…" in default.
func PodObj(name string, args ...string) reconcile.Object {
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Source:   reconcile.Position{File: "./" + name + ".yaml", Line: 1, Column: 1},
		Pod: &reconcile.PodSpec{Containers: []reconcile.Container{
			{Name: "main", Image: Img, Command: []string{"sleep"}, Args: args},
		}},
	}
}

// Template is a pod template labelled app running "sleep args…".
func Template(app string, args ...string) reconcile.PodTemplateSpec {
	return reconcile.PodTemplateSpec{
		Metadata: reconcile.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: reconcile.PodSpec{Containers: []reconcile.Container{
			{Name: "main", Image: Img, Command: []string{"sleep"}, Args: args},
		}},
	}
}

// Workload is an object of kind with no spec yet.
func Workload(kind, name string) reconcile.Object {
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "apps/v1", Kind: kind},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default"},
		Source:   reconcile.Position{File: "./" + name + ".yaml", Line: 1, Column: 1},
	}
}

// Deployment is a Deployment of replicas pods of Template(name, args…).
func Deployment(name string, replicas int32, args ...string) reconcile.Object {
	o := Workload("Deployment", name)
	o.Deployment = &reconcile.DeploymentSpec{Replicas: Ptr(replicas), Template: Template(name, args...)}
	return o
}

// ConfigMapObj is a ConfigMap with one key, "key".
func ConfigMapObj(name, value string) reconcile.Object {
	return reconcile.Object{
		TypeMeta:  reconcile.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		Metadata:  reconcile.ObjectMeta{Name: name, Namespace: "default"},
		ConfigMap: &reconcile.ConfigMapData{Data: map[string]string{"key": value}},
	}
}

// SecretObj is an Opaque Secret with one key, "password".
func SecretObj(name, value string) reconcile.Object {
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default"},
		Secret:   &reconcile.SecretData{Type: "Opaque", Data: map[string][]byte{"password": []byte(value)}},
	}
}

// ExpandOn expands objs at revision rev1 (for Node unless opts names one).
func ExpandOn(t testing.TB, opts reconcile.ExpandOptions, objs ...reconcile.Object) []reconcile.DesiredPod {
	t.Helper()
	if opts.Node.Name == "" {
		opts.Node = Node
	}
	pods, err := reconcile.Expand(objs, "rev1", opts)
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// Expand expands objs at rev for the zero node.
func Expand(t testing.TB, rev string, objs ...reconcile.Object) []reconcile.DesiredPod {
	t.Helper()
	pods, err := reconcile.Expand(objs, rev, reconcile.ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pods
}

// Start makes pods run on rt as a finished create leaves them: sandbox,
// then every app container.
func Start(t testing.TB, rt reconcile.Runtime, pods []reconcile.DesiredPod) {
	t.Helper()
	ctx := context.Background()
	for i := range pods {
		p := &pods[i]
		if err := rt.CreateSandbox(ctx, p); err != nil {
			t.Fatal(err)
		}
		for _, c := range p.Spec.Containers {
			if err := rt.StartContainer(ctx, p, reconcile.AppContainer, c.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
}
