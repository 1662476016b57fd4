package reconcile_test

import (
	fx "berth.dev/berth/reconcile/reconciletest"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

// planFor plans objs at rev against observed, as every entry point does.
func planFor(t *testing.T, rev string, objs []reconcile.Object, observed []reconcile.ObservedPod) *reconcile.Plan {
	t.Helper()
	return reconcile.MakePlan(reconcile.Input{Revision: rev, Objects: objs, Pods: fx.Expand(t, rev, objs...), Observed: observed})
}

// golden compares got with testdata/plan/NAME.golden; BERTH_UPDATE=1
// rewrites the file.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("..", "testdata", "plan", name+".golden")
	if os.Getenv("BERTH_UPDATE") != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with BERTH_UPDATE=1 to create)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func planText(t *testing.T, p *reconcile.Plan) string {
	t.Helper()
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPlanGolden(t *testing.T) {
	ctx := context.Background()
	base := []reconcile.Object{fx.PodObj("web", "3600"), fx.PodObj("db", "3600"), fx.PodObj("cache", "3600")}

	tests := []struct {
		name    string
		head    []reconcile.Object
		mangle  func(rt *fake.Runtime)
		changes bool
	}{
		{name: "nochange", head: base},
		{name: "args-changed", head: []reconcile.Object{fx.PodObj("web", "7200"), fx.PodObj("db", "3600"), fx.PodObj("cache", "3600")}, changes: true},
		{name: "deleted", head: []reconcile.Object{fx.PodObj("web", "3600"), fx.PodObj("cache", "3600")}, changes: true},
		{name: "added", head: append(append([]reconcile.Object(nil), base...), fx.PodObj("queue", "1")), changes: true},
		{name: "container-killed-stays", head: base, mangle: func(rt *fake.Runtime) {
			if err := rt.Kill(reconcile.PodID{Namespace: "default", Name: "db"}, reconcile.AppContainer, "main", 137); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := fake.New(fx.Img)
			fx.Start(t, rt, fx.Expand(t, "rev1", base...))
			if tt.mangle != nil {
				tt.mangle(rt)
			}
			obs, err := rt.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p := planFor(t, "rev2", tt.head, obs)
			if p.HasChanges() != tt.changes {
				t.Errorf("HasChanges = %v, want %v", p.HasChanges(), tt.changes)
			}
			golden(t, tt.name, planText(t, p))
		})
	}
}

func TestPlanCreateFromNothing(t *testing.T) {
	p := planFor(t, "abc", []reconcile.Object{fx.PodObj("b"), fx.PodObj("a")}, nil)
	golden(t, "create", planText(t, p))
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "create.json", b.String())
}

func TestPlanRetriesIncompletePod(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(fx.Img)
	o := fx.PodObj("web", "1")
	pods := fx.Expand(t, "r1", o)
	// A create cut short: the sandbox exists, the app container does not.
	if err := rt.CreateSandbox(ctx, &pods[0]); err != nil {
		t.Fatal(err)
	}
	obs, _ := rt.List(ctx)
	p := planFor(t, "r1", []reconcile.Object{o}, obs)
	if got := p.Changes[0]; got.Action != reconcile.ActionReplace || !strings.Contains(got.Reason, "missing") {
		t.Errorf("change = %v", got)
	}
}

