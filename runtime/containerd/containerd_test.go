package containerd_test

import (
	"context"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/hashicorp/go-hclog"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/containerd/crilog"
	"berth.dev/berth/runtime/runtimetest"
)

var ctrd *testenv.Containerd

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &ctrd)) }

const testImage = "example.local/busybox:1"

// env is one test's runtime setup: its own containerd namespace, network
// and state directory.
type env struct {
	ns       string
	net      testenv.Net
	stateDir string
}

var (
	envsMu sync.Mutex
	envs   = map[*testing.T]*env{}
)

// newRuntime returns a Runtime on the test's own namespace, network and
// state directory; called again with the same t it opens a second
// instance on the same ones.
func newRuntime(t *testing.T, mutate ...func(*containerd.Options)) (*containerd.Runtime, *env) {
	t.Helper()
	envsMu.Lock()
	e, ok := envs[t]
	envsMu.Unlock()
	if !ok {
		e = &env{ns: testenv.Namespace(t, ctrd)}
		testenv.BusyboxImage(t, ctrd, e.ns, testImage)
		e.net = testenv.Network(t)
		e.stateDir = t.TempDir()
		envsMu.Lock()
		envs[t] = e
		envsMu.Unlock()
		t.Cleanup(func() {
			envsMu.Lock()
			delete(envs, t)
			envsMu.Unlock()
		})
	}
	opts := containerd.Options{
		Address:     ctrd.Address(),
		Namespace:   e.ns,
		StateDir:    e.stateDir,
		CNIBinDirs:  []string{testenv.CNIBinDir},
		NetworkName: e.net.Name,
		Bridge:      e.net.Bridge,
		Subnet:      e.net.Subnet,
		Logger:      testLogger(t),
		Policy:      allowAll,
	}
	// No credentials unless a test gives some: the caller's ~/.docker
	// does not count.
	opts.Registry.AuthFile = filepath.Join(e.stateDir, "no-credentials.json")
	if err := os.WriteFile(opts.Registry.AuthFile, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(&opts)
	}
	rt, err := containerd.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("containerd.New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt, e
}

// allowAll is the node policy of most tests: they exercise what the
// runtime does with privileged features, not the policy.
var allowAll = reconcile.NodePolicy{Privileged: true, HostNamespaces: true, HostPorts: true, Capabilities: []string{"ALL"}, HostPaths: []string{"/"}}

// testLogger logs at debug level through t.Log.
func testLogger(t *testing.T) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: tWriter{t}, DisableTime: false})
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestContract(t *testing.T) {
	runtimetest.Run(t, func(t *testing.T) (reconcile.Runtime, string) {
		rt, _ := newRuntime(t)
		return rt, testImage
	})
}

func ctx(t *testing.T) context.Context { return runtimetest.Context(t) }

// held reports whether a process has path open.
func held(path string) bool {
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && target == path {
			return true
		}
	}
	return false
}

// logOf returns what an exited container wrote to its log, one line per
// line, once the log driver has written all of it: the container's task
// is deleted, so its shim closes the container's streams, and the driver,
// which holds the log open from before the container started, lets it go
// once it has copied what the streams still held.
func logOf(t *testing.T, rt *containerd.Runtime, id reconcile.PodID, name string) string {
	t.Helper()
	c := namespaces.WithNamespace(ctx(t), rt.Namespace())
	for _, cid := range containerd.InstanceIDs(id, name) {
		ctr, err := rt.Client().LoadContainer(c, cid)
		if err != nil {
			continue
		}
		if task, err := ctr.Task(c, nil); err == nil {
			if st, err := task.Status(c); err != nil || st.Status != client.Stopped {
				t.Fatalf("logOf reads the log of an exited container; %s is %v (%v)", name, st.Status, err)
			}
			if _, err := task.Delete(c); err != nil {
				t.Fatalf("delete the exited task of %s: %v", name, err)
			}
		}
	}
	path := rt.Paths(id).LogPath(name)
	for deadline := time.Now().Add(30 * time.Second); held(path); {
		if time.Now().After(deadline) {
			t.Fatalf("the log driver of %s still holds its log 30s after its task was deleted", name)
		}
		time.Sleep(10 * time.Millisecond) // poll the condition
	}
	lines, err := crilog.ReadLines(rt.Paths(id).LogPath(name), crilog.ReadOptions{Tail: -1})
	if err != nil {
		t.Fatalf("read log of %s: %v", name, err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.Write(l.Msg)
		b.WriteByte('\n')
	}
	return b.String()
}

// run starts a container in the pod's sandbox that runs script, waits for it
// and returns its output.
func run(t *testing.T, rt *containerd.Runtime, pod *reconcile.DesiredPod, name, script string) (string, int) {
	t.Helper()
	pod.Spec.Containers = append(pod.Spec.Containers, reconcile.Container{
		Name: name, Image: testImage, Command: []string{"sh", "-c", script},
		VolumeMounts: pod.Spec.Containers[0].VolumeMounts,
	})
	if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, name); err != nil {
		t.Fatalf("StartContainer(%s): %v", name, err)
	}
	code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, name)
	if err != nil {
		t.Fatalf("WaitContainer(%s): %v", name, err)
	}
	return logOf(t, rt, pod.ID, name), code
}

