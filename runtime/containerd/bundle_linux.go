package containerd

import (
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// staleBundleRE matches containerd 1.6's error when a task's bundle
// directory is left from a create that was cut short (the client died
// while containerd started the shim): every later create of the
// container fails on it until containerd restarts.
var staleBundleRE = regexp.MustCompile(`mkdir (/\S+/io\.containerd\.runtime\.v2\.task/([^/\s]+)/([^/\s:]+)): file exists`)

// clearStaleBundle removes the bundle a failed task create names, when it
// is the bundle of container id in berth's namespace and containerd has
// no task for it (the caller just removed any), and reports whether it
// did: unmounting its rootfs and deleting it and its work directory, as
// containerd does when a shim start fails.
func (r *Runtime) clearStaleBundle(err error, id string) bool {
	m := staleBundleRE.FindStringSubmatch(err.Error())
	if m == nil || m[2] != r.ns || m[3] != id {
		return false
	}
	bundle := m[1]
	_ = unix.Unmount(filepath.Join(bundle, "rootfs"), unix.MNT_DETACH)
	if work, lerr := os.Readlink(filepath.Join(bundle, "work")); lerr == nil {
		_ = os.RemoveAll(work)
	}
	if rerr := os.RemoveAll(bundle); rerr != nil {
		r.log.Warn("remove stale task bundle", "bundle", bundle, "error", rerr)
		return false
	}
	r.log.Info("removed a stale task bundle", "container", id, "bundle", bundle)
	return true
}
