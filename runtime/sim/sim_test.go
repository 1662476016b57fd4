package sim

import (
	"context"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
)

// TestRunsAndFails checks what the benchmark relies on: any image pulls,
// a pod runs until removed, and `exit N` exits with N.
func TestRunsAndFails(t *testing.T) {
	ctx := context.Background()
	rt := New()
	if err := rt.EnsureImage(ctx, "example.local/anything:1", reconcile.PullIfNotPresent); err != nil {
		t.Fatal(err)
	}
	pods, err := reconcile.Expand([]reconcile.Object{{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: reconcile.ObjectMeta{Name: "bad", Namespace: "default"},
		Pod: &reconcile.PodSpec{Containers: []reconcile.Container{{Name: "main", Image: "example.local/anything:1",
			Command: []string{"sh", "-c", "exit 7"}}}},
	}}, "c1", reconcile.ExpandOptions{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.CreateSandbox(ctx, &pods[0]); err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, &pods[0], reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if code, err := rt.WaitContainer(wctx, pods[0].ID, reconcile.AppContainer, "main"); err != nil || code != 7 {
		t.Fatalf("exit %d, %v; want 7", code, err)
	}
	if err := rt.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