func TestHashIgnoresRevisionAndDefaults(t *testing.T) {
	a := fx.PodObj("web", "1")
	b := fx.PodObj("web", "1")
	g := int64(30)
	b.Pod.RestartPolicy = reconcile.RestartAlways
	b.Pod.TerminationGracePeriodSeconds = &g
	b.Pod.Containers[0].ImagePullPolicy = reconcile.PullIfNotPresent
	b.Pod.Containers[0].Env = []reconcile.EnvVar{}
	pa := fx.Expand(t, "rev-a", a)
	pb := fx.Expand(t, "rev-b", b)
	if pa[0].Hash != pb[0].Hash {
		t.Errorf("hash differs for equal specs: %s vs %s", pa[0].Hash, pb[0].Hash)
	}
	c := fx.PodObj("web", "1")
	c.Pod.Containers[0].Env = []reconcile.EnvVar{{Name: "X", Value: "1"}}
	if pc := fx.Expand(t, "rev-a", c); pc[0].Hash == pa[0].Hash {
		t.Error("hash did not change with env")
	}
	d := fx.PodObj("web", "1")
	d.Metadata.Labels["tier"] = "front"
	if pd := fx.Expand(t, "rev-a", d); pd[0].Hash == pa[0].Hash {
		t.Error("hash did not change with labels")
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]string{
		"busybox":                      reconcile.PullAlways,
		"busybox:latest":               reconcile.PullAlways,
		"busybox:1.36":                 reconcile.PullIfNotPresent,
		"localhost:5000/busybox":       reconcile.PullAlways,
		"localhost:5000/busybox:1":     reconcile.PullIfNotPresent,
		"busybox@sha256:0123456789abc": reconcile.PullIfNotPresent,
	} {
		if got := reconcile.DefaultPullPolicy(image); got != want {
			t.Errorf("DefaultPullPolicy(%q) = %s, want %s", image, got, want)
		}
	}
}

func TestExpandRejectsDuplicatePod(t *testing.T) {
	_, err := reconcile.Expand([]reconcile.Object{fx.PodObj("web"), fx.PodObj("web")}, "r", reconcile.ExpandOptions{})
	if err == nil || !strings.Contains(err.Error(), "declared by both") {
		t.Fatalf("err = %v", err)
	}
}

func TestConfigChangeRollsExactlyItsPods(t *testing.T) {
	withVolume := fx.PodObj("uses-cm", "1")
	withVolume.Pod.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "app"}}}
	withEnv := fx.PodObj("uses-secret", "1")
	withEnv.Pod.Containers[0].Env = []reconcile.EnvVar{{Name: "PW", ValueFrom: &reconcile.EnvVarSource{
		SecretKeyRef: &reconcile.KeySelector{Name: "db", Key: "password"}}}}
	plain := fx.PodObj("plain", "1")

	hashes := func(cm, secret string) map[string]string {
		pods := fx.Expand(t, "r", withVolume, withEnv, plain, fx.ConfigMapObj("app", cm), fx.SecretObj("db", secret))
		out := map[string]string{}
		for _, p := range pods {
			out[p.ID.Name] = p.Hash
		}
		return out
	}
	base := hashes("a", "s1")
	cmChanged := hashes("b", "s1")
	secretChanged := hashes("a", "s2")
	if cmChanged["uses-cm"] == base["uses-cm"] || cmChanged["uses-secret"] != base["uses-secret"] || cmChanged["plain"] != base["plain"] {
		t.Errorf("ConfigMap change: %v → %v", base, cmChanged)
	}
	if secretChanged["uses-secret"] == base["uses-secret"] || secretChanged["uses-cm"] != base["uses-cm"] || secretChanged["plain"] != base["plain"] {
		t.Errorf("Secret change: %v → %v", base, secretChanged)
	}
}

func TestMissingConfigMapIsAnError(t *testing.T) {
	o := fx.PodObj("web", "1")
	o.Pod.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "nope"}}}
	if _, err := reconcile.Expand([]reconcile.Object{o}, "r", reconcile.ExpandOptions{}); err == nil || !strings.Contains(err.Error(), `ConfigMap "nope"`) {
		t.Fatalf("err = %v", err)
	}
	yes := true
	o.Pod.Volumes[0].ConfigMap.Optional = &yes
	if _, err := reconcile.Expand([]reconcile.Object{o}, "r", reconcile.ExpandOptions{}); err != nil {
		t.Fatalf("optional missing ConfigMap: %v", err)
	}
}
