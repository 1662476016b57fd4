// Package mqtt carries a fleet's device status over MQTT: each agent
// publishes a retained JSON status of its device, a retained presence
// flag guarded by a Last Will, and a small retained record of its place
// in the rollout of the revision it wants; while it waits for its wave it
// follows only the records of the devices of earlier waves, and the
// failures; berth fleet status reads every device's status.
//
// Topics, for fleet F, node N, commit C and wave W:
//
//	berth/F/N/status                retained JSON DeviceStatus, republished on change and on every (re)connect
//	berth/F/N/online                retained "true"; the Last Will sets it to "false"
//	berth/F/rollout/C/wave/W/N      retained rollout record: labels, healthy since, failed
//	berth/F/rollout/C/failed/N      retained rollout record of a device that rolled C back
//
// A device of wave k waiting for C subscribes to
// berth/F/rollout/C/wave/W/+ for the waves before k, to
// berth/F/rollout/C/failed/+, and to the presence flag of each device
// whose record arrived; it drops them all once its wave starts. No
// device subscribes to every device's status, so a status reaches only
// the devices that wait on it.
//
// Invariants kept here:
//   - A device's status holds no secret: revisions, labels, counts and
//     reasons only. Credentials for the broker are never logged.
//   - Losing the broker never blocks the agent: publishing stores the
//     latest status and records and sends them when the connection is
//     back.
//   - What a device follows is complete only once a marker it publishes
//     after subscribing comes back (the broker delivers the retained
//     records first); until then a waiting device does not start its
//     wave.
package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/hashicorp/go-hclog"
)

// DefaultFleet is the fleet name when none is given.
const DefaultFleet = "default"

// Options say how to reach the broker. Validate fills defaults.
type Options struct {
	// URL is the broker: mqtt://host:1883 (or tcp://), mqtts://host:8883
	// (or ssl://, tls://) for TLS.
	URL string
	// Fleet is the topic segment after "berth/" (default "default").
	Fleet string
	// ClientID identifies the connection; the agent uses
	// "berth-<fleet>-<node>".
	ClientID string
	// CAFile verifies the broker's certificate (default: the system's
	// roots). CertFile and KeyFile, together, are the client certificate.
	CAFile, CertFile, KeyFile string
	// Username and Password authenticate to the broker.
	Username, Password string
	// ConnectTimeout bounds the first connection attempt (default 10s).
	ConnectTimeout time.Duration
	// MaxReconnectInterval bounds the backoff between reconnection
	// attempts after the connection was lost (default 30s).
	MaxReconnectInterval time.Duration
	Logger               hclog.Logger

	retry bool // keep trying to connect (ConnectRetrying)
}

// Validate checks o and fills in defaults.
func (o *Options) Validate() error {
	u, err := url.Parse(o.URL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("mqtt: broker URL %q: want mqtt://host:port or mqtts://host:port", redact(o.URL))
	}
	if u.User != nil {
		return errors.New("mqtt: put the broker's username and password in files (--mqtt-username, --mqtt-password-file), not in the URL")
	}
	switch u.Scheme {
	case "mqtt", "tcp", "mqtts", "ssl", "tls":
	default:
		return fmt.Errorf("mqtt: broker URL scheme %q: want mqtt, tcp, mqtts, ssl or tls", u.Scheme)
	}
	if o.Fleet == "" {
		o.Fleet = DefaultFleet
	}
	if !validSegment(o.Fleet) {
		return fmt.Errorf("mqtt: fleet %q must be a non-empty topic segment without '/', '+' or '#'", o.Fleet)
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return errors.New("mqtt: a client certificate needs both its certificate and its key file")
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return nil
}

func (o *Options) tls() bool {
	u, _ := url.Parse(o.URL)
	return u != nil && (u.Scheme == "mqtts" || u.Scheme == "ssl" || u.Scheme == "tls")
}

// tlsConfig is the TLS configuration for a TLS broker URL.
func (o *Options) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt: CA file %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (o *Options) client(will func(*paho.ClientOptions), onConnect func(paho.Client)) (paho.Client, error) {
	co := paho.NewClientOptions().AddBroker(o.URL).SetClientID(o.ClientID).
		SetConnectTimeout(o.ConnectTimeout).SetAutoReconnect(true).SetMaxReconnectInterval(o.MaxReconnectInterval).
		SetKeepAlive(30 * time.Second).SetCleanSession(true).SetProtocolVersion(4)
	if o.Username != "" {
		co.SetUsername(o.Username)
	}
	if o.Password != "" {
		co.SetPassword(o.Password)
	}
	if o.tls() {
		cfg, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		co.SetTLSConfig(cfg)
	}
	if o.retry {
		co.SetConnectRetry(true).SetConnectRetryInterval(10 * time.Second)
	}
	if will != nil {
		will(co)
	}
	if onConnect != nil {
		co.SetOnConnectHandler(onConnect)
	}
	log := o.Logger
	co.SetConnectionLostHandler(func(_ paho.Client, err error) {
		log.Warn("lost the connection to the broker; reconnecting", "error", err)
	})
	return paho.NewClient(co), nil
}

// wait waits for tok within d, or ctx.
func wait(ctx context.Context, tok paho.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %s", d)
	}
}

