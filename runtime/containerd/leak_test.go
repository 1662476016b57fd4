package containerd_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	shimapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

// hostState is what a pod can leave on the host.
type hostState struct {
	containers, tasks, snapshots, leases []string
	netns, ipam, cniResults, mounts      []string
	iptables, bridgePorts, podDirs       []string
}

func snapshotHost(t *testing.T, rt *containerd.Runtime, e *env) hostState {
	t.Helper()
	c := namespaces.WithNamespace(context.Background(), e.ns)
	cl := rt.Client()
	var s hostState
	ctrs, err := cl.ContainerService().List(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ctrs {
		s.containers = append(s.containers, x.ID)
	}
	ts, err := cl.TaskService().List(c, &tasksapi.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts.Tasks {
		s.tasks = append(s.tasks, x.ID)
	}
	if err := cl.SnapshotService("overlayfs").Walk(c, func(_ context.Context, i snapshots.Info) error {
		s.snapshots = append(s.snapshots, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ls, err := cl.LeasesService().List(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		s.leases = append(s.leases, l.ID)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				if _, err := os.Stat(filepath.Join(containerd.DefaultNetNSDir, f[0])); err == nil && ownedBy(rt, f[0]) {
					s.netns = append(s.netns, f[0])
				}
			}
		}
	}
	// host-local keeps one file per allocated address, plus a lock and
	// the last reserved address.
	ents, _ := os.ReadDir(filepath.Join(containerd.IPAMDir, e.net.Name))
	for _, d := range ents {
		if n := d.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			s.ipam = append(s.ipam, n)
		}
	}
	res, _ := filepath.Glob("/var/lib/cni/results/" + e.net.Name + "-*")
	s.cniResults = res
	s.mounts = append(testenv.MountsUnder(e.stateDir), testenv.MountsUnder(filepath.Join(ctrd.Dir(), "state", "io.containerd.runtime.v2.task", e.ns))...)
	if out, err := exec.Command("iptables-save", "-t", "nat").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, `name: \"`+e.net.Name+`\"`) || strings.Contains(l, "name: \""+e.net.Name+"\"") {
				s.iptables = append(s.iptables, l)
			}
		}
	}
	ports, _ := os.ReadDir(filepath.Join("/sys/class/net", e.net.Bridge, "brif"))
	for _, p := range ports {
		s.bridgePorts = append(s.bridgePorts, p.Name())
	}
	dirs, _ := os.ReadDir(filepath.Join(e.stateDir, "pods"))
	for _, d := range dirs {
		s.podDirs = append(s.podDirs, d.Name())
	}
	return s
}

// ownedBy reports whether a netns name belongs to rt's pods: tests share
// /var/run/netns, and each test has its own containerd namespace, which
// prefixes the names of its pods' network namespaces.
func ownedBy(rt *containerd.Runtime, name string) bool {
	return strings.HasPrefix(name, rt.Namespace()+"-")
}

func (s hostState) diff(base hostState) []string {
	var out []string
	check := func(what string, now, before []string) {
		for _, x := range now {
			if !slices.Contains(before, x) {
				out = append(out, what+" "+x)
			}
		}
	}
	check("container", s.containers, base.containers)
	check("task", s.tasks, base.tasks)
	check("snapshot", s.snapshots, base.snapshots)
	check("lease", s.leases, base.leases)
	check("netns", s.netns, base.netns)
	check("ipam allocation", s.ipam, base.ipam)
	check("cni result cache", s.cniResults, base.cniResults)
	check("mount", s.mounts, base.mounts)
	check("iptables rule", s.iptables, base.iptables)
	check("bridge port", s.bridgePorts, base.bridgePorts)
	check("pod dir", s.podDirs, base.podDirs)
	return out
}

func assertNoLeak(t *testing.T, rt *containerd.Runtime, e *env, base hostState) {
	t.Helper()
	if leaks := snapshotHost(t, rt, e).diff(base); len(leaks) > 0 {
		t.Errorf("left behind after RemovePod:\n  %s", strings.Join(leaks, "\n  "))
	}
}

