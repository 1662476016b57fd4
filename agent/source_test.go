package agent

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
	"berth.dev/berth/source"
)

// dirLoader loads a directory revision whose pods.txt has one pod a line:
// name, then its shell command.
func dirLoader(rev *source.Revision) (*Loaded, error) {
	b, err := fs.ReadFile(rev.Files, "pods.txt")
	if err != nil {
		return nil, &ValidationError{Commit: rev.Commit, Problems: []string{"./pods.txt:1:1: " + err.Error()}}
	}
	var objs []reconcile.Object
	for line := range strings.Lines(string(b)) {
		name, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
		objs = append(objs, shellPod(name, cmd))
	}
	pods, err := reconcile.Expand(objs, rev.Commit, reconcile.ExpandOptions{})
	if err != nil {
		return nil, err
	}
	return &Loaded{Objects: objs, Pods: pods}, nil
}

// TestMissingDirectoryRunsLastGood: an agent whose local directory is
// missing when it starts (after a reboot that lost every pod) starts,
// runs the last good revision from the files it kept, and picks up the
// directory with its fetch backoff once it is back.
func TestMissingDirectoryRunsLastGood(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	write := func(pods string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pods.txt"), []byte(pods), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open := func(t *testing.T) *Repository {
		t.Helper()
		r, err := OpenRepository(context.Background(), source.Options{URL: dir})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return r
	}
	useDir := func(r *Repository) func(*Config) {
		return func(c *Config) {
			c.Source, c.Load = r, dirLoader
			c.MinBackoff, c.MaxBackoff, c.Jitter = 20*time.Millisecond, 20*time.Millisecond, 1e-9
		}
	}

	write("web " + sleep + "\n")
	rt := fake.New(image)
	h := newHarness(t, newRepo(), rt, "", useDir(open(t)))
	st := h.eventually("the revision to be good", func(s Status) bool { return s.LastGood != nil })
	good := st.LastGood.Commit
	h.stop()

	// A reboot: the pods and the directory are gone.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	rt2 := fake.New(image)
	h2 := newHarness(t, newRepo(), rt2, h.state, useDir(open(t)))
	// The pass records what it applied before it ends and says offline.
	st = h2.eventually("the last good revision to run, offline", func(s Status) bool {
		return s.Applied != nil && s.Applied.Commit == good && len(s.Pods) == 1 && s.Offline
	})
	if st.FetchError == nil || !strings.Contains(st.FetchError.Reason, "no such file") {
		t.Fatalf("status: fetch error %+v", st.FetchError)
	}
	if diff := cmp.Diff(map[string]string{"web": good}, (&harness{t: t, rt: rt2}).running()); diff != "" {
		t.Fatalf("pods while the directory is missing (-want +got):\n%s", diff)
	}

	// The directory comes back with a change: a fetch after a backoff
	// finds it, with no trigger from the test.
	write("web " + sleep + "\napi " + sleep + "\n")
	h2.eventually("the directory's revision to run, online", func(s Status) bool {
		return s.Applied != nil && s.Applied.Commit != good && len(s.Pods) == 2 && !s.Offline && s.FetchError == nil
	})
}

// TestGoodFilesReadBack: the files kept of a good revision come back with
// its commit, and are refused for another commit.
func TestGoodFilesReadBack(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	for name, data := range map[string]string{"a.yaml": "a: 1\n", "apps/b.yaml": "b: 2\n"} {
		p := filepath.Join(dir, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := source.Open(source.Options{URL: dir})
	if err != nil {
		t.Fatal(err)
	}
	rev, _, err := src.Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second write replaces the first
		if err := writeGoodFiles(state, rev); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readGoodFiles(context.Background(), state, rev.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commit != rev.Commit {
		t.Fatalf("commit %s, want %s", got.Commit, rev.Commit)
	}
	b, err := fs.ReadFile(got.Files, "apps/b.yaml")
	if err != nil || string(b) != "b: 2\n" {
		t.Fatalf("apps/b.yaml: %q, %v", b, err)
	}
	if _, err := readGoodFiles(context.Background(), state, "dir:sha256:0000"); err == nil {
		t.Fatal("files of another revision read back")
	}
	left, _ := filepath.Glob(filepath.Join(state, "."+GoodFiles+"*"))
	if len(left) != 0 {
		t.Fatalf("temporary directories left: %v", left)
	}
}
