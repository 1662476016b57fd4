package manager

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/probe"
)

// Probe kinds.
const (
	probeStartup   = "startup"
	probeLiveness  = "liveness"
	probeReadiness = "readiness"
)

// containerProbes are the probes of one running container instance.
type containerProbes struct {
	key    string // container kind/name and start time
	kind   reconcile.ContainerKind
	name   string
	cancel context.CancelFunc

	mu         sync.Mutex
	hasStartup bool
	hasReady   bool
	started    bool // the startup probe succeeded (or there is none)
	ready      bool
	failed     string // the probe whose failure calls for a restart
	grace      *int64 // that probe's terminationGracePeriodSeconds
}

func (cp *containerProbes) state() (started, ready bool, failed string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	ready = cp.started && (!cp.hasReady || cp.ready)
	return cp.started, ready, cp.failed
}

// probeDefaults fills Kubernetes' probe defaults.
func probeDefaults(p reconcile.Probe) reconcile.Probe {
	if p.PeriodSeconds <= 0 {
		p.PeriodSeconds = 10
	}
	if p.TimeoutSeconds <= 0 {
		p.TimeoutSeconds = 1
	}
	if p.SuccessThreshold <= 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold <= 0 {
		p.FailureThreshold = 3
	}
	return p
}

// syncProbes starts the probes of each running container that has any and
// stops those of containers that no longer run. A container whose
// liveness or startup probe failed is stopped (or replaced) so the restart
// policy and backoff take over.
func (w *podWorker) syncProbes(ctx context.Context, d *reconcile.DesiredPod, obs *reconcile.ObservedPod) {
	if w.probes == nil {
		w.probes = map[string]*containerProbes{}
	}
	live := map[string]bool{}
	check := func(kind reconcile.ContainerKind, c *reconcile.Container) {
		if c.StartupProbe == nil && c.LivenessProbe == nil && c.ReadinessProbe == nil {
			return
		}
		oc := obs.Container(kind, c.Name)
		if oc == nil || oc.State != reconcile.StateRunning {
			return
		}
		id := string(kind) + "/" + c.Name
		key := id + "@" + oc.StartedAt.String() + "#" + oc.ID + "#" + d.Hash
		live[id] = true
		if cp := w.probes[id]; cp != nil && cp.key == key {
			if _, _, failed := cp.state(); failed != "" {
				w.probeFailed(ctx, d, cp, oc)
			}
			return
		} else if cp != nil {
			cp.cancel()
		}
		w.probes[id] = w.startProbes(kind, c, d, obs.IP, key)
	}
	for i := range d.Spec.InitContainers {
		if d.Spec.InitContainers[i].RestartPolicy == reconcile.RestartAlways {
			check(reconcile.InitContainer, &d.Spec.InitContainers[i])
		}
	}
	for i := range d.Spec.Containers {
		check(reconcile.AppContainer, &d.Spec.Containers[i])
	}
	for id, cp := range w.probes {
		if !live[id] {
			cp.cancel()
			delete(w.probes, id)
		}
	}
}

// probeFailed restarts a container whose liveness or startup probe
// failed: it is stopped when the runtime can, and the restart policy
// starts it again; otherwise it is replaced at once.
func (w *podWorker) probeFailed(ctx context.Context, d *reconcile.DesiredPod, cp *containerProbes, oc *reconcile.ObservedContainer) {
	cp.cancel()
	delete(w.probes, string(cp.kind)+"/"+cp.name)
	_, _, failed := cp.state()
	w.log.Info("probe failed, restarting container", "container", cp.name, "probe", failed)
	grace := d.GracePeriod()
	cp.mu.Lock()
	if cp.grace != nil {
		// The probe's own terminationGracePeriodSeconds wins.
		grace = time.Duration(*cp.grace) * time.Second
	}
	cp.mu.Unlock()
	if stopper, ok := w.m.rt.(reconcile.ContainerStopper); ok {
		w.acted()
		if err := stopper.StopContainer(ctx, w.id, cp.kind, cp.name, grace); err != nil {
			w.log.Warn("stop container", "container", cp.name, "error", err)
		}
		w.ring()
		return
	}
	now := w.m.clock.Now()
	if _, err := w.restart(ctx, d, cp.kind, cp.name, now, now, 137, ""); err != nil {
		w.log.Warn("restart container", "container", cp.name, "error", err)
	}
	w.ring()
}

func (w *podWorker) stopProbes() {
	for id, cp := range w.probes {
		cp.cancel()
		delete(w.probes, id)
	}
}

// probeWake is when the worker should next look at its probes; probes
// ring the worker themselves, so there is nothing to wait for.
func (w *podWorker) probeWake() time.Time { return time.Time{} }

// overlayProbes sets the live Started and Ready of running containers
// from their probes: a container without probes is started and ready
// once it runs.
func (w *podWorker) overlayProbes(st *reconcile.PodStatus, obs *reconcile.ObservedPod) {
	apply := func(list []reconcile.ContainerStatus) {
		for i := range list {
			cs := &list[i]
			if cs.State != reconcile.Running {
				cs.Ready = false
				continue
			}
			cs.Started, cs.Ready = true, true
			if cp := w.probes[string(cs.Kind)+"/"+cs.Name]; cp != nil {
				cs.Started, cs.Ready, _ = cp.state()
			}
			if cs.Kind == reconcile.InitContainer {
				cs.Ready = cs.Started && cs.Ready
			}
			if w.rec != nil && w.rec.Hash == st.Hash {
				if cr := w.rec.Container(cs.Kind, cs.Name); cr.Ready != cs.Ready {
					cr.Ready, w.recDirty = cs.Ready, true
				}
			}
		}
	}
	apply(st.InitContainers)
	apply(st.Containers)
	ready, total := st.ReadyCount()
	st.Ready = total > 0 && ready == total && st.Phase == reconcile.PodRunning
}

