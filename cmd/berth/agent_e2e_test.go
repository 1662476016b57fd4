package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"berth.dev/berth/agent"
	"berth.dev/berth/agent/api"
)

// End-to-end tests of berth agent: the agent runs in-process with the
// command's own flag parsing, against a private containerd and a Git
// server on loopback (git http-backend behind basic auth).

// gitServer serves h's repository, pushed to a bare copy, over smart HTTP
// with basic auth. Setting down makes it answer 503, as during an outage.
type gitServer struct {
	*httptest.Server
	bare string
	mu   sync.Mutex
	down bool
}

const gitUser, gitPassword = "deploy", "p4ss-w0rd-secret"

func (h *host) serveGit() *gitServer {
	h.t.Helper()
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		h.t.Fatal(err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	root := h.t.TempDir()
	s := &gitServer{bare: filepath.Join(root, "repo.git")}
	h.git("init", "-q", "--bare", "-b", "main", s.bare)
	cgiH := &cgi.Handler{Path: backend, Root: "/", Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != gitUser || p != gitPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		cgiH.ServeHTTP(w, r)
	}))
	h.t.Cleanup(s.Close)
	return s
}

func (s *gitServer) setDown(v bool) { s.mu.Lock(); s.down = v; s.mu.Unlock() }

func (h *host) push(s *gitServer) string {
	h.t.Helper()
	h.git("push", "-q", "--force", s.bare, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
	return h.head()
}

func (h *host) head() string {
	h.t.Helper()
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = h.repo
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// runningAgent is berth agent running in a goroutine.
type runningAgent struct {
	h      *host
	cancel context.CancelFunc
	done   chan int
	log    *syncBuffer
	client *api.Client
	listen string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent runs berth agent with the host's shared flags, parsing them
// as the command does, and waits until its API answers /readyz.
func (h *host) startAgent(args ...string) *runningAgent {
	h.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	full := append([]string{
		"--containerd-address", daemon.Address(), "--namespace", h.ns, "--state-dir", h.state,
		"--network", h.net.Name, "--bridge", h.net.Bridge, "--pod-subnet", h.net.Subnet,
		"--log-level", "debug", "--listen", listen, "--interval", "1h", "--resync", "-1s",
	}, args...)
	ra := &runningAgent{h: h, done: make(chan int, 1), log: &syncBuffer{}, listen: listen,
		client: api.NewClient(filepath.Join(h.state, "agent.sock"))}
	env := &cli{stdout: ra.log, stderr: ra.log}
	fs := flag.NewFlagSet("berth agent", flag.ContinueOnError)
	fs.SetOutput(ra.log)
	env.commonFlags(fs)
	cmd := agentCommand()
	cmd.flags(fs, env)
	if err := fs.Parse(full); err != nil {
		h.t.Fatal(err)
	}
	log, err := env.newLogger()
	if err != nil {
		h.t.Fatal(err)
	}
	env.log = log
	ctx, cancel := context.WithCancel(context.Background())
	ra.cancel = cancel
	go func() {
		err := cmd.run(ctx, env, fs.Args())
		if err != nil {
			fmt.Fprintf(ra.log, "agent: %v\n", err)
			ra.done <- 1
			return
		}
		ra.done <- 0
	}()
	h.t.Cleanup(ra.stop)
	ra.waitFor("agent ready", func(st *agent.Status) bool { return !st.LastPass.IsZero() })
	return ra
}

func (ra *runningAgent) stop() {
	if ra.cancel == nil {
		return
	}
	ra.cancel()
	ra.cancel = nil
	select {
	case code := <-ra.done:
		if code != 0 {
			ra.h.t.Errorf("agent exited with %d\n%s", code, ra.log.String())
		}
	case <-time.After(30 * time.Second):
		ra.h.t.Errorf("agent did not stop\n%s", ra.log.String())
	}
	if ra.h.t.Failed() {
		ra.h.t.Logf("agent log:\n%s", ra.log.String())
	}
}

// waitFor polls the agent's status until cond holds (60 s at most).
func (ra *runningAgent) waitFor(what string, cond func(st *agent.Status) bool) *agent.Status {
	ra.h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last *agent.Status
	for time.Now().Before(deadline) {
		select {
		case code := <-ra.done:
			ra.h.t.Fatalf("agent exited (%d) while waiting for %s\n%s", code, what, ra.log.String())
		default:
		}
		st, err := ra.client.Status(context.Background())
		if err == nil {
			last = st
			if cond(st) {
				return st
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	ra.h.t.Fatalf("timed out waiting for %s; last status %+v\n%s", what, last, ra.log.String())
	return nil
}

func podRevision(st *agent.Status, name string) (string, bool) {
	for _, p := range st.Pods {
		if p.ID.Name == name {
			return p.Revision, p.Ready
		}
	}
	return "", false
}

// webhook posts a GitHub-style push notification.
func (ra *runningAgent) webhook(secret, delivery, body string) int {
	ra.h.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+ra.listen+"/hooks/git", strings.NewReader(body))
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	req.Header.Set("X-GitHub-Delivery", delivery)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ra.h.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// credentials writes the Git password and webhook secret files.
func (h *host) credentials() (passwordFile, usernameFile, secretFile string) {
	h.t.Helper()
	dir := h.t.TempDir()
	for name, v := range map[string]string{"password": gitPassword, "username": gitUser, "secret": "hook-secret"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v+"\n"), 0o600); err != nil {
			h.t.Fatal(err)
		}
	}
	return filepath.Join(dir, "password"), filepath.Join(dir, "username"), filepath.Join(dir, "secret")
}

func TestAgentWebhookRollbackAndNoRetry(t *testing.T) { testWebhookRollback(t, nil) }

func testWebhookRollback(t *testing.T, extra []string) {
	h := newHost(t)
	srv := h.serveGit()
	pw, user, secret := h.credentials()
	h.write("web.yaml", sleeper("web", "3600"))
	h.write("db.yaml", sleeper("db", "3600"))
	h.commit("v1")
	c1 := h.push(srv)

	ra := h.startAgent(append([]string{"--repo", srv.URL + "/repo.git", "--git-username-file", user, "--git-password-file", pw,
		"--webhook-secret-file", secret, "--health-settle", "1s", "--health-deadline", "30s"}, extra...)...)
	ra.waitFor("v1 good", func(st *agent.Status) bool { return st.LastGood != nil && st.LastGood.Commit == c1 })

	// A push and a webhook: the pod is replaced.
	h.write("web.yaml", sleeper("web", "3601"))
	h.commit("v2")
	c2 := h.push(srv)
	if code := ra.webhook("wrong-secret", "d-1", `{"ref":"refs/heads/main"}`); code != http.StatusUnauthorized {
		t.Fatalf("webhook with a wrong signature: %d, want 401", code)
	}
	if code := ra.webhook("hook-secret", "d-2", `{"ref":"refs/heads/main"}`); code != http.StatusAccepted {
		t.Fatalf("webhook: %d, want 202", code)
	}
	if code := ra.webhook("hook-secret", "d-2", `{"ref":"refs/heads/main"}`); code != http.StatusOK {
		t.Fatalf("replayed webhook: %d, want 200", code)
	}
	if code := ra.webhook("hook-secret", "d-3", strings.Repeat(" ", 2<<20)); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize webhook: %d, want 413", code)
	}
	st := ra.waitFor("v2 good", func(st *agent.Status) bool { return st.LastGood != nil && st.LastGood.Commit == c2 })
	if rev, _ := podRevision(st, "web"); rev != c2 {
		t.Fatalf("web runs %s, want %s", rev, c2)
	}
	if rev, _ := podRevision(st, "db"); rev != c1 {
		t.Fatalf("db was replaced (revision %s); its spec did not change", rev)
	}

	// A commit whose pod crashes is rolled back and recorded as bad.
	h.write("web.yaml", strings.Replace(sleeper("web", "3600"), "trap 'exit 0' TERM; sleep 3600 & wait", "exit 7", 1))
	h.commit("v3: crashes")
	c3 := h.push(srv)
	ra.webhook("hook-secret", "d-4", "{}")
	st = ra.waitFor("rollback of v3", func(st *agent.Status) bool {
		rev, ready := podRevision(st, "web")
		return len(st.BadRevisions) == 1 && rev == c2 && ready && st.Applied.Commit == c2
	})
	if st.BadRevisions[0].Commit != c3 || st.LastError == nil || st.LastError.Kind != "health" || !strings.Contains(st.LastError.Reason, "exit code 7") && !strings.Contains(st.LastError.Reason, "exited with code 7") {
		t.Fatalf("bad revisions %+v, last error %+v", st.BadRevisions, st.LastError)
	}
	if st.Applied.Commit != c2 || st.LastGood.Commit != c2 {
		t.Fatalf("applied %s, good %s; want %s", st.Applied.Commit, st.LastGood.Commit, c2)
	}

	// The bad commit is not retried, by this agent or a restarted one.
	before := h.pids()
	ra.webhook("hook-secret", "d-5", "{}")
	ra.stop()
	ra = h.startAgent(append([]string{"--repo", srv.URL + "/repo.git", "--git-username-file", user, "--git-password-file", pw}, extra...)...)
	st = ra.waitFor("bad revision skipped", func(st *agent.Status) bool { return st.LastError != nil && st.LastError.Kind == "bad-revision" })
	if after := h.pids(); !equalPIDs(before, after) {
		t.Fatalf("pods changed: %v → %v", before, after)
	}
	if strings.Contains(ra.log.String(), gitPassword) {
		t.Fatal("the Git password is in the agent's log")
	}
	resp, err := http.Get("http://" + ra.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`berth_revision_info{commit="` + c2 + `",kind="good"} 1`, `berth_pods{phase="Running"} 2`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if bytes.Contains(metrics, []byte(gitPassword)) {
		t.Error("metrics show the Git password")
	}
}

// mutations subscribes to containerd's events in the host's namespace and
// returns a function that lists the mutating ones seen so far.
func (h *host) mutations() func() []string {
	h.t.Helper()
	cl, err := client.New(daemon.Address())
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(context.Background(), h.ns))
	h.t.Cleanup(func() { cancel(); cl.Close() })
	ch, errs := cl.EventService().Subscribe(ctx, fmt.Sprintf(`namespace==%q`, h.ns))
	var mu sync.Mutex
	var seen []string
	const marker = "/berth-test/subscribed"
	live := make(chan struct{})
	var liveOnce sync.Once
	go func() {
		for {
			select {
			case ev := <-ch:
				if ev == nil {
					return
				}
				if ev.Topic == marker {
					liveOnce.Do(func() { close(live) })
					continue
				}
				mu.Lock()
				seen = append(seen, ev.Topic)
				mu.Unlock()
			case <-errs:
				return
			}
		}
	}()
	// The subscription is live once it delivers an event of our own; the
	// client subscribes in the background, so one published before that
	// is not seen: publish until one is.
	deadline := time.After(30 * time.Second)
	for delivered := false; !delivered; {
		if err := cl.EventService().Publish(ctx, marker, &apievents.ContainerDelete{ID: "marker"}); err != nil {
			h.t.Fatal(err)
		}
		select {
		case <-live:
			delivered = true
		case <-time.After(100 * time.Millisecond): // then publish again
		case <-deadline:
			h.t.Fatal("the event subscription delivered nothing")
		}
	}
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestAgentRestartAndOutageChangeNothing(t *testing.T) { testRestartAndOutage(t, nil) }

func testRestartAndOutage(t *testing.T, extra []string) {
	h := newHost(t)
	srv := h.serveGit()
	pw, user, _ := h.credentials()
	const n = 50
	for i := range n {
		h.write(fmt.Sprintf("p%02d.yaml", i), sleeper(fmt.Sprintf("p%02d", i), "3600"))
	}
	h.commit("fifty pods")
	c1 := h.push(srv)
	args := append([]string{"--repo", srv.URL + "/repo.git", "--git-username-file", user, "--git-password-file", pw, "--health-settle", "1s"}, extra...)
	ra := h.startAgent(args...)
	ra.waitFor("fifty pods good", func(st *agent.Status) bool { return st.LastGood != nil && st.LastGood.Commit == c1 })
	before := h.pids()
	if len(before) != n {
		t.Fatalf("%d containers run, want %d", len(before), n)
	}
	ra.stop()
	if after := h.pids(); !equalPIDs(before, after) {
		t.Fatal("stopping the agent changed pods")
	}

	// A restart with nothing changed makes no mutating runtime call.
	seen := h.mutations()
	ra = h.startAgent(args...)
	ra.waitFor("a pass", func(st *agent.Status) bool { return st.Applied != nil && st.Checking == nil })
	ra.stop()
	if ev := seen(); len(ev) != 0 {
		t.Fatalf("restart caused runtime events %v", ev)
	}

	// A new commit deleting most pods lands while Git goes down; the agent
	// restarts in the middle of the outage. No pod changes.
	for i := range n - 10 {
		os.Remove(filepath.Join(h.repo, fmt.Sprintf("p%02d.yaml", i)))
	}
	h.commit("delete forty")
	c2 := h.push(srv)
	srv.setDown(true)
	ra = h.startAgent(args...)
	st := ra.waitFor("offline", func(st *agent.Status) bool { return st.Offline && st.FetchError != nil })
	if st.Applied.Commit != c1 {
		t.Fatalf("offline agent applied %s, want %s", st.Applied.Commit, c1)
	}
	ra.stop()
	if ev := seen(); len(ev) != 0 {
		t.Fatalf("the outage caused runtime events %v", ev)
	}

	// Git is back: the mass deletion is refused.
	srv.setDown(false)
	ra = h.startAgent(args...)
	st = ra.waitFor("refusal", func(st *agent.Status) bool { return st.LastError != nil && st.LastError.Kind == "safety" })
	if st.LastError.Commit != c2 || !strings.Contains(st.LastError.Reason, "would remove 40 of the 50 workloads") {
		t.Fatalf("last error %+v", st.LastError)
	}
	ra.stop()
	if ev := seen(); len(ev) != 0 {
		t.Fatalf("the refused revision caused runtime events %v", ev)
	}
	if after := h.pids(); !equalPIDs(before, after) {
		t.Fatal("pods changed")
	}
}

func TestAgentSignedCommits(t *testing.T) {
	h := newHost(t)
	srv := h.serveGit()
	keys := t.TempDir()
	key := filepath.Join(keys, "id")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	allowed := filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(allowed, []byte("ops@berth.invalid "+string(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.git("config", "gpg.format", "ssh")
	h.git("config", "user.signingkey", key)

	h.write("web.yaml", sleeper("web", "3600"))
	h.git("add", "-A")
	h.git("commit", "-q", "-S", "-m", "signed")
	c1 := h.push(srv)
	// Credentials in the URL this time: they must not show anywhere.
	withCreds := strings.Replace(srv.URL, "http://", "http://"+gitUser+":"+gitPassword+"@", 1) + "/repo.git"
	ra := h.startAgent("--repo", withCreds, "--verify", "head", "--trusted-keys", allowed, "--health-settle", "1s")
	st := ra.waitFor("signed commit applied", func(st *agent.Status) bool {
		rev, _ := podRevision(st, "web")
		return rev == c1
	})

	h.write("web.yaml", sleeper("web", "3601"))
	h.commit("unsigned")
	c2 := h.push(srv)
	before := h.pids()
	if err := ra.client.Trigger(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = ra.waitFor("unsigned commit refused", func(st *agent.Status) bool { return st.LastError != nil && st.LastError.Kind == "verify" })
	if st.LastError.Commit != c2 || !strings.Contains(st.LastError.Reason, c2[:12]) || !strings.Contains(st.LastError.Reason, "not signed") {
		t.Fatalf("last error %+v", st.LastError)
	}
	if after := h.pids(); !equalPIDs(before, after) {
		t.Fatal("an unsigned commit changed pods")
	}
	if st.Applied.Commit != c1 {
		t.Fatalf("applied %s, want %s", st.Applied.Commit, c1)
	}
	for _, path := range []string{"/status", "/metrics"} {
		resp, err := http.Get("http://" + ra.listen + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if bytes.Contains(body, []byte(gitPassword)) {
			t.Errorf("%s shows the password from the URL", path)
		}
	}
	if strings.Contains(ra.log.String(), gitPassword) {
		t.Error("the log shows the password from the URL")
	}
	if st.Source != srv.URL+"/repo.git" {
		t.Errorf("status source %q, want %q", st.Source, srv.URL+"/repo.git")
	}
}

func TestAgentLocalDirectorySuspendResume(t *testing.T) {
	h := newHost(t)
	dir := t.TempDir()
	write := func(arg string) {
		if err := os.WriteFile(filepath.Join(dir, "web.yaml"), []byte(sleeper("web", arg)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("3600")
	ra := h.startAgent("--repo", dir, "--health-settle", "1s", "--debounce", "50ms")
	st := ra.waitFor("web running", func(st *agent.Status) bool { _, ready := podRevision(st, "web"); return ready })
	first, _ := podRevision(st, "web")

	// A file change reaches the host without a poll or a webhook.
	write("3601")
	st = ra.waitFor("web replaced", func(st *agent.Status) bool {
		rev, ready := podRevision(st, "web")
		return rev != first && ready
	})
	second, _ := podRevision(st, "web")

	// Suspended, the agent notices the change and applies nothing.
	if out := h.mustBerth("suspend"); !strings.Contains(out, "suspended") {
		t.Fatalf("suspend: %q", out)
	}
	ra.waitFor("suspended", func(st *agent.Status) bool { return st.Suspended })
	before := h.pids()
	mark := time.Now()
	write("3602")
	ra.waitFor("a pass after the change", func(st *agent.Status) bool { return st.LastPass.After(mark.Add(50 * time.Millisecond)) })
	if after := h.pids(); !equalPIDs(before, after) {
		t.Fatal("a suspended agent changed pods")
	}
	if out := h.mustBerth("resume"); !strings.Contains(out, "following the head") {
		t.Fatalf("resume: %q", out)
	}
	ra.waitFor("web replaced after resume", func(st *agent.Status) bool {
		rev, ready := podRevision(st, "web")
		return rev != second && ready && !st.Suspended
	})
}
