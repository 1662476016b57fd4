package manager_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	fx "berth.dev/berth/reconcile/reconciletest"
	"berth.dev/berth/runtime/fake"
)

// One-shot apply (berth apply): the engine run until the host converges.

func planOf(t *testing.T, rev string, objs []reconcile.Object, observed []reconcile.ObservedPod) *reconcile.Plan {
	t.Helper()
	return reconcile.MakePlan(reconcile.Input{Revision: rev, Objects: objs, Pods: fx.Expand(t, rev, objs...), Observed: observed})
}

// converge applies objs at rev on rt with the one engine, as berth apply
// does, and fails the test unless the host converges.
func converge(t *testing.T, rt reconcile.Runtime, rev string, objs ...reconcile.Object) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return manager.Converge(ctx, rt, rev, objs, nil, manager.Options{StateDir: t.TempDir()})
}

func TestApplyThenNoChangeTouchesNothing(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(fx.Img)
	objs := []reconcile.Object{fx.PodObj("web", "3600"), fx.PodObj("db", "3600")}
	if err := converge(t, rt, "r1", objs...); err != nil {
		t.Fatal(err)
	}
	rt.ResetCalls()
	obs, _ := rt.List(ctx)
	// A new revision that does not change the pods keeps them.
	p2 := planOf(t, "r2", objs, obs)
	if p2.HasChanges() {
		t.Fatalf("plan has changes:\n%s", p2.Summary())
	}
	if err := converge(t, rt, "r2", objs...); err != nil {
		t.Fatal(err)
	}
	if m := rt.MutatingCalls(); len(m) != 0 {
		t.Errorf("no-change apply made mutating calls: %v", m)
	}
}

func TestApplyReplaceRemovesThenStarts(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(fx.Img)
	if err := converge(t, rt, "r1", fx.PodObj("web", "1"), fx.PodObj("db", "1")); err != nil {
		t.Fatal(err)
	}
	rt.ResetCalls()
	if err := converge(t, rt, "r2", fx.PodObj("web", "2"), fx.PodObj("db", "1")); err != nil {
		t.Fatal(err)
	}
	want := []string{"RemovePod default/web", "CreateSandbox default/web", "StartContainer default/web/main"}
	if diff := cmp.Diff(want, rt.MutatingCalls()); diff != "" {
		t.Errorf("mutating calls (-want +got):\n%s", diff)
	}
	obs, _ := rt.List(ctx)
	if p := planOf(t, "r2", []reconcile.Object{fx.PodObj("web", "2"), fx.PodObj("db", "1")}, obs); p.HasChanges() {
		t.Errorf("after apply, the plan still has changes:\n%s", p.Summary())
	}
}

func TestApplyInitOrder(t *testing.T) {
	rt := fake.New(fx.Img)
	o := fx.PodObj("web", "1")
	o.Pod.InitContainers = []reconcile.Container{
		{Name: "one", Image: fx.Img, Command: []string{"true"}},
		{Name: "two", Image: fx.Img, Command: []string{"sh", "-c", "exit 0"}},
	}
	if err := converge(t, rt, "r1", o); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rt.MutatingCalls() {
		if strings.HasPrefix(c, "StartContainer") || strings.HasPrefix(c, "CreateSandbox") {
			got = append(got, c)
		}
	}
	want := []string{
		"CreateSandbox default/web",
		"StartContainer default/web/one",
		"StartContainer default/web/two",
		"StartContainer default/web/main",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestApplyOneFailureDoesNotStopOthers(t *testing.T) {
	ctx := context.Background()
	rt := fake.New(fx.Img)
	rt.Fail = func(call, subject string) error {
		if call == "CreateSandbox" && subject == "default/bad" {
			return errors.New("boom")
		}
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := manager.Converge(tctx, rt, "r1", []reconcile.Object{fx.PodObj("bad"), fx.PodObj("good1"), fx.PodObj("good2")}, nil,
		manager.Options{StateDir: t.TempDir()})
	var pe *manager.PendingError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "default/bad") {
		t.Fatalf("err = %v, want the bad pod pending", err)
	}
	obs, _ := rt.List(ctx)
	var names []string
	for _, o := range obs {
		if o.SandboxReady {
			names = append(names, o.ID.Name)
		}
	}
	if diff := cmp.Diff([]string{"good1", "good2"}, names); diff != "" {
		t.Errorf("running pods (-want +got):\n%s", diff)
	}
}

// TestFakeRuntimeResolvesKubernetesEnv: the Kubernetes meaning of a
// container (env order, $(VAR), the downward API) is resolved outside the
// containerd adapter (reconcile/podspec), so the fake runtime the engine's
// tests use gives containers the environment real ones get.
func TestFakeRuntimeResolvesKubernetesEnv(t *testing.T) {
	rt := fake.New(fx.Img)
	o := fx.PodObj("web", "1d")
	o.Pod.Containers[0].Env = []reconcile.EnvVar{
		{Name: "A", Value: "1"},
		{Name: "B", Value: "$(A)-x-$(MISSING)-$$(A)"},
		{Name: "POD", ValueFrom: &reconcile.EnvVarSource{FieldRef: &reconcile.ObjectFieldSelector{FieldPath: "metadata.name"}}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := manager.Converge(ctx, rt, "r1", []reconcile.Object{o}, nil, manager.Options{StateDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	env, ok := rt.Env(reconcile.PodID{Namespace: "default", Name: "web"}, reconcile.AppContainer, "main")
	if !ok {
		t.Fatal("the container was not started")
	}
	want := []string{"A=1", "B=1-x-$(MISSING)-$(A)", "POD=web"}
	if diff := cmp.Diff(want, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}
