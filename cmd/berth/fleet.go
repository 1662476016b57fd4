package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/agent"
	"berth.dev/berth/fleet/mqtt"
	"berth.dev/berth/fleet/rollout"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/sim"
	"berth.dev/berth/source"
)

// mqttFlags say how to reach the fleet's MQTT broker (berth agent and
// berth fleet status), and which runtime the agent drives.
type mqttFlags struct {
	runtime      string
	url          string
	fleet        string
	ca           string
	cert, key    string
	username     string
	passwordFile string
}

func (m *mqttFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.url, "mqtt", "", "MQTT broker for the fleet's device status: mqtt://host:1883 or mqtts://host:8883")
	fs.StringVar(&m.fleet, "fleet", mqtt.DefaultFleet, "fleet name: the topic segment after berth/")
	fs.StringVar(&m.ca, "mqtt-ca", "", "CA certificate (PEM) that signed the broker's certificate (default: the system's roots)")
	fs.StringVar(&m.cert, "mqtt-cert", "", "client certificate (PEM) for the broker")
	fs.StringVar(&m.key, "mqtt-key", "", "key (PEM) of the client certificate")
	fs.StringVar(&m.username, "mqtt-username", "", "username for the broker")
	fs.StringVar(&m.passwordFile, "mqtt-password-file", "", "file holding the broker password (else BERTH_MQTT_PASSWORD)")
}

// registerAgent adds berth agent's fleet flags: the broker's, and the
// simulated runtime for benchmarks.
func (m *mqttFlags) registerAgent(fs *flag.FlagSet) {
	m.register(fs)
	fs.StringVar(&m.runtime, "runtime", "containerd", "containerd, or sim: a simulated runtime that runs nothing, for fleet benchmarks (bench/fleet.sh)")
}

// agentRuntime is what berth agent drives: containerd, or with
// --runtime sim the simulated runtime of bench/fleet.sh.
type agentRuntime interface {
	reconcile.Runtime
	Check(ctx context.Context) error
	Close() error
}

func (c *cli) agentRuntime(ctx context.Context) (agentRuntime, error) {
	switch c.mqtt.runtime {
	case "", "containerd":
		rt, err := c.runtime(ctx)
		if err != nil {
			return nil, err
		}
		return faultRuntime(rt), nil
	case "sim":
		c.log.Warn("simulated runtime: no container runs (benchmarks only)")
		return sim.New(), nil
	}
	return nil, fmt.Errorf("--runtime %q: want containerd or sim", c.mqtt.runtime)
}

// options are the broker options; the password is read from its file or
// from BERTH_MQTT_PASSWORD, never from the command line.
func (m *mqttFlags) options(c *cli) (mqtt.Options, error) {
	o := mqtt.Options{URL: m.url, Fleet: m.fleet, CAFile: m.ca, CertFile: m.cert, KeyFile: m.key,
		Username: m.username, Password: os.Getenv("BERTH_MQTT_PASSWORD"), Logger: c.log}
	if m.passwordFile != "" {
		b, err := os.ReadFile(m.passwordFile)
		if err != nil {
			return o, fmt.Errorf("--mqtt-password-file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	return o, o.Validate()
}

func fleetCommand() command {
	var m mqttFlags
	var timeout time.Duration
	var fs *flag.FlagSet
	return command{
		name: "fleet", args: "status --mqtt URL",
		summary: "show the fleet's devices as they report on MQTT: per revision and wave, healthy, failed, pending and offline devices",
		flags: func(f *flag.FlagSet, c *cli) {
			fs = f
			m.register(fs)
			fs.StringVar(&c.output, "o", "text", "output format: text or json")
			fs.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the broker")
		},
		run: func(ctx context.Context, c *cli, args []string) error {
			if len(args) == 0 || args[0] != "status" {
				return errors.New("usage: berth fleet status --mqtt URL")
			}
			// Flags may follow the subcommand.
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			if fs.NArg() > 0 {
				return fmt.Errorf("unexpected arguments %q", fs.Args())
			}
			if err := checkOutput(c.output); err != nil {
				return err
			}
			if m.url == "" {
				return errors.New("--mqtt is required: the broker the fleet's agents publish to")
			}
			opts, err := m.options(c)
			if err != nil {
				return err
			}
			opts.ConnectTimeout = timeout
			ds, err := mqtt.Collect(ctx, opts)
			if err != nil {
				return err
			}
			s := mqtt.Summarize(opts.Fleet, ds)
			if c.output == "json" {
				return mqtt.WriteJSON(c.stdout, s)
			}
			return mqtt.WriteText(c.stdout, s)
		},
	}
}

// agentFleet is what berth agent adds for fleets: the rollout step (each
// revision's berth-rollout.yaml decides when this device applies it),
// images fetched before anything is stopped, and, with --mqtt, the
// device's status published and the fleet's followed.
type agentFleet struct {
	dev     *mqtt.Device
	node    rollout.Device
	log     hclog.Logger
	agent   atomic.Pointer[agent.Agent]
	pending chan mqtt.DeviceStatus
	done    chan struct{}
}

// agentFleet connects to the broker when --mqtt is set.
func (c *cli) agentFleet(ctx context.Context) (*agentFleet, error) {
	f := &agentFleet{node: rollout.Device{Name: c.nodeName, Labels: map[string]string(c.nodeLabels)}, log: c.log.Named("fleet")}
	if c.mqtt.url == "" {
		return f, nil
	}
	opts, err := c.mqtt.options(c)
	if err != nil {
		return nil, err
	}
	wake := throttle(time.Second, func() {
		if a := f.agent.Load(); a != nil {
			a.FleetChanged()
		}
	})
	f.dev, err = mqtt.ConnectRetrying(ctx, opts, c.nodeName, wake)
	if err != nil {
		return nil, err
	}
	f.pending, f.done = make(chan mqtt.DeviceStatus, 1), make(chan struct{})
	go f.publish()
	return f, nil
}

// configure sets the agent's fleet hooks.
func (f *agentFleet) configure(cfg *agent.Config, rt reconcile.Runtime) {
	cfg.Prefetch = agent.ImagePrefetcher(rt)
	cfg.Rollout = &agent.Rollouts{Node: f.node}
	if f.dev == nil {
		return
	}
	cfg.Rollout.Fleet = f.dev.Follow
	cfg.Report = func(st agent.Status) {
		s := deviceStatus(f.node, st)
		select {
		case <-f.pending: // drop an older status not yet sent
		default:
		}
		f.pending <- s
	}
}

// throttle returns a function that calls fn at most once per period: a
// call within the period is deferred to its end, and calls meanwhile
// collapse into it. A fleet of hundreds reports a rollout's progress in
// bursts; a held revision is reconsidered once a second at most.
func throttle(period time.Duration, fn func()) func() {
	var mu sync.Mutex
	var last time.Time
	pending := false
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if pending {
			return
		}
		if wait := period - time.Since(last); wait > 0 {
			pending = true
			time.AfterFunc(wait, func() {
				mu.Lock()
				pending, last = false, time.Now()
				mu.Unlock()
				fn()
			})
			return
		}
		last = time.Now()
		go fn()
	}
}

// heartbeat is how often an unchanged status is published again.
const heartbeat = 5 * time.Minute

// attach lets the fleet's news wake a.
func (f *agentFleet) attach(a *agent.Agent) { f.agent.Store(a) }

// publish sends the latest status when it changed, and every five
// minutes as a heartbeat (lastSeen); presence is the Last Will's job.
func (f *agentFleet) publish() {
	var last mqtt.DeviceStatus
	var sent time.Time
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-f.done:
			return
		case s := <-f.pending:
			if equalStatus(s, last) && time.Since(sent) < heartbeat {
				continue
			}
			last = s
		case <-tick.C:
			if last.Node == "" {
				continue
			}
			last.LastSeen = time.Time{}
		}
		if err := f.dev.Publish(last); err != nil {
			f.log.Warn("cannot publish the device status", "error", err)
			continue
		}
		sent = time.Now()
	}
}

