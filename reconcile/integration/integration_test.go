package integration_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/manager"
	"berth.dev/berth/runtime/containerd"
)

var ctrd *testenv.Containerd

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &ctrd)) }

const image = "example.local/busybox:1"

var node = reconcile.Node{Name: "test-node"}

// host is one test's containerd namespace, network and state directory.
type host struct {
	t        *testing.T
	ns       string
	net      testenv.Net
	stateDir string
}

func newHost(t *testing.T) *host {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; run without -short")
	}
	h := &host{t: t, ns: testenv.Namespace(t, ctrd), net: testenv.Network(t), stateDir: t.TempDir()}
	testenv.BusyboxImage(t, ctrd, h.ns, image)
	return h
}

// runtime opens the real runtime; StatefulSet claim directories under the
// state directory are allowed as hostPath volumes.
func (h *host) runtime() *containerd.Runtime {
	h.t.Helper()
	rt, err := containerd.New(context.Background(), containerd.Options{
		Address: ctrd.Address(), Namespace: h.ns, StateDir: h.stateDir,
		CNIBinDirs: []string{testenv.CNIBinDir}, NetworkName: h.net.Name, Bridge: h.net.Bridge, Subnet: h.net.Subnet,
		Policy: reconcile.WithClaimDirs(reconcile.NodePolicy{HostPaths: []string{filepath.Join(h.stateDir, "volumes", "ran")}}, h.stateDir),
		Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{h.t}}),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { rt.Close() })
	h.t.Cleanup(func() {
		// Pods outlive the manager, by design; the test removes them.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		pods, err := rt.List(ctx)
		if err != nil {
			h.t.Error(err)
		}
		for _, p := range pods {
			if err := rt.RemovePod(ctx, p.ID, 0); err != nil {
				h.t.Error(err)
			}
		}
	})
	return rt
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// manager runs a manager over rt until the returned stop is called (or
// the test ends); stopping it leaves the pods running.
func (h *host) manager(rt reconcile.Runtime, opts manager.Options) (*manager.Manager, func()) {
	h.t.Helper()
	opts.StateDir, opts.Node = h.stateDir, node
	if opts.ResyncInterval == 0 {
		opts.ResyncInterval = 200 * time.Millisecond
	}
	opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{h.t}})
	m := manager.New(rt, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	h.t.Cleanup(stop)
	return m, stop
}

func sync(t *testing.T, m *manager.Manager, rev string, objs ...reconcile.Object) {
	t.Helper()
	if err := m.Sync(context.Background(), rev, objs); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quick is a short termination grace period: `sleep` as PID 1 ignores
// SIGTERM.
var quick = func() *int64 { g := int64(1); return &g }()

func pod(name string, spec reconcile.PodSpec) reconcile.Object {
	spec.TerminationGracePeriodSeconds = quick
	return reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		Metadata: reconcile.ObjectMeta{Name: name, Namespace: "default"},
		Pod:      &spec,
	}
}

func sh(name, script string) reconcile.Container {
	return reconcile.Container{Name: name, Image: image, Command: []string{"sh", "-c", script}}
}

func status(m *manager.Manager, name string) (reconcile.PodStatus, bool) {
	for _, p := range m.Pods() {
		if p.ID.Name == name {
			return p, true
		}
	}
	return reconcile.PodStatus{}, false
}

