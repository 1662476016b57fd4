// Package fake is an in-memory reconcile.Runtime for fast unit tests of
// berth's pure logic. It keeps pods in a map and records every call, so a
// test can assert that nothing mutating happened. Its behaviour is held to
// the real runtime's by the contract suite in runtime/runtimetest.
//
// Containers "run" until they are stopped, except that a command of the
// form `sh -c 'exit N'` (or `true`, `false`) exits at once with that code.
package fake

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/admit"
	"berth.dev/berth/reconcile/podspec"
)

var _ reconcile.Runtime = (*Runtime)(nil)

// Runtime is an in-memory container runtime.
type Runtime struct {
	mu     sync.Mutex
	images map[string]bool
	pods   map[reconcile.PodID]*pod
	calls  []string
	pid    uint32
	graces map[string]time.Duration // last StopContainer grace, by pod/container
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Fail, when set, is consulted before each call with the call's name
	// ("EnsureImage", "CreateSandbox", …) and a subject; a non-nil error is
	// returned by the call.
	Fail func(call, subject string) error
	// Pull, when set, is called by EnsureImage before anything else,
	// without the runtime's lock held, so a test can make a pull slow: it
	// may block until ctx is done and return its error.
	Pull func(ctx context.Context, image string) error
	// Policy, when set, is what Admit and CreateSandbox allow, as in the
	// real runtime (reconcile/admit); nil allows everything the node policy
	// can allow, and the pod's own content is still checked.
	Policy *admit.Policy
	// ExecFunc, when set, answers ExecSync.
	ExecFunc func(id reconcile.PodID, container string, cmd []string) (reconcile.ExecResult, error)

	watchers []chan reconcile.PodID // WatchExits subscribers
}

type pod struct {
	obs  reconcile.ObservedPod
	done map[string]chan struct{}
	// env is each container's environment ("kind/name"), resolved as the
	// real runtime resolves it (podspec.ContainerEnv).
	env map[string][]string
	// etc are the pod's /etc/hosts, hostname and resolv.conf, made as the
	// real runtime makes them (podspec.EtcFiles) on the fake's Host.
	etc map[string][]byte
}

// Host is the host the fake's pods run on, as podspec.EtcFiles sees it.
var Host = podspec.Host{
	Hostname: "fake-host",
	Hosts:    []byte("127.0.0.1\tlocalhost\n192.0.2.10\tfake-host\n"),
	Resolv:   []byte("nameserver 192.0.2.53\nnameserver 127.0.0.53\nsearch example.internal\n"),
}

// EtcFile returns the content of the pod's /etc/NAME ("hosts", "hostname",
// "resolv.conf"), as the real runtime would write it.
func (r *Runtime) EtcFile(id reconcile.PodID, name string) ([]byte, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, ok := r.pods[id]
	if !ok {
		return nil, false
	}
	b, ok := sp.etc[name]
	return b, ok
}

// Capacity is the host the fake runtime pretends to be, for
// resourceFieldRefs to unset limits.
var Capacity = podspec.Capacity{CPUs: 2, Memory: 1 << 30}

// Env returns the environment the named container of pod id was started
// with, resolved as the real runtime resolves it, and whether it was.
func (r *Runtime) Env(id reconcile.PodID, kind reconcile.ContainerKind, name string) ([]string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, ok := r.pods[id]
	if !ok {
		return nil, false
	}
	env, ok := sp.env[string(kind)+"/"+name]
	return env, ok
}

// New returns an empty runtime holding the given images.
func New(images ...string) *Runtime {
	r := &Runtime{images: map[string]bool{}, pods: map[reconcile.PodID]*pod{}, pid: 1000, Now: time.Now}
	for _, i := range images {
		r.images[i] = true
	}
	return r
}

// AddImage makes image present in the store.
func (r *Runtime) AddImage(image string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images[image] = true
}

