package crilog

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDaemon runs the daemon of dir in this process until the test ends.
func startDaemon(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, streamsDir), 0o700); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan os.Signal, 1)
	done := make(chan int)
	go func() { done <- runDaemon(dir, w, stop) }()
	var b [1]byte
	r.Read(b[:]) // closed when ready
	r.Close()
	t.Cleanup(func() {
		stop <- syscall.SIGTERM
		<-done
	})
}

// waitLines waits until the log at path holds n lines and returns them.
func waitLines(t *testing.T, path string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines, _ := ReadLines(path, ReadOptions{Tail: -1})
		if len(lines) >= n || time.Now().After(deadline) {
			var out []string
			for _, l := range lines {
				out = append(out, l.Stream+":"+string(l.Msg))
			}
			return out
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDaemonReadsRegisteredFIFOsAndReregistration(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "c.log")
	startDaemon(t, dir)
	for round := range 2 {
		stdout, stderr, err := Register(dir, "c1", Stream{Path: logPath})
		if err != nil {
			t.Fatal(err)
		}
		// As the shim does: open for writing (waits for the daemon).
		wo, err := os.OpenFile(stdout, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		we, err := os.OpenFile(stderr, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := Attach(dir, "c1"); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(wo, "out %d\n", round)
		fmt.Fprintf(we, "err %d\n", round)
		wo.Close()
		we.Close()
		got := waitLines(t, logPath, 2*(round+1))
		if len(got) != 2*(round+1) {
			t.Fatalf("round %d: log %q", round, got)
		}
		if err := Unregister(dir, "c1"); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(logPath)
	for _, want := range []string{" stdout F out 0\n", " stderr F err 0\n", " stdout F out 1\n", " stderr F err 1\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("log lacks %q:\n%s", want, b)
		}
	}
}

// TestWatcherNamesChangedContainers: the daemon learns which containers'
// files changed, so a registration costs it a look at that container
// only, not at every registration of its group.
func TestWatcherNamesChangedContainers(t *testing.T) {
	dir := t.TempDir()
	sd := filepath.Join(dir, streamsDir)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := watch(sd)
	if err != nil {
		t.Fatal(err)
	}
	changed := func(step string, want ...string) {
		t.Helper()
		got := map[string]bool{}
		for len(got) < len(want) {
			select {
			case <-w.wake:
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: no change reported; have %v", step, got)
			}
			ids, all := w.take()
			if all {
				t.Fatalf("%s: overflow reported", step)
			}
			for id := range ids {
				got[id] = true
			}
		}
		for _, id := range want {
			if !got[id] {
				t.Fatalf("%s: changed %v, want %v", step, got, want)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: changed %v, want only %v", step, got, want)
		}
	}
	if _, _, err := Register(dir, "default_web.0", Stream{Path: filepath.Join(dir, "web.log")}); err != nil {
		t.Fatal(err)
	}
	changed("register", "default_web.0")
	if err := Attach(dir, "default_web.0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Register(dir, "default_db.1", Stream{Path: filepath.Join(dir, "db.log")}); err != nil {
		t.Fatal(err)
	}
	changed("attach and another register", "default_web.0", "default_db.1")
	if err := Unregister(dir, "default_db.1"); err != nil {
		t.Fatal(err)
	}
	changed("unregister", "default_db.1")
}

// TestUpdateTouchesOnlyTheNamedContainers: update opens a new
// registration and closes a removed one, and leaves the others as they
// are (a full scan is the ticker's).
func TestUpdateTouchesOnlyTheNamedContainers(t *testing.T) {
	dir := t.TempDir()
	d := &daemon{dir: dir, streams: map[string]*stream{}}
	t.Cleanup(d.closeAll)
	for _, id := range []string{"a", "b"} {
		if _, _, err := Register(dir, id, Stream{Path: filepath.Join(dir, id+".log")}); err != nil {
			t.Fatal(err)
		}
	}
	if n := d.update(map[string]bool{"a": true}); n != 1 || d.streams["a"] == nil {
		t.Fatalf("after update(a): %d open, %v", n, d.streams)
	}
	if n := d.scan(); n != 2 {
		t.Fatalf("after scan: %d open, want 2", n)
	}
	if err := Unregister(dir, "a"); err != nil {
		t.Fatal(err)
	}
	if n := d.update(map[string]bool{"a": true}); n != 1 || d.streams["a"] != nil || d.streams["b"] == nil {
		t.Fatalf("after unregister(a), update(a): %d open, %v", n, d.streams)
	}
	// Registered again under the same ID: new FIFOs, a new stream.
	old := d.streams["b"]
	if _, _, err := Register(dir, "b", Stream{Path: filepath.Join(dir, "b.log")}); err != nil {
		t.Fatal(err)
	}
	if n := d.update(map[string]bool{"b": true}); n != 1 || d.streams["b"] == nil || d.streams["b"] == old {
		t.Fatalf("after re-register(b), update(b): %d open, new stream %v", n, d.streams["b"] != old)
	}
}
