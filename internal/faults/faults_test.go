//go:build faults

package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"berth.dev/berth/internal/testenv"
	ctrd "berth.dev/berth/runtime/containerd"
)

var daemon *testenv.Containerd

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &daemon)) }

const image = "example.local/busybox:1"

// pod is a manifest of a pod that sleeps, with one environment value, so
// changing the value replaces the pod.
func pod(name, value string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: %s
      imagePullPolicy: Never
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
      env:
        - name: VALUE
          value: %q
`, name, image, value)
}

// Two revisions: from A to B, "keep" is untouched, "change" is replaced,
// "gone" is deleted and "new" created; from B to A the reverse.
var revisions = map[string]map[string]string{
	"A": {"keep.yaml": pod("keep", "1"), "change.yaml": pod("change", "a"), "gone.yaml": pod("gone", "1")},
	"B": {"keep.yaml": pod("keep", "1"), "change.yaml": pod("change", "b"), "new.yaml": pod("new", "1")},
}

// host is one berth installation: its containerd namespace, network,
// state directory and repository (a local directory).
type host struct {
	t     *testing.T
	bin   string
	ns    string
	net   testenv.Net
	state string
	repo  string
	cl    *client.Client
	// golden maps a revision to the hash label of each of its pods, from
	// a clean apply.
	golden map[string]map[string]string
	// perPod is how many nat rules berth's network has per pod.
	perPod int
}

// newHost makes a host whose state directory is state (a new temporary
// directory when empty).
func newHost(t *testing.T, state string) *host {
	t.Helper()
	if state == "" {
		state = t.TempDir()
	}
	bin := os.Getenv("BERTH_BIN")
	if bin == "" {
		t.Fatal("BERTH_BIN is not set: run make test-faults, which builds bin/berth")
	}
	h := &host{t: t, bin: bin, ns: testenv.Namespace(t, daemon), net: testenv.Network(t), state: state, repo: t.TempDir(), golden: map[string]map[string]string{}}
	testenv.BusyboxImage(t, daemon, h.ns, image)
	cl, err := daemon.Client(h.ns)
	if err != nil {
		t.Fatal(err)
	}
	h.cl = cl
	t.Cleanup(func() {
		h.write(map[string]string{})
		if out, err := h.run(context.Background(), "apply", "--allow-delete-all"); err != nil {
			t.Errorf("final apply of an empty revision: %v\n%s", err, out)
		}
		h.assertEmpty()
		cl.Close()
	})
	return h
}

// write makes the repository hold exactly files.
func (h *host) write(files map[string]string) {
	h.t.Helper()
	ents, _ := os.ReadDir(h.repo)
	for _, e := range ents {
		os.RemoveAll(filepath.Join(h.repo, e.Name()))
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(h.repo, name), []byte(body), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

func (h *host) command(ctx context.Context, args ...string) *exec.Cmd {
	args = append(args, "--containerd-address", daemon.Address(), "--namespace", h.ns, "--state-dir", h.state,
		"--network", h.net.Name, "--bridge", h.net.Bridge, "--pod-subnet", h.net.Subnet, "--log-level", "warn")
	if args[0] == "apply" {
		args = append(args, "--repo", h.repo)
	}
	return exec.CommandContext(ctx, h.bin, args...)
}

// run runs berth to its end and returns its output.
func (h *host) run(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := h.command(ctx, args...).CombinedOutput()
	return string(out), err
}

// converge applies rev until it exits 0 and checks the host.
func (h *host) converge(rev string) {
	h.t.Helper()
	h.write(revisions[rev])
	if out, err := h.run(context.Background(), "apply"); err != nil {
		h.t.Fatalf("apply %s after a fault: %v\n%s", rev, err, out)
	}
	h.check(rev)
}

// observed is berth's part of the containerd namespace and of the host.
type observed struct {
	sandboxes map[string]string // pod → hash
	running   map[string]uint32 // pod → PID of its app container
	others    []string          // containers that are neither
	leases    []string
	snapshots []string
	appIDs    []string
	netns     []string
	ipam      []string
	podDirs   []string
	natRules  int
	mounts    []string
}

func (h *host) observe() observed {
	h.t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), h.ns)
	o := observed{sandboxes: map[string]string{}, running: map[string]uint32{}}
	ctrs, err := h.cl.ContainerService().List(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	tasks, err := h.cl.TaskService().List(ctx, &tasksapi.ListTasksRequest{})
	if err != nil {
		h.t.Fatal(err)
	}
	byID := map[string]*tasktypes.Process{}
	for _, tk := range tasks.Tasks {
		byID[tk.ID] = tk
	}
	for _, c := range ctrs {
		name := c.Labels[ctrd.LabelPodName]
		switch c.Labels[ctrd.LabelRole] {
		case ctrd.RoleSandbox:
			o.sandboxes[name] = c.Labels[ctrd.LabelHash]
		case ctrd.RoleContainer:
			o.appIDs = append(o.appIDs, c.ID)
			if tk := byID[c.ID]; tk != nil && tk.Status == tasktypes.Status_RUNNING {
				o.running[name] = tk.Pid
			} else {
				o.others = append(o.others, c.ID+" (not running)")
			}
		default:
			o.others = append(o.others, c.ID)
		}
	}
	ls, err := h.cl.LeasesService().List(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, l := range ls {
		o.leases = append(o.leases, l.ID)
	}
	if err := h.cl.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, i snapshots.Info) error {
		if i.Kind == snapshots.KindActive {
			o.snapshots = append(o.snapshots, i.Name)
		}
		return nil
	}); err != nil {
		h.t.Fatal(err)
	}
	ents, _ := os.ReadDir(ctrd.DefaultNetNSDir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), h.ns+"-") {
			o.netns = append(o.netns, e.Name())
		}
	}
	ents, _ = os.ReadDir(filepath.Join(ctrd.IPAMDir, h.net.Name))
	for _, e := range ents {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			o.ipam = append(o.ipam, n)
		}
	}
	ents, _ = os.ReadDir(filepath.Join(h.state, "pods"))
	for _, e := range ents {
		o.podDirs = append(o.podDirs, e.Name())
	}
	if out, err := exec.Command("iptables-save", "-t", "nat").Output(); err == nil {
		o.natRules = strings.Count(string(out), `name: \"`+h.net.Name+`\"`) + strings.Count(string(out), `name: "`+h.net.Name+`"`)
	}
	// The state directory itself may be a mount (TestFullDisk's tmpfs).
	o.mounts = slices.DeleteFunc(testenv.MountsUnder(h.state), func(m string) bool { return m == h.state })
	for _, l := range [][]string{o.others, o.leases, o.snapshots, o.appIDs, o.netns, o.ipam, o.podDirs} {
		sort.Strings(l)
	}
	return o
}

