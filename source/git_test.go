package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHTTPCloneThenFetch(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"apps/web.yaml": "kind: Pod\n", "README.md": "hi\n"})
	r.push()
	srv := startHTTPServer(t, r.root, "", "")
	cache := filepath.Join(t.TempDir(), "cache")

	s := mustOpen(t, Options{URL: srv.URL + "/repo.git", CacheDir: cache})
	if s.Kind() != KindRemote {
		t.Fatalf("kind = %v, want remote", s.Kind())
	}
	rev, changed := mustFetch(t, s)
	if !changed || rev.Commit != first {
		t.Fatalf("first fetch: changed=%v commit=%s, want true %s", changed, rev.Commit, first)
	}
	if rev.Ref != "refs/heads/main" || rev.URL != srv.URL+"/repo.git" || rev.Message != "first" ||
		rev.Author != "Berth Test <test@berth.invalid>" || !rev.Time.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("revision metadata = %+v", rev)
	}
	if diff := cmp.Diff(map[string]string{"apps/web.yaml": "kind: Pod\n", "README.md": "hi\n"}, files(t, rev.Files)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	again, changed := mustFetch(t, s)
	if changed || again != rev {
		t.Fatalf("fetch without a new commit: changed=%v, same revision=%v", changed, again == rev)
	}

	second := r.commit("second", map[string]string{"apps/web.yaml": "kind: Pod\n# v2\n"})
	r.push()
	rev2, changed := mustFetch(t, s)
	if !changed || rev2.Commit != second {
		t.Fatalf("fetch after a commit: changed=%v commit=%s, want true %s", changed, rev2.Commit, second)
	}
	if got := files(t, rev2.Files)["apps/web.yaml"]; got != "kind: Pod\n# v2\n" {
		t.Errorf("new content = %q", got)
	}
	// The first snapshot is immutable.
	if got := files(t, rev.Files)["apps/web.yaml"]; got != "kind: Pod\n" {
		t.Errorf("old snapshot changed: %q", got)
	}
}

func TestCacheReusedAcrossOpens(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"a.yaml": "a: 1\n"})
	r.push()
	srv := startHTTPServer(t, r.root, "", "")
	cache := filepath.Join(t.TempDir(), "cache")
	opts := Options{URL: srv.URL + "/repo.git", CacheDir: cache}

	rev, _ := mustFetch(t, mustOpen(t, opts))
	if rev.Commit != first {
		t.Fatalf("commit = %s, want %s", rev.Commit, first)
	}
	if srv.uploadPacks.Load() == 0 {
		t.Fatal("first fetch transferred no objects")
	}
	marker := filepath.Join(cache, "repo.git", "berth-test-marker")
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	// A second Open of the same cache with nothing new: the remote is asked
	// for its refs, but no objects are transferred and the cache stays.
	before := srv.uploadPacks.Load()
	rev, changed := mustFetch(t, mustOpen(t, opts))
	if rev.Commit != first || !changed {
		t.Fatalf("second open: commit=%s changed=%v", rev.Commit, changed)
	}
	if n := srv.uploadPacks.Load() - before; n != 0 {
		t.Errorf("second open transferred objects %d times, want 0 (re-clone?)", n)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("cache was recreated: %v", err)
	}

	// A new commit reaches a third Open through a fetch into the same cache.
	second := r.commit("second", map[string]string{"a.yaml": "a: 2\n"})
	r.push()
	rev, _ = mustFetch(t, mustOpen(t, opts))
	if rev.Commit != second {
		t.Fatalf("third open: commit = %s, want %s", rev.Commit, second)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("cache was recreated: %v", err)
	}
}

