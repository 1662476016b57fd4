package reconcile_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

const img = "example.local/busybox:1"

func podObj(name string, args ...string) reconcile.Object {
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": name}},
		Source:   reconcile.Position{File: "./" + name + ".yaml", Line: 1, Column: 1},
		Pod: &reconcile.PodSpec{Containers: []reconcile.Container{
			{Name: "main", Image: img, Command: []string{"sleep"}, Args: args},
		}},
	}
}

func expand(t *testing.T, rev string, objs ...reconcile.Object) []reconcile.DesiredPod {
	t.Helper()
	pods, err := reconcile.Expand(objs, rev, reconcile.ExpandOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pods
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
	base := []reconcile.Object{podObj("web", "3600"), podObj("db", "3600"), podObj("cache", "3600")}

	tests := []struct {
		name    string
		head    []reconcile.Object
		mangle  func(rt *fake.Runtime)
		changes bool
	}{
		{name: "nochange", head: base},
		{name: "args-changed", head: []reconcile.Object{podObj("web", "7200"), podObj("db", "3600"), podObj("cache", "3600")}, changes: true},
		{name: "deleted", head: []reconcile.Object{podObj("web", "3600"), podObj("cache", "3600")}, changes: true},
		{name: "added", head: append(append([]reconcile.Object(nil), base...), podObj("queue", "1")), changes: true},
		{name: "container-killed-stays", head: base, mangle: func(rt *fake.Runtime) {
			if err := rt.Kill(reconcile.PodID{Namespace: "default", Name: "db"}, reconcile.AppContainer, "main", 137); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := fake.New(img)
			first := reconcile.MakePlan("rev1", expand(t, "rev1", base...), nil)
			if err := reconcile.Apply(ctx, rt, first, reconcile.ApplyOptions{}).Err(); err != nil {
				t.Fatal(err)
			}
			if tt.mangle != nil {
				tt.mangle(rt)
			}
			obs, err := rt.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			p := reconcile.MakePlan("rev2", expand(t, "rev2", tt.head...), obs)
			if p.HasChanges() != tt.changes {
				t.Errorf("HasChanges = %v, want %v", p.HasChanges(), tt.changes)
			}
			golden(t, tt.name, planText(t, p))
		})
	}
}

func TestPlanCreateFromNothing(t *testing.T) {
	p := reconcile.MakePlan("abc", expand(t, "abc", podObj("b"), podObj("a")), nil)
	golden(t, "create", planText(t, p))
	var b bytes.Buffer
	if err := p.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	golden(t, "create.json", b.String())
}

func TestApplyThenNoChangeTouchesNothing(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(img)
	objs := []reconcile.Object{podObj("web", "3600"), podObj("db", "3600")}
	p := reconcile.MakePlan("r1", expand(t, "r1", objs...), nil)
	if err := reconcile.Apply(ctx, rt, p, reconcile.ApplyOptions{}).Err(); err != nil {
		t.Fatal(err)
	}
	rt.ResetCalls()
	obs, _ := rt.List(ctx)
	// A new revision that does not change the pods keeps them.
	p2 := reconcile.MakePlan("r2", expand(t, "r2", objs...), obs)
	if p2.HasChanges() {
		t.Fatalf("plan has changes:\n%s", planText(t, p2))
	}
	if err := reconcile.Apply(ctx, rt, p2, reconcile.ApplyOptions{}).Err(); err != nil {
		t.Fatal(err)
	}
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Errorf("no-change apply made mutating calls: %v", m)
	}
}

func TestApplyReplaceRemovesThenStarts(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(img)
	p := reconcile.MakePlan("r1", expand(t, "r1", podObj("web", "1"), podObj("db", "1")), nil)
	if err := reconcile.Apply(ctx, rt, p, reconcile.ApplyOptions{}).Err(); err != nil {
		t.Fatal(err)
	}
	obs, _ := rt.List(ctx)
	rt.ResetCalls()
	p2 := reconcile.MakePlan("r2", expand(t, "r2", podObj("web", "2"), podObj("db", "1")), obs)
	if err := reconcile.Apply(ctx, rt, p2, reconcile.ApplyOptions{}).Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"RemovePod default/web", "CreateSandbox default/web", "StartContainer default/web/main"}
	if diff := cmp.Diff(want, rt.MutatingCalls()); diff != "" {
		t.Errorf("mutating calls (-want +got):\n%s", diff)
	}
}