func leakyPod() *reconcile.DesiredPod {
	pod := runtimetest.NewPod("leaky",
		reconcile.Container{Name: "web", Image: testImage, Command: []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
			VolumeMounts: []reconcile.VolumeMount{{Name: "www", MountPath: "/www"}}},
		runtimetest.Sleeper("side", testImage),
		runtimetest.Exiter("done", testImage, "0"),
	)
	pod.Spec.Volumes = []reconcile.Volume{{Name: "www", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
	return pod
}

// A pod that maps a host port runs the chain with portmap, one that does
// not runs the bridge alone: both leave nothing behind.
func TestRemovePodLeavesNothing(t *testing.T) {
	for _, hostPort := range []bool{false, true} {
		t.Run(fmt.Sprintf("hostPort=%v", hostPort), func(t *testing.T) {
			rt, e := newRuntime(t)
			pod := leakyPod()
			if hostPort {
				pod.Spec.Containers[0].Ports = []reconcile.ContainerPort{{ContainerPort: 8080, HostPort: freePort(t), Protocol: "TCP"}}
			}
			if err := rt.EnsureImage(ctx(t), testImage, reconcile.PullNever); err != nil {
				t.Fatal(err)
			}
			base := snapshotHost(t, rt, e)
			runtimetest.Up(t, rt, pod)
			during := snapshotHost(t, rt, e)
			// Sanity: the check sees what a pod makes.
			seen := map[string][]string{"container": during.containers, "snapshot": during.snapshots, "lease": during.leases,
				"netns": during.netns, "ipam": during.ipam, "mount": during.mounts, "bridge port": during.bridgePorts, "pod dir": during.podDirs}
			if hostPort {
				seen["iptables rule"] = during.iptables
			}
			for what, got := range seen {
				if len(got) == 0 {
					t.Errorf("while running, no %s seen: the leak check would miss it", what)
				}
			}
			if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
				t.Fatalf("RemovePod: %v", err)
			}
			assertNoLeak(t, rt, e, base)
		})
	}
}

// The tests below simulate a kill -9 at various points of CreateSandbox
// or StartContainer by undoing part of a setup by hand, then check that
// CreateSandbox completes it and RemovePod cleans it all.

func TestCrashNetNSLostKeepsIPAMClean(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("crash", runtimetest.Sleeper("app", testImage))
	if err := rt.EnsureImage(ctx(t), testImage, reconcile.PullNever); err != nil {
		t.Fatal(err)
	}
	base := snapshotHost(t, rt, e)
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	// The network namespace vanishes (a reboot, or a crash before it was
	// pinned) while its address is still allocated.
	nsPath := rt.Paths(pod.ID).NetNS
	if err := unix.Unmount(nsPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if pods, _ := rt.List(ctx(t)); len(pods) != 1 || pods[0].SandboxReady {
		t.Errorf("List after losing the netns = %+v, want one pod not ready", pods)
	}
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatalf("CreateSandbox after losing the netns: %v", err)
	}
	if s := snapshotHost(t, rt, e); len(s.ipam) != 1 {
		t.Errorf("IPAM allocations after re-creating: %v, want exactly one", s.ipam)
	}
	if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, "app"); err != nil {
		t.Fatal(err)
	}
	// Now the namespace disappears for good and the pod is removed: CNI DEL
	// must still release the address.
	if err := unix.Unmount(nsPath, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	os.Remove(nsPath)
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatalf("RemovePod without a netns: %v", err)
	}
	assertNoLeak(t, rt, e, base)
}

func TestCrashBeforeAddressRecorded(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("crash", runtimetest.Sleeper("app", testImage))
	base := snapshotHost(t, rt, e)
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	// Crash after CNI ADD, before the IP and ready labels were written.
	c := namespaces.WithNamespace(context.Background(), e.ns)
	rec, err := rt.Client().LoadContainer(c, containerd.SandboxID(pod.ID))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rec.SetLabels(c, map[string]string{containerd.LabelIP: "", containerd.LabelSandboxReady: ""}); err != nil {
		t.Fatal(err)
	}
	// An interrupted pin of the IPC namespace: the mount point exists, the
	// mount does not.
	ipc := rt.Paths(pod.ID).IPC
	if err := unix.Unmount(ipc, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if pods, _ := rt.List(ctx(t)); len(pods) != 1 || pods[0].SandboxReady {
		t.Errorf("List of a half-made pod = %+v, want one pod not ready", pods)
	}
	if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, "app"); err == nil {
		t.Errorf("StartContainer in a half-made sandbox succeeded")
	}
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatalf("CreateSandbox replay: %v", err)
	}
	s := snapshotHost(t, rt, e)
	if len(s.ipam) != 1 {
		t.Errorf("IPAM allocations after replay: %v, want exactly one", s.ipam)
	}
	pods, err := rt.List(ctx(t))
	if err != nil || len(pods) != 1 || !pods[0].SandboxReady || pods[0].IP == "" {
		t.Fatalf("List after replay = %+v, %v; want one ready pod with an IP", pods, err)
	}
	out, code := run(t, rt, pod, "check", "cat /etc/hosts; hostname")
	if code != 0 || !strings.Contains(out, pods[0].IP+"\tcrash") || !strings.HasSuffix(out, "crash\n") {
		t.Errorf("after replay: exit %d, output %q", code, out)
	}
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, rt, e, base)
}