// StatusTopic is where node publishes its status.
func StatusTopic(fleet, node string) string { return "berth/" + fleet + "/" + node + "/status" }

// OnlineTopic is node's presence flag.
func OnlineTopic(fleet, node string) string { return "berth/" + fleet + "/" + node + "/online" }

func validSegment(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/+#\x00")
}

// redact drops user info from a URL for messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		u.User = nil
		return u.String()
	}
	return s
}

// DeviceStatus is what a device publishes about itself.
type DeviceStatus struct {
	Node   string            `json:"node"`
	Labels map[string]string `json:"labels,omitempty"`
	// Online is false when the device's Last Will (or its orderly
	// shutdown) said so; a device only ever publishes true.
	Online bool `json:"online"`
	// Wave is the device's wave for its desired revision, "" without a
	// rollout policy.
	Wave string `json:"wave,omitempty"`
	// WaveIndex is the wave's place in the policy, 0 first.
	WaveIndex int `json:"waveIndex,omitempty"`
	// Rollout is the device's rollout state for the desired revision:
	// apply, wait or halted; Waiting says what it waits for and why.
	Rollout string `json:"rollout,omitempty"`
	Waiting string `json:"waiting,omitempty"`
	// Desired is the revision the device should run (the fetched head,
	// or a pin); DesiredTime is its commit time.
	Desired     string    `json:"desired,omitempty"`
	DesiredTime time.Time `json:"desiredTime,omitzero"`
	Applied     string    `json:"applied,omitempty"`
	LastGood    string    `json:"lastGood,omitempty"`
	// GoodSince is when LastGood became good.
	GoodSince time.Time `json:"goodSince,omitzero"`
	// Health is healthy, checking, failed, waiting, halted or unknown.
	Health string `json:"health"`
	// Failure is why the last failed revision failed.
	Failure string `json:"failure,omitempty"`
	// Failed lists the commits the device rolled back.
	Failed   []string    `json:"failed,omitempty"`
	Pods     PodsSummary `json:"pods"`
	LastSeen time.Time   `json:"lastSeen"`
}

// Health values.
const (
	Healthy  = "healthy"
	Checking = "checking"
	Failed   = "failed"
	Waiting  = "waiting"
	Halted   = "halted"
	Unknown  = "unknown"
)

// PodsSummary counts a device's pods.
type PodsSummary struct {
	Total   int `json:"total"`
	Running int `json:"running"`
	Ready   int `json:"ready"`
	Failed  int `json:"failed"`
}

// view holds what the broker reported of a fleet: statuses and presence
// flags by node.
type view struct {
	mu     sync.Mutex
	status map[string]*DeviceStatus
	online map[string]bool
}

func newView() *view {
	return &view{status: map[string]*DeviceStatus{}, online: map[string]bool{}}
}

// handle records a message of topic berth/<fleet>/<node>/<kind>.
func (v *view) handle(topic string, payload []byte) {
	parts := strings.Split(topic, "/")
	if len(parts) != 4 {
		return
	}
	node := parts[2]
	v.mu.Lock()
	defer v.mu.Unlock()
	switch parts[3] {
	case "status":
		if len(payload) == 0 {
			delete(v.status, node) // a cleared retained message
			return
		}
		var s DeviceStatus
		if err := json.Unmarshal(payload, &s); err != nil || s.Node != node {
			return
		}
		v.status[node] = &s
	case "online":
		v.online[node] = string(payload) == "true"
	}
}

// devices returns the statuses, Online from the presence flags, sorted by
// node.
func (v *view) devices() []DeviceStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]DeviceStatus, 0, len(v.status))
	for node, s := range v.status {
		d := *s
		d.Online = v.online[node]
		out = append(out, d)
	}
	sortByNode(out)
	return out
}