func equalStatus(a, b mqtt.DeviceStatus) bool {
	a.LastSeen, b.LastSeen = time.Time{}, time.Time{}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// close marks the device offline.
func (f *agentFleet) close() {
	if f.dev != nil {
		close(f.done)
		f.dev.Close()
	}
}

// deviceStatus is what the device publishes, from the agent's status.
func deviceStatus(node rollout.Device, st agent.Status) mqtt.DeviceStatus {
	s := mqtt.DeviceStatus{Node: node.Name, Labels: node.Labels, Health: mqtt.Unknown}
	switch {
	case st.Pin != "":
		s.Desired = st.Pin
	case st.Fetched != nil:
		s.Desired = st.Fetched.Commit
	}
	if r := st.Rollout; r != nil && r.Commit == s.Desired {
		s.Wave, s.WaveIndex, s.Rollout, s.Waiting, s.DesiredTime = r.Wave, r.WaveIndex, string(r.State), r.Reason, r.CommitTime
	}
	if st.Applied != nil {
		s.Applied = st.Applied.Commit
	}
	if st.LastGood != nil {
		s.LastGood, s.GoodSince = st.LastGood.Commit, st.LastGood.Time
	}
	for _, b := range st.BadRevisions {
		s.Failed = append(s.Failed, b.Commit)
		if b.Commit == s.Desired {
			s.Failure = b.Reason
		}
	}
	if e := st.LastError; e != nil && e.Commit == s.Desired && s.Failure == "" && e.Kind != agent.KindRollout {
		s.Failure = e.Reason
	}
	switch {
	case s.Desired == "":
	case s.Failure != "":
		s.Health = mqtt.Failed
	case s.Rollout == string(rollout.Halted):
		s.Health = mqtt.Halted
	case s.Rollout == string(rollout.Wait):
		s.Health = mqtt.Waiting
	case st.Checking != nil && st.Checking.Commit == s.Desired:
		s.Health = mqtt.Checking
	case s.LastGood == s.Desired:
		s.Health = mqtt.Healthy
	}
	for _, p := range st.Pods {
		s.Pods.Total++
		switch p.Phase {
		case reconcile.PodRunning:
			s.Pods.Running++
		case reconcile.PodFailed:
			s.Pods.Failed++
		}
		if p.Ready {
			s.Pods.Ready++
		}
	}
	return s
}

// rolloutLine is berth status's line about the device's place in a
// rollout: "rollout of 3f2a…: wave rest, waits: wave canary soaks until …".
func rolloutLine(r *agent.RolloutStatus) string {
	s := fmt.Sprintf("rollout of %s: wave %s", source.ShortCommit(r.Commit), r.Wave)
	switch r.State {
	case rollout.Apply:
		return s + ", its wave has started"
	case rollout.Halted:
		return s + ", halted: " + r.Reason
	}
	return s + ", waits: " + r.Reason
}