// TestCrashLoopBackOffUpperBound runs a container that always exits 1 with
// the backoff curve scaled down (1 s doubling, at most 4 s) and checks,
// throughout, that it never restarted more often than kubelet's curve
// allows, and that it did restart.
func TestCrashLoopBackOffUpperBound(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{InitialBackoff: time.Second, MaxBackoff: 4 * time.Second})
	sync(t, m, "r1", pod("crash", reconcile.PodSpec{Containers: []reconcile.Container{sh("main", "exit 1")}}))
	// bound is the most restarts kubelet's curve allows within d of the
	// first start: restarts at 0, 1, 3, 7, 11, 15 … (delays 1, 2, 4, 4 …)
	// after the first death, plus one for the first, immediate restart.
	bound := func(d time.Duration) int {
		n, at, delay := 1, time.Duration(0), time.Second
		for {
			at += delay
			if at > d {
				return n
			}
			n++
			delay = min(2*delay, 4*time.Second)
		}
	}
	var start time.Time
	maxSeen := 0
	for end := time.Now().Add(9 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		st, ok := status(m, "crash")
		if !ok || len(st.Containers) == 0 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
		}
		n := st.Restarts()
		if b := bound(time.Since(start) + time.Second); n > b {
			t.Fatalf("%d restarts %s after the first start; kubelet's curve allows %d", n, time.Since(start).Round(time.Millisecond), b)
		}
		maxSeen = max(maxSeen, n)
	}
	if maxSeen < 3 {
		t.Errorf("only %d restarts in 9 s: the container was not restarted", maxSeen)
	}
	st, _ := status(m, "crash")
	if d := st.Display(); d != reconcile.ReasonCrashLoopBackOff && d != "Error" && d != "Running" {
		t.Errorf("status %q", d)
	}
}

// TestInitContainersRunInOrder proves the order with timestamps the
// containers write to a shared emptyDir.
func TestInitContainersRunInOrder(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{})
	stamp := func(name string) string {
		return "echo " + name + " $(cat /proc/uptime | cut -d' ' -f1) >> /shared/order"
	}
	mount := []reconcile.VolumeMount{{Name: "shared", MountPath: "/shared"}}
	spec := reconcile.PodSpec{
		Volumes: []reconcile.Volume{{Name: "shared", EmptyDir: &reconcile.EmptyDirVolumeSource{}}},
		InitContainers: []reconcile.Container{
			sh("first", stamp("first")+"; sleep 0.3"),
			sh("second", stamp("second")+"; sleep 0.3"),
		},
		Containers: []reconcile.Container{sh("main", stamp("main")+"; sleep 1d")},
	}
	for i := range spec.InitContainers {
		spec.InitContainers[i].VolumeMounts = mount
	}
	spec.Containers[0].VolumeMounts = mount
	sync(t, m, "r1", pod("init", spec))
	path := filepath.Join(h.stateDir, "pods", "default_init", "volumes", "shared", "order")
	var lines []string
	waitFor(t, "three stamps", 30*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		lines = strings.Fields(strings.TrimSpace(string(b)))
		return len(lines) >= 6
	})
	var names []string
	var prev float64
	for i := 0; i+1 < len(lines); i += 2 {
		names = append(names, lines[i])
		ts, err := strconv.ParseFloat(lines[i+1], 64)
		if err != nil {
			t.Fatalf("stamp %q: %v", lines[i+1], err)
		}
		if ts < prev+0.3 {
			t.Errorf("%s started at %.2f, less than 0.3 s after the previous one finished its start (%.2f)", lines[i], ts, prev)
		}
		prev = ts
	}
	if strings.Join(names, ",") != "first,second,main" {
		t.Errorf("order %v, want first, second, main", names)
	}
	waitFor(t, "ready", 10*time.Second, func() bool { st, _ := status(m, "init"); return st.Ready })
}

// TestStatefulSetDataSurvivesReplacement writes through web-0's claim,
// replaces web-0 with a new template, and reads the data back.
func TestStatefulSetDataSurvivesReplacement(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{})
	sts := func(script string) reconcile.Object {
		c := sh("main", script)
		c.VolumeMounts = []reconcile.VolumeMount{{Name: "data", MountPath: "/data"}}
		one := int32(1)
		return reconcile.Object{
			TypeMeta: reconcile.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
			Metadata: reconcile.ObjectMeta{Name: "web", Namespace: "default"},
			StatefulSet: &reconcile.StatefulSetSpec{
				Replicas: &one, ServiceName: "web",
				Template:             reconcile.PodTemplateSpec{Spec: reconcile.PodSpec{Containers: []reconcile.Container{c}, TerminationGracePeriodSeconds: quick}},
				VolumeClaimTemplates: []reconcile.PersistentVolumeClaimTemplate{{Metadata: reconcile.ObjectMeta{Name: "data"}}},
			},
		}
	}
	dir := reconcile.ClaimDir(h.stateDir, "default", "data", "web", 0)
	sync(t, m, "r1", sts("hostname > /data/written-by; sleep 1d"))
	waitFor(t, "web-0 wrote its data", 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "written-by"))
		return strings.TrimSpace(string(b)) == "web-0"
	})
	var first reconcile.PodStatus
	waitFor(t, "web-0's status", 10*time.Second, func() bool { first, _ = status(m, "web-0"); return first.Ready })
	sync(t, m, "r2", sts("cp /data/written-by /data/seen-by-new; sleep 1d"))
	waitFor(t, "the new web-0 found the data", 60*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "seen-by-new"))
		return strings.TrimSpace(string(b)) == "web-0"
	})
	waitFor(t, "web-0 replaced", 10*time.Second, func() bool {
		second, _ := status(m, "web-0")
		return second.Hash != first.Hash && second.Ready
	})
}