func TestCrashDuringStartLeavesLeaseCleanedAtStartup(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("crash", runtimetest.Sleeper("app", testImage))
	base := snapshotHost(t, rt, e)
	runtimetest.Up(t, rt, pod)
	// A start of a second container crashed after its lease and snapshot
	// were made, before the container record.
	c := namespaces.WithNamespace(context.Background(), e.ns)
	cl := rt.Client()
	id := containerd.ContainerID(pod.ID, "next")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	l, err := cl.LeasesService().Create(c, leases.WithID(id), leases.WithLabels(map[string]string{
		containerd.LabelManaged: "true", containerd.LabelSandboxID: containerd.SandboxID(pod.ID),
		containerd.LabelLeaseOwner: fmt.Sprintf("%d:1", dead.Process.Pid),
	}))
	if err != nil {
		t.Fatal(err)
	}
	// Another process's start in flight: its lease has no container yet,
	// and its process lives.
	inFlight := containerd.ContainerID(pod.ID, "other")
	if _, err := cl.LeasesService().Create(c, leases.WithID(inFlight), leases.WithLabels(map[string]string{
		containerd.LabelManaged: "true", containerd.LabelSandboxID: containerd.SandboxID(pod.ID),
		containerd.LabelLeaseOwner: containerd.LeaseOwner(os.Getpid()),
	})); err != nil {
		t.Fatal(err)
	}
	img, err := cl.GetImage(c, testImage)
	if err != nil {
		t.Fatal(err)
	}
	diffs, err := img.RootFS(c)
	if err != nil || len(diffs) != 1 {
		t.Fatalf("image rootfs %v, %v", diffs, err)
	}
	if _, err := cl.SnapshotService("overlayfs").Prepare(leases.WithLease(c, l.ID), id, diffs[0].String()); err != nil {
		t.Fatal(err)
	}
	// A restarted agent deletes the stale lease, and with it the snapshot.
	again, _ := newRuntime(t)
	s := snapshotHost(t, again, e)
	if slices.Contains(s.leases, id) || slices.Contains(s.snapshots, id) {
		t.Errorf("after restart, stale lease or snapshot %s remains: leases %v, snapshots %v", id, s.leases, s.snapshots)
	}
	if !slices.Contains(s.leases, containerd.ContainerID(pod.ID, "app")) {
		t.Errorf("after restart, the running container's lease is gone: %v", s.leases)
	}
	if !slices.Contains(s.leases, inFlight) {
		t.Errorf("after restart, a live process's lease in flight is gone: %v", s.leases)
	}
	if err := again.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, again, e, base)
}

func TestRemoveHalfMadeStart(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("crash", runtimetest.Sleeper("app", testImage))
	base := snapshotHost(t, rt, e)
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	// Lease and snapshot of a start that never made its container.
	c := namespaces.WithNamespace(context.Background(), e.ns)
	cl := rt.Client()
	id := containerd.ContainerID(pod.ID, "app")
	if _, err := cl.LeasesService().Create(c, leases.WithID(id), leases.WithLabels(map[string]string{
		containerd.LabelManaged: "true", containerd.LabelSandboxID: containerd.SandboxID(pod.ID),
	})); err != nil {
		t.Fatal(err)
	}
	img, _ := cl.GetImage(c, testImage)
	diffs, _ := img.RootFS(c)
	if _, err := cl.SnapshotService("overlayfs").Prepare(leases.WithLease(c, id), id, diffs[0].String()); err != nil {
		t.Fatal(err)
	}
	// Replaying the start finds and replaces them.
	if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, "app"); err != nil {
		t.Fatalf("StartContainer over a half-made start: %v", err)
	}
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, rt, e, base)
}