// started reports whether a running sidecar has started: its startup
// probe succeeded, or it has none.
func (w *podWorker) started(name string, oc *reconcile.ObservedContainer) bool {
	cp := w.probes[string(reconcile.InitContainer)+"/"+name]
	if cp == nil {
		return true
	}
	s, _, _ := cp.state()
	return s
}

// startProbes starts one goroutine per probe of a container.
func (w *podWorker) startProbes(kind reconcile.ContainerKind, c *reconcile.Container, d *reconcile.DesiredPod, ip, key string) *containerProbes {
	ctx, cancel := context.WithCancel(context.Background())
	cp := &containerProbes{
		key: key, kind: kind, name: c.Name, cancel: cancel,
		hasStartup: c.StartupProbe != nil, hasReady: c.ReadinessProbe != nil,
		started: c.StartupProbe == nil,
	}
	run := func(which string, p *reconcile.Probe) {
		if p == nil {
			return
		}
		go w.probeLoop(ctx, cp, which, probeDefaults(*p), c, ip)
	}
	run(probeStartup, c.StartupProbe)
	run(probeLiveness, c.LivenessProbe)
	run(probeReadiness, c.ReadinessProbe)
	return cp
}

// probeLoop runs one probe every periodSeconds after initialDelaySeconds
// and applies the thresholds. Liveness and readiness wait until the
// startup probe succeeded; a startup probe stops once it has.
func (w *podWorker) probeLoop(ctx context.Context, cp *containerProbes, which string, p reconcile.Probe, c *reconcile.Container, ip string) {
	clock := w.m.clock
	wait := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-clock.After(d):
			return true
		}
	}
	if !wait(time.Duration(p.InitialDelaySeconds) * time.Second) {
		return
	}
	period := time.Duration(p.PeriodSeconds) * time.Second
	successes, failures := 0, 0
	for {
		cp.mu.Lock()
		started := cp.started
		cp.mu.Unlock()
		if which != probeStartup && !started {
			if !wait(period) {
				return
			}
			continue
		}
		ok := w.runProbe(ctx, &p, c, ip)
		if ctx.Err() != nil {
			return
		}
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		changed := false
		cp.mu.Lock()
		switch which {
		case probeStartup:
			if ok {
				cp.started, changed = true, true
			} else if failures >= int(p.FailureThreshold) {
				cp.failed, cp.grace, changed = probeStartup, p.TerminationGracePeriodSeconds, true
			}
		case probeLiveness:
			if failures >= int(p.FailureThreshold) {
				cp.failed, cp.grace, changed = probeLiveness, p.TerminationGracePeriodSeconds, true
			}
		case probeReadiness:
			if ok && successes >= int(p.SuccessThreshold) && !cp.ready {
				cp.ready, changed = true, true
			} else if !ok && failures >= int(p.FailureThreshold) && cp.ready {
				cp.ready, changed = false, true
			}
		}
		done := which == probeStartup && cp.started || cp.failed != ""
		cp.mu.Unlock()
		if changed {
			w.ring()
		}
		if done || !wait(period) {
			return
		}
	}
}

// runProbe runs one check of p against the container; true is success.
func (w *podWorker) runProbe(ctx context.Context, p *reconcile.Probe, c *reconcile.Container, ip string) bool {
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case p.Exec != nil:
		ex := w.m.execer()
		if ex == nil {
			w.execWarn.Do(func() {
				w.log.Warn("the runtime cannot run exec probes; they count as successful", "container", c.Name)
			})
			return true
		}
		res, err := ex.ExecSync(ctx, w.id, c.Name, p.Exec.Command, timeout)
		return err == nil && res.ExitCode == 0
	case p.HTTPGet != nil:
		h, err := httpHandler(p.HTTPGet, c, ip)
		return err == nil && probe.Get(ctx, h, timeout) == nil
	case p.TCPSocket != nil:
		host := p.TCPSocket.Host
		if host == "" {
			host = ip
		}
		port, err := resolvePort(p.TCPSocket.Port, c)
		return err == nil && probe.TCP(ctx, host, port) == nil
	case p.GRPC != nil:
		svc := ""
		if p.GRPC.Service != nil {
			svc = *p.GRPC.Service
		}
		return probe.GRPC(ctx, ip, int(p.GRPC.Port), svc) == nil
	}
	return true
}

// httpHandler resolves an httpGet action of container c in a pod at ip.
func httpHandler(g *reconcile.HTTPGetAction, c *reconcile.Container, ip string) (probe.HTTP, error) {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return probe.HTTP{}, err
	}
	h := probe.HTTP{Scheme: g.Scheme, Host: g.Host, Port: port, Path: g.Path}
	if h.Host == "" {
		h.Host = ip
	}
	for _, hd := range g.HTTPHeaders {
		h.Headers = append(h.Headers, probe.Header{Name: hd.Name, Value: hd.Value})
	}
	return h, nil
}

// resolvePort turns a probe's port, a number or a container port's name,
// into a number.
func resolvePort(v reconcile.IntOrString, c *reconcile.Container) (int, error) {
	if !v.IsString {
		return int(v.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == v.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(v.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %q has no port named %q", c.Name, v.StrVal)
}
