package containerd

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/cio"

	"berth.dev/berth/runtime/containerd/crilog"
)

// Containers' output reaches their CRI log files through one log daemon
// per shim group (see crilog.EnsureDaemon): each container's shim writes
// its stdout and stderr into two FIFOs the daemon reads, so a group of
// pods costs one small process for its logs, not one per container, and
// the logs go on while berth is not running.

// logdDir is the directory of a shim group's log daemon.
func (r *Runtime) logdDir(group string) string {
	return filepath.Join(r.stateDir, "logd", group)
}

// taskIO registers the log of container id with its group's log daemon,
// starting the daemon if none runs, and returns the IO that makes the
// shim write into the daemon's FIFOs (with RawLogs: straight into the log
// file).
func (r *Runtime) taskIO(group, id, path string) (cio.Creator, error) {
	if r.logOpts.raw {
		return cio.LogFile(path), nil
	}
	dir := r.logdDir(group)
	stdout, stderr, err := crilog.Register(dir, id, crilog.Stream{Path: path, MaxSize: r.logOpts.maxSize, MaxFiles: r.logOpts.maxFiles})
	if err != nil {
		return nil, fmt.Errorf("register the log of %s: %w", id, err)
	}
	if err := crilog.EnsureDaemon(r.logOpts.driver, dir); err != nil {
		return nil, err
	}
	return func(string) (cio.IO, error) {
		return fifoIO{cio.Config{Stdout: stdout, Stderr: stderr}}, nil
	}, nil
}

// attachLog tells the log daemon that the shim of container id has opened
// its FIFOs (its task exists), so that the log ends when the shim closes
// them. Should it fail, the daemon holds the log until releaseLog.
func (r *Runtime) attachLog(group, id string) {
	if r.logOpts.raw {
		return
	}
	if err := crilog.Attach(r.logdDir(group), id); err != nil {
		r.log.Warn("mark the log of a container attached", "container", id, "error", err)
	}
}

// releaseLog removes the log registration of container id, whose task is
// gone: its group's daemon reads what is left and closes the log.
func (r *Runtime) releaseLog(id string) error {
	dirs, _ := filepath.Glob(filepath.Join(r.stateDir, "logd", "*"))
	for _, dir := range dirs {
		if crilog.Registered(dir, id) {
			if err := crilog.Unregister(dir, id); err != nil {
				return fmt.Errorf("release the log of %s: %w", id, err)
			}
		}
	}
	return nil
}

// startLogDaemons starts the log daemon of every group with registered
// containers where none runs (one was killed while berth was not
// running): what the containers wrote meanwhile waits in their FIFOs.
func (r *Runtime) startLogDaemons() {
	if r.logOpts.raw {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(r.stateDir, "logd", "*", "streams", "*.json"))
	seen := map[string]bool{}
	for _, reg := range dirs {
		dir := filepath.Dir(filepath.Dir(reg))
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if err := crilog.EnsureDaemon(r.logOpts.driver, dir); err != nil {
			r.log.Warn("start log daemon", "dir", dir, "error", err)
		}
	}
}

// fifoIO is a task's IO as FIFOs that something else (the log daemon)
// reads: containerd's client opens nothing itself.
type fifoIO struct{ cfg cio.Config }

func (f fifoIO) Config() cio.Config { return f.cfg }
func (fifoIO) Cancel()              {}
func (fifoIO) Wait()                {}
func (fifoIO) Close() error         { return nil }
