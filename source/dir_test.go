package source

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// writeTree writes files under dir; a value starting with "->" is a symlink.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(p)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDirSourceDigest(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.yaml": "a", "sub/b.yaml": "b", ".git/config": "ignored"})
	s := mustOpen(t, Options{URL: dir})
	if s.Kind() != KindDir || s.LocalDir() != dir {
		t.Fatalf("kind = %v, dir = %q", s.Kind(), s.LocalDir())
	}
	rev, changed := mustFetch(t, s)
	if !changed || !strings.HasPrefix(rev.Commit, "dir:sha256:") || len(rev.Commit) != len("dir:sha256:")+64 {
		t.Fatalf("first fetch: changed=%v commit=%q", changed, rev.Commit)
	}
	if diff := cmp.Diff(map[string]string{"a.yaml": "a", "sub/b.yaml": "b"}, files(t, rev.Files)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if rev.Ref != "" || rev.URL != dir {
		t.Errorf("ref %q url %q", rev.Ref, rev.URL)
	}

	// Touching a file (new mtime, same content) changes nothing.
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "a.yaml"), future, future); err != nil {
		t.Fatal(err)
	}
	again, changed := mustFetch(t, s)
	if changed || again.Commit != rev.Commit {
		t.Fatalf("touch: changed=%v", changed)
	}
	// So does a change under .git.
	writeTree(t, dir, map[string]string{".git/config": "changed"})
	if _, changed := mustFetch(t, s); changed {
		t.Fatal(".git change reported")
	}

	for _, step := range []map[string]string{
		{"a.yaml": "a2"},
		{"sub/c.yaml": ""},
		{"sub/c.yaml": "c"},
	} {
		writeTree(t, dir, step)
		next, changed := mustFetch(t, s)
		if !changed || next.Commit == rev.Commit {
			t.Fatalf("after %v: changed=%v", step, changed)
		}
		rev = next
	}
	// A rename changes the digest even with the same content.
	if err := os.Rename(filepath.Join(dir, "sub/c.yaml"), filepath.Join(dir, "sub/d.yaml")); err != nil {
		t.Fatal(err)
	}
	if next, changed := mustFetch(t, s); !changed || next.Commit == rev.Commit {
		t.Fatal("rename not reported")
	}

	// Same content, other directory: same digest.
	other := t.TempDir()
	writeTree(t, other, files(t, mustFetchRev(t, s).Files))
	if a, b := mustFetchRev(t, mustOpen(t, Options{URL: other})).Commit, mustFetchRev(t, s).Commit; a != b {
		t.Errorf("digest depends on the directory: %s vs %s", a, b)
	}
}

func mustFetchRev(t *testing.T, s *Source) *Revision {
	t.Helper()
	rev, _ := mustFetch(t, s)
	return rev
}

func TestDirSourceRejectsRef(t *testing.T) {
	if _, err := Open(Options{URL: t.TempDir(), Ref: "main"}); err == nil {
		t.Fatal("ref accepted for a directory")
	}
}

func TestDirSourcePath(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"env/prod/a.yaml": "a", "env/dev/b.yaml": "b"})
	rev := mustFetchRev(t, mustOpen(t, Options{URL: dir, Path: "env/prod"}))
	if diff := cmp.Diff(map[string]string{"a.yaml": "a"}, files(t, rev.Files)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	err := fetchErr(t, mustOpen(t, Options{URL: dir, Path: "env/none"}))
	if !errors.Is(err, ErrPathNotFound) {
		t.Errorf("error %v is not ErrPathNotFound", err)
	}
}

func TestDirSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret": "secret"})
	for _, tc := range []struct {
		name    string
		tree    map[string]string
		path    string
		want    map[string]string
		wantErr error
		errPath string
	}{
		{
			name: "file inside",
			tree: map[string]string{"a.yaml": "a", "b.yaml": "->a.yaml"},
			want: map[string]string{"a.yaml": "a", "b.yaml": "a"},
		},
		{
			name: "chain and directory",
			tree: map[string]string{"real/x.yaml": "x", "d": "->real", "e": "->d", "f.yaml": "->e/x.yaml"},
			want: map[string]string{"real/x.yaml": "x", "d/x.yaml": "x", "e/x.yaml": "x", "f.yaml": "x"},
		},
		{
			name: "outside the path but inside the repository",
			tree: map[string]string{"shared/c.yaml": "c", "app/c.yaml": "->../shared/c.yaml"},
			path: "app",
			want: map[string]string{"c.yaml": "c"},
		},
		{
			name:    "absolute",
			tree:    map[string]string{"a.yaml": "->" + filepath.Join(outside, "secret")},
			wantErr: ErrUnsafeSymlink, errPath: "./a.yaml",
		},
		{
			name:    "escaping",
			tree:    map[string]string{"app/a.yaml": "->../../secret"},
			wantErr: ErrUnsafeSymlink, errPath: "./app/a.yaml",
		},
		{
			name:    "escaping through another link",
			tree:    map[string]string{"up": "->..", "app/a.yaml": "->../up/x"},
			path:    "app",
			wantErr: ErrUnsafeSymlink, errPath: "./app/a.yaml",
		},
		{
			name:    "loop",
			tree:    map[string]string{"a": "->b", "b": "->a"},
			wantErr: ErrUnsafeSymlink, errPath: "./a",
		},
		{
			name:    "directory loop",
			tree:    map[string]string{"d/x.yaml": "x", "d/self": "->."},
			wantErr: ErrUnsafeSymlink, errPath: "./d/self",
		},
		{
			name:    "dangling",
			tree:    map[string]string{"a.yaml": "->missing.yaml"},
			wantErr: ErrUnsafeSymlink, errPath: "./a.yaml",
		},
		{
			name:    "path is an escaping symlink",
			tree:    map[string]string{"app": "->../"},
			path:    "app",
			wantErr: ErrUnsafeSymlink, errPath: "./app",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTree(t, dir, tc.tree)
			s := mustOpen(t, Options{URL: dir, Path: tc.path})
			if tc.wantErr == nil {
				rev := mustFetchRev(t, s)
				if diff := cmp.Diff(tc.want, files(t, rev.Files)); diff != "" {
					t.Errorf("(-want +got):\n%s", diff)
				}
				return
			}
			err := fetchErr(t, s)
			var ce *ContentError
			if !errors.Is(err, tc.wantErr) || !errors.As(err, &ce) || ce.Path != tc.errPath {
				t.Fatalf("error %v: want %v at %s", err, tc.wantErr, tc.errPath)
			}
			if strings.Contains(err.Error(), "secret\"") && !strings.Contains(err.Error(), "symlink target") {
				t.Errorf("error reads outside content: %v", err)
			}
		})
	}
}

func TestDirLimits(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a": "12345", "b": "12345", "c": "1"})
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr error
	}{
		{"file size", Options{MaxFileSize: 4}, ErrFileTooLarge},
		{"total size", Options{MaxTotalSize: 10}, ErrFileTooLarge},
		{"file count", Options{MaxFiles: 2}, ErrTooManyFiles},
		{"at the limits", Options{MaxFileSize: 5, MaxTotalSize: 11, MaxFiles: 3}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.URL = dir
			s := mustOpen(t, tc.opts)
			if tc.wantErr == nil {
				mustFetch(t, s)
				return
			}
			err := fetchErr(t, s)
			var ce *ContentError
			if !errors.Is(err, tc.wantErr) || !errors.As(err, &ce) {
				t.Fatalf("error %v: want a ContentError wrapping %v", err, tc.wantErr)
			}
		})
	}
}

// TestDirShapeLimits checks the bounds on a directory tree's shape: how
// deep directories nest, and how many entries one holds (refused before
// listing them all), each named at the directory that exceeds it.
func TestDirShapeLimits(t *testing.T) {
	deep := t.TempDir()
	p := deep
	for range 8 {
		p = filepath.Join(p, "d")
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wide := t.TempDir()
	for i := range 20 {
		if err := os.Mkdir(filepath.Join(wide, fmt.Sprintf("e%02d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		errPath string
	}{
		{"depth", Options{URL: deep, MaxDepth: 5}, "./d/d/d/d/d/d"},
		{"depth at the limit", Options{URL: deep, MaxDepth: 8}, ""},
		{"entries", Options{URL: wide, MaxDirEntries: 19}, "."},
		{"directories", Options{URL: wide, MaxFiles: 10}, "./e10"},
		{"entries at the limit", Options{URL: wide, MaxDirEntries: 20}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustOpen(t, tc.opts)
			if tc.errPath == "" {
				mustFetch(t, s)
				return
			}
			err := fetchErr(t, s)
			var ce *ContentError
			if !errors.Is(err, ErrTooManyFiles) || !errors.As(err, &ce) || ce.Path != tc.errPath {
				t.Fatalf("error %v: want ErrTooManyFiles at %s", err, tc.errPath)
			}
		})
	}
}

func TestDirFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := fetchErr(t, mustOpen(t, Options{URL: dir}))
	if !errors.Is(err, ErrUnsupportedFile) {
		t.Errorf("error %v is not ErrUnsupportedFile", err)
	}
}

func TestRevisionFilesFS(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.yaml": "a", "sub/b.yaml": "b", "sub/deeper/c.yaml": "c", "empty/.keep": ""})
	if err := os.Chmod(filepath.Join(dir, "a.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	rev := mustFetchRev(t, mustOpen(t, Options{URL: dir}))
	if err := fstest.TestFS(rev.Files, "a.yaml", "sub/b.yaml", "sub/deeper/c.yaml", "empty/.keep"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rev.Files.(interface {
		Stat(string) (os.FileInfo, error)
	}).Stat("a.yaml"); got.Mode()&0o111 == 0 || fi.Mode()&0o111 == 0 {
		t.Errorf("executable bit lost: %v", got.Mode())
	}
}
