package reconcile_test

import (
	fx "berth.dev/berth/reconcile/reconciletest"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

func names(pods []reconcile.DesiredPod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, p.ID.Name)
	}
	return out
}

func TestExpandDeployment(t *testing.T) {
	three := fx.ExpandOn(t, reconcile.ExpandOptions{}, fx.Deployment("web", 3, "1d"))
	if len(three) != 3 {
		t.Fatalf("got %d pods, want 3", len(three))
	}
	re := regexp.MustCompile(`^web-[bcdfghjklmnpqrstvwxz2456789]{10}-[bcdfghjklmnpqrstvwxz2456789]{5}$`)
	hash := three[0].Labels[reconcile.LabelPodTemplateHash]
	for _, p := range three {
		if !re.MatchString(p.ID.Name) {
			t.Errorf("pod name %q is not <name>-<template-hash>-<suffix>", p.ID.Name)
		}
		if p.Labels[reconcile.LabelPodTemplateHash] != hash || p.Labels["app"] != "web" {
			t.Errorf("pod %s labels %v", p.ID.Name, p.Labels)
		}
		if p.NodeName != "edge-1" || p.Owner != "Deployment/default/web" {
			t.Errorf("pod %s: fx.Node %q owner %q", p.ID.Name, p.NodeName, p.Owner)
		}
	}
	// Scaling down keeps the remaining pods as they are.
	two := fx.ExpandOn(t, reconcile.ExpandOptions{}, fx.Deployment("web", 2, "1d"))
	for _, p := range two {
		found := false
		for _, q := range three {
			if q.ID == p.ID && q.Hash == p.Hash {
				found = true
			}
		}
		if !found {
			t.Errorf("scaling to 2 changed pod %s", p.ID.Name)
		}
	}
	// A new template means new names.
	changed := fx.ExpandOn(t, reconcile.ExpandOptions{}, fx.Deployment("web", 3, "2d"))
	for _, p := range changed {
		for _, q := range three {
			if p.ID == q.ID {
				t.Errorf("pod %s kept its name across a template change", p.ID.Name)
			}
		}
	}
}

func TestExpandStatefulSet(t *testing.T) {
	o := fx.Workload("StatefulSet", "db")
	o.StatefulSet = &reconcile.StatefulSetSpec{
		Replicas: fx.Ptr(int32(2)), ServiceName: "db", Template: fx.Template("db"),
		VolumeClaimTemplates: []reconcile.PersistentVolumeClaimTemplate{{Metadata: reconcile.ObjectMeta{Name: "data"}}},
	}
	o.StatefulSet.Template.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "data", MountPath: "/data"}}
	pods := fx.ExpandOn(t, reconcile.ExpandOptions{StateDir: "/srv/berth"}, o)
	if diff := cmp.Diff([]string{"db-0", "db-1"}, names(pods)); diff != "" {
		t.Fatalf("names (-want +got):\n%s", diff)
	}
	for i, p := range pods {
		want := []reconcile.Volume{{Name: "data", HostPath: &reconcile.HostPathVolumeSource{
			Path: reconcile.ClaimDir("/srv/berth", "default", "data", "db", i), Type: "DirectoryOrCreate"}}}
		if diff := cmp.Diff(want, p.Spec.Volumes); diff != "" {
			t.Errorf("%s volumes (-want +got):\n%s", p.ID.Name, diff)
		}
		if p.Spec.Hostname != p.ID.Name || p.Spec.Subdomain != "db" {
			t.Errorf("%s hostname %q subdomain %q", p.ID.Name, p.Spec.Hostname, p.Spec.Subdomain)
		}
		if reconcile.StatefulSetOrdinal("db", p.ID.Name) != i {
			t.Errorf("ordinal of %s", p.ID.Name)
		}
	}
	if got := reconcile.ClaimDir("/srv/berth", "default", "data", "db", 1); got != "/srv/berth/volumes/default/data-db-1" {
		t.Errorf("ClaimDir = %q", got)
	}
}

func TestExpandNodeMatching(t *testing.T) {
	ds := fx.Workload("DaemonSet", "agent")
	ds.DaemonSet = &reconcile.DaemonSetSpec{Template: fx.Template("agent")}
	other := fx.Workload("DaemonSet", "gpu")
	other.DaemonSet = &reconcile.DaemonSetSpec{Template: fx.Template("gpu")}
	other.DaemonSet.Template.Spec.NodeSelector = map[string]string{"gpu": "yes"}
	pod := fx.PodObj("elsewhere")
	pod.Pod.NodeName = "edge-2"
	pods := fx.ExpandOn(t, reconcile.ExpandOptions{}, ds, other, pod, fx.PodObj("here"))
	if len(pods) != 2 {
		t.Fatalf("got pods %v, want the agent DaemonSet's and the pod here", names(pods))
	}
	if ok, _ := regexp.MatchString(`^agent-[a-z0-9]{5}$`, pods[0].ID.Name); !ok || pods[1].ID.Name != "here" {
		t.Errorf("pods %v", names(pods))
	}
	if pods[1].NodeName != "edge-1" {
		t.Errorf("NodeName %q", pods[1].NodeName)
	}
	// The DaemonSet's pod keeps its name when the template changes.
	ds2 := ds
	ds2.DaemonSet = &reconcile.DaemonSetSpec{Template: fx.Template("agent", "9")}
	again := fx.ExpandOn(t, reconcile.ExpandOptions{}, ds2)
	if again[0].ID != pods[0].ID || again[0].Hash == pods[0].Hash {
		t.Errorf("template change: %s/%s → %s/%s", pods[0].ID.Name, pods[0].Hash, again[0].ID.Name, again[0].Hash)
	}
}
