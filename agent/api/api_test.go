package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"berth.dev/berth/agent"
	"berth.dev/berth/reconcile"
)

// stub is an Agent that counts triggers.
type stub struct {
	mu       sync.Mutex
	triggers []agent.Trigger
	codes    []int
	reg      *prometheus.Registry
}

func (s *stub) Status() agent.Status {
	return agent.Status{Source: "https://git.example/repo.git", Pods: []reconcile.PodStatus{}}
}
func (s *stub) Ready() bool { return true }
func (s *stub) Trigger(t agent.Trigger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.triggers = append(s.triggers, t)
}
func (s *stub) Registry() *prometheus.Registry { return s.reg }
func (s *stub) WebhookResult(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes = append(s.codes, code)
}
func (s *stub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.triggers)
}

const secret = "s3cret-webhook-key"

func sign(body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	const body = `{"ref":"refs/heads/main"}`
	big := strings.Repeat("x", 2048)
	type req struct {
		headers map[string]string
		body    string
	}
	for _, tc := range []struct {
		name      string
		reqs      []req
		wantCodes []int
		triggers  int
	}{
		{"github good", []req{{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Delivery": "1"}, body}}, []int{202}, 1},
		{"github wrong signature", []req{{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body+" "), "X-GitHub-Delivery": "1"}, body}}, []int{401}, 0},
		{"github signature without prefix", []req{{map[string]string{"X-Hub-Signature-256": sign(body)}, body}}, []int{401}, 0},
		{"no signature", []req{{map[string]string{"X-GitHub-Delivery": "1"}, body}}, []int{401}, 0},
		{"tampered body", []req{{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body)}, body + "\n"}}, []int{401}, 0},
		{"gitea good", []req{{map[string]string{"X-Gitea-Signature": sign(body), "X-Gitea-Delivery": "a"}, body}}, []int{202}, 1},
		{"forgejo good", []req{{map[string]string{"X-Forgejo-Signature": sign(body)}, body}}, []int{202}, 1},
		{"generic good", []req{{map[string]string{"X-Berth-Signature-256": "sha256=" + sign(body)}, body}}, []int{202}, 1},
		{"gitlab token", []req{{map[string]string{"X-Gitlab-Token": secret, "X-Gitlab-Event-UUID": "u1"}, body}}, []int{202}, 1},
		{"gitlab wrong token", []req{{map[string]string{"X-Gitlab-Token": secret + "x"}, body}}, []int{401}, 0},
		{"replayed delivery", []req{
			{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Delivery": "d-1"}, body},
			{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Delivery": "d-1"}, body},
			{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Delivery": "d-2"}, body},
		}, []int{202, 200, 202}, 2},
		{"forged replay does not poison the id", []req{
			{map[string]string{"X-Hub-Signature-256": "sha256=00", "X-GitHub-Delivery": "d-9"}, body},
			{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Delivery": "d-9"}, body},
		}, []int{401, 202}, 1},
		{"oversize", []req{{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(big)}, big}}, []int{413}, 0},
		{"rate limited", []req{
			{map[string]string{"X-Berth-Signature-256": "sha256=" + sign(body)}, body},
			{map[string]string{"X-Berth-Signature-256": "sha256=" + sign(body)}, body},
			{map[string]string{"X-Berth-Signature-256": "sha256=" + sign(body)}, body},
			{map[string]string{"X-Berth-Signature-256": "sha256=" + sign(body)}, body},
		}, []int{202, 202, 202, 429}, 3},
		{"unsigned flood does not starve a signed push", []req{
			{map[string]string{"X-GitHub-Delivery": "f1"}, body},
			{map[string]string{"X-Hub-Signature-256": "sha256=00"}, body},
			{map[string]string{"X-Gitlab-Token": "guess"}, body},
			{map[string]string{"X-GitHub-Delivery": "f2"}, body},
			{map[string]string{"X-GitHub-Delivery": "f3"}, body},
			{map[string]string{"X-Hub-Signature-256": "sha256=" + sign(body), "X-GitHub-Delivery": "real"}, body},
		}, []int{401, 401, 401, 429, 429, 202}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &stub{reg: prometheus.NewRegistry()}
			s, err := New(st, Options{Socket: "unused", Webhook: WebhookOptions{Secret: []byte(secret), MaxBody: 1024, Rate: rate.Every(time.Hour), Burst: 3}})
			if err != nil {
				t.Fatal(err)
			}
			var codes []int
			for _, r := range tc.reqs {
				hr := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(r.body))
				for k, v := range r.headers {
					hr.Header.Set(k, v)
				}
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, hr)
				codes = append(codes, rec.Code)
				if strings.Contains(rec.Body.String(), secret) {
					t.Fatalf("response shows the secret: %q", rec.Body.String())
				}
			}
			if !equal(codes, tc.wantCodes) {
				t.Fatalf("codes %v, want %v", codes, tc.wantCodes)
			}
			if !equal(st.codes, tc.wantCodes) {
				t.Fatalf("metrics saw codes %v, want %v", st.codes, tc.wantCodes)
			}
			if st.count() != tc.triggers {
				t.Fatalf("%d triggers, want %d", st.count(), tc.triggers)
			}
		})
	}
}

func TestWebhookDisabledWithoutSecret(t *testing.T) {
	st := &stub{reg: prometheus.NewRegistry()}
	s, _ := New(st, Options{Socket: "unused"})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader("{}")))
	if rec.Code != http.StatusNotFound || st.count() != 0 {
		t.Fatalf("code %d, %d triggers", rec.Code, st.count())
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestServeSocketAndTCP(t *testing.T) {
	st := &stub{reg: prometheus.NewRegistry()}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_test_total", Help: "t"})
	st.reg.MustRegister(c)
	c.Add(3)
	dir, err := os.MkdirTemp("", "api")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	// A stale socket file from a crashed agent is replaced.
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(st, Options{Socket: sock, Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	cl := NewClient(sock)
	var status *agent.Status
	for i := 0; ; i++ {
		status, err = cl.Status(ctx)
		if err == nil || i > 200 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if status.Source != "https://git.example/repo.git" {
		t.Fatalf("status %+v", status)
	}
	if err := cl.Trigger(ctx); err != nil || st.count() != 1 || st.triggers[0] != agent.TriggerControl {
		t.Fatalf("trigger: %v, %v", err, st.triggers)
	}
	// /metrics is Prometheus text.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !bytes.Contains(rec.Body.Bytes(), []byte("berth_test_total 3")) {
		t.Fatalf("metrics:\n%s", rec.Body.String())
	}
	// The TCP handler has no /trigger.
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/trigger", nil))
	if rec.Code == http.StatusAccepted {
		t.Fatal("/trigger served over TCP")
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		rec = httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if body, _ := io.ReadAll(rec.Body); rec.Code != 200 || string(body) != "ok\n" {
			t.Fatalf("%s: %d %q", p, rec.Code, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); err == nil {
		t.Fatal("socket left behind")
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("{}"), "sha256=00", "")
	f.Fuzz(func(t *testing.T, body []byte, sig, token string) {
		h := http.Header{}
		if sig != "" {
			h.Set("X-Hub-Signature-256", sig)
		}
		if token != "" {
			h.Set("X-Gitlab-Token", token)
		}
		_, ok := verify(h, body, []byte(secret))
		if ok && sig != "" && strings.ToLower(strings.TrimPrefix(strings.TrimSpace(sig), "sha256=")) != sign(string(body)) {
			t.Fatalf("accepted signature %q", sig)
		}
	})
}