func TestStartPodInitOrder(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(img)
	o := podObj("web", "1")
	o.Pod.InitContainers = []reconcile.Container{
		{Name: "one", Image: img, Command: []string{"true"}},
		{Name: "two", Image: img, Command: []string{"sh", "-c", "exit 0"}},
	}
	pods := expand(t, "r1", o)
	if err := reconcile.StartPod(ctx, rt, &pods[0]); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rt.Calls() {
		if strings.HasPrefix(c, "StartContainer") || strings.HasPrefix(c, "WaitContainer") || strings.HasPrefix(c, "CreateSandbox") {
			got = append(got, c)
		}
	}
	want := []string{
		"CreateSandbox default/web",
		"StartContainer default/web/one", "WaitContainer default/web/one",
		"StartContainer default/web/two", "WaitContainer default/web/two",
		"StartContainer default/web/main",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestStartPodInitFailureStopsPod(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(img)
	o := podObj("web", "1")
	o.Pod.InitContainers = []reconcile.Container{{Name: "setup", Image: img, Command: []string{"sh", "-c", "exit 3"}}}
	pods := expand(t, "r1", o)
	err := reconcile.StartPod(ctx, rt, &pods[0])
	if err == nil || !strings.Contains(err.Error(), `init container "setup" exited with code 3`) {
		t.Fatalf("err = %v", err)
	}
	obs, _ := rt.List(ctx)
	if obs[0].Container(reconcile.AppContainer, "main") != nil {
		t.Error("app container started after a failed init container")
	}
	// The next plan retries the pod: its app containers are missing.
	p := reconcile.MakePlan("r1", pods, obs)
	if got := p.Changes[0]; got.Action != reconcile.ActionReplace || !strings.Contains(got.Reason, "missing") {
		t.Errorf("change = %v", got)
	}
}

func TestApplyOneFailureDoesNotStopOthers(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(img)
	rt.Fail = func(call, subject string) error {
		if call == "CreateSandbox" && subject == "default/bad" {
			return errors.New("boom")
		}
		return nil
	}
	p := reconcile.MakePlan("r1", expand(t, "r1", podObj("bad"), podObj("good1"), podObj("good2")), nil)
	res := reconcile.Apply(ctx, rt, p, reconcile.ApplyOptions{Workers: 1})
	err := res.Err()
	if err == nil || !strings.Contains(err.Error(), "create pod default/bad: create sandbox: boom") {
		t.Fatalf("err = %v", err)
	}
	obs, _ := rt.List(ctx)
	if len(obs) != 2 {
		t.Errorf("got %d pods, want the 2 good ones", len(obs))
	}
}

func TestHashIgnoresRevisionAndDefaults(t *testing.T) {
	a := podObj("web", "1")
	b := podObj("web", "1")
	g := int64(30)
	b.Pod.RestartPolicy = reconcile.RestartAlways
	b.Pod.TerminationGracePeriodSeconds = &g
	b.Pod.Containers[0].ImagePullPolicy = reconcile.PullIfNotPresent
	b.Pod.Containers[0].Env = []reconcile.EnvVar{}
	pa := expand(t, "rev-a", a)
	pb := expand(t, "rev-b", b)
	if pa[0].Hash != pb[0].Hash {
		t.Errorf("hash differs for equal specs: %s vs %s", pa[0].Hash, pb[0].Hash)
	}
	c := podObj("web", "1")
	c.Pod.Containers[0].Env = []reconcile.EnvVar{{Name: "X", Value: "1"}}
	if pc := expand(t, "rev-a", c); pc[0].Hash == pa[0].Hash {
		t.Error("hash did not change with env")
	}
	d := podObj("web", "1")
	d.Metadata.Labels["tier"] = "front"
	if pd := expand(t, "rev-a", d); pd[0].Hash == pa[0].Hash {
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
	_, err := reconcile.Expand([]reconcile.Object{podObj("web"), podObj("web")}, "r", reconcile.ExpandOptions{})
	if err == nil || !strings.Contains(err.Error(), "declared by both") {
		t.Fatalf("err = %v", err)
	}
}

func configMapObj(name, value string) reconcile.Object {
	return reconcile.Object{
		TypeMeta:  reconcile.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		Metadata:  reconcile.ObjectMeta{Name: name, Namespace: "default"},
		ConfigMap: &reconcile.ConfigMapData{Data: map[string]string{"key": value}},
	}
}

func secretObj(name, value string) reconcile.Object {
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default"},
		Secret:   &reconcile.SecretData{Type: "Opaque", Data: map[string][]byte{"password": []byte(value)}},
	}
}

func TestConfigChangeRollsExactlyItsPods(t *testing.T) {
	withVolume := podObj("uses-cm", "1")
	withVolume.Pod.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "app"}}}
	withEnv := podObj("uses-secret", "1")
	withEnv.Pod.Containers[0].Env = []reconcile.EnvVar{{Name: "PW", ValueFrom: &reconcile.EnvVarSource{
		SecretKeyRef: &reconcile.KeySelector{Name: "db", Key: "password"}}}}
	plain := podObj("plain", "1")

	hashes := func(cm, secret string) map[string]string {
		pods := expand(t, "r", withVolume, withEnv, plain, configMapObj("app", cm), secretObj("db", secret))
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
	o := podObj("web", "1")
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
