package containerd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd/crilog"
)

// keptLogsDir is where RemovePod keeps the last log of each container of
// the pod it removes: when berth makes the pod again (a replacement, same
// name), CreateSandbox puts them where `berth logs --previous` reads, as
// the kubelet keeps the last terminated container's log. Garbage
// collection removes those of pods not made again within keptLogsAge.
func (r *Runtime) keptLogsDir(id reconcile.PodID) string {
	return filepath.Join(r.keptLogsRoot(), SandboxID(id))
}

func (r *Runtime) keptLogsRoot() string { return filepath.Join(r.stateDir, "kept-logs") }

// keptLogsAge is how long the logs of a removed pod wait for the pod to
// be made again.
const keptLogsAge = time.Hour

// moveLog moves the log at from (with its rotated files) to to, replacing
// what to held. A log that does not exist moves nothing.
func moveLog(from, to string) error {
	files := crilog.Files(from)
	if len(files) == 0 {
		return nil
	}
	for _, f := range crilog.Files(to) {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := os.Rename(f, to+strings.TrimPrefix(f, from)); err != nil {
			return err
		}
	}
	return nil
}

// logNames returns the names of the containers with a log in dir.
func logNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".log"); ok && e.Type().IsRegular() {
			names = append(names, name)
		}
	}
	return names
}

// keepLogs keeps the last log of each container of the pod at p: the
// current instance's, or the previous one's when the container has no
// current log.
func (r *Runtime) keepLogs(id reconcile.PodID, p PodPaths) error {
	kept := r.keptLogsDir(id)
	if err := os.RemoveAll(kept); err != nil {
		return err
	}
	for _, name := range logNames(filepath.Dir(p.PreviousLogPath(""))) {
		if err := moveLog(p.PreviousLogPath(name), filepath.Join(kept, name+".log")); err != nil {
			return fmt.Errorf("keep the log of %q: %w", name, err)
		}
	}
	for _, name := range logNames(p.logDir()) {
		if err := moveLog(p.LogPath(name), filepath.Join(kept, name+".log")); err != nil {
			return fmt.Errorf("keep the log of %q: %w", name, err)
		}
	}
	return nil
}

// restoreLogs makes the logs kept of an earlier instance of the pod at p
// its containers' previous logs.
func (r *Runtime) restoreLogs(id reconcile.PodID, p PodPaths) error {
	kept := r.keptLogsDir(id)
	for _, name := range logNames(kept) {
		if err := moveLog(filepath.Join(kept, name+".log"), p.PreviousLogPath(name)); err != nil {
			return fmt.Errorf("restore the log of %q: %w", name, err)
		}
	}
	if err := os.RemoveAll(kept); err != nil {
		return err
	}
	return nil
}
