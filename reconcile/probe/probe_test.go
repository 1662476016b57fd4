package probe_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/reconcile/probe"
)

func split(t *testing.T, u string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

func TestGetKubeletSemantics(t *testing.T) {
	var gotHost, gotHeader string
	hops := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			gotHost, gotHeader = r.Host, r.Header.Get("X-Probe")
		case "/loop":
			hops++
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/fail":
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, port := split(t, srv.URL)
	// A proxy in the environment is ignored: the request goes to the pod.
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	ctx := context.Background()
	h := probe.HTTP{Host: host, Port: port, Path: "ok", Headers: []probe.Header{{Name: "Host", Value: "app.example"}, {Name: "X-Probe", Value: "1"}}}
	if err := probe.Get(ctx, h, 5*time.Second); err != nil {
		t.Fatalf("ok: %v", err)
	}
	if gotHost != "app.example" || gotHeader != "1" {
		t.Errorf("host %q header %q: want the Host header as the request's host", gotHost, gotHeader)
	}
	if err := probe.Get(ctx, probe.HTTP{Host: host, Port: port, Path: "/fail"}, 5*time.Second); err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Errorf("503: %v", err)
	}
	// As kubelet: after 10 requests the last response (a 302) counts, a
	// success.
	if err := probe.Get(ctx, probe.HTTP{Host: host, Port: port, Path: "/loop"}, 5*time.Second); err != nil {
		t.Errorf("redirect loop: %v", err)
	}
	if hops != 10 {
		t.Errorf("followed %d requests, want 10", hops)
	}
}

func TestGetHTTPSWithoutVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	host, port := split(t, srv.URL)
	if err := probe.Get(context.Background(), probe.HTTP{Scheme: "HTTPS", Host: host, Port: port}, 5*time.Second); err != nil {
		t.Fatalf("self-signed https: %v", err)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port := split(t, l.Addr().String())
	if err := probe.TCP(context.Background(), host, port); err != nil {
		t.Errorf("open port: %v", err)
	}
	l.Close()
	if err := probe.TCP(context.Background(), host, port); err == nil {
		t.Error("closed port: no error")
	}
}
