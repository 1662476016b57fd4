package containerd_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

// upChecked starts pod like runtimetest.Up, and when the test ends removes
// it and checks that nothing of it is left on the host.
func upChecked(t *testing.T, rt *containerd.Runtime, e *env, pod *reconcile.DesiredPod) {
	t.Helper()
	for _, c := range append(append([]reconcile.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if err := rt.EnsureImage(ctx(t), c.Image, reconcile.PullIfNotPresent); err != nil {
			t.Fatal(err)
		}
	}
	base := snapshotHost(t, rt, e)
	t.Cleanup(func() {
		if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
			t.Errorf("RemovePod: %v", err)
		}
		assertNoLeak(t, rt, e, base)
	})
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	for _, c := range pod.Spec.InitContainers {
		if err := rt.StartContainer(ctx(t), pod, reconcile.InitContainer, c.Name); err != nil {
			t.Fatalf("StartContainer(%s): %v", c.Name, err)
		}
		if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.InitContainer, c.Name); err != nil || code != 0 {
			t.Fatalf("init container %s: %d, %v", c.Name, code, err)
		}
	}
	for _, c := range pod.Spec.Containers {
		if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, c.Name); err != nil {
			t.Fatalf("StartContainer(%s): %v", c.Name, err)
		}
	}
}

// waitOutput waits for the named app container to exit and returns its
// log and exit code.
func waitOutput(t *testing.T, rt *containerd.Runtime, pod *reconcile.DesiredPod, name string) (string, int) {
	t.Helper()
	code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, name)
	if err != nil {
		t.Fatalf("WaitContainer(%s): %v", name, err)
	}
	return logOf(t, rt, pod.ID, name), code
}

func script(name, sh string) reconcile.Container {
	return reconcile.Container{Name: name, Image: testImage, Command: []string{"sh", "-c", sh}}
}

func freePort(t *testing.T) int32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return int32(l.Addr().(*net.TCPAddr).Port)
}

func TestHostPortAnswersFromHost(t *testing.T) {
	rt, e := newRuntime(t)
	port := freePort(t)
	c := script("web", "mkdir /www && echo hello via hostPort > /www/index.html && exec httpd -f -p 80 -h /www")
	c.Ports = []reconcile.ContainerPort{{ContainerPort: 80, HostPort: port, Protocol: "TCP"}}
	pod := runtimetest.NewPod("hostport", c)
	upChecked(t, rt, e, pod)
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET 127.0.0.1:%d from the host: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != "hello via hostPort\n" {
		t.Errorf("hostPort answered %q", body)
	}
}

func TestHostNetwork(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("hostnet", script("main", "readlink /proc/self/ns/net; hostname; cat /etc/hosts"))
	pod.Spec.HostNetwork = true
	pod.Spec.HostAliases = []reconcile.HostAlias{{IP: "127.0.0.1", Hostnames: []string{"alias.local"}}}
	upChecked(t, rt, e, pod)
	out, code := waitOutput(t, rt, pod, "main")
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	hostName, _ := os.Hostname()
	lines := strings.SplitN(out, "\n", 3)
	if code != 0 || len(lines) < 3 || lines[0] != hostNet || lines[1] != hostName {
		t.Fatalf("exit %d, output %q; want host netns %s and hostname %s", code, out, hostNet, hostName)
	}
	if !strings.Contains(lines[2], "127.0.0.1\talias.local") {
		t.Errorf("/etc/hosts lacks the alias: %q", lines[2])
	}
	pods := runtimetest.MustList(t, rt)
	if len(pods) != 1 || !pods[0].SandboxReady || net.ParseIP(pods[0].IP) == nil {
		t.Errorf("List = %+v; want a ready pod with the host's IP", pods)
	}
}