// Calls returns the calls made so far, as "Name subject".
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// MutatingCalls returns the calls that changed the runtime's state.
func (r *Runtime) MutatingCalls() []string {
	var out []string
	for _, c := range r.Calls() {
		if strings.HasPrefix(c, "CreateSandbox") || strings.HasPrefix(c, "StartContainer") || strings.HasPrefix(c, "RemovePod") {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (r *Runtime) ResetCalls() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = nil
}

func (r *Runtime) record(call, subject string) error {
	r.calls = append(r.calls, call+" "+subject)
	if r.Fail != nil {
		return r.Fail(call, subject)
	}
	return nil
}

// observed is a copy of the pod as List shows it: init containers first,
// then by name, as in the real runtime.
func (p *pod) observed() reconcile.ObservedPod {
	o := p.obs
	o.Containers = append([]reconcile.ObservedContainer(nil), p.obs.Containers...)
	sort.Slice(o.Containers, func(i, j int) bool {
		a, b := o.Containers[i], o.Containers[j]
		if a.Kind != b.Kind {
			return a.Kind == reconcile.InitContainer
		}
		return a.Name < b.Name
	})
	return o
}

// List implements reconcile.Runtime.
func (r *Runtime) List(ctx context.Context) ([]reconcile.ObservedPod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("List", ""); err != nil {
		return nil, err
	}
	out := make([]reconcile.ObservedPod, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, p.observed())
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].ID, out[j].ID
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

// ObservePod implements reconcile.PodObserver.
func (r *Runtime) ObservePod(ctx context.Context, id reconcile.PodID) (*reconcile.ObservedPod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("ObservePod", id.String()); err != nil {
		return nil, err
	}
	p, ok := r.pods[id]
	if !ok {
		return nil, nil
	}
	o := p.observed()
	return &o, nil
}

// EnsureImage implements reconcile.Runtime. Images cannot be pulled: an
// image that is not present is an error unless the policy allows a pull
// and the image was registered with AddImage.
func (r *Runtime) EnsureImage(ctx context.Context, image, policy string) error {
	if r.Pull != nil {
		if err := r.Pull(ctx, image); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("EnsureImage", image); err != nil {
		return err
	}
	if !r.images[image] {
		return fmt.Errorf("image %q: not found", image)
	}
	return nil
}

// Admit reports why pod cannot run under r.Policy, with the real
// runtime's pure rules (admit.Check); it changes nothing.
func (r *Runtime) Admit(p *reconcile.DesiredPod) error {
	pol := allowAll
	if r.Policy != nil {
		pol = *r.Policy
	}
	return admit.Check(p, pol)
}

var allowAll = admit.Policy{Node: reconcile.NodePolicy{
	Privileged: true, HostNamespaces: true, HostPorts: true, Capabilities: []string{"ALL"}, HostPaths: []string{"/"},
}}

// CreateSandbox implements reconcile.Runtime. Like the real runtime, it
// refuses a pod Admit refuses before making anything.
func (r *Runtime) CreateSandbox(ctx context.Context, p *reconcile.DesiredPod) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("CreateSandbox", p.ID.String()); err != nil {
		return err
	}
	if err := r.Admit(p); err != nil {
		return fmt.Errorf("pod %s: %w", p.ID, err)
	}
	// The files of configMap, secret, downwardAPI and projected volumes,
	// as the real runtime computes them (not written anywhere).
	for _, v := range p.Spec.Volumes {
		if v.ConfigMap == nil && v.Secret == nil && v.DownwardAPI == nil && v.Projected == nil {
			continue
		}
		if _, err := podspec.VolumeFiles(p, v, Capacity); err != nil {
			return fmt.Errorf("pod %s: volume %q: %w", p.ID, v.Name, err)
		}
	}
	if existing, ok := r.pods[p.ID]; ok {
		if existing.obs.Hash != p.Hash {
			return fmt.Errorf("pod %s: a sandbox with another spec exists", p.ID)
		}
		existing.obs.SandboxReady = true
		return nil
	}
	ip := fmt.Sprintf("10.0.%d.%d", len(r.pods)/250, len(r.pods)%250+2)
	r.pods[p.ID] = &pod{
		obs: reconcile.ObservedPod{
			ID: p.ID, Hash: p.Hash, Revision: p.Revision, Owner: p.Owner,
			IP: ip, GracePeriod: p.GracePeriod(), CreatedAt: r.Now(), SandboxReady: true,
		},
		done: map[string]chan struct{}{},
		etc:  podspec.EtcFiles(p, ip, Host),
	}
	return nil
}

var exitRE = regexp.MustCompile(`^exit ([0-9]+)$`)

// exitCode tells whether the container's command exits at once, and how.
func exitCode(c *reconcile.Container) (int, bool) {
	argv := append(append([]string(nil), c.Command...), c.Args...)
	switch {
	case len(argv) == 1 && argv[0] == "true":
		return 0, true
	case len(argv) == 1 && argv[0] == "false":
		return 1, true
	case len(argv) == 3 && argv[0] == "sh" && argv[1] == "-c":
		if m := exitRE.FindStringSubmatch(strings.TrimSpace(argv[2])); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n, true
		}
	}
	return 0, false
}

// StartContainer implements reconcile.Runtime.
func (r *Runtime) StartContainer(ctx context.Context, p *reconcile.DesiredPod, kind reconcile.ContainerKind, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("StartContainer", p.ID.String()+"/"+name); err != nil {
		return err
	}
	sp, ok := r.pods[p.ID]
	if !ok {
		return fmt.Errorf("pod %s: no sandbox", p.ID)
	}
	spec := p.Container(kind, name)
	if spec == nil {
		return fmt.Errorf("pod %s: no %s container %q in spec", p.ID, kind, name)
	}
	if !r.images[spec.Image] {
		return fmt.Errorf("image %q: not found", spec.Image)
	}
	// The Kubernetes meaning of the container, as the real runtime has it.
	env, err := podspec.ContainerEnv(podspec.EnvInput{Pod: p, Container: spec, PodIP: sp.obs.IP, Host: Capacity})
	if err != nil {
		return err
	}
	if sp.env == nil {
		sp.env = map[string][]string{}
	}
	sp.env[string(kind)+"/"+name] = env
	// The fake's images run as root (they have no user of their own).
	if e := podspec.Security(p, spec); e.RunAsNonRoot {
		if err := podspec.CheckNonRoot(name, e.RunAsUser, ""); err != nil {
			return err
		}
	}
	// Replace an existing container of the same name.
	cs := sp.obs.Containers[:0]
	for _, c := range sp.obs.Containers {
		if !(c.Kind == kind && c.Name == name) {
			cs = append(cs, c)
		}
	}
	r.pid++
	c := reconcile.ObservedContainer{
		Name: name, Kind: kind, ID: p.ID.Namespace + "_" + p.ID.Name + "_" + name, Image: spec.Image,
		State: reconcile.StateRunning, PID: r.pid, StartedAt: r.Now(),
	}
	done := make(chan struct{})
	if code, exits := exitCode(spec); exits {
		c.State, c.ExitCode, c.PID, c.FinishedAt = reconcile.StateExited, code, 0, r.Now()
		close(done)
		r.exited(p.ID)
	}
	sp.obs.Containers = append(cs, c)
	sp.done[string(kind)+"/"+name] = done
	return nil
}

// WaitContainer implements reconcile.Runtime.
func (r *Runtime) WaitContainer(ctx context.Context, id reconcile.PodID, kind reconcile.ContainerKind, name string) (int, error) {
	r.mu.Lock()
	if err := r.record("WaitContainer", id.String()+"/"+name); err != nil {
		r.mu.Unlock()
		return 0, err
	}
	sp, ok := r.pods[id]
	var done chan struct{}
	if ok {
		done = sp.done[string(kind)+"/"+name]
	}
	r.mu.Unlock()
	if done == nil {
		return 0, fmt.Errorf("pod %s: container %q not found", id, name)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if sp, ok := r.pods[id]; ok {
		if c := sp.obs.Container(kind, name); c != nil {
			return c.ExitCode, nil
		}
	}
	return 137, nil
}

// RemovePod implements reconcile.Runtime.
func (r *Runtime) RemovePod(ctx context.Context, id reconcile.PodID, grace time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record("RemovePod", id.String()); err != nil {
		return err
	}
	sp, ok := r.pods[id]
	if !ok {
		return nil
	}
	for i := range sp.obs.Containers {
		c := &sp.obs.Containers[i]
		if c.State == reconcile.StateRunning {
			c.State, c.ExitCode, c.FinishedAt = reconcile.StateExited, 143, r.Now()
		}
	}
	for _, d := range sp.done {
		select {
		case <-d:
		default:
			close(d)
		}
	}
	delete(r.pods, id)
	r.exited(id)
	return nil
}

// Kill makes a running container exit with code, as if it crashed or was
// killed outside berth.
func (r *Runtime) Kill(id reconcile.PodID, kind reconcile.ContainerKind, name string, code int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, ok := r.pods[id]
	if !ok {
		return fmt.Errorf("pod %s not found", id)
	}
	c := sp.obs.Container(kind, name)
	if c == nil {
		return fmt.Errorf("container %q not found", name)
	}
	c.State, c.ExitCode, c.PID, c.FinishedAt = reconcile.StateExited, code, 0, r.Now()
	if d := sp.done[string(kind)+"/"+name]; d != nil {
		select {
		case <-d:
		default:
			close(d)
		}
	}
	r.exited(id)
	return nil
}

var _ reconcile.Execer = (*Runtime)(nil)

// ExecSync implements reconcile.Execer. The named app container must be
// running; the result is what ExecFunc returns (exit 0 and no output when
// it is nil).
func (r *Runtime) ExecSync(ctx context.Context, id reconcile.PodID, container string, cmd []string, timeout time.Duration) (reconcile.ExecResult, error) {
	r.mu.Lock()
	if err := r.record("ExecSync", id.String()+"/"+container); err != nil {
		r.mu.Unlock()
		return reconcile.ExecResult{}, err
	}
	sp, ok := r.pods[id]
	var c *reconcile.ObservedContainer
	if ok {
		c = sp.obs.Container(reconcile.AppContainer, container)
	}
	fn := r.ExecFunc
	r.mu.Unlock()
	if c == nil {
		return reconcile.ExecResult{}, fmt.Errorf("pod %s: container %q not found", id, container)
	}
	if c.State != reconcile.StateRunning {
		return reconcile.ExecResult{}, fmt.Errorf("pod %s: container %q is not running", id, container)
	}
	if fn == nil {
		return reconcile.ExecResult{}, nil
	}
	return fn(id, container, cmd)
}

var _ reconcile.ContainerStopper = (*Runtime)(nil)

// StopContainer implements reconcile.ContainerStopper: the container
// exits with 143 (SIGTERM) and stays in place.
func (r *Runtime) StopContainer(ctx context.Context, id reconcile.PodID, kind reconcile.ContainerKind, name string, grace time.Duration) error {
	r.mu.Lock()
	if err := r.record("StopContainer", id.String()+"/"+name); err != nil {
		r.mu.Unlock()
		return err
	}
	if r.graces == nil {
		r.graces = map[string]time.Duration{}
	}
	r.graces[id.String()+"/"+name] = grace
	sp, ok := r.pods[id]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	c := sp.obs.Container(kind, name)
	running := c != nil && c.State == reconcile.StateRunning
	r.mu.Unlock()
	if !running {
		return nil
	}
	return r.Kill(id, kind, name, 143)
}

// Remove deletes a container as if someone removed it outside berth.
func (r *Runtime) Remove(id reconcile.PodID, kind reconcile.ContainerKind, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sp, ok := r.pods[id]
	if !ok {
		return fmt.Errorf("pod %s not found", id)
	}
	cs := sp.obs.Containers[:0]
	found := false
	for _, c := range sp.obs.Containers {
		if c.Kind == kind && c.Name == name {
			found = true
			continue
		}
		cs = append(cs, c)
	}
	sp.obs.Containers = cs
	if d := sp.done[string(kind)+"/"+name]; d != nil {
		select {
		case <-d:
		default:
			close(d)
		}
	}
	r.exited(id)
	if !found {
		return fmt.Errorf("container %q not found", name)
	}
	return nil
}

// StopGrace returns the grace period of the last StopContainer call for
// the container, and whether there was one.
func (r *Runtime) StopGrace(id reconcile.PodID, name string) (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.graces[id.String()+"/"+name]
	return g, ok
}

// Reboot makes the runtime look as containerd does after the host
// restarted: every pod's sandbox is gone (not ready) and no task runs, so
// every container is back to created, whatever it was.
func (r *Runtime) Reboot() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		p.obs.SandboxReady = false
		for i := range p.obs.Containers {
			c := &p.obs.Containers[i]
			c.State, c.PID, c.ExitCode, c.FinishedAt = reconcile.StateCreated, 0, 0, time.Time{}
		}
		for _, d := range p.done {
			select {
			case <-d:
			default:
				close(d)
			}
		}
		r.exited(p.obs.ID)
	}
}