// check asserts the host runs exactly rev's pods, each once, with rev's
// spec, and holds nothing else of berth's.
func (h *host) check(rev string) {
	h.t.Helper()
	if problems := h.problems(rev); len(problems) > 0 {
		h.t.Fatalf("after converging to %s:\n  %s", rev, strings.Join(problems, "\n  "))
	}
}

// problems lists how the host differs from running exactly rev's pods,
// each once, with rev's spec, and nothing else of berth's.
func (h *host) problems(rev string) []string {
	h.t.Helper()
	o := h.observe()
	want := h.golden[rev]
	var problems []string
	for name, hash := range want {
		if o.sandboxes[name] != hash {
			problems = append(problems, fmt.Sprintf("pod %s has hash %q, want %q", name, o.sandboxes[name], hash))
		}
		if o.running[name] == 0 {
			problems = append(problems, "pod "+name+" does not run")
		}
	}
	for name := range o.sandboxes {
		if _, ok := want[name]; !ok {
			problems = append(problems, "pod "+name+" should not exist")
		}
	}
	n := len(want)
	if len(o.others) > 0 {
		problems = append(problems, fmt.Sprintf("other containers: %v", o.others))
	}
	if !slices.Equal(o.leases, o.appIDs) {
		problems = append(problems, fmt.Sprintf("leases %v, want those of the containers %v", o.leases, o.appIDs))
	}
	if !slices.Equal(o.snapshots, o.appIDs) {
		problems = append(problems, fmt.Sprintf("snapshots %v, want those of the containers %v", o.snapshots, o.appIDs))
	}
	if len(o.netns) != n || len(o.ipam) != n || len(o.podDirs) != n {
		problems = append(problems, fmt.Sprintf("%d pods, but network namespaces %v, IP allocations %v, pod directories %v", n, o.netns, o.ipam, o.podDirs))
	}
	if h.perPod > 0 && o.natRules != n*h.perPod {
		problems = append(problems, fmt.Sprintf("%d nat rules of the network, want %d per pod", o.natRules, h.perPod))
	}
	// Each pod's pinned IPC and UTS namespaces are its only mounts.
	var pins []string
	for _, d := range o.podDirs {
		pins = append(pins, filepath.Join(h.state, "pods", d, "ns", "ipc"), filepath.Join(h.state, "pods", d, "ns", "uts"))
	}
	sort.Strings(pins)
	if mounts := slices.Sorted(slices.Values(o.mounts)); !slices.Equal(mounts, pins) {
		problems = append(problems, fmt.Sprintf("mounts under the state directory: %v, want the pods' namespaces %v", mounts, pins))
	}
	return problems
}

