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