// TestCompletedJobStaysCompleted runs a Job to completion, stops the
// manager, and starts a new one on the same host and state: the Job is not
// run again.
func TestCompletedJobStaysCompleted(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	one := int32(1)
	job := reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		Metadata: reconcile.ObjectMeta{Name: "once", Namespace: "default"},
		Job: &reconcile.JobSpec{Completions: &one, Template: reconcile.PodTemplateSpec{Spec: reconcile.PodSpec{
			RestartPolicy: reconcile.RestartNever,
			Containers:    []reconcile.Container{sh("main", "echo ran >> /ran/count")},
			Volumes:       []reconcile.Volume{{Name: "ran", HostPath: &reconcile.HostPathVolumeSource{Path: filepath.Join(h.stateDir, "volumes", "ran"), Type: "DirectoryOrCreate"}}},
		}}},
	}
	job.Job.Template.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "ran", MountPath: "/ran"}}
	count := filepath.Join(h.stateDir, "volumes", "ran", "count")
	m, stop := h.manager(rt, manager.Options{})
	sync(t, m, "r1", job)
	complete := func(m *manager.Manager) func() bool {
		return func() bool {
			for _, w := range m.Workloads() {
				if w.Kind == "Job" && w.Name == "once" && w.Condition == reconcile.JobComplete {
					return true
				}
			}
			return false
		}
	}
	waitFor(t, "job complete", 30*time.Second, complete(m))
	stop()

	m2, _ := h.manager(h.runtime(), manager.Options{})
	sync(t, m2, "r2", job)
	waitFor(t, "job complete for the new manager", 10*time.Second, complete(m2))
	// The barrier: once the new manager has converged, a run it wanted
	// would have happened.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m2.WaitConverged(ctx); err != nil {
		t.Fatalf("the new manager did not converge: %v", err)
	}
	b, err := os.ReadFile(count)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "ran"); n != 1 {
		t.Errorf("the job ran %d times", n)
	}
	for _, p := range m2.Pods() {
		if strings.HasPrefix(p.ID.Name, "once-") && p.Display() != "Completed" {
			t.Errorf("job pod %s shows %q", p.ID.Name, p.Display())
		}
	}
}

// TestProbesOnRealPod serves a page with busybox httpd: the readiness
// probe fetches it from the host over the pod's address, the liveness
// probe checks the file with an exec in the container. When the page
// goes, the pod turns unready and the container is restarted; the new
// one serves again and is ready.
func TestProbesOnRealPod(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{InitialBackoff: time.Second})
	// The page exists before httpd starts; only its removal runs in the
	// background (with "a && b && c &" the whole list would, racing httpd).
	c := sh("web", "mkdir -p /www; echo ok > /www/index.html; (sleep 4; rm /www/index.html) & exec httpd -f -p 8080 -h /www")
	c.ReadinessProbe = &reconcile.Probe{
		ProbeHandler:  reconcile.ProbeHandler{HTTPGet: &reconcile.HTTPGetAction{Path: "/index.html", Port: reconcile.FromInt(8080)}},
		PeriodSeconds: 1, FailureThreshold: 1,
	}
	c.LivenessProbe = &reconcile.Probe{
		ProbeHandler:  reconcile.ProbeHandler{Exec: &reconcile.ExecAction{Command: []string{"test", "-f", "/www/index.html"}}},
		PeriodSeconds: 1, FailureThreshold: 2,
	}
	sync(t, m, "r1", pod("web", reconcile.PodSpec{Containers: []reconcile.Container{c}}))
	waitFor(t, "ready", 30*time.Second, func() bool { st, _ := status(m, "web"); return st.Ready })
	waitFor(t, "unready once the page is gone", 15*time.Second, func() bool { st, _ := status(m, "web"); return !st.Ready })
	waitFor(t, "restarted and ready again", 30*time.Second, func() bool {
		st, _ := status(m, "web")
		return st.Ready && st.Restarts() >= 1
	})
}