func (h *host) assertEmpty() {
	h.t.Helper()
	o := h.observe()
	if len(o.sandboxes)+len(o.appIDs)+len(o.others)+len(o.leases)+len(o.snapshots)+len(o.netns)+len(o.ipam)+len(o.podDirs)+o.natRules+len(o.mounts) > 0 {
		h.t.Errorf("left behind after deleting every pod: %+v", o)
	}
}

// learn applies each revision cleanly, records its pods' hashes and the
// nat rules per pod, and returns how long a clean apply from the other
// revision took.
func (h *host) learn() time.Duration {
	h.t.Helper()
	var took time.Duration
	for _, rev := range []string{"A", "B", "A"} {
		h.write(revisions[rev])
		start := time.Now()
		if out, err := h.run(context.Background(), "apply"); err != nil {
			h.t.Fatalf("clean apply %s: %v\n%s", rev, err, out)
		}
		took = max(took, time.Since(start))
		o := h.observe()
		h.golden[rev] = o.sandboxes
		h.perPod = o.natRules / len(o.sandboxes)
	}
	h.check("A")
	return took
}

// killedApply starts an apply of rev and kills it with SIGKILL after
// delay (if it is still running).
func (h *host) killedApply(rev string, delay time.Duration) {
	h.t.Helper()
	h.write(revisions[rev])
	cmd := h.command(context.Background(), "apply")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(delay):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func trials(def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("BERTH_FAULT_TRIALS"), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// TestKillApply kills berth apply at random points while it goes from
// one revision to the other (creating, replacing and deleting pods), then
// applies again: the host converges, the untouched pod keeps its process,
// nothing leaks.
func TestKillApply(t *testing.T) {
	h := newHost(t, "")
	full := h.learn()
	keepPID := h.observe().running["keep"]
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 12))
	n := trials(50)
	rev := "A"
	for i := range n {
		rev = map[string]string{"A": "B", "B": "A"}[rev]
		delay := time.Duration(rng.Int64N(int64(full)))
		h.killedApply(rev, delay)
		h.converge(rev)
		if pid := h.observe().running["keep"]; pid != keepPID {
			t.Fatalf("trial %d (kill after %s): the untouched pod keep was restarted (PID %d, was %d)", i, delay, pid, keepPID)
		}
	}
	t.Logf("%d applies killed at random points within %s; each time the next apply converged", n, full)
}

