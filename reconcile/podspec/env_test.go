package podspec_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two", "EMPTY": ""}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"plain":              "plain",
		"$(A)":               "1",
		"x$(A)y$(B)z":        "x1ytwoz",
		"$(MISSING)":         "$(MISSING)",
		"$$(A)":              "$(A)",
		"$$$(A)":             "$1",
		"$(EMPTY)!":          "!",
		"$(A":                "$(A",
		"$":                  "$",
		"a$b":                "a$b",
		"$(date +%s)":        "$(date +%s)",
		"echo $((1+2)) $(A)": "echo $((1+2)) 1",
	} {
		if got := podspec.Expand(in, lookup); got != want {
			t.Errorf("Expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	yes := true
	pod := &reconcile.DesiredPod{
		ID:         reconcile.PodID{Namespace: "ns", Name: "p"},
		Labels:     map[string]string{"app": "web"},
		NodeName:   "node-1",
		ConfigMaps: map[string]*reconcile.ConfigMapData{"cm": {Data: map[string]string{"K": "v", "bad-name!": "x", "PORT": "80"}}},
		Secrets:    map[string]*reconcile.SecretData{"s": {Data: map[string][]byte{"pw": []byte("hunter2")}}},
	}
	c := &reconcile.Container{
		Name: "c",
		EnvFrom: []reconcile.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &reconcile.OptionalRef{Name: "cm"}},
			{ConfigMapRef: &reconcile.OptionalRef{Name: "absent", Optional: &yes}},
		},
		Env: []reconcile.EnvVar{
			{Name: "URL", Value: "http://$(POD_IP):$(CM_PORT)/$(NODE)"},
			{Name: "NODE", ValueFrom: &reconcile.EnvVarSource{FieldRef: &reconcile.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
			{Name: "POD_IP", ValueFrom: &reconcile.EnvVarSource{FieldRef: &reconcile.ObjectFieldSelector{FieldPath: "status.podIP"}}},
			{Name: "APP", ValueFrom: &reconcile.EnvVarSource{FieldRef: &reconcile.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "PW", ValueFrom: &reconcile.EnvVarSource{SecretKeyRef: &reconcile.KeySelector{Name: "s", Key: "pw"}}},
			{Name: "OPT", ValueFrom: &reconcile.EnvVarSource{SecretKeyRef: &reconcile.KeySelector{Name: "s", Key: "nope", Optional: &yes}}},
			{Name: "CM_K", Value: "override $(CM_K)"},
			{Name: "SELF", Value: "$(URL)"},
		},
	}
	got, err := podspec.ContainerEnv(podspec.EnvInput{Pod: pod, Container: c, PodIP: "10.0.0.9", HostIP: "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CM_K=override v", "CM_PORT=80",
		"URL=http://$(POD_IP):80/$(NODE)", // only names defined before
		"NODE=node-1", "POD_IP=10.0.0.9", "APP=web", "PW=hunter2",
		"SELF=http://$(POD_IP):80/$(NODE)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	c.Env = []reconcile.EnvVar{{Name: "X", ValueFrom: &reconcile.EnvVarSource{ConfigMapKeyRef: &reconcile.KeySelector{Name: "cm", Key: "missing"}}}}
	if _, err := podspec.ContainerEnv(podspec.EnvInput{Pod: pod, Container: c}); err == nil {
		t.Errorf("a missing required key: want an error")
	}
}

func TestVolumeFiles(t *testing.T) {
	mode := int32(0o400)
	yes := true
	pod := &reconcile.DesiredPod{
		ID:         reconcile.PodID{Namespace: "ns", Name: "p"},
		Labels:     map[string]string{"b": "2", "a": "1"},
		ConfigMaps: map[string]*reconcile.ConfigMapData{"cm": {Data: map[string]string{"k1": "v1", "k2": "v2"}, BinaryData: map[string][]byte{"bin": {0, 1}}}},
		Secrets:    map[string]*reconcile.SecretData{"s": {Data: map[string][]byte{"user": []byte("admin")}}},
	}
	for _, tc := range []struct {
		name    string
		v       reconcile.Volume
		want    []podspec.VolumeFile
		wantErr bool
	}{
		{name: "configMap all keys", v: reconcile.Volume{ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "cm"}}, want: []podspec.VolumeFile{
			{Path: "bin", Data: []byte{0, 1}, Mode: 0o644}, {Path: "k1", Data: []byte("v1"), Mode: 0o644}, {Path: "k2", Data: []byte("v2"), Mode: 0o644}}},
		{name: "configMap items with mode", v: reconcile.Volume{ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "cm", DefaultMode: &mode,
			Items: []reconcile.KeyToPath{{Key: "k1", Path: "dir/one"}}}}, want: []podspec.VolumeFile{{Path: "dir/one", Data: []byte("v1"), Mode: 0o400}}},
		{name: "missing optional secret", v: reconcile.Volume{Secret: &reconcile.SecretVolumeSource{SecretName: "absent", Optional: &yes}}},
		{name: "missing secret", v: reconcile.Volume{Secret: &reconcile.SecretVolumeSource{SecretName: "absent"}}, wantErr: true},
		{name: "missing key", v: reconcile.Volume{ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "cm", Items: []reconcile.KeyToPath{{Key: "zz", Path: "z"}}}}, wantErr: true},
		{name: "escaping path", v: reconcile.Volume{ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "cm", Items: []reconcile.KeyToPath{{Key: "k1", Path: "../x"}}}}, wantErr: true},
		{name: "projected", v: reconcile.Volume{Projected: &reconcile.ProjectedVolumeSource{Sources: []reconcile.VolumeProjection{
			{Secret: &reconcile.SecretProjection{Name: "s"}},
			{DownwardAPI: &reconcile.DownwardAPIProjection{Items: []reconcile.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &reconcile.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}},
		}}}, want: []podspec.VolumeFile{{Path: "labels", Data: []byte("a=\"1\"\nb=\"2\""), Mode: 0o644}, {Path: "user", Data: []byte("admin"), Mode: 0o644}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := podspec.VolumeFiles(pod, tc.v, podspec.Capacity{CPUs: 2, Memory: 1 << 30})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