// TestRollingUpdateOnRealPods rolls a Deployment of three pods, each ready
// a second after it starts, with maxSurge 1 and maxUnavailable 0, and
// samples throughout that three pods stay available and at most four
// exist.
func TestRollingUpdateOnRealPods(t *testing.T) {
	h := newHost(t)
	rt := h.runtime()
	m, _ := h.manager(rt, manager.Options{})
	deploy := func(version string) reconcile.Object {
		c := sh("web", "sleep 1; touch /tmp/ready; exec sleep 1d")
		c.Env = []reconcile.EnvVar{{Name: "VERSION", Value: version}}
		c.ReadinessProbe = &reconcile.Probe{
			ProbeHandler:  reconcile.ProbeHandler{Exec: &reconcile.ExecAction{Command: []string{"test", "-f", "/tmp/ready"}}},
			PeriodSeconds: 1,
		}
		three, surge, unavail := int32(3), reconcile.FromInt(1), reconcile.FromInt(0)
		return reconcile.Object{
			TypeMeta: reconcile.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			Metadata: reconcile.ObjectMeta{Name: "web", Namespace: "default"},
			Deployment: &reconcile.DeploymentSpec{
				Replicas: &three,
				Template: reconcile.PodTemplateSpec{Spec: reconcile.PodSpec{Containers: []reconcile.Container{c}, TerminationGracePeriodSeconds: quick}},
				Strategy: reconcile.DeploymentStrategy{RollingUpdate: &reconcile.RollingUpdateDeployment{MaxSurge: &surge, MaxUnavailable: &unavail}},
			},
		}
	}
	workload := func() reconcile.WorkloadStatus {
		for _, w := range m.Workloads() {
			if w.Kind == "Deployment" {
				return w
			}
		}
		return reconcile.WorkloadStatus{}
	}
	sync(t, m, "r1", deploy("1"))
	waitFor(t, "three available", 60*time.Second, func() bool { w := workload(); return w.Available == 3 && w.UpToDate == 3 })
	sync(t, m, "r2", deploy("2"))
	waitFor(t, "the rollout to start", 10*time.Second, func() bool { return workload().UpToDate < 3 })
	samples := 0
	waitFor(t, "the rollout to finish", 90*time.Second, func() bool {
		samples++
		w := workload()
		if w.Available < 3 {
			t.Fatalf("sample %d: %d available, want at least 3: %+v", samples, w.Available, w)
		}
		pods, err := rt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// Pods being removed do not count toward maxSurge, as for a
		// Deployment controller. A removal can end between the list and
		// the question, so a pod counts as staying only if it is not
		// being removed and a later list still has it.
		var maybe []reconcile.PodID
		for _, p := range pods {
			if !m.Removing(p.ID) {
				maybe = append(maybe, p.ID)
			}
		}
		later, err := rt.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		present := map[reconcile.PodID]bool{}
		for _, p := range later {
			present[p.ID] = true
		}
		staying := 0
		for _, id := range maybe {
			if present[id] {
				staying++
			}
		}
		if staying > 4 {
			t.Fatalf("sample %d: %d pods not being removed, want at most 4", samples, staying)
		}
		return w.UpToDate == 3 && w.Available == 3 && w.Current == 3
	})
	t.Logf("%d samples", samples)
}