// TestKillContainerd kills containerd at random points of an apply and
// starts it again at once; the apply in flight ends, and the next apply
// converges with nothing leaked.
func TestKillContainerd(t *testing.T) {
	h := newHost(t, "")
	full := h.learn()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 34))
	n := trials(10)
	rev := "A"
	for i := range n {
		rev = map[string]string{"A": "B", "B": "A"}[rev]
		h.write(revisions[rev])
		cmd := h.command(context.Background(), "apply")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		finished := false
		select {
		case <-done:
			finished = true
		case <-time.After(time.Duration(rng.Int64N(int64(full)))):
		}
		if err := daemon.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := daemon.Restart(); err != nil {
			t.Fatalf("trial %d: restart containerd: %v", i, err)
		}
		// The apply in flight fails or carries on against the restarted
		// daemon; either way it ends.
		if !finished {
			select {
			case <-done:
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Signal(syscall.SIGKILL)
				<-done
				t.Errorf("trial %d: an apply did not end within 2 minutes of a containerd restart", i)
			}
		}
		h.converge(rev)
	}
}

// TestConcurrentApplies runs two applies of the same revision at once:
// both succeed (one waits for the other's lock), and the host converges.
func TestConcurrentApplies(t *testing.T) {
	h := newHost(t, "")
	h.learn()
	for i, rev := range []string{"B", "A", "B"} {
		h.write(revisions[rev])
		errs := make(chan error, 2)
		outs := make([]string, 2)
		for j := range 2 {
			go func() {
				out, err := h.run(context.Background(), "apply")
				outs[j] = out
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("trial %d: one of two applies at once failed: %v\n%s\n%s", i, err, outs[0], outs[1])
			}
		}
		h.check(rev)
	}
}

// TestReboot simulates a power loss: containerd, its shims and the
// containers die, and what lives in memory (containerd's and runc's
// state, network namespaces, mounts) is gone. The next apply makes every
// pod again and leaves nothing of the old ones.
func TestReboot(t *testing.T) {
	h := newHost(t, "")
	h.learn()
	if err := daemon.Reboot([]string{h.ns}, ctrd.DefaultNetNSDir, h.state); err != nil {
		t.Fatal(err)
	}
	h.converge("A")
}

// TestFullDisk fills the state directory's filesystem: berth status
// still works, an apply says the disk is full and makes no pod halfway,
// the untouched pod keeps running, and once there is room again the next
// apply converges with nothing left behind.
func TestFullDisk(t *testing.T) {
	state := t.TempDir()
	if err := syscall.Mount("tmpfs", state, "tmpfs", 0, "size=64m,mode=0750"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(state, syscall.MNT_DETACH); err != nil {
			t.Error(err)
		}
	})
	h := newHost(t, state)
	h.learn()
	keepPID := h.observe().running["keep"]
	fill := filepath.Join(state, "fill")
	f, err := os.Create(fill)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	if out, err := h.run(context.Background(), "status"); err != nil || !strings.Contains(out, "keep") {
		t.Errorf("berth status on a full disk: %v\n%s", err, out)
	}
	h.write(revisions["B"])
	out, err := h.run(context.Background(), "apply")
	if err == nil || !strings.Contains(out, "is full") && !strings.Contains(out, "no space left on device") {
		t.Errorf("apply on a full disk: %v, want it to say the disk is full:\n%s", err, out)
	}
	if pid := h.observe().running["keep"]; pid != keepPID {
		t.Errorf("the untouched pod was restarted on a full disk (PID %d, was %d)", pid, keepPID)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	h.converge("B")
	if pid := h.observe().running["keep"]; pid != keepPID {
		t.Errorf("the untouched pod was restarted (PID %d, was %d)", pid, keepPID)
	}
}

