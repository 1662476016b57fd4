package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"berth.dev/berth/agent"
)

// Agent is what the API needs from the agent; *agent.Agent implements it.
type Agent interface {
	Status() agent.Status
	Ready() bool
	Trigger(agent.Trigger)
	Registry() *prometheus.Registry
	WebhookResult(code int)
}

var _ Agent = (*agent.Agent)(nil)

// Options configure a Server.
type Options struct {
	// Socket is the unix socket path (required). It is created with mode
	// 0660 and replaces a stale socket left by an earlier run.
	Socket string
	// Listen is an optional TCP address ("127.0.0.1:9090").
	Listen  string
	Webhook WebhookOptions
	// Health, when set, checks what the agent depends on (containerd):
	// while it fails, /healthz and /readyz answer 503 with its error.
	Health func(ctx context.Context) error
	Logger hclog.Logger
}

// Timeouts of every listener, the unix socket's included: a client that
// sends its request slowly, or keeps a connection open without using it,
// is cut off. (Variables so tests can shorten them.)
var (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = 2 * time.Minute
	healthTimeout     = 5 * time.Second
)

// Server is the agent's local HTTP API.
type Server struct {
	opts  Options
	a     Agent
	local http.Handler // unix socket: everything
	tcp   http.Handler // TCP: everything but /trigger
}

// New prepares a Server; Serve starts it.
func New(a Agent, opts Options) (*Server, error) {
	if opts.Socket == "" {
		return nil, errors.New("api: no socket path")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	s := &Server{opts: opts, a: a}
	log := opts.Logger.Named("api")
	wh := newWebhook(opts.Webhook, func() { a.Trigger(agent.TriggerWebhook) }, a.WebhookResult, log.Named("webhook"))
	mux := func(local bool) *http.ServeMux {
		m := http.NewServeMux()
		healthy := func(w http.ResponseWriter, r *http.Request) bool {
			if opts.Health == nil {
				return true
			}
			ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
			defer cancel()
			if err := opts.Health(ctx); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return false
			}
			return true
		}
		m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
			if healthy(w, r) {
				fmt.Fprintln(w, "ok")
			}
		})
		m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
			if !healthy(w, r) {
				return
			}
			if !a.Ready() {
				http.Error(w, "first reconcile pass not finished", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		m.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(a.Status())
		})
		m.Handle("GET /metrics", promhttp.HandlerFor(a.Registry(), promhttp.HandlerOpts{}))
		m.Handle("/hooks/git", wh)
		if local {
			m.HandleFunc("POST /trigger", func(w http.ResponseWriter, r *http.Request) {
				a.Trigger(agent.TriggerControl)
				w.WriteHeader(http.StatusAccepted)
			})
		}
		return m
	}
	s.local, s.tcp = mux(true), mux(false)
	return s, nil
}

// Handler returns the handler of the TCP listener (no /trigger).
func (s *Server) Handler() http.Handler { return s.tcp }

// LocalHandler returns the handler of the unix socket.
func (s *Server) LocalHandler() http.Handler { return s.local }

// Serve listens on the socket (and the TCP address) until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.opts.Socket), 0o755); err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	if err := removeStaleSocket(s.opts.Socket); err != nil {
		return err
	}
	ul, err := net.Listen("unix", s.opts.Socket)
	if err != nil {
		return fmt.Errorf("api socket: %w", err)
	}
	if err := os.Chmod(s.opts.Socket, 0o660); err != nil {
		ul.Close()
		return fmt.Errorf("api socket: %w", err)
	}
	servers := []*http.Server{newServer(s.local)}
	listeners := []net.Listener{ul}
	if s.opts.Listen != "" {
		tl, err := net.Listen("tcp", s.opts.Listen)
		if err != nil {
			ul.Close()
			return fmt.Errorf("api listen: %w", err)
		}
		servers = append(servers, newServer(s.tcp))
		listeners = append(listeners, tl)
		s.opts.Logger.Named("api").Info("listening", "address", tl.Addr().String())
	}
	errc := make(chan error, len(servers))
	for i := range servers {
		go func() { errc <- servers[i].Serve(listeners[i]) }()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.Shutdown(sctx)
	}
	os.Remove(s.opts.Socket)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
}

// removeStaleSocket removes a socket no process listens on; a live one
// means another agent runs.
func removeStaleSocket(path string) error {
	if _, err := os.Lstat(path); err != nil {
		return nil
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another agent is listening on it", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("api socket: remove stale %s: %w", path, err)
	}
	return nil
}
