package containerd_test

import (
	"context"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/runtimetest"
)

func TestPullFromLoopbackRegistry(t *testing.T) {
	reg := testenv.Registry(t)
	ref := reg + "/berth/busybox:1"

	// Push the busybox image from a scratch namespace.
	src := testenv.Namespace(t, ctrd)
	testenv.BusyboxImage(t, ctrd, src, ref)
	cl, err := ctrd.Client(src)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sctx := namespaces.WithNamespace(ctx(t), src)
	img, err := cl.GetImage(sctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost))})
	if err := cl.Push(sctx, ref, img.Target(), client.WithResolver(resolver)); err != nil {
		t.Fatalf("push to %s: %v", ref, err)
	}

	rt, e := newRuntime(t)
	if err := rt.EnsureImage(ctx(t), ref, reconcile.PullNever); err == nil {
		t.Errorf("EnsureImage(Never) of an image only in the registry succeeded")
	}
	if err := rt.EnsureImage(ctx(t), ref, reconcile.PullIfNotPresent); err != nil {
		t.Fatalf("EnsureImage(IfNotPresent) pull over plain HTTP: %v", err)
	}
	if err := rt.EnsureImage(ctx(t), ref, reconcile.PullNever); err != nil {
		t.Errorf("EnsureImage(Never) after the pull: %v", err)
	}
	if err := rt.EnsureImage(ctx(t), ref, reconcile.PullAlways); err != nil {
		t.Errorf("EnsureImage(Always): %v", err)
	}
	pulled, err := rt.Client().GetImage(namespaces.WithNamespace(context.Background(), e.ns), ref)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := pulled.IsUnpacked(ctx(t), "overlayfs"); err != nil || !ok {
		t.Errorf("pulled image unpacked = %v, %v", ok, err)
	}
	pod := runtimetest.NewPod("pulled", runtimetest.Exiter("main", ref, "4"))
	runtimetest.Up(t, rt, pod)
	if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 4 {
		t.Errorf("container from the pulled image: %d, %v", code, err)
	}
}
