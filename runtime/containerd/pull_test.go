package containerd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
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
	// By digest: the same content, pinned.
	byDigest := reg + "/berth/busybox@" + pulled.Target().Digest.String()
	if err := rt.EnsureImage(ctx(t), byDigest, reconcile.PullIfNotPresent); err != nil {
		t.Errorf("EnsureImage by digest: %v", err)
	}
	if err := rt.EnsureImage(ctx(t), reg+"/berth/busybox@sha256:"+strings.Repeat("0", 64), reconcile.PullIfNotPresent); !errors.Is(err, reconcile.ErrImagePull) {
		t.Errorf("EnsureImage of a digest the registry lacks: %v, want ErrImagePull", err)
	}
	pod := runtimetest.NewPod("pulled", runtimetest.Exiter("main", ref, "4"))
	runtimetest.Up(t, rt, pod)
	if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 4 {
		t.Errorf("container from the pulled image: %d, %v", code, err)
	}
}

// pushBusybox pushes the test busybox image to ref, authenticating with
// user and password when given.
func pushBusybox(t *testing.T, ref, user, password string) {
	t.Helper()
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
	auth := docker.NewDockerAuthorizer(docker.WithAuthCreds(func(string) (string, string, error) { return user, password, nil }))
	resolver := docker.NewResolver(docker.ResolverOptions{Hosts: docker.ConfigureDefaultRegistries(
		docker.WithPlainHTTP(docker.MatchLocalhost), docker.WithAuthorizer(auth))})
	if err := cl.Push(sctx, ref, img.Target(), client.WithResolver(resolver)); err != nil {
		t.Fatalf("push to %s: %v", ref, err)
	}
}

func dockerConfig(host, user, password string) []byte {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return []byte(`{"auths": {"http://` + host + `": {"auth": "` + auth + `"}}}`)
}

func TestPullWithBasicAuth(t *testing.T) {
	reg := testenv.RegistryWithAuth(t, "berth", "s3cret pass")
	ref := reg + "/private/busybox:1"
	pushBusybox(t, ref, "berth", "s3cret pass")

	t.Run("anonymous is refused", func(t *testing.T) {
		rt, _ := newRuntime(t, func(o *containerd.Options) { o.Registry.AuthFile = emptyAuth(t) })
		err := rt.EnsureImage(ctx(t), ref, reconcile.PullIfNotPresent)
		if !errors.Is(err, reconcile.ErrImagePull) {
			t.Errorf("anonymous pull from an htpasswd registry: %v, want ErrImagePull", err)
		}
	})
	t.Run("node config.json", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "config.json")
		if err := os.WriteFile(file, dockerConfig(reg, "berth", "s3cret pass"), 0o600); err != nil {
			t.Fatal(err)
		}
		rt, e := newRuntime(t, func(o *containerd.Options) { o.Registry.AuthFile = file })
		pod := runtimetest.NewPod("authed", runtimetest.Exiter("main", ref, "6"))
		upChecked(t, rt, e, pod)
		if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 6 {
			t.Errorf("container from the private image: %d, %v", code, err)
		}
	})
	t.Run("imagePullSecrets", func(t *testing.T) {
		rt, _ := newRuntime(t, func(o *containerd.Options) { o.Registry.AuthFile = emptyAuth(t) })
		pod := runtimetest.NewPod("secret-pull", runtimetest.Exiter("main", ref, "0"))
		pod.Spec.ImagePullSecrets = []reconcile.LocalObjectRef{{Name: "regcred"}}
		pod.Secrets = map[string]*reconcile.SecretData{"regcred": {Type: "kubernetes.io/dockerconfigjson",
			Data: map[string][]byte{".dockerconfigjson": dockerConfig(reg, "berth", "wrong")}}}
		if err := reconcile.EnsurePodImage(ctx(t), rt, pod, ref, reconcile.PullIfNotPresent); !errors.Is(err, reconcile.ErrImagePull) {
			t.Errorf("pull with a wrong password: %v, want ErrImagePull", err)
		}
		pod.Secrets["regcred"].Data[".dockerconfigjson"] = dockerConfig(reg, "berth", "s3cret pass")
		if err := reconcile.EnsurePodImage(ctx(t), rt, pod, ref, reconcile.PullIfNotPresent); err != nil {
			t.Errorf("pull with the pod's imagePullSecret: %v", err)
		}
	})
}

func TestPullThroughMirror(t *testing.T) {
	reg := testenv.Registry(t)
	pushBusybox(t, reg+"/berth/busybox:1", "", "")
	// The registry named in the image does not exist; its mirror has it.
	ref := "registry.invalid/berth/busybox:1"
	rt, e := newRuntime(t, func(o *containerd.Options) {
		o.Registry.Mirrors = map[string][]string{"registry.invalid": {"http://" + reg}}
	})
	pod := runtimetest.NewPod("mirrored", runtimetest.Exiter("main", ref, "2"))
	upChecked(t, rt, e, pod)
	if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 2 {
		t.Errorf("container from the mirrored image: %d, %v", code, err)
	}
}

func TestImportArchives(t *testing.T) {
	rt, e := newRuntime(t)
	oci, err := testenv.BusyboxArchive("example.local/imported-oci:1")
	if err != nil {
		t.Fatal(err)
	}
	dockerTar, err := testenv.DockerArchive("example.local/imported-docker:1")
	if err != nil {
		t.Fatal(err)
	}
	for ref, archive := range map[string][]byte{"example.local/imported-oci:1": oci, "example.local/imported-docker:1": dockerTar} {
		names, err := rt.ImportImages(ctx(t), bytes.NewReader(archive))
		if err != nil || len(names) != 1 || names[0] != ref {
			t.Fatalf("ImportImages(%s) = %v, %v", ref, names, err)
		}
		if err := rt.EnsureImage(ctx(t), ref, reconcile.PullNever); err != nil {
			t.Errorf("imported image %s not usable with PullNever: %v", ref, err)
		}
	}
	pod := runtimetest.NewPod("imported", runtimetest.Exiter("main", "example.local/imported-docker:1", "9"))
	pod.Spec.Containers[0].ImagePullPolicy = reconcile.PullNever
	upChecked(t, rt, e, pod)
	if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 9 {
		t.Errorf("container from the imported docker archive: %d, %v", code, err)
	}
}

// emptyAuth is a docker config.json with no credentials, so the tests do
// not depend on the caller's ~/.docker.
func emptyAuth(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPullWithTokenAuth(t *testing.T) {
	reg := testenv.RegistryWithTokenAuth(t, "berth", "t0ken pass")
	ref := reg + "/private/busybox:1"
	pushBusybox(t, ref, "berth", "t0ken pass")

	anon, _ := newRuntime(t)
	if err := anon.EnsureImage(ctx(t), ref, reconcile.PullIfNotPresent); !errors.Is(err, reconcile.ErrImagePull) {
		t.Errorf("anonymous pull from a token-auth registry: %v, want ErrImagePull", err)
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, dockerConfig(reg, "berth", "t0ken pass"), 0o600); err != nil {
		t.Fatal(err)
	}
	rt, _ := newRuntime(t, func(o *containerd.Options) { o.Registry.AuthFile = file })
	if err := rt.EnsureImage(ctx(t), ref, reconcile.PullIfNotPresent); err != nil {
		t.Errorf("pull with a token obtained with the node's credentials: %v", err)
	}
}