func TestUnmanagedContainersAreLeftAlone(t *testing.T) {
	rt, e := newRuntime(t)
	c := namespaces.WithNamespace(context.Background(), e.ns)
	cl := rt.Client()
	// Someone else's container with the ID berth would give a pod's sandbox.
	id := reconcile.PodID{Namespace: "default", Name: "foreign"}
	foreign, err := cl.NewContainer(c, containerd.SandboxID(id),
		client.WithRuntime("io.containerd.runc.v2", nil),
		client.WithSpec(&oci.Spec{Version: "1.0.2"}),
		client.WithContainerLabels(map[string]string{"owner": "someone-else"}))
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Delete(c)
	if pods := runtimetest.MustList(t, rt); len(pods) != 0 {
		t.Errorf("List shows unmanaged containers: %+v", pods)
	}
	if err := rt.RemovePod(ctx(t), id, runtimetest.Grace); err != nil {
		t.Errorf("RemovePod: %v", err)
	}
	if _, err := cl.LoadContainer(c, containerd.SandboxID(id)); err != nil {
		t.Errorf("RemovePod deleted a container that is not berth's: %v", err)
	}
	if err := rt.CreateSandbox(ctx(t), runtimetest.NewPod("foreign", runtimetest.Sleeper("app", testImage))); err == nil {
		t.Errorf("CreateSandbox took over a container that is not berth's")
	}
	if err := rt.RemovePod(ctx(t), id, runtimetest.Grace); err != nil {
		t.Errorf("RemovePod: %v", err)
	}
}

