package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"berth.dev/berth/internal/record"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/source"
)

// Defaults applied by Config.Validate.
const (
	DefaultInterval       = time.Minute
	DefaultJitter         = 0.1
	DefaultMinBackoff     = 5 * time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultResync         = 10 * time.Minute
	DefaultFetchTimeout   = 2 * time.Minute
	DefaultHealthDeadline = 5 * time.Minute
	DefaultHealthSettle   = 10 * time.Second
	DefaultHealthPoll     = 2 * time.Second
	DefaultCrashRestarts  = 3
)

// Config is what an Agent needs. Like source.Options it is a plain struct;
// Validate checks it and fills defaults, and New calls Validate.
type Config struct {
	Source     Source
	Load       Loader
	Reconciler Reconciler
	Observer   Observer
	// Verify, when set, must accept a revision before it is applied.
	Verify Verifier
	// StateDir holds the records.
	StateDir string

	// Interval is the time between fetches (default 1m); Jitter adds up
	// to this fraction of it at random (default 0.1), so a fleet does not
	// fetch in step.
	Interval time.Duration
	Jitter   float64
	// MinBackoff and MaxBackoff bound the exponential backoff after
	// failed fetches (default 5s doubling up to 5m).
	MinBackoff, MaxBackoff time.Duration
	// Resync is the period of reconcile passes without a fetch, which
	// catch drift on the host (default 10m; negative disables).
	Resync time.Duration
	// FetchTimeout bounds one fetch (default 2m).
	FetchTimeout time.Duration

	// HealthDeadline is how long the pods a revision created or replaced
	// have to become healthy before the agent rolls back (default 5m; a
	// negative value turns health gating off). HealthSettle is how long a
	// container must have run to count as healthy (default 10s).
	// HealthPoll is how often a pending revision is checked (default 2s).
	HealthDeadline time.Duration
	HealthSettle   time.Duration
	HealthPoll     time.Duration
	// PodStatuses, when set, reports the pods' readiness (probes) and
	// restart counts, as a pod manager that restarts containers knows
	// them; without it health is judged from the observed containers.
	PodStatuses func() []reconcile.PodStatus
	// Workloads, when set, reports the workloads' status as the pod
	// manager's controllers know it.
	Workloads func() []reconcile.WorkloadStatus
	// Interruptions, when set, counts how often the runtime was found
	// unreachable (the pod manager's Interruptions): the health check of
	// a revision starts again after one, so a containerd restart is not
	// blamed on the revision being rolled out.
	Interruptions func() uint64
	// CrashRestarts is how many crashes (restarts, or an exit waiting in
	// CrashLoopBackOff) of a container of a watched pod make its revision
	// unhealthy (default 3).
	CrashRestarts int

	// Rollout, when set, holds each new revision until this device's
	// wave of the revision's rollout policy may start (see rollout.go).
	Rollout *Rollouts
	// Prefetch, when set, fetches every image a new revision needs
	// before anything is stopped for it; a failure leaves the running
	// pods as they are.
	Prefetch Prefetcher
	// Report, when set, is called with the status after every pass (the
	// fleet's status channel publishes it).
	Report func(Status)

	Logger hclog.Logger
}

// Validate checks c and fills in defaults.
func (c *Config) Validate() error {
	switch {
	case c.Source == nil:
		return errors.New("agent: no source")
	case c.Load == nil:
		return errors.New("agent: no loader")
	case c.Reconciler == nil:
		return errors.New("agent: no reconciler")
	case c.Observer == nil:
		return errors.New("agent: no observer")
	case c.StateDir == "":
		return errors.New("agent: no state directory")
	case c.Interval < 0 || c.Jitter < 0:
		return errors.New("agent: negative interval or jitter")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Interval, DefaultInterval)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.Resync, DefaultResync)
	def(&c.FetchTimeout, DefaultFetchTimeout)
	def(&c.HealthDeadline, DefaultHealthDeadline)
	def(&c.HealthSettle, DefaultHealthSettle)
	def(&c.HealthPoll, DefaultHealthPoll)
	if c.CrashRestarts <= 0 {
		c.CrashRestarts = DefaultCrashRestarts
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.MinBackoff > c.MaxBackoff {
		c.MinBackoff = c.MaxBackoff
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Agent is the continuous reconciler. Its methods are safe for concurrent
// use; Run must be called once.
type Agent struct {
	cfg     Config
	log     hclog.Logger
	metrics *metrics
	bell    chan struct{}

	mu     sync.Mutex
	rung   map[Trigger]bool
	status Status
	ready  bool
	passC  chan struct{} // closed and replaced after each pass; see Passed

	// Owned by the loop goroutine.
	current    *source.Revision // applied (or kept) revision
	loaded     *Loaded
	good       *source.Revision
	goodRecord *record.Revision
	watch      *healthWatch
	handed     string // revision a Continuous reconciler accepted
	offline    bool   // running a cached revision since start, prune off
	failures   int    // consecutive fetch failures
	bad        []BadRevision
	reported   map[string]bool // refusals already logged, by kind+commit

	// The rollout step (rollout.go), owned by the loop goroutine.
	held         *source.Revision // revision waiting for its wave
	holdLogged   string
	prefetched   string // commit whose images were fetched ahead
	rolloutTimer *time.Timer
}

// New prepares an Agent; it does no I/O beyond reading its records.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg:      cfg,
		log:      cfg.Logger.Named("agent"),
		metrics:  newMetrics(),
		bell:     make(chan struct{}, 1),
		rung:     map[Trigger]bool{},
		reported: map[string]bool{},
		passC:    make(chan struct{}),
	}
	a.status.Source = cfg.Source.URL()
	var err error
	if a.bad, err = ReadBad(cfg.StateDir); err != nil {
		return nil, err
	}
	if a.goodRecord, err = readRevision(cfg.StateDir, RecordLastGood); err != nil {
		return nil, err
	}
	applied, err := readRevision(cfg.StateDir, record.LastApplied)
	if err != nil {
		return nil, err
	}
	fetched, err := readRevision(cfg.StateDir, RecordLastFetched)
	if err != nil {
		return nil, err
	}
	a.status.Fetched, a.status.Applied, a.status.LastGood = fetched, applied, a.goodRecord
	for kind, r := range map[string]*record.Revision{"fetched": fetched, "applied": applied, "good": a.goodRecord} {
		if r != nil {
			a.metrics.setRevision(kind, r.Commit)
		}
	}
	a.status.BadRevisions = slices.Clone(a.bad)
	return a, nil
}

