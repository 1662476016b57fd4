package agent

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// watching starts Watch on dir and returns a channel receiving one value
// per ring.
func watching(t *testing.T, dir string) chan struct{} {
	t.Helper()
	return watchingAfter(t, dir, nil)
}

// watchingAfter is watching for a dir that does not exist yet: once Watch
// waits for it, create makes it.
func watchingAfter(t *testing.T, dir string, create func()) chan struct{} {
	t.Helper()
	rings := make(chan struct{}, 100)
	ready, waiting := make(chan struct{}), make(chan struct{})
	watchReady = func(string) { close(ready) }
	watchWaiting = func(string) { close(waiting) }
	t.Cleanup(func() { watchReady, watchWaiting = nil, nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := Watch(ctx, dir, debounce, func() { rings <- struct{}{} }, hclog.NewNullLogger()); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	if create != nil {
		select {
		case <-waiting:
			create()
		case <-time.After(10 * time.Second):
			t.Fatal("Watch did not wait for the missing directory")
		}
	}
	select {
	case <-ready: // every watch is in place
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not start watching")
	}
	return rings
}

func expectRings(t *testing.T, rings chan struct{}, want int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	got := 0
	for got < want {
		select {
		case <-rings:
			got++
		case <-deadline:
			t.Fatalf("%d rings, want %d", got, want)
		}
	}
	// Nothing more once quiet: a late ring of the same burst would come
	// one debounce after its last event.
	select {
	case <-rings:
		t.Fatalf("more than %d rings", want)
	case <-time.After(2 * debounce):
	}
}

// debounce is the watchers' quiet time in these tests: the default, long
// against a burst of writes even on a loaded machine, which must ring
// once.
const debounce = DefaultDebounce

func TestWatchDirectoryDebounces(t *testing.T) {
	dir := t.TempDir()
	rings := watching(t, dir)
	// A burst of writes, in a new subdirectory too, rings once.
	for i := range 20 {
		sub := filepath.Join(dir, "apps")
		_ = os.MkdirAll(sub, 0o755)
		if err := os.WriteFile(filepath.Join(sub, "p.yaml"), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expectRings(t, rings, 1)
	// A later change in the new subdirectory is seen.
	if err := os.WriteFile(filepath.Join(dir, "apps", "q.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectRings(t, rings, 1)
}

func TestWatchMissingDirectoryRingsWhenItAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mnt", "repo")
	rings := watchingAfter(t, dir, func() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	})
	expectRings(t, rings, 1)
	// Then it is watched as any directory.
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectRings(t, rings, 1)
}

func TestWatchGitRepositoryRingsOnCommitOnly(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@b", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@b")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	git("commit", "-q", "--allow-empty", "-m", "first")
	rings := watching(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "pod.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	expectRings(t, rings, 0)
	git("add", "-A")
	git("commit", "-q", "-m", "second")
	expectRings(t, rings, 1)
}
