package containerd

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// pinNamespaces creates new namespaces of the kinds in targets (CLONE_NEWNET,
// CLONE_NEWIPC, CLONE_NEWUTS) on a dedicated OS thread and bind-mounts each
// onto its target file, so it outlives the thread. With CLONE_NEWUTS the new
// namespace's hostname is set to hostname first.
//
// The thread returns to its original namespaces afterwards; if it cannot,
// it stays locked, and the Go runtime ends it with the goroutine.
func pinNamespaces(targets map[int]string, hostname string) error {
	flags := 0
	for flag, path := range targets {
		flags |= flag
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
		if err != nil {
			return err
		}
		f.Close()
	}
	return inThreadNamespaces(slices.Collect(maps.Keys(targets)), func() error {
		return pinOnThread(flags, targets, hostname)
	})
}

// inThreadNamespaces runs fn on a locked OS thread of its own, which fn
// may move into other namespaces of the kinds in kinds (CLONE_NEWNET,
// CLONE_NEWIPC, CLONE_NEWUTS), and returns the thread to its original
// ones after. If it cannot, the thread stays locked, and the Go runtime
// ends it with the goroutine instead of reusing it in the wrong
// namespaces.
func inThreadNamespaces(kinds []int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig := map[int]int{}
		defer func() {
			for _, fd := range orig {
				unix.Close(fd)
			}
		}()
		for _, kind := range kinds {
			fd, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/%s", unix.Gettid(), nsFile(kind)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				runtime.UnlockOSThread()
				errc <- err
				return
			}
			orig[kind] = fd
		}
		errc <- fn()
		for kind, fd := range orig {
			if err := unix.Setns(fd, kind); err != nil {
				return
			}
		}
		runtime.UnlockOSThread()
	}()
	return <-errc
}

// pinOnThread unshares the current (locked) thread into new namespaces and
// bind-mounts them onto their targets.
func pinOnThread(flags int, targets map[int]string, hostname string) error {
	if err := unix.Unshare(flags); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
		if err := unix.Sethostname([]byte(hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	tid := unix.Gettid()
	for flag, path := range targets {
		src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, nsFile(flag))
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("pin %s at %s: %w", nsFile(flag), path, err)
		}
	}
	return nil
}

func nsFile(flag int) string {
	switch flag {
	case unix.CLONE_NEWNET:
		return "net"
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWUTS:
		return "uts"
	}
	return "unknown"
}

// isPinned reports whether path is a bind-mounted namespace.
func isPinned(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// unpin unmounts a pinned namespace and removes its mount point. A missing
// path is not an error.
func unpin(path string) error {
	for range 8 {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if errors.Is(err, unix.EINVAL) {
			break // not a mount point (any more)
		}
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// ensureNetNSDir creates dir and makes it a shared mount, as iproute2's
// `ip netns add` does, so namespaces pinned in it propagate to mount
// namespaces that were copied from the host's.
func ensureNetNSDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// loopbackUp brings up the loopback interface of the network namespace
// pinned at path, as the CNI loopback plugin would, without a process.
func loopbackUp(path string) error {
	ns, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(ns)
	return inThreadNamespaces([]int{unix.CLONE_NEWNET}, func() error {
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("loopback: enter %s: %w", path, err)
		}
		return ifUp("lo")
	})
}

// ifUp sets the flag IFF_UP on the interface name in the calling
// thread's network namespace.
func ifUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: flags of %s: %w", name, err)
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: bring %s up: %w", name, err)
	}
	return nil
}
