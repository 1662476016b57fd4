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
	"syscall"
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
		// A shim of the namespace still running has no task left in
		// containerd, but may still be creating one for a berth that was
		// killed (the fault tests), which would make runc state and
		// cgroups after this cleanup: it goes first.
		killShims(c.Address(), ns)
		// runc's state directory of the namespace: its tasks are deleted by
		// now, but a runc killed in the middle of a create leaves its
		// container's directory.
		_ = os.RemoveAll(filepath.Join("/run/containerd/runc", ns))
		// runc's cgroupfs driver leaves the per-namespace parent cgroups,
		// and a runc killed in the middle of a create leaves its
		// container's cgroup below it: remove them deepest first.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + ns)
		for _, d := range dirs {
			removeCgroupTree(d)
		}
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
	if len(leaked) > 0 {
		return fmt.Errorf("left behind: %s", strings.Join(leaked, ", "))
	}
	if nsErr != nil {
		return fmt.Errorf("delete namespace: %w", nsErr)
	}
	return nil
}

// killShims kills the shims of namespace ns of the containerd at address
// that still run (found by their command line), and waits until they are
// gone.
func killShims(address, ns string) {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var killed []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") ||
			!hasArgs(args, "-namespace", ns) || !hasArgs(args, "-address", address) {
			continue
		}
		var pid int
		if _, err := fmt.Sscan(filepath.Base(filepath.Dir(p)), &pid); err != nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "testenv: killing shim %d of namespace %s, still running after its tasks were deleted\n", pid, ns)
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, pid)
		}
	}
	waitGone(killed)
}

// hasArgs says whether args has flag followed by value.
func hasArgs(args []string, flag, value string) bool {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag && args[i+1] == value {
			return true
		}
	}
	return false
}

// waitGone waits, up to 2 s each, until the processes pids have exited
// (gone, or zombies of a parent that does not reap them).
func waitGone(pids []int) {
	for _, pid := range pids {
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// removeCgroupTree removes the cgroup at dir and the cgroups below it,
// children before parents. A process still in one once the namespace is
// empty has no container left to own it (a runc init whose create
// finished after the test removed its runc state, seen after a killed
// apply): it is killed, and said on stderr, so that no test leaves a
// process behind.
func removeCgroupTree(dir string) {
	var sub []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			sub = append(sub, p)
		}
		return nil
	})
	var killed []int
	for _, d := range sub {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, f := range strings.Fields(string(b)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err != nil || pid <= 1 {
				continue
			}
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			fmt.Fprintf(os.Stderr, "testenv: killing process %d (%s) left in cgroup %s\n", pid, strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "), d)
			if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
				killed = append(killed, pid)
			}
		}
	}
	waitGone(killed) // out of its cgroup once it has exited: then rmdir works
	for i := len(sub) - 1; i >= 0; i-- {
		_ = os.Remove(sub[i])
	}
}
