package reconcile

import (
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKubeletNode(t *testing.T) {
	n := KubeletNode("Edge-1", "linux", "amd64", map[string]string{"disk": "ssd", LabelArch: "arm64"})
	want := map[string]string{
		LabelHostname: "edge-1", LabelOS: "linux", LabelBetaOS: "linux",
		LabelArch: "arm64", LabelBetaArch: "amd64", "disk": "ssd",
	}
	if diff := cmp.Diff(want, n.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if h := HostNode("h", nil); h.Labels[LabelOS] != runtime.GOOS || h.Labels[LabelArch] != runtime.GOARCH {
		t.Errorf("HostNode labels %v, want this host's GOOS and GOARCH", h.Labels)
	}
}

func TestNotForNodes(t *testing.T) {
	node := KubeletNode("edge-1", "linux", "amd64", nil)
	sel := func(k, v string) PodSpec {
		return PodSpec{NodeSelector: map[string]string{k: v}, Containers: []Container{{Name: "a", Image: "a"}}}
	}
	arm, linux, betaOS := sel(LabelArch, "arm64"), sel(LabelOS, "linux"), sel(LabelBetaOS, "linux")
	objs := []Object{
		{TypeMeta: TypeMeta{Kind: "Pod"}, Metadata: ObjectMeta{Name: "arm"}, Pod: &arm, Source: Position{File: "./arm.yaml", Line: 1, Column: 1}},
		{TypeMeta: TypeMeta{Kind: "Pod"}, Metadata: ObjectMeta{Name: "linux"}, Pod: &linux},
		{TypeMeta: TypeMeta{Kind: "Deployment"}, Metadata: ObjectMeta{Name: "old"}, Deployment: &DeploymentSpec{Template: PodTemplateSpec{Spec: betaOS}}},
		{TypeMeta: TypeMeta{Kind: "CronJob"}, Metadata: ObjectMeta{Name: "cron"}, CronJob: &CronJobSpec{JobTemplate: JobTemplateSpec{Spec: JobSpec{Template: PodTemplateSpec{Spec: arm}}}}},
		{TypeMeta: TypeMeta{Kind: "ConfigMap"}, Metadata: ObjectMeta{Name: "c"}, ConfigMap: &ConfigMapData{}},
	}
	got := NotForNodes(objs, node)
	want := []NotForNode{
		{Object: "Pod//arm", Source: Position{File: "./arm.yaml", Line: 1, Column: 1}, Reason: "nodeSelector kubernetes.io/arch=arm64: node label is kubernetes.io/arch=amd64"},
		{Object: "CronJob//cron", Reason: "nodeSelector kubernetes.io/arch=arm64: node label is kubernetes.io/arch=amd64"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NotForNodes (-want +got):\n%s", diff)
	}
	if s := got[0].String(); s != "Pod//arm (./arm.yaml:1:1): not for this node: nodeSelector kubernetes.io/arch=arm64: node label is kubernetes.io/arch=amd64" {
		t.Errorf("String() = %q", s)
	}
}