// TestZombieTaskIsDeleted: a task whose process the shim already deleted
// (containerd died in the middle of deleting it) reports no state, so
// containerd lists no task, yet the shim and bundle stay and block a new
// task of the container. Replacing the container and removing the pod
// both clear it, and leave nothing behind.
func TestZombieTaskIsDeleted(t *testing.T) {
	rt, e := newRuntime(t)
	base := snapshotHost(t, rt, e)
	pod := runtimetest.NewPod("zombie", runtimetest.Sleeper("app", testImage))
	runtimetest.Up(t, rt, pod)
	// The zombie is made of the container's running instance: the first
	// ID, then, once started again, the other (containerd.InstanceIDs).
	ids := containerd.InstanceIDs(pod.ID, "app")
	var id string
	makeZombie := func(instance string) {
		t.Helper()
		id = instance
		c := namespaces.WithNamespace(context.Background(), e.ns)
		ctr, err := rt.Client().LoadContainer(c, id)
		if err != nil {
			t.Fatal(err)
		}
		task, err := ctr.Task(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		exited, err := task.Wait(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Kill(c, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
		addr, err := os.ReadFile(filepath.Join(ctrd.Dir(), "state", "io.containerd.runtime.v2.task", e.ns, id, "address"))
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("unix", strings.TrimPrefix(strings.TrimSpace(string(addr)), "unix://"))
		if err != nil {
			t.Fatal(err)
		}
		tc := ttrpc.NewClient(conn)
		defer tc.Close()
		if _, err := shimapi.NewTTRPCTaskClient(tc).Delete(c, &shimapi.DeleteRequest{ID: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := ctr.Task(c, nil); !errdefs.IsNotFound(err) {
			t.Fatalf("the zombie task is still reported: %v", err)
		}
	}
	makeZombie(ids[0])
	if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, "app"); err != nil {
		t.Fatalf("StartContainer over a zombie task: %v", err)
	}
	if pods := runtimetest.MustList(t, rt); len(pods) != 1 || pods[0].Containers[0].State != reconcile.StateRunning {
		t.Fatalf("after the replacement: %+v", pods)
	}
	if _, err := os.Stat(filepath.Join(ctrd.Dir(), "state", "io.containerd.runtime.v2.task", e.ns, ids[0])); err == nil {
		t.Errorf("the first zombie's bundle is left after the replacement")
	}
	makeZombie(ids[1])
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, rt, e, base)
	if _, err := os.Stat(filepath.Join(ctrd.Dir(), "state", "io.containerd.runtime.v2.task", e.ns, id)); err == nil {
		t.Errorf("the zombie's bundle is left")
	}
}

// TestNetworkGarbageCollection: an address berth's network still holds
// for a sandbox of this namespace that is gone (its CNI DEL kept failing
// when it was removed) is released at the next start; addresses of live
// sandboxes and of another berth's namespace on the same network are
// kept.
func TestNetworkGarbageCollection(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("alive", runtimetest.Sleeper("app", testImage))
	runtimetest.Up(t, rt, pod)
	store := filepath.Join(containerd.IPAMDir, e.net.Name)
	prefix := strings.TrimSuffix(e.net.Subnet, "0/24")
	ghost := filepath.Join(store, prefix+"200")
	foreign := filepath.Join(store, prefix+"201")
	// As host-local writes them: the CNI ID, then the interface (eth1:
	// berth's network comes after the loopback one).
	for path, id := range map[string]string{ghost: e.ns + "_default_gone-0123456789ab", foreign: "other-ns_default_web-0123456789ab"} {
		if err := os.WriteFile(path, []byte(id+"\r\neth1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Remove(foreign) })
	before := snapshotHost(t, rt, e).ipam
	newRuntime(t) // a new start collects
	after := snapshotHost(t, rt, e).ipam
	if slices.Contains(after, prefix+"200") {
		t.Errorf("the gone sandbox's address is still allocated: %v", after)
	}
	if !slices.Contains(after, prefix+"201") {
		t.Errorf("another namespace's address was released: %v", after)
	}
	if len(after) != len(before)-1 {
		t.Errorf("allocations before %v, after %v: want only the gone sandbox's released", before, after)
	}
}

// TestGarbageCollectionWhileRunning: the collection runs inside a
// long-lived runtime (the agent's), not only at start: soon after a
// removal leaves something to it, it releases the address of a sandbox
// that is gone, and it removes the logs kept of a pod removed more than
// an hour ago that was not made again, keeping a recent one's.
func TestGarbageCollectionWhileRunning(t *testing.T) {
	rt, e := newRuntime(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rt.RunGarbageCollection(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	store := filepath.Join(containerd.IPAMDir, e.net.Name)
	ghost := filepath.Join(store, strings.TrimSuffix(e.net.Subnet, "0/24")+"200")
	if err := os.MkdirAll(store, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ghost, []byte(e.ns+"_default_gone-0123456789ab\r\neth1"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(ghost) })
	kept := func(pod string) string {
		return filepath.Join(e.stateDir, "kept-logs", containerd.SandboxID(reconcile.PodID{Namespace: "default", Name: pod}))
	}
	for _, pod := range []string{"old", "recent"} {
		if err := os.MkdirAll(kept(pod), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(kept(pod), "app.log"), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hourAgo := time.Now().Add(-61 * time.Minute)
	if err := os.Chtimes(kept("old"), hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}

	rt.CollectSoon() // as a removal whose CNI DEL kept failing does
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := os.Stat(ghost)
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gone sandbox's address is still allocated: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the collection runs a few seconds after the ring
	}
	if _, err := os.Stat(kept("old")); !os.IsNotExist(err) {
		t.Errorf("the logs kept of a pod removed an hour ago: %v", err)
	}
	if _, err := os.Stat(filepath.Join(kept("recent"), "app.log")); err != nil {
		t.Errorf("the logs kept of a pod removed just now: %v", err)
	}
}

// TestRemovePodTakesDebugContainers: a pod's removal gets its containers
// by the names its sandbox record holds, and a debug container, which is
// not among them, by the lease it holds for its life.
func TestRemovePodTakesDebugContainers(t *testing.T) {
	rt, e := newRuntime(t)
	base := snapshotHost(t, rt, e)
	pod := runtimetest.NewPod("dbg", runtimetest.Sleeper("app", testImage))
	runtimetest.Up(t, rt, pod)
	c := namespaces.WithNamespace(context.Background(), e.ns)
	cl := rt.Client()
	sb, err := cl.ContainerService().Get(c, containerd.SandboxID(pod.ID))
	if err != nil {
		t.Fatal(err)
	}
	// As Debug makes one: a lease for the sandbox, then the record.
	id := containerd.ContainerID(pod.ID, "debugger-1")
	if _, err := cl.LeasesService().Create(c, leases.WithID(id), leases.WithLabels(map[string]string{
		containerd.LabelManaged: "true", containerd.LabelSandboxID: sb.ID,
	})); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, k := range []string{containerd.LabelManaged, containerd.LabelSandboxID, containerd.LabelPodNamespace, containerd.LabelPodName} {
		labels[k] = sb.Labels[k]
	}
	labels[containerd.LabelRole] = containerd.RoleDebug
	img, err := cl.GetImage(c, testImage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.NewContainer(leases.WithLease(c, id), id, client.WithImage(img), client.WithNewSnapshot(id, img),
		client.WithRuntime("io.containerd.runc.v2", nil), client.WithNewSpec(oci.WithImageConfig(img)),
		client.WithContainerLabels(labels)); err != nil {
		t.Fatal(err)
	}
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.LoadContainer(c, id); !errdefs.IsNotFound(err) {
		t.Fatalf("debug container after the pod's removal: %v; want it gone", err)
	}
	assertNoLeak(t, rt, e, base)
}