func TestPodSharesNetworkVolumeHostnameIPC(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("web", reconcile.Container{
		Name: "httpd", Image: testImage,
		Command:      []string{"sh", "-c", "echo hello from $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"},
		VolumeMounts: []reconcile.VolumeMount{{Name: "www", MountPath: "/www"}},
	})
	pod.Spec.Volumes = []reconcile.Volume{{Name: "www", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
	runtimetest.Up(t, rt, pod)

	out, code := run(t, rt, pod, "client", `for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1`)
	if code != 0 || strings.TrimSpace(out) != "hello from web" {
		t.Errorf("wget from the second container: exit %d, output %q; want 0, %q", code, out, "hello from web")
	}
	// berth brings the loopback up itself (no loopback plugin); the pod's
	// side of the bridge is eth1, as it always was.
	out, _ = run(t, rt, pod, "links", "ip -o link show lo; ip -o addr show eth1")
	if !regexp.MustCompile(`^1: lo: <LOOPBACK,UP,LOWER_UP>`).MatchString(out) || !strings.Contains(out, "eth1    inet ") {
		t.Errorf("ip link and addr in the pod:\n%s\nwant lo up and an IPv4 address on eth1", out)
	}
	out, _ = run(t, rt, pod, "hostname", "hostname; cat /etc/hostname")
	if out != "web\nweb\n" {
		t.Errorf("hostname output %q, want web twice", out)
	}

	pods, err := rt.List(ctx(t))
	if err != nil || len(pods) != 1 {
		t.Fatalf("List = %+v, %v", pods, err)
	}
	ip := pods[0].IP
	if _, subnet, _ := net.ParseCIDR(e.net.Subnet); !subnet.Contains(net.ParseIP(ip)) {
		t.Errorf("pod IP %q not in the network's subnet %s", ip, e.net.Subnet)
	}
	out, _ = run(t, rt, pod, "hosts", "cat /etc/hosts; wget -qO- http://"+ip+":8080/")
	if !strings.Contains(out, ip+"\tweb") || !strings.Contains(out, "hello from web") {
		t.Errorf("/etc/hosts and pod IP fetch: %q", out)
	}

	// All containers of the pod share the pinned net, IPC and UTS namespaces.
	httpd := pods[0].Container(reconcile.AppContainer, "httpd")
	if httpd == nil || httpd.PID == 0 {
		t.Fatalf("httpd container: %+v", httpd)
	}
	out, _ = run(t, rt, pod, "ns", "for n in net ipc uts; do readlink /proc/self/ns/$n; done")
	var want []string
	for _, ns := range []string{"net", "ipc", "uts"} {
		l, err := os.Readlink("/proc/" + itoa(httpd.PID) + "/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, l)
	}
	if strings.Fields(out) == nil || strings.Join(strings.Fields(out), " ") != strings.Join(want, " ") {
		t.Errorf("namespaces of second container %q, of httpd %q", out, want)
	}
	for _, ns := range []string{"net", "ipc", "uts"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		if strings.Contains(out, host) {
			t.Errorf("pod shares the host's %s namespace", ns)
		}
	}
	// `ip netns` lists the pod's network namespace.
	list, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(list), containerd.NetNSName(rt.Namespace(), pod.ID)) {
		t.Errorf("ip netns list does not show %s:\n%s", containerd.NetNSName(rt.Namespace(), pod.ID), list)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// trapPod is a pod whose containers note each TERM in a host directory:
// "ignore" carries on after it, "polite" exits.
func trapPod(t *testing.T, rt *containerd.Runtime) (*reconcile.DesiredPod, string) {
	host := t.TempDir()
	mount := []reconcile.VolumeMount{{Name: "marks", MountPath: "/marks"}}
	pod := runtimetest.NewPod("stubborn",
		// Ignores TERM: only KILL after the grace period stops it.
		reconcile.Container{Name: "ignore", Image: testImage, VolumeMounts: mount,
			Command: []string{"sh", "-c", `trap "echo term >> /marks/ignore" TERM; touch /marks/ignore-ready; while true; do sleep 1 & wait $!; done`}},
		// Exits on TERM.
		reconcile.Container{Name: "polite", Image: testImage, VolumeMounts: mount,
			Command: []string{"sh", "-c", `trap "echo bye >> /marks/polite; exit 0" TERM; touch /marks/polite-ready; while true; do sleep 1 & wait $!; done`}},
	)
	pod.Spec.Volumes = []reconcile.Volume{{Name: "marks", HostPath: &reconcile.HostPathVolumeSource{Path: host}}}
	runtimetest.Up(t, rt, pod)
	for _, f := range []string{"ignore-ready", "polite-ready"} { // traps installed
		waitFor(t, func() bool { _, err := os.Stat(filepath.Join(host, f)); return err == nil })
	}
	return pod, host
}

func TestRemovePodTermThenKill(t *testing.T) {
	rt, _ := newRuntime(t)
	pod, host := trapPod(t, rt)
	grace := 2 * time.Second
	start := time.Now()
	if err := rt.RemovePod(ctx(t), pod.ID, grace); err != nil {
		t.Fatalf("RemovePod: %v", err)
	}
	took := time.Since(start)
	t.Logf("RemovePod took %s with grace %s", took, grace)
	if took < grace {
		t.Errorf("RemovePod took %s: a container trapping TERM was killed before the grace period %s", took, grace)
	}
	for f, want := range map[string]string{"ignore": "term\n", "polite": "bye\n"} {
		if b, _ := os.ReadFile(filepath.Join(host, f)); string(b) != want {
			t.Errorf("container %s recorded %q, want %q (one TERM)", f, b, want)
		}
	}
}

// terminationGracePeriodSeconds: 0 means "stop immediately via the kill
// signal": no TERM reaches the containers (whose traps run at once: the
// shell waits for its sleep with wait, which a trapped signal interrupts).
func TestRemovePodWithoutGraceKills(t *testing.T) {
	rt, _ := newRuntime(t)
	pod, host := trapPod(t, rt)
	if err := rt.RemovePod(ctx(t), pod.ID, 0); err != nil {
		t.Fatalf("RemovePod: %v", err)
	}
	for _, f := range []string{"ignore", "polite"} {
		if b, err := os.ReadFile(filepath.Join(host, f)); err == nil {
			t.Errorf("container %s recorded %q: it was sent TERM, want KILL only", f, b)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLogsAndExitCodes(t *testing.T) {
	rt, _ := newRuntime(t)
	pod := runtimetest.NewPod("logs", reconcile.Container{
		Name: "main", Image: testImage,
		Command: []string{"sh", "-c"}, Args: []string{`echo out; echo err >&2; echo "$GREETING" ; pwd; exit 5`},
		Env:        []reconcile.EnvVar{{Name: "GREETING", Value: "hi there"}},
		WorkingDir: "/tmp",
	})
	runtimetest.Up(t, rt, pod)
	code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main")
	if err != nil || code != 5 {
		t.Fatalf("WaitContainer = %d, %v; want 5", code, err)
	}
	got := logOf(t, rt, pod.ID, "main")
	for _, want := range []string{"out\n", "err\n", "hi there\n", "/tmp\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
}

func TestHostPathReadOnlyAndSubPath(t *testing.T) {
	rt, _ := newRuntime(t)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "greeting"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := runtimetest.NewPod("vols", reconcile.Container{
		Name: "main", Image: testImage,
		Command: []string{"sh", "-c", `cat /host/greeting; echo x > /host/new && echo WROTE; echo sub > /sub/f; ls /data`},
		VolumeMounts: []reconcile.VolumeMount{
			{Name: "host", MountPath: "/host", ReadOnly: true},
			{Name: "scratch", MountPath: "/sub", SubPath: "a/b"},
			{Name: "scratch", MountPath: "/data"},
		},
	})
	pod.Spec.Volumes = []reconcile.Volume{
		{Name: "host", HostPath: &reconcile.HostPathVolumeSource{Path: host}},
		{Name: "scratch", EmptyDir: &reconcile.EmptyDirVolumeSource{}},
	}
	runtimetest.Up(t, rt, pod)
	if _, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil {
		t.Fatal(err)
	}
	got := logOf(t, rt, pod.ID, "main")
	if !strings.Contains(got, "from host") || strings.Contains(got, "WROTE") || !strings.Contains(got, "a\n") {
		t.Errorf("log %q: want host file read, read-only write refused, subPath a/ visible in /data", got)
	}
	if _, err := os.Stat(filepath.Join(host, "new")); err == nil {
		t.Errorf("write through a readOnly hostPath reached the host")
	}
	if b, err := os.ReadFile(filepath.Join(rt.Paths(pod.ID).Dir, "volumes", "scratch", "a", "b", "f")); err != nil || string(b) != "sub\n" {
		t.Errorf("subPath file on host: %q, %v", b, err)
	}
}

func TestSharedShim(t *testing.T) {
	rt, _ := newRuntime(t)
	image := testImage
	pod := runtimetest.NewPod("grouped", runtimetest.Sleeper("a", image), runtimetest.Sleeper("b", image))
	runtimetest.Up(t, rt, pod)
	pods, err := rt.List(ctx(t))
	if err != nil || len(pods) != 1 || len(pods[0].Containers) != 2 {
		t.Fatalf("List = %+v, %v", pods, err)
	}
	ppid := func(pid uint32) string {
		b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		return f[1]
	}
	a, b := ppid(pods[0].Containers[0].PID), ppid(pods[0].Containers[1].PID)
	if a != b {
		t.Errorf("containers of one pod have different shims (parents %s and %s)", a, b)
	}
}

// TestRestartAlternatesInstances: a container started again after it
// exited is made under its other ID and started before the last instance
// is removed; one instance remains, and the next start goes back to the
// first ID.
func TestRestartAlternatesInstances(t *testing.T) {
	rt, _ := newRuntime(t)
	pod := runtimetest.NewPod("alt", runtimetest.Exiter("main", testImage, "3"))
	runtimetest.Up(t, rt, pod)
	c := namespaces.WithNamespace(ctx(t), rt.Namespace())
	ids := containerd.InstanceIDs(pod.ID, "main")
	instances := func() []string {
		var out []string
		for _, cid := range ids {
			if _, err := rt.Client().ContainerService().Get(c, cid); err == nil {
				out = append(out, cid)
			}
		}
		return out
	}
	for i, want := range []string{ids[0], ids[1], ids[0]} {
		if i > 0 {
			if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, "main"); err != nil {
				t.Fatalf("start %d: %v", i, err)
			}
		}
		if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 3 {
			t.Fatalf("start %d: WaitContainer = %d, %v; want 3", i, code, err)
		}
		if got := instances(); len(got) != 1 || got[0] != want {
			t.Fatalf("after start %d: instances %v, want only %s", i, got, want)
		}
		pods, err := rt.List(ctx(t))
		if err != nil || len(pods) != 1 || len(pods[0].Containers) != 1 || pods[0].Containers[0].ID != want {
			t.Fatalf("after start %d: List = %+v, %v; want one container %s", i, pods, err, want)
		}
	}

	// berth killed between a new instance's creation and the old one's
	// removal: the exited old one is left beside the new. Listing shows
	// the new one; garbage collection removes the old.
	old, err := rt.Client().ContainerService().Get(c, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Client().NewContainer(c, ids[1], client.WithContainerLabels(old.Labels), client.WithRuntime(old.Runtime.Name, nil), client.WithSpec(&oci.Spec{})); err != nil {
		t.Fatal(err)
	}
	if got := instances(); len(got) != 2 {
		t.Fatalf("instances %v, want both", got)
	}
	if pods := runtimetest.MustList(t, rt); len(pods) != 1 || len(pods[0].Containers) != 1 || pods[0].Containers[0].ID != ids[1] {
		t.Fatalf("with two instances, List = %+v; want only the newer, %s", pods, ids[1])
	}
	if p, err := rt.ObservePod(ctx(t), pod.ID); err != nil || p == nil || len(p.Containers) != 1 || p.Containers[0].ID != ids[1] {
		t.Fatalf("with two instances, ObservePod = %+v, %v; want only the newer, %s", p, err, ids[1])
	}
	if !rt.CollectGarbage(ctx(t)) {
		t.Fatal("garbage collection failed")
	}
	if got := instances(); len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("after garbage collection: instances %v, want only %s", got, ids[1])
	}
}

// TestObservePodByRecordsAndByLabel: a pod's sandbox record names its
// containers, so observing the pod gets its records by ID; a record that
// does not (made by an older berth) is observed through the list by
// label. Both show what List shows, and a record kept for a pod's new spec
// still names the old spec's containers.
func TestObservePodByRecordsAndByLabel(t *testing.T) {
	rt, _ := newRuntime(t)
	pod := runtimetest.NewPod("obs", runtimetest.Sleeper("app", testImage), runtimetest.Exiter("side", testImage, "0"))
	runtimetest.Up(t, rt, pod)
	if _, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "side"); err != nil {
		t.Fatal(err)
	}
	c := namespaces.WithNamespace(ctx(t), rt.Namespace())
	sb, err := rt.Client().ContainerService().Get(c, containerd.SandboxID(pod.ID))
	if err != nil {
		t.Fatal(err)
	}
	if got := sb.Labels[containerd.LabelContainerNames]; got != "app,side" {
		t.Fatalf("sandbox record names %q, want %q", got, "app,side")
	}
	same := func(step string) {
		t.Helper()
		listed := runtimetest.MustList(t, rt)
		if len(listed) != 1 || len(listed[0].Containers) != 2 {
			t.Fatalf("%s: List = %+v; want the pod with two containers", step, listed)
		}
		got, err := rt.ObservePod(ctx(t), pod.ID)
		if err != nil || got == nil {
			t.Fatalf("%s: ObservePod = %+v, %v", step, got, err)
		}
		if diff := cmp.Diff(listed[0], *got); diff != "" {
			t.Fatalf("%s: ObservePod differs from List (-List +ObservePod):\n%s", step, diff)
		}
	}
	same("by records")

	// As an older berth made it: no names.
	sb.Labels[containerd.LabelContainerNames] = ""
	if _, err := rt.Client().ContainerService().Update(c, sb, "labels."+containerd.LabelContainerNames); err != nil {
		t.Fatal(err)
	}
	same("by label")

	// The sandbox made again for a spec with other containers (a removal
	// cut short left the record): the names of both specs.
	sb.Labels[containerd.LabelContainerNames] = "app,side"
	if _, err := rt.Client().ContainerService().Update(c, sb, "labels."+containerd.LabelContainerNames); err != nil {
		t.Fatal(err)
	}
	next := runtimetest.NewPod("obs", runtimetest.Sleeper("web", testImage))
	if err := rt.CreateSandbox(ctx(t), next); err != nil {
		t.Fatal(err)
	}
	if sb, err = rt.Client().ContainerService().Get(c, containerd.SandboxID(pod.ID)); err != nil {
		t.Fatal(err)
	}
	if got := sb.Labels[containerd.LabelContainerNames]; got != "app,side,web" {
		t.Fatalf("sandbox record made again names %q, want %q", got, "app,side,web")
	}
	same("after the record was made again")

	// Names too long for a label: none, not the old ones, so observing
	// lists by label.
	var many []reconcile.Container
	for i := range 60 {
		many = append(many, runtimetest.Sleeper(fmt.Sprintf("c%02d-%s", i, strings.Repeat("x", 55)), testImage))
	}
	if err := rt.CreateSandbox(ctx(t), runtimetest.NewPod("obs", many...)); err != nil {
		t.Fatal(err)
	}
	if sb, err = rt.Client().ContainerService().Get(c, containerd.SandboxID(pod.ID)); err != nil {
		t.Fatal(err)
	}
	if got := sb.Labels[containerd.LabelContainerNames]; got != "" {
		t.Fatalf("sandbox record made for names that do not fit names %q, want none", got)
	}
	same("with names that do not fit")
}

// TestListAtStartUsesNewsRecordsOnce: the first ListAtStart shows the pods
// of the records New read (with their tasks as they are now), so a command
// that lists right after New reads the namespace once; later calls list
// again.
func TestListAtStartUsesNewsRecordsOnce(t *testing.T) {
	rt, _ := newRuntime(t)
	first := runtimetest.NewPod("first", runtimetest.Sleeper("app", testImage))
	runtimetest.Up(t, rt, first)
	again, _ := newRuntime(t) // a second command's runtime: New lists
	second := runtimetest.NewPod("second", runtimetest.Sleeper("app", testImage))
	runtimetest.Up(t, rt, second)

	atStart, err := again.ListAtStart(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(atStart) != 1 || atStart[0].ID != first.ID || len(atStart[0].Containers) != 1 || atStart[0].Containers[0].State != reconcile.StateRunning {
		t.Fatalf("first ListAtStart = %+v; want %s alone, as New read it, running", atStart, first.ID)
	}
	later, err := again.ListAtStart(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(runtimetest.MustList(t, rt), later); diff != "" || len(later) != 2 {
		t.Fatalf("second ListAtStart differs from List (-List +ListAtStart):\n%s", diff)
	}

	// A List first (the agent's first pass) lets go of New's records.
	third, _ := newRuntime(t)
	runtimetest.MustList(t, third)
	runtimetest.Up(t, rt, runtimetest.NewPod("third", runtimetest.Sleeper("app", testImage)))
	if pods, err := third.ListAtStart(ctx(t)); err != nil || len(pods) != 3 {
		t.Fatalf("ListAtStart after a List = %+v, %v; want the three pods there are now", pods, err)
	}
}

// A process a container leaves behind in a PID namespace it shares with
// the pod (its shell exits on TERM, its background sleep does not) is
// killed with the container: by the shim as the container's process
// exits, and by runc's delete of the task.
func TestSharedPIDLeavesNoStrayProcess(t *testing.T) {
	rt, _ := newRuntime(t)
	host := t.TempDir()
	share := true
	mount := []reconcile.VolumeMount{{Name: "marks", MountPath: "/marks"}}
	pod := runtimetest.NewPod("strays",
		runtimetest.Sleeper("owner", testImage),
		reconcile.Container{Name: "leaver", Image: testImage, VolumeMounts: mount,
			Command: []string{"sh", "-c", `sleep 1001234 & trap "exit 0" TERM; touch /marks/ready; while true; do sleep 1 & wait $!; done`}},
	)
	pod.Spec.ShareProcessNamespace = &share
	pod.Spec.Volumes = []reconcile.Volume{{Name: "marks", HostPath: &reconcile.HostPathVolumeSource{Path: host}}}
	runtimetest.Up(t, rt, pod)
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(host, "ready")); return err == nil })
	stray := func() bool {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "1001234") {
				return true
			}
		}
		return false
	}
	if !stray() {
		t.Fatal("the background sleep is not running: the test would prove nothing")
	}
	if err := rt.StopContainer(ctx(t), pod.ID, reconcile.AppContainer, "leaver", runtimetest.Grace); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	waitFor(t, func() bool { return !stray() })
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatalf("RemovePod: %v", err)
	}
	if stray() {
		t.Error("a process of the removed pod still runs")
	}
}
