// Package probe runs the network handlers of Kubernetes probes and
// lifecycle hooks (httpGet, tcpSocket, grpc) with kubelet's semantics, for
// the pod manager's probes and the runtime's postStart and preStop hooks
// alike:
//
//   - no proxy, whatever the environment says: the request goes straight
//     to the pod;
//   - a Host header given in httpHeaders becomes the request's host;
//   - HTTPS without certificate verification;
//   - at most 10 redirects, the last response counting after that;
//   - success is a status from 200 to 399; a connection refused, a
//     timeout or any other status is a failure with the reason.
//
// It knows nothing of berth's model: callers resolve named ports.
package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Header is one HTTP header of an httpGet handler.
type Header struct{ Name, Value string }

// HTTP is an httpGet handler with its port resolved.
type HTTP struct {
	// Scheme is "http" (default) or "https".
	Scheme string
	// Host is the address to connect to (the pod's IP when the handler
	// names none).
	Host    string
	Port    int
	Path    string
	Headers []Header
}

// maxRedirects is how many redirects kubelet follows.
const maxRedirects = 10

// URL is the address h requests.
func (h HTTP) URL() string {
	scheme := strings.ToLower(h.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(h.Host, strconv.Itoa(h.Port))}
	return u.String() + path
}

// Get runs an httpGet handler: nil for a status from 200 to 399.
func Get(ctx context.Context, h HTTP, timeout time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL(), nil)
	if err != nil {
		return fmt.Errorf("httpGet: %w", err)
	}
	req.Header.Set("User-Agent", "berth-probe")
	for _, hd := range h.Headers {
		if strings.EqualFold(hd.Name, "host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			// Kubernetes does not verify a probe's certificate.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("httpGet: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("httpGet %s: status %d", h.URL(), resp.StatusCode)
	}
	return nil
}

// TCP runs a tcpSocket handler: nil when a connection opens.
func TCP(ctx context.Context, host string, port int) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("tcpSocket: %w", err)
	}
	return c.Close()
}

// GRPC runs a grpc probe: nil when the standard health service reports
// SERVING for service.
func GRPC(ctx context.Context, host string, port int, service string) error {
	conn, err := grpc.NewClient(net.JoinHostPort(host, strconv.Itoa(port)),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("grpc: %w", err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("grpc: %w", err)
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("grpc: status %s", s)
	}
	return nil
}