// hostile are revisions that try to leave their confinement, each with
// what berth must say when it refuses it.
var hostile = map[string]struct{ manifest, refusal string }{
	"procMount": {`apiVersion: v1
kind: Pod
metadata: {name: unmasked}
spec:
  containers:
    - name: app
      image: ` + image + `
      imagePullPolicy: Never
      command: ["sh", "-c", "echo '|/tmp/x' > /proc/sys/kernel/core_pattern; sleep 3600"]
      securityContext: {procMount: Unmasked}
`, "procMount Unmasked"},
	"unsafe sysctl": {`apiVersion: v1
kind: Pod
metadata: {name: sysctl}
spec:
  securityContext:
    sysctls: [{name: net.core.somaxconn, value: "4096"}]
  containers:
    - {name: app, image: ` + image + `, imagePullPolicy: Never, command: ["sleep", "3600"]}
`, `unsafe sysctl "net.core.somaxconn"`},
	"host sysctl": {`apiVersion: v1
kind: Pod
metadata: {name: corepattern}
spec:
  securityContext:
    sysctls: [{name: kernel.core_pattern, value: "|/tmp/x"}]
  containers:
    - {name: app, image: ` + image + `, imagePullPolicy: Never, command: ["sleep", "3600"]}
`, "is not namespaced"},
	"bidirectional": {`apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  volumes: [{name: v, emptyDir: {}}]
  containers:
    - name: app
      image: ` + image + `
      imagePullPolicy: Never
      command: ["sleep", "3600"]
      volumeMounts: [{name: v, mountPath: /v, mountPropagation: Bidirectional}]
`, "Bidirectional propagation is only allowed in a privileged container"},
	"unconfined": {`apiVersion: v1
kind: Pod
metadata: {name: unconfined}
spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers:
    - {name: app, image: ` + image + `, imagePullPolicy: Never, command: ["sleep", "3600"]}
`, "seccomp profile Unconfined"},
}

// TestHostileRevisions applies revisions that try to escape: each is
// refused with a message naming the field, and nothing is made on the
// host. A subPath through a symlink planted by an init container runs
// contained in its volume, and the host file it points at is unchanged.
func TestHostileRevisions(t *testing.T) {
	h := newHost(t, "")
	names := slices.Sorted(maps.Keys(hostile))
	for _, name := range names {
		tc := hostile[name]
		h.write(map[string]string{"pod.yaml": tc.manifest})
		out, err := h.run(context.Background(), "apply")
		if err == nil || !strings.Contains(out, tc.refusal) {
			t.Errorf("%s: apply = %v, want it refused saying %q:\n%s", name, err, tc.refusal, out)
		}
		if o := h.observe(); len(o.sandboxes)+len(o.appIDs)+len(o.netns)+len(o.podDirs) > 0 {
			t.Errorf("%s: a refused revision changed the host: %+v", name, o)
		}
	}
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.write(map[string]string{"pod.yaml": fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: subpath}
spec:
  volumes: [{name: v, emptyDir: {}}]
  initContainers:
    - name: plant
      image: %[1]s
      imagePullPolicy: Never
      command: ["sh", "-c", "mkdir -p /v/d && ln -s %[2]s /v/d/victim && ln -s / /v/root"]
      volumeMounts: [{name: v, mountPath: /v}]
  containers:
    - name: app
      image: %[1]s
      imagePullPolicy: Never
      command: ["sh", "-c", "echo owned > /r/%[2]s; sleep 3600"]
      volumeMounts: [{name: v, mountPath: /r, subPath: root}]
`, image, victim)})
	if out, err := h.run(context.Background(), "apply"); err != nil {
		t.Fatalf("the subPath pod: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "host file\n" {
		t.Errorf("the host file behind the symlink: %q, %v", b, err)
	}
}
