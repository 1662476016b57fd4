package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
)

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// Namespace returns a new containerd namespace name for the test, unique
// and containing "test". When the test ends the namespace is emptied and
// deleted: images are removed; containers, tasks, leases and snapshots that
// are still there are reported as test errors (a leak) and then removed, so
// the daemon is clean for the next test.
func Namespace(tb testing.TB, c *Containerd) string {
	tb.Helper()
	skipShort(tb)
	var r [4]byte
	_, _ = rand.Read(r[:])
	name := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(tb.Name()), "-"), "-")
	if len(name) > 40 {
		name = name[:40]
	}
	ns := strings.Trim("test-"+name, "-") + "-" + hex.EncodeToString(r[:])
	tb.Cleanup(func() {
		if err := cleanNamespace(c.Address(), ns); err != nil {
			tb.Errorf("testenv: namespace %s: %v", ns, err)
		}
		// runc's state directory of the namespace, empty by now.
		_ = os.Remove(filepath.Join("/run/containerd/runc", ns))
	})
	return ns
}

// cleanNamespace removes everything in ns and the namespace itself. It
// returns an error naming the containers, leases and snapshots it found.
func cleanNamespace(address, ns string) error {
	cl, err := client.New(address)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, ns)
	var leaked []string

	ctrs, err := cl.Containers(ctx)
	if err != nil {
		return err
	}
	for _, ctr := range ctrs {
		leaked = append(leaked, "container "+ctr.ID())
		if task, err := ctr.Task(ctx, nil); err == nil {
			_, _ = task.Delete(ctx, client.WithProcessKill)
		}
		_ = ctr.Delete(ctx, client.WithSnapshotCleanup)
	}
	ls, err := cl.LeasesService().List(ctx)
	if err != nil {
		return err
	}
	for _, l := range ls {
		leaked = append(leaked, "lease "+l.ID)
		_ = cl.LeasesService().Delete(ctx, l, leases.SynchronousDelete)
	}
	is := cl.ImageService()
	imgs, err := is.List(ctx)
	if err != nil {
		return err
	}
	for i, img := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := is.Delete(ctx, img.Name, opts...); err != nil {
			return fmt.Errorf("delete image %s: %w", img.Name, err)
		}
	}
	// Snapshots left now are not held by any image, container or lease.
	sn := cl.SnapshotService(Snapshotter)
	var snaps []string
	_ = sn.Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		snaps = append(snaps, info.Name)
		return nil
	})
	for _, s := range snaps {
		leaked = append(leaked, "snapshot "+s)
		_ = sn.Remove(ctx, s)
	}
	var nsErr error
	for range 20 {
		if nsErr = cl.NamespaceService().Delete(ctx, ns); nsErr == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// runc's cgroupfs driver leaves the per-namespace parent cgroups.
	if dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns); len(dirs) > 0 {
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	}
	if len(leaked) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(leaked, ", "))
	}
	if nsErr != nil {
		return fmt.Errorf("delete namespace: %w", nsErr)
	}
	return nil
}
