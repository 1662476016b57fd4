package testenv_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"berth.dev/berth/internal/testenv"
)

func TestBusyboxArchiveIsStable(t *testing.T) {
	a, err := testenv.BusyboxArchive("example.local/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := testenv.BusyboxArchive("example.local/busybox:1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("archive differs between calls")
	}
}

func TestContainerdImportAndNamespaceCleanup(t *testing.T) {
	c := testenv.NewContainerd(t)
	ns := testenv.Namespace(t, c)
	testenv.BusyboxImage(t, c, ns, "example.local/busybox:1")
	cl, err := c.Client(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := namespaces.WithNamespace(context.Background(), ns)
	img, err := cl.GetImage(ctx, "example.local/busybox:1")
	if err != nil {
		t.Fatalf("imported image: %v", err)
	}
	if ok, err := img.IsUnpacked(ctx, testenv.Snapshotter); err != nil || !ok {
		t.Errorf("image unpacked = %v, %v", ok, err)
	}
	net := testenv.Network(t)
	if net.Name == "" || net.Bridge == "" || net.Subnet == "" {
		t.Errorf("network %+v", net)
	}
	if other := testenv.Network(t); other == net {
		t.Errorf("two networks of one test are the same: %+v", net)
	}
}