func TestBrokenCacheIsRecreated(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"a.yaml": "a: 1\n"})
	r.push()
	cache := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cache, "repo.git"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A config that does not parse, as after a power cut.
	if err := os.WriteFile(filepath.Join(cache, "repo.git", "config"), []byte("[core\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "repo.git", "HEAD"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startHTTPServer(t, r.root, "", "")
	rev, _ := mustFetch(t, mustOpen(t, Options{URL: srv.URL + "/repo.git", CacheDir: cache}))
	if rev.Commit != first {
		t.Fatalf("commit = %s, want %s", rev.Commit, first)
	}
}

func TestHTTPBasicAuth(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"a.yaml": "a: 1\n"})
	r.push()
	const secret = "s3cr3t-t0ken"
	srv := startHTTPServer(t, r.root, "deploy", secret)
	host := strings.TrimPrefix(srv.URL, "http://")

	t.Run("auth options", func(t *testing.T) {
		s := mustOpen(t, Options{URL: srv.URL + "/repo.git", Auth: Auth{Username: "deploy", Password: secret}})
		if rev, _ := mustFetch(t, s); rev.Commit != first {
			t.Fatalf("commit = %s", rev.Commit)
		}
	})
	t.Run("credentials in URL", func(t *testing.T) {
		s := mustOpen(t, Options{URL: "http://deploy:" + secret + "@" + host + "/repo.git"})
		rev, _ := mustFetch(t, s)
		if rev.Commit != first {
			t.Fatalf("commit = %s", rev.Commit)
		}
		if strings.Contains(rev.URL, secret) || strings.Contains(rev.URL, "deploy") || s.URL() != srv.URL+"/repo.git" {
			t.Errorf("URL shows user info: %q", rev.URL)
		}
	})
	t.Run("no credentials", func(t *testing.T) {
		err := fetchErr(t, mustOpen(t, Options{URL: srv.URL + "/repo.git"}))
		if !errors.Is(err, ErrAuth) {
			t.Errorf("error %v is not ErrAuth", err)
		}
	})
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"wrong password in URL", Options{URL: "http://deploy:wrong-" + secret + "@" + host + "/repo.git"}},
		{"wrong password in options", Options{URL: srv.URL + "/repo.git", Auth: Auth{Username: "deploy", Password: "wrong-" + secret}}},
		{"missing repository", Options{URL: "http://deploy:" + secret + "@" + host + "/nope.git"}},
		{"unreachable host", Options{URL: "https://deploy:" + secret + "@127.0.0.1:1/repo.git"}},
		{"bearer token", Options{URL: srv.URL + "/repo.git", Auth: Auth{BearerToken: secret}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			tc.opts.Logger = testLoggerTo(&logs)
			s := mustOpen(t, tc.opts)
			err := fetchErr(t, s)
			msg := err.Error()
			t.Logf("error: %s", msg)
			for _, leak := range []string{secret, "deploy:", "deploy@"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error %q contains %q", msg, leak)
				}
				if strings.Contains(logs.String(), leak) {
					t.Errorf("logs contain %q:\n%s", leak, logs.String())
				}
			}
		})
	}
}

