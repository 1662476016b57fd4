package statelock_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"berth.dev/berth/internal/statelock"
)

// TestHelperHold is not a test: run as a child with STATELOCK_DIR set, it
// holds the lock until killed.
func TestHelperHold(t *testing.T) {
	dir := os.Getenv("STATELOCK_DIR")
	if dir == "" {
		return
	}
	if _, err := statelock.TryAcquire(dir, "apply"); err != nil {
		os.Exit(3)
	}
	os.Stdout.WriteString("held\n")
	select {}
}

func TestSecondWaitsAndSaysWho(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestHelperHold$")
	child.Env = append(os.Environ(), "STATELOCK_DIR="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := out.Read(buf); err != nil || string(buf) != "held\n" {
		t.Fatalf("child: %q, %v", buf, err)
	}
	_, err = statelock.TryAcquire(dir, "agent")
	var held *statelock.HeldError
	if !errors.As(err, &held) || held.Holder.PID != child.Process.Pid || held.Holder.Command != "apply" {
		t.Fatalf("TryAcquire while held: %v", err)
	}
	waited := make(chan statelock.Holder, 1)
	got := make(chan error, 1)
	go func() {
		l, err := statelock.Acquire(context.Background(), dir, "apply", func(h statelock.Holder) error {
			waited <- h
			return nil
		})
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	if h := <-waited; h.PID != child.Process.Pid {
		t.Errorf("waiting on %v, want pid %d", h, child.Process.Pid)
	}
	// The holder dies without releasing: the kernel lets the lock go.
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("Acquire after the holder died: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Acquire still waits after the holder died")
	}
}

func TestWaitCanRefuse(t *testing.T) {
	dir := t.TempDir()
	l, err := statelock.TryAcquire(dir, "agent")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	stop := errors.New("an agent holds it")
	// flock locks belong to the open file: a second open in this process
	// conflicts like another process would.
	if _, err := statelock.Acquire(context.Background(), dir, "apply", func(statelock.Holder) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Acquire = %v, want the wait function's error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := statelock.Acquire(ctx, dir, "apply", func(statelock.Holder) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire with a done context = %v", err)
	}
	st, err := os.Stat(dir + "/" + statelock.FileName)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode: %v, %v", st, err)
	}
}