func TestHostAliasesAndDNSConfig(t *testing.T) {
	rt, e := newRuntime(t)
	ndots := "2"
	pod := runtimetest.NewPod("dns", script("main", "cat /etc/hosts; echo ---; cat /etc/resolv.conf"))
	pod.Spec.Hostname, pod.Spec.Subdomain = "db-0", "db"
	pod.Spec.HostAliases = []reconcile.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"foo.remote", "bar.remote"}}}
	pod.Spec.DNSPolicy = podspec.DNSNone
	pod.Spec.DNSConfig = &reconcile.PodDNSConfig{Nameservers: []string{"192.0.2.1"}, Searches: []string{"example.test"},
		Options: []reconcile.PodDNSConfigOption{{Name: "ndots", Value: &ndots}}}
	upChecked(t, rt, e, pod)
	out, _ := waitOutput(t, rt, pod, "main")
	ip := runtimetest.MustList(t, rt)[0].IP
	hosts, resolv, _ := strings.Cut(out, "---\n")
	for _, want := range []string{ip + "\tdb-0.db.default.svc.cluster.local\tdb-0\n", "10.1.2.3\tfoo.remote\tbar.remote\n"} {
		if !strings.Contains(hosts, want) {
			t.Errorf("/etc/hosts %q lacks %q", hosts, want)
		}
	}
	if want := "nameserver 192.0.2.1\nsearch example.test\noptions ndots:2\n"; resolv != want {
		t.Errorf("/etc/resolv.conf = %q, want %q", resolv, want)
	}
}

func TestNodePolicyRefuses(t *testing.T) {
	_, e := newRuntime(t)
	strict, err := containerd.New(ctx(t), containerd.Options{
		Address: ctrd.Address(), Namespace: e.ns, StateDir: e.stateDir, CNIBinDirs: []string{testenv.CNIBinDir},
		NetworkName: e.net.Name, Bridge: e.net.Bridge, Subnet: e.net.Subnet,
		Policy: reconcile.NodePolicy{HostPaths: []string{"/srv"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	base := snapshotHost(t, strict, e)
	c := runtimetest.Sleeper("app", testImage)
	c.Ports = []reconcile.ContainerPort{{ContainerPort: 80, HostPort: 8080}}
	pod := runtimetest.NewPod("risky", c)
	pod.Spec.Volumes = []reconcile.Volume{{Name: "etc", HostPath: &reconcile.HostPathVolumeSource{Path: "/etc"}}}
	err = strict.CreateSandbox(ctx(t), pod)
	for _, want := range []string{"spec.containers[0].ports[0].hostPort", "--allow-host-ports", `spec.volumes[0].hostPath.path: hostPath "/etc"`, "--allow-host-path"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CreateSandbox under a strict policy: %v; want it to name %q", err, want)
		}
	}
	if pods := runtimetest.MustList(t, strict); len(pods) != 0 {
		t.Errorf("a refused pod left a record: %+v", pods)
	}
	assertNoLeak(t, strict, e, base)
}

func TestDebugContainerLeavesNothing(t *testing.T) {
	rt, e := newRuntime(t)
	pod := runtimetest.NewPod("debugged", script("web", "mkdir /www && echo hi > /www/index.html && exec httpd -f -p 8080 -h /www"))
	upChecked(t, rt, e, pod)
	before := snapshotHost(t, rt, e)
	var out strings.Builder
	code, err := rt.Debug(ctx(t), pod.ID, containerd.DebugOptions{Image: testImage,
		Command:     []string{"sh", "-c", "for i in $(seq 50); do wget -qO- http://127.0.0.1:8080/ && exit 0; sleep 0.1; done; exit 1"},
		ExecOptions: containerd.ExecOptions{Stdout: &out, Stdin: strings.NewReader("")}})
	if err != nil || code != 0 || out.String() != "hi\n" {
		t.Errorf("Debug = %d, %v, output %q", code, err, out.String())
	}
	if leaks := snapshotHost(t, rt, e).diff(before); len(leaks) > 0 {
		t.Errorf("the debug container left: %v", leaks)
	}
	if p := runtimetestList(t, rt); len(p.Containers) != 1 {
		t.Errorf("List shows the debug container: %+v", p.Containers)
	}
}

func TestRawLogsHaveNoDriverButRead(t *testing.T) {
	rt, e := newRuntime(t, func(o *containerd.Options) { o.RawLogs = true })
	pod := runtimetest.NewPod("raw", script("main", "echo one; echo two >&2"))
	upChecked(t, rt, e, pod)
	out, code := waitOutput(t, rt, pod, "main")
	// The shim copies stdout and stderr into a raw log on its own; its
	// copy of a stream can end after the task's delete returns.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out, "two\n") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // poll the condition
		out = logOf(t, rt, pod.ID, "main")
	}
	if code != 0 || !strings.Contains(out, "one\n") || !strings.Contains(out, "two\n") {
		t.Errorf("raw log read back as %q (exit %d)", out, code)
	}
	b, _ := os.ReadFile(rt.Paths(pod.ID).LogPath("main"))
	if strings.Contains(string(b), " stdout F ") {
		t.Errorf("raw log is in the CRI format: %q", b)
	}
}

func TestMemoryEmptyDirAndSecretTmpfsReplay(t *testing.T) {
	rt, e := newRuntime(t)
	c := script("main", "dd if=/dev/zero of=/scratch/big bs=1M count=8 2>/dev/null && echo WROTE-8M; rm -f /scratch/big; dd if=/dev/zero of=/scratch/small bs=1M count=1 2>/dev/null && echo wrote-1m; cat /secret/key; echo")
	c.VolumeMounts = []reconcile.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "sec", MountPath: "/secret"}}
	pod := runtimetest.NewPod("tmpfs", c)
	pod.Spec.Volumes = []reconcile.Volume{
		{Name: "scratch", EmptyDir: &reconcile.EmptyDirVolumeSource{Medium: "Memory", SizeLimit: "4Mi"}},
		{Name: "sec", Secret: &reconcile.SecretVolumeSource{SecretName: "s"}},
	}
	pod.Secrets = map[string]*reconcile.SecretData{"s": {Data: map[string][]byte{"key": []byte("value")}}}
	// A CreateSandbox replayed after a crash mounts nothing twice.
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	upChecked(t, rt, e, pod)
	out, code := waitOutput(t, rt, pod, "main")
	if out != "wrote-1m\nvalue\n" {
		t.Logf("exit %d", code)
		t.Errorf("output %q: want the 8 MiB write refused by the 4Mi sizeLimit, 1 MiB written, the secret read", out)
	}
	dir := rt.Paths(pod.ID).Dir
	for _, v := range []string{"scratch", "sec"} {
		if n := len(testenv.MountsUnder(filepath.Join(dir, "volumes", v))); n != 1 {
			t.Errorf("volume %s is mounted %d times, want once (a tmpfs)", v, n)
		}
	}
}