func TestRefs(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit("one", map[string]string{"v.txt": "1"})
	gitRun(t, r.work, "tag", "v1")
	gitRun(t, r.work, "tag", "-a", "-m", "annotated", "v1-annotated")
	c2 := r.commit("two", map[string]string{"v.txt": "2"})
	gitRun(t, r.work, "checkout", "-q", "-b", "feature")
	c3 := r.commit("three", map[string]string{"v.txt": "3"})
	gitRun(t, r.work, "checkout", "-q", "main")
	// A tag with the name of a branch wins, as in git rev-parse.
	gitRun(t, r.work, "tag", "feature-tag-clash", c1)
	r.push()
	gitRun(t, r.work, "update-ref", "refs/pull/7/head", c3)
	gitRun(t, r.work, "push", "-q", r.bare, "refs/pull/7/head")

	base := startGitDaemon(t, r.root)
	for _, tc := range []struct {
		ref, commit, resolved string
	}{
		{"", c2, "refs/heads/main"},
		{"HEAD", c2, "refs/heads/main"},
		{"main", c2, "refs/heads/main"},
		{"feature", c3, "refs/heads/feature"},
		{"refs/heads/feature", c3, "refs/heads/feature"},
		{"v1", c1, "refs/tags/v1"},
		{"refs/tags/v1", c1, "refs/tags/v1"},
		{"v1-annotated", c1, "refs/tags/v1-annotated"},
		{c1, c1, c1},
		{c1[:7], c1, c1[:7]},
		{"refs/pull/7/head", c3, "refs/pull/7/head"},
		// What git rev-parse accepts for a commit.
		{"HEAD~1", c1, "HEAD~1"},
		{"main^", c1, "main^"},
		{"feature~2", c1, "feature~2"},
		{"feature^^", c1, "feature^^"},
		{"feature~1^1", c1, "feature~1^1"},
		{"origin/main", c2, "refs/heads/main"},
		{"origin/feature~1", c2, "origin/feature~1"},
		{"v1-annotated~0", c1, "v1-annotated~0"},
		{c3[:8] + "~1", c2, c3[:8] + "~1"},
	} {
		t.Run("ref="+tc.ref, func(t *testing.T) {
			s := mustOpen(t, Options{URL: base + "/repo.git", Ref: tc.ref, CacheDir: t.TempDir()})
			rev, _ := mustFetch(t, s)
			if rev.Commit != tc.commit || rev.Ref != tc.resolved {
				t.Errorf("got %s %s, want %s %s", rev.Commit, rev.Ref, tc.commit, tc.resolved)
			}
		})
	}
	for _, ref := range []string{"nope", "refs/heads/nope", "0123456789abcdef0123456789abcdef01234567", "deadbeef", "main~5", "nope~1", "origin/nope"} {
		t.Run("missing="+ref, func(t *testing.T) {
			err := fetchErr(t, mustOpen(t, Options{URL: base + "/repo.git", Ref: ref}))
			if !errors.Is(err, ErrRefNotFound) {
				t.Errorf("error %v is not ErrRefNotFound", err)
			}
		})
	}
}

// TestLocalRepositoryRevisions reads revisions of a local repository in
// place as git rev-parse does: ancestry, remote-tracking branches, short
// hashes and tags.
func TestLocalRepositoryRevisions(t *testing.T) {
	r := newTestRepo(t)
	c1 := r.commit("one", map[string]string{"v.txt": "1"})
	gitRun(t, r.work, "tag", "v1")
	c2 := r.commit("two", map[string]string{"v.txt": "2"})
	r.push()
	gitRun(t, r.work, "fetch", "-q", r.bare, "+refs/heads/*:refs/remotes/origin/*")
	c3 := r.commit("three", map[string]string{"v.txt": "3"})
	s := mustOpen(t, Options{URL: r.work})
	for rev, want := range map[string]string{
		"HEAD": c3, "HEAD~1": c2, "HEAD~2": c1, "main^": c2, "main^^": c1,
		"origin/main": c2, "origin/main~1": c1, c2[:7]: c2, "v1": c1, "v1^0": c1,
	} {
		got, err := s.Revision(context.Background(), rev)
		if err != nil || got.Commit != want {
			t.Errorf("Revision(%q) = %v, %v; want %s", rev, got, err, want)
		}
	}
	if _, err := s.Revision(context.Background(), "HEAD~3"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("HEAD~3 of a three-commit history: %v, want ErrRefNotFound", err)
	}
}

func TestDefaultBranchFollowsRemoteHEAD(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{"v.txt": "1"})
	gitRun(t, r.work, "checkout", "-q", "-b", "trunk")
	trunk := r.commit("trunk", map[string]string{"v.txt": "trunk"})
	r.push()
	gitRun(t, r.bare, "symbolic-ref", "HEAD", "refs/heads/trunk")
	base := startGitDaemon(t, r.root)
	srv := startHTTPServer(t, r.root, "", "")
	for _, url := range []string{base + "/repo.git", srv.URL + "/repo.git"} {
		rev, _ := mustFetch(t, mustOpen(t, Options{URL: url, CacheDir: t.TempDir()}))
		if rev.Commit != trunk || rev.Ref != "refs/heads/trunk" {
			t.Errorf("%s: got %s %s, want %s refs/heads/trunk", url, rev.Commit, rev.Ref, trunk)
		}
	}
}

