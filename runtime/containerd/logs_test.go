package containerd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/containerd/crilog"
	"berth.dev/berth/runtime/runtimetest"
)

// logDaemons returns the PIDs of the log daemons serving stateDir.
func logDaemons(t *testing.T, stateDir string) []int {
	t.Helper()
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		args := strings.Split(string(b), "\x00")
		if len(args) >= 3 && args[1] == "berth-log-daemon" && strings.HasPrefix(args[2], stateDir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// logLines returns the messages of the container's log by stream.
func logLines(t *testing.T, rt *containerd.Runtime, id reconcile.PodID, name string) map[string][]string {
	t.Helper()
	lines, err := crilog.ReadLines(rt.Paths(id).LogPath(name), crilog.ReadOptions{Tail: -1})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, l := range lines {
		out[l.Stream] = append(out[l.Stream], string(l.Msg))
	}
	return out
}

// TestLogsSurviveBerthAndDaemonRestarts runs a container that writes
// numbered lines to stdout and stderr without pause while berth does
// nothing, and while its group's log daemon is stopped and started again
// by the next berth to start: the log must hold every
// line once, in order, the lines written while no berth and no daemon ran
// included, and the container must run to its end.
func TestLogsSurviveBerthAndDaemonRestarts(t *testing.T) {
	rt, e := newRuntime(t)
	const n = 3000
	pod := runtimetest.NewPod("chatty", script("main", fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); usleep 1000; done; echo done`, n)))
	runtimetest.Up(t, rt, pod)
	count := func() int { return len(logLines(t, rt, pod.ID, "main")["stdout"]) }
	waitFor(t, func() bool { return count() >= 100 })

	// berth does nothing (a Runtime keeps no process, connection or
	// goroutine in the log path): the log goes on without it.
	at := count()
	waitFor(t, func() bool { return count() >= at+300 })

	// The daemon stops (as for an upgrade) while the container writes;
	// the next berth starts a new one, which reads what waited.
	daemons := logDaemons(t, e.stateDir)
	if len(daemons) != 1 {
		t.Fatalf("%d log daemons for one shim group, want 1", len(daemons))
	}
	if err := syscall.Kill(daemons[0], syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(logDaemons(t, e.stateDir)) == 0 })
	at = count()
	// With no daemon, the container goes on writing: its output waits in
	// the FIFO (opened here without reading, to see how much is queued).
	fifo, err := os.OpenFile(filepath.Join(e.stateDir, "logd", "shim-1", "streams", containerd.ContainerID(pod.ID, "main")+".stdout"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		n, err := unix.IoctlGetInt(int(fifo.Fd()), unix.TIOCINQ)
		return err == nil && n >= 200*len("out-1000\n")
	})
	fifo.Close()
	rt2, _ := newRuntime(t) // berth started again
	if got := logDaemons(t, e.stateDir); len(got) != 1 {
		t.Fatalf("berth started %d log daemons for the group, want 1", len(got))
	}
	code, err := rt2.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main")
	if err != nil || code != 0 {
		t.Fatalf("the container ended with %d, %v", code, err)
	}
	waitFor(t, func() bool {
		out := logLines(t, rt, pod.ID, "main")["stdout"]
		return len(out) > 0 && out[len(out)-1] == "done"
	})
	lines := logLines(t, rt, pod.ID, "main")
	for stream, prefix := range map[string]string{"stdout": "out-", "stderr": "err-"} {
		got := lines[stream]
		if stream == "stdout" {
			got = got[:len(got)-1] // "done"
		}
		if len(got) != n {
			t.Errorf("%s has %d lines, want %d", stream, len(got), n)
		}
		for i, l := range got {
			if l != prefix+strconv.Itoa(i) {
				t.Errorf("%s line %d is %q, want %s%d (lost or reordered)", stream, i, l, prefix, i)
				break
			}
		}
	}
	t.Logf("%d lines a stream; %d were logged when the daemon was stopped", n, at)
}