func TestReplayedSandboxKeepsConfigFiles(t *testing.T) {
	rt, e := newRuntime(t)
	c := runtimetest.Sleeper("app", testImage)
	c.VolumeMounts = []reconcile.VolumeMount{{Name: "cfg", MountPath: "/cfg"}}
	pod := runtimetest.NewPod("replay", c)
	pod.Spec.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "cm",
		Items: []reconcile.KeyToPath{{Key: "a", Path: "dir/a"}, {Key: "b", Path: "b"}}}}}
	pod.ConfigMaps = map[string]*reconcile.ConfigMapData{"cm": {Data: map[string]string{"a": "1", "b": "2"}}}
	upChecked(t, rt, e, pod)
	file := filepath.Join(rt.Paths(pod.ID).Dir, "volumes", "cfg", "dir", "a")
	before, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(rt.Paths(pod.ID).Dir, "volumes", "cfg", "stray")
	if err := os.WriteFile(stray, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(file)
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("a replayed CreateSandbox rewrote an unchanged file (%v)", err)
	}
	if _, err := os.Stat(stray); err == nil {
		t.Errorf("a file not in the ConfigMap stayed in its volume")
	}
	res, err := rt.ExecSync(ctx(t), pod.ID, "app", []string{"sh", "-c", "cat /cfg/dir/a /cfg/b"}, 10*time.Second)
	if err != nil || string(res.Stdout) != "12" {
		t.Errorf("files seen by the container: %q, %v", res.Stdout, err)
	}
}