func TestForcePush(t *testing.T) {
	r := newTestRepo(t)
	r.commit("base", map[string]string{"v.txt": "0"})
	old := r.commit("old", map[string]string{"v.txt": "old"})
	r.push()
	base := startGitDaemon(t, r.root)
	s := mustOpen(t, Options{URL: base + "/repo.git", Ref: "main", CacheDir: t.TempDir()})
	if rev, _ := mustFetch(t, s); rev.Commit != old {
		t.Fatalf("commit = %s, want %s", rev.Commit, old)
	}
	gitRun(t, r.work, "reset", "-q", "--hard", "HEAD~1")
	rewritten := r.commit("rewritten", map[string]string{"v.txt": "new"})
	r.push()
	rev, changed := mustFetch(t, s)
	if !changed || rev.Commit != rewritten {
		t.Fatalf("after force-push: changed=%v commit=%s, want %s", changed, rev.Commit, rewritten)
	}
	if got := files(t, rev.Files)["v.txt"]; got != "new" {
		t.Errorf("v.txt = %q", got)
	}
}

func TestDeletedBranchIsPruned(t *testing.T) {
	r := newTestRepo(t)
	r.commit("base", map[string]string{"v.txt": "0"})
	gitRun(t, r.work, "branch", "gone")
	r.push()
	base := startGitDaemon(t, r.root)
	cache := t.TempDir()
	mustFetch(t, mustOpen(t, Options{URL: base + "/repo.git", Ref: "gone", CacheDir: cache}))
	gitRun(t, r.bare, "branch", "-D", "gone")
	err := fetchErr(t, mustOpen(t, Options{URL: base + "/repo.git", Ref: "gone", CacheDir: cache}))
	if !errors.Is(err, ErrRefNotFound) {
		t.Errorf("error %v is not ErrRefNotFound", err)
	}
}

