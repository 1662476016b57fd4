package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
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
		// runc's state directory of the namespace: its tasks are deleted by
		// now, but a runc killed in the middle of a create leaves its
		// container's directory.
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", ns))
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
	// runc's cgroupfs driver leaves the per-namespace parent cgroups, and
	// a runc killed in the middle of a create (the fault tests) leaves
	// its container's cgroup below it: remove them deepest first. rmdir
	// removes only a cgroup with no process and no child in it.
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
	for _, d := range dirs {
		removeCgroupTree(d)
	}
	if len(leaked) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(leaked, ", "))
	}
	if nsErr != nil {
		return fmt.Errorf("delete namespace: %w", nsErr)
	}
	return nil
}

// removeCgroupTree removes the cgroup at dir and the cgroups below it,
// children before parents; a cgroup that still has a process stays, and
// so does every parent of it.
func removeCgroupTree(dir string) {
	var sub []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			sub = append(sub, p)
		}
		return nil
	})
	for i := len(sub) - 1; i >= 0; i-- {
		_ = os.Remove(sub[i])
	}
}
