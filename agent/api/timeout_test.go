package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSlowClientIsCutOffOnTheSocket: a client that trickles its request
// into the unix socket is disconnected by the read timeout.
func TestSlowClientIsCutOffOnTheSocket(t *testing.T) {
	old := readTimeout
	readTimeout = 300 * time.Millisecond
	defer func() { readTimeout = old }()
	dir, err := os.MkdirTemp("", "api")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	s, err := New(&stub{reg: prometheus.NewRegistry()}, Options{Socket: sock, Webhook: WebhookOptions{Secret: []byte(secret)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		if conn, err = net.Dial("unix", sock); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /hooks/git HTTP/1.1\r\nHost: berth\r\nContent-Length: 100\r\n\r\n{")); err != nil {
		t.Fatal(err)
	}
	// Never finish the body; the server must close the connection (read
	// returns EOF or a reset) long before the client's deadline.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a slow client connected")
	}
}

func TestHealthReportsContainerdDown(t *testing.T) {
	down := errors.New("containerd at /run/containerd/containerd.sock: connection refused")
	s, err := New(&stub{reg: prometheus.NewRegistry()}, Options{Socket: "unused", Health: func(context.Context) error { return down }})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusServiceUnavailable || rec.Body.String() != down.Error()+"\n" {
			t.Errorf("%s with containerd down: %d %q", p, rec.Code, rec.Body.String())
		}
	}
}