func TestPath(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{
		"clusters/edge/pod.yaml":     "edge",
		"clusters/edge/sub/cm.yaml":  "cm",
		"clusters/other/pod.yaml":    "other",
		"clusters/edge/link.yaml":    "->../other/pod.yaml",
		"clusters/file-not-dir.yaml": "x",
	})
	r.push()
	base := startGitDaemon(t, r.root)
	cache := t.TempDir()
	for _, p := range []string{"clusters/edge", "./clusters/edge/", "clusters//edge"} {
		s := mustOpen(t, Options{URL: base + "/repo.git", Path: p, CacheDir: cache})
		rev, _ := mustFetch(t, s)
		want := map[string]string{"pod.yaml": "edge", "sub/cm.yaml": "cm", "link.yaml": "other"}
		if diff := cmp.Diff(want, files(t, rev.Files)); diff != "" {
			t.Errorf("path %q (-want +got):\n%s", p, diff)
		}
		if rev.Path != "clusters/edge" {
			t.Errorf("Path = %q", rev.Path)
		}
	}
	for _, p := range []string{"clusters/missing", "clusters/file-not-dir.yaml"} {
		err := fetchErr(t, mustOpen(t, Options{URL: base + "/repo.git", Path: p, CacheDir: cache}))
		if !errors.Is(err, ErrPathNotFound) {
			t.Errorf("path %q: error %v is not ErrPathNotFound", p, err)
		}
	}
	for _, p := range []string{"../x", "/etc", "a/../../b"} {
		if _, err := Open(Options{URL: base + "/repo.git", Path: p}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

func TestEmptyRemote(t *testing.T) {
	r := newTestRepo(t)
	srv := startHTTPServer(t, r.root, "", "")
	err := fetchErr(t, mustOpen(t, Options{URL: srv.URL + "/repo.git"}))
	if !errors.Is(err, ErrEmptyRepository) {
		t.Errorf("error %v is not ErrEmptyRepository", err)
	}
}

func TestLocalRepository(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"a.yaml": "a: 1\n", "dir/b.yaml": "b\n"})
	gitRun(t, r.work, "tag", "v1")
	r.push()

	t.Run("file URL to a bare repository", func(t *testing.T) {
		s := mustOpen(t, Options{URL: "file://" + r.bare})
		if s.Kind() != KindLocalRepo {
			t.Fatalf("kind = %v", s.Kind())
		}
		rev, changed := mustFetch(t, s)
		if !changed || rev.Commit != first || rev.Ref != "refs/heads/main" || rev.URL != "file://"+r.bare {
			t.Fatalf("got %+v", rev)
		}
		second := r.commit("second", map[string]string{"a.yaml": "a: 2\n"})
		if _, changed := mustFetch(t, s); changed {
			t.Fatal("changed before the push")
		}
		r.push()
		rev, changed = mustFetch(t, s)
		if !changed || rev.Commit != second {
			t.Fatalf("after push: changed=%v commit=%s", changed, rev.Commit)
		}
	})
	t.Run("working tree reads the committed HEAD", func(t *testing.T) {
		head := gitRun(t, r.work, "rev-parse", "HEAD")
		r.write(map[string]string{"a.yaml": "uncommitted\n"})
		s := mustOpen(t, Options{URL: r.work})
		if s.Kind() != KindLocalRepo || s.LocalDir() != r.work {
			t.Fatalf("kind = %v dir = %q", s.Kind(), s.LocalDir())
		}
		rev, _ := mustFetch(t, s)
		if rev.Commit != head || files(t, rev.Files)["a.yaml"] != "a: 2\n" {
			t.Fatalf("got %s %q", rev.Commit, files(t, rev.Files)["a.yaml"])
		}
		tagged, _ := mustFetch(t, mustOpen(t, Options{URL: r.work, Ref: "v1"}))
		if tagged.Commit != first {
			t.Errorf("ref v1 = %s, want %s", tagged.Commit, first)
		}
		gitRun(t, r.work, "checkout", "-q", "-f", "--detach", first)
		rev, _ = mustFetch(t, mustOpen(t, Options{URL: r.work}))
		if rev.Commit != first || rev.Ref != "HEAD" {
			t.Errorf("detached: %s %s", rev.Commit, rev.Ref)
		}
		gitRun(t, r.work, "checkout", "-q", "-f", "main")
	})
	t.Run("working tree as a directory", func(t *testing.T) {
		r.write(map[string]string{"a.yaml": "uncommitted\n"})
		s := mustOpen(t, Options{URL: r.work, ForceDir: true})
		if s.Kind() != KindDir {
			t.Fatalf("kind = %v", s.Kind())
		}
		rev, _ := mustFetch(t, s)
		got := files(t, rev.Files)
		if got["a.yaml"] != "uncommitted\n" {
			t.Errorf("a.yaml = %q", got["a.yaml"])
		}
		for name := range got {
			if strings.HasPrefix(name, ".git") {
				t.Errorf("snapshot holds %s", name)
			}
		}
	})
	t.Run("file URL to a plain directory", func(t *testing.T) {
		if _, err := Open(Options{URL: "file://" + t.TempDir()}); err == nil {
			t.Error("file URL to a non-repository accepted")
		}
	})
}

func TestRevisionFromCache(t *testing.T) {
	r := newTestRepo(t)
	first := r.commit("first", map[string]string{"a.yaml": "1"})
	second := r.commit("second", map[string]string{"a.yaml": "2"})
	r.push()
	base := startGitDaemon(t, r.root)
	s := mustOpen(t, Options{URL: base + "/repo.git", CacheDir: t.TempDir()})
	rev, _ := mustFetch(t, s)
	if rev.Commit != second {
		t.Fatalf("commit = %s", rev.Commit)
	}
	old, err := s.Revision(context.Background(), first[:10])
	if err != nil {
		t.Fatal(err)
	}
	if old.Commit != first || files(t, old.Files)["a.yaml"] != "1" {
		t.Errorf("old revision = %s %v", old.Commit, files(t, old.Files))
	}
	// Fetch still compares with what it returned last.
	if _, changed := mustFetch(t, s); changed {
		t.Error("Revision changed what Fetch compares against")
	}
}

