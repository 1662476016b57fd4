package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/time/rate"
)

// Webhook defaults.
const (
	// DefaultMaxBody is the largest webhook body accepted (forges send a
	// few hundred KiB at most for a push).
	DefaultMaxBody = 1 << 20
	// DefaultRate and DefaultBurst bound webhook requests per second.
	DefaultRate  = 2
	DefaultBurst = 20
	// replayMemory is how many delivery IDs are remembered.
	replayMemory = 4096
)

// WebhookOptions configure the webhook receiver.
type WebhookOptions struct {
	// Secret is the shared secret: the HMAC key, or GitLab's token. An
	// empty secret disables the receiver (404).
	Secret []byte
	// MaxBody is the body size limit in bytes (default DefaultMaxBody).
	MaxBody int64
	// Rate and Burst limit requests with a valid signature, which trigger
	// a fetch (defaults DefaultRate, DefaultBurst). Requests without one
	// are limited per source address, each source on its own budget of
	// the same size, so a flood of unsigned requests never delays a
	// signed push.
	Rate  rate.Limit
	Burst int
}

// maxSources bounds how many source addresses the unsigned-request
// limiter remembers; past it, it starts over.
const maxSources = 4096

// webhook verifies a forge's push notification and rings the agent.
type webhook struct {
	opts    WebhookOptions
	limiter *rate.Limiter // signed requests
	trigger func()
	result  func(code int)
	log     hclog.Logger

	mu      sync.Mutex
	seen    map[string]bool
	ring    []string
	next    int
	sources map[string]*rate.Limiter // unsigned requests, by source address
}

func newWebhook(o WebhookOptions, trigger func(), result func(int), log hclog.Logger) *webhook {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.Burst <= 0 {
		o.Burst = DefaultBurst
	}
	return &webhook{
		opts: o, limiter: rate.NewLimiter(o.Rate, o.Burst), trigger: trigger, result: result, log: log,
		seen: map[string]bool{}, ring: make([]string, replayMemory), sources: map[string]*rate.Limiter{},
	}
}

// deliveryHeaders carry a forge's unique ID of one delivery.
var deliveryHeaders = []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery", "X-Gitlab-Event-UUID", "X-Berth-Delivery"}

func (w *webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	code, msg := w.handle(rw, r)
	if w.result != nil {
		w.result(code)
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.WriteHeader(code)
	_, _ = io.WriteString(rw, msg+"\n")
}

func (w *webhook) handle(rw http.ResponseWriter, r *http.Request) (int, string) {
	if len(w.opts.Secret) == 0 {
		return http.StatusNotFound, "webhook receiver disabled: no secret configured"
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		return http.StatusMethodNotAllowed, "POST only"
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, w.opts.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		w.log.Warn("webhook body too large", "limit", w.opts.MaxBody, "remote", r.RemoteAddr)
		return http.StatusRequestEntityTooLarge, "body too large"
	case err != nil:
		return http.StatusBadRequest, "cannot read body"
	}
	// The signature first: only a signed request may spend the budget
	// that delays the next fetch.
	scheme, ok := verify(r.Header, body, w.opts.Secret)
	if !ok {
		if !w.sourceAllows(r.RemoteAddr) {
			return http.StatusTooManyRequests, "too many requests"
		}
		w.log.Warn("webhook signature missing or wrong", "scheme", scheme, "remote", r.RemoteAddr)
		return http.StatusUnauthorized, "missing or invalid signature"
	}
	if !w.limiter.Allow() {
		return http.StatusTooManyRequests, "too many requests"
	}
	if id := delivery(r.Header); id != "" && !w.remember(id) {
		w.log.Info("webhook delivery replayed; ignored", "delivery", id)
		return http.StatusOK, "delivery already received; ignored"
	}
	w.log.Debug("webhook accepted", "scheme", scheme)
	w.trigger()
	return http.StatusAccepted, "fetch triggered"
}

func delivery(h http.Header) string {
	for _, name := range deliveryHeaders {
		if v := strings.TrimSpace(h.Get(name)); v != "" {
			if len(v) > 200 {
				v = v[:200]
			}
			return name + ":" + v
		}
	}
	return ""
}

// sourceAllows spends one unsigned request of the source address of
// remote (host without port) and reports whether its budget allowed it.
func (w *webhook) sourceAllows(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	l, ok := w.sources[host]
	if !ok {
		if len(w.sources) >= maxSources {
			clear(w.sources)
		}
		l = rate.NewLimiter(w.opts.Rate, w.opts.Burst)
		w.sources[host] = l
	}
	return l.Allow()
}

// remember records a delivery ID and reports whether it is new.
func (w *webhook) remember(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen[id] {
		return false
	}
	if old := w.ring[w.next]; old != "" {
		delete(w.seen, old)
	}
	w.ring[w.next] = id
	w.next = (w.next + 1) % len(w.ring)
	w.seen[id] = true
	return true
}

// verify checks the first signature header present against body and
// secret, in constant time, and names the scheme it used.
func verify(h http.Header, body, secret []byte) (scheme string, ok bool) {
	hmacHex := func(header, prefix string) bool {
		v := strings.TrimSpace(h.Get(header))
		if prefix != "" {
			var found bool
			if v, found = strings.CutPrefix(v, prefix); !found {
				return false
			}
		}
		got, err := hex.DecodeString(v)
		if err != nil {
			return false
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		return hmac.Equal(got, m.Sum(nil))
	}
	switch {
	case h.Get("X-Hub-Signature-256") != "":
		return "github", hmacHex("X-Hub-Signature-256", "sha256=")
	case h.Get("X-Gitea-Signature") != "":
		return "gitea", hmacHex("X-Gitea-Signature", "")
	case h.Get("X-Forgejo-Signature") != "":
		return "forgejo", hmacHex("X-Forgejo-Signature", "")
	case h.Get("X-Gogs-Signature") != "":
		return "gogs", hmacHex("X-Gogs-Signature", "")
	case h.Get("X-Berth-Signature-256") != "":
		return "generic", hmacHex("X-Berth-Signature-256", "sha256=")
	case h.Get("X-Gitlab-Token") != "":
		// Compare digests so the comparison takes the same time whatever
		// the token's length.
		a := sha256.Sum256([]byte(h.Get("X-Gitlab-Token")))
		b := sha256.Sum256(secret)
		return "gitlab", subtle.ConstantTimeCompare(a[:], b[:]) == 1
	}
	return "none", false
}
