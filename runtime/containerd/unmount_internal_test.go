package containerd

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/mountinfo"
)

// TestUnmountAll mounts two tmpfs, one inside the other, below a
// directory: unmountAll leaves nothing mounted below it, and a directory
// that does not exist is not an error.
func TestUnmountAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("TestUnmountAll mounts tmpfs: run it as root (make test does)")
	}
	dir := t.TempDir()
	outer := filepath.Join(dir, "a")
	inner := filepath.Join(outer, "b")
	if err := os.Mkdir(outer, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", outer, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(inner, unix.MNT_DETACH); _ = unix.Unmount(outer, unix.MNT_DETACH) })
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	if got := mountinfo.Under(dir); len(got) != 2 {
		t.Fatalf("mounted below %s: %v, want the two tmpfs", dir, got)
	}
	if err := unmountAll(dir); err != nil {
		t.Fatal(err)
	}
	if got := mountinfo.Under(dir); len(got) != 0 {
		t.Errorf("still mounted below %s after unmountAll: %v", dir, got)
	}
	if err := unmountAll(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("unmountAll of a directory that does not exist: %v", err)
	}
}