func TestGitSymlinks(t *testing.T) {
	r := newTestRepo(t)
	r.commit("base", map[string]string{
		"shared/common.yaml": "common",
		"deploy/app.yaml":    "app",
		"deploy/common.yaml": "->../shared/common.yaml",
		"deploy/shared":      "->../shared",
	})
	r.push()
	base := startGitDaemon(t, r.root)
	s := mustOpen(t, Options{URL: base + "/repo.git", Path: "deploy", CacheDir: t.TempDir()})
	rev, _ := mustFetch(t, s)
	want := map[string]string{"app.yaml": "app", "common.yaml": "common", "shared/common.yaml": "common"}
	if diff := cmp.Diff(want, files(t, rev.Files)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name, target, wantPath string
	}{
		{"absolute", "/etc/passwd", "./deploy/bad.yaml"},
		{"escaping", "../../etc/passwd", "./deploy/bad.yaml"},
		{"escaping through a directory", "../shared/../../x", "./deploy/bad.yaml"},
		{"dangling", "../nothing.yaml", "./deploy/bad.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.commit(tc.name, map[string]string{"deploy/bad.yaml": "->" + tc.target})
			r.push()
			err := fetchErr(t, s)
			var ce *ContentError
			if !errors.As(err, &ce) || !errors.Is(err, ErrUnsafeSymlink) || ce.Path != tc.wantPath {
				t.Fatalf("error %v: want a ContentError for %s wrapping ErrUnsafeSymlink", err, tc.wantPath)
			}
			if testing.Verbose() {
				t.Logf("error: %v", err)
			}
			if !strings.Contains(err.Error(), tc.wantPath+": ") {
				t.Errorf("error %q does not name %s", err, tc.wantPath)
			}
			r.commit("fix", map[string]string{"rm:deploy/bad.yaml": ""})
		})
	}
}

func TestFileTooLarge(t *testing.T) {
	r := newTestRepo(t)
	r.commit("big", map[string]string{"big.yaml": strings.Repeat("x", 2048), "small.yaml": "x"})
	r.push()
	base := startGitDaemon(t, r.root)
	err := fetchErr(t, mustOpen(t, Options{URL: base + "/repo.git", MaxFileSize: 1024}))
	var ce *ContentError
	if !errors.As(err, &ce) || !errors.Is(err, ErrFileTooLarge) || ce.Path != "./big.yaml" {
		t.Fatalf("error %v: want a ContentError for ./big.yaml wrapping ErrFileTooLarge", err)
	}
	if !strings.Contains(err.Error(), "./big.yaml: 2 KiB exceeds the limit of 1 KiB") {
		t.Errorf("error = %q", err)
	}
	rev, _ := mustFetch(t, mustOpen(t, Options{URL: base + "/repo.git", MaxFileSize: 2048}))
	if len(files(t, rev.Files)["big.yaml"]) != 2048 {
		t.Error("big.yaml not read at the limit")
	}
}

func TestConcurrentFetchesShareACache(t *testing.T) {
	r := newTestRepo(t)
	head := r.commit("first", map[string]string{"a.yaml": "a"})
	r.push()
	srv := startHTTPServer(t, r.root, "", "")
	cache := t.TempDir()
	const n = 4
	errs := make(chan error, n)
	for range n {
		s := mustOpen(t, Options{URL: srv.URL + "/repo.git", CacheDir: cache})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			rev, _, err := s.Fetch(ctx)
			if err == nil && rev.Commit != head {
				err = errors.New("wrong commit " + rev.Commit)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
