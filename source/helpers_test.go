package source

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// gitEnv is the environment of every git command a test runs: no user or
// system configuration, a fixed identity and date.
func gitEnv() []string {
	env := []string{
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Berth Test",
		"GIT_AUTHOR_EMAIL=test@berth.invalid",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z",
		"GIT_COMMITTER_NAME=Berth Test",
		"GIT_COMMITTER_EMAIL=test@berth.invalid",
		"GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
		"GIT_TERMINAL_PROMPT=0",
		"HOME=/nonexistent",
		"LANG=C",
	}
	if p := os.Getenv("PATH"); p != "" {
		env = append(env, "PATH="+p)
	}
	return env
}

// gitRun runs git in dir and returns its trimmed standard output.
func gitRun(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// testRepo is a working repository and a bare "server" copy it pushes to.
type testRepo struct {
	t    testing.TB
	work string // working tree
	root string // directory holding the bare repository (server root)
	bare string // root/repo.git
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	base := t.TempDir()
	r := &testRepo{
		t:    t,
		work: filepath.Join(base, "work"),
		root: filepath.Join(base, "srv"),
	}
	r.bare = filepath.Join(r.root, "repo.git")
	for _, d := range []string{r.work, r.root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gitRun(t, r.work, "init", "-q", "-b", "main")
	gitRun(t, r.root, "init", "-q", "--bare", "-b", "main", "repo.git")
	return r
}

// write writes files into the working tree; a value starting with "->" makes
// a symlink to the rest, and a nil-like "" value with a "rm:" prefixed key
// removes the file.
func (r *testRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, filepath.FromSlash(name))
		if rest, ok := strings.CutPrefix(name, "rm:"); ok {
			if err := os.RemoveAll(filepath.Join(r.work, rest)); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		_ = os.Remove(p)
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// commit writes files, commits them and returns the new commit hash.
func (r *testRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	r.write(files)
	gitRun(r.t, r.work, "add", "-A")
	gitRun(r.t, r.work, "commit", "-q", "--allow-empty", "-m", msg)
	return gitRun(r.t, r.work, "rev-parse", "HEAD")
}

// push force-pushes every branch and tag to the bare repository.
func (r *testRepo) push() {
	r.t.Helper()
	gitRun(r.t, r.work, "push", "-q", "--force", r.bare, "+refs/heads/*:refs/heads/*")
	gitRun(r.t, r.work, "push", "-q", "--force", r.bare, "+refs/tags/*:refs/tags/*")
}

// httpServer serves the bare repositories under root with git http-backend
// (smart HTTP) through net/http/cgi. With user set it demands basic auth.
type httpServer struct {
	*httptest.Server
	uploadPacks atomic.Int64 // POSTs to git-upload-pack: object transfers
}

func startHTTPServer(t testing.TB, root, user, password string) *httpServer {
	t.Helper()
	execPath := gitRun(t, "", "--exec-path")
	backend := filepath.Join(execPath, "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend not found: %v", err)
	}
	h := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env:  append(gitEnv(), "GIT_PROJECT_ROOT="+root, "GIT_HTTP_EXPORT_ALL=1"),
	}
	s := &httpServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/git-upload-pack") {
			s.uploadPacks.Add(1)
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(s.Close)
	return s
}

// startGitDaemon runs git daemon for the repositories under root on a free
// loopback port and returns the git:// base URL. The daemon is stopped by
// its process group id when the test ends.
func startGitDaemon(t testing.TB, root string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command("git", "daemon", "--reuseaddr", "--export-all", "--informative-errors",
		"--base-path="+root, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), root)
	cmd.Env = gitEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logs strings.Builder
	cmd.Stderr = &syncWriter{b: &logs}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start git daemon: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("git daemon log:\n%s", logs.String())
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon did not listen on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "git://" + addr
}

// syncWriter serializes writes to a strings.Builder.
type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// testLogger logs through t so output shows only on failure or -v.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   t.Name(),
		Level:  hclog.Debug,
		Output: testWriter{t},
	})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// mustFetch fetches and fails the test on error.
func mustFetch(t testing.TB, s *Source) (*Revision, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rev, changed, err := s.Fetch(ctx)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	return rev, changed
}

func fetchErr(t testing.TB, s *Source) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := s.Fetch(ctx)
	if err == nil {
		t.Fatal("fetch succeeded, want an error")
	}
	return err
}

func mustOpen(t testing.TB, o Options) *Source {
	t.Helper()
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// files reads every file of fsys into a map.
func files(t testing.TB, fsys fs.FS) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// testLoggerTo logs everything into b.
func testLoggerTo(b *strings.Builder) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &syncWriter{b: b}})
}