// Registry returns the Prometheus registry holding the agent's metrics.
func (a *Agent) Registry() *prometheus.Registry { return a.metrics.reg }

// WebhookResult counts a webhook request by its HTTP status code.
func (a *Agent) WebhookResult(code int) {
	a.metrics.webhookResults.WithLabelValues(fmt.Sprint(code)).Inc()
}

// Trigger asks for a pass. It never blocks: triggers that arrive while a
// pass is pending collapse into it.
func (a *Agent) Trigger(t Trigger) {
	a.metrics.triggers.WithLabelValues(string(t)).Inc()
	a.mu.Lock()
	a.rung[t] = true
	a.mu.Unlock()
	select {
	case a.bell <- struct{}{}:
	default:
	}
}

// Status returns a copy of the current status.
func (a *Agent) Status() Status {
	// The pods as the pod manager knows them now, not as of the last
	// pass: the manager carries a revision out after the pass handed it
	// over.
	var live []reconcile.PodStatus
	var liveWorkloads []reconcile.WorkloadStatus
	if a.cfg.PodStatuses != nil {
		live = a.cfg.PodStatuses()
	}
	if len(live) > 0 && a.cfg.Workloads != nil {
		liveWorkloads = a.cfg.Workloads()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.status
	s.Pods = slices.Clone(s.Pods)
	s.Workloads = slices.Clone(s.Workloads)
	if len(live) > 0 {
		s.Pods = live
		if len(liveWorkloads) > 0 {
			s.Workloads = liveWorkloads
		}
	}
	s.BadRevisions = slices.Clone(s.BadRevisions)
	if s.Pods == nil {
		s.Pods = []reconcile.PodStatus{}
	}
	if s.Workloads == nil {
		s.Workloads = []reconcile.WorkloadStatus{}
	}
	if s.BadRevisions == nil {
		s.BadRevisions = []BadRevision{}
	}
	return s
}

// Ready reports whether the agent finished its first pass (whatever its
// outcome), for /readyz.
func (a *Agent) Ready() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ready
}

// Passed returns a channel closed at the end of the next pass to start,
// which acts on every trigger rung before it: for tests and tools that
// wait for the agent to act on a trigger.
func (a *Agent) Passed() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.passC
}

// Run runs the loop until ctx ends. Stopping it leaves every pod running.
func (a *Agent) Run(ctx context.Context) error {
	a.Trigger(TriggerStart)
	poll := time.NewTimer(time.Hour)
	poll.Stop()
	defer poll.Stop()
	var resync <-chan time.Time
	if a.cfg.Resync > 0 {
		t := time.NewTicker(a.cfg.Resync)
		defer t.Stop()
		resync = t.C
	}
	var health *time.Timer
	for {
		var healthC <-chan time.Time
		if a.watch != nil {
			if health == nil {
				health = time.NewTimer(a.cfg.HealthPoll)
			}
			healthC = health.C
		} else if health != nil {
			health.Stop()
			health = nil
		}
		select {
		case <-ctx.Done():
			a.log.Info("stopping; pods keep running")
			return nil
		case <-poll.C:
			a.Trigger(TriggerPoll)
		case <-resync:
			a.Trigger(TriggerResync)
		case <-healthC:
			health = nil
			a.Trigger(TriggerHealth)
		case <-a.bell:
			a.mu.Lock()
			rung := a.rung
			a.rung = map[Trigger]bool{}
			// This pass ends the waits begun before it took the
			// triggers; a later Passed waits for the next pass, which
			// sees every trigger rung meanwhile.
			done := a.passC
			a.passC = make(chan struct{})
			a.mu.Unlock()
			fetched := a.pass(ctx, rung)
			if fetched {
				d := a.nextFetch()
				poll.Reset(d)
				a.mu.Lock()
				a.status.NextFetch = time.Now().Add(d).UTC()
				a.mu.Unlock()
			}
			if a.cfg.Report != nil {
				a.cfg.Report(a.Status())
			}
			a.mu.Lock()
			a.ready = true
			a.mu.Unlock()
			close(done)
		}
	}
}

// nextFetch is the interval with jitter, or the backoff after failures.
func (a *Agent) nextFetch() time.Duration {
	d := a.cfg.Interval
	if a.failures > 0 {
		d = a.cfg.MinBackoff
		for i := 1; i < a.failures && d < a.cfg.MaxBackoff; i++ {
			d *= 2
		}
		d = min(d, a.cfg.MaxBackoff)
	}
	if j := time.Duration(float64(d) * a.cfg.Jitter); j > 0 {
		d += rand.N(j)
	}
	return d
}
