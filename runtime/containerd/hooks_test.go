package containerd_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/runtimetest"
)

func TestLifecycleEventsExample(t *testing.T) {
	rt, e := newRuntime(t)
	pod := loadExample(t, e.stateDir, "lifecycle-demo", []string{"pods/lifecycle-events.yaml"}, "")
	pod.Spec.Containers[0].Command = []string{"sleep", "3600"}
	// busybox has no /usr/share for the hook to write to.
	pod.Spec.Volumes = append(pod.Spec.Volumes, reconcile.Volume{Name: "share", EmptyDir: &reconcile.EmptyDirVolumeSource{}})
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, reconcile.VolumeMount{Name: "share", MountPath: "/usr/share"})
	upChecked(t, rt, e, pod)
	res, err := rt.ExecSync(ctx(t), pod.ID, pod.Spec.Containers[0].Name, []string{"cat", "/usr/share/message"}, 10*time.Second)
	if err != nil || string(res.Stdout) != "Hello from the postStart handler\n" {
		t.Errorf("postStart's file: %q, %v", res.Stdout, err)
	}
}

func TestPreStopAndStopSignal(t *testing.T) {
	rt, e := newRuntime(t)
	const image = "example.local/busybox-stopsignal:1"
	b, err := testenv.BusyboxArchiveConfig(image, ocispec.ImageConfig{StopSignal: "SIGUSR1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.ImportArchive(context.Background(), ctrd.Address(), e.ns, b); err != nil {
		t.Fatal(err)
	}
	marks := t.TempDir()
	c := reconcile.Container{Name: "app", Image: image, ImagePullPolicy: reconcile.PullNever,
		Command:      []string{"sh", "-c", `trap 'echo usr1 >> /marks/log; exit 0' USR1; trap 'echo term >> /marks/log; exit 0' TERM; touch /marks/ready; while true; do sleep 0.1; done`},
		VolumeMounts: []reconcile.VolumeMount{{Name: "marks", MountPath: "/marks"}},
		Lifecycle: &reconcile.Lifecycle{
			PostStart: &reconcile.LifecycleHandler{Exec: &reconcile.ExecAction{Command: []string{"sh", "-c", "echo poststart >> /marks/log"}}},
			PreStop:   &reconcile.LifecycleHandler{Exec: &reconcile.ExecAction{Command: []string{"sh", "-c", "echo prestop >> /marks/log"}}},
		},
	}
	pod := runtimetest.NewPod("hooks", c)
	pod.Spec.Volumes = []reconcile.Volume{{Name: "marks", HostPath: &reconcile.HostPathVolumeSource{Path: marks}}}
	upChecked(t, rt, e, pod)
	waitFor(t, func() bool { _, err := os.Stat(filepath.Join(marks, "ready")); return err == nil })
	if err := rt.StopContainer(ctx(t), pod.ID, reconcile.AppContainer, "app", 5*time.Second); err != nil {
		t.Fatalf("StopContainer: %v", err)
	}
	got, _ := os.ReadFile(filepath.Join(marks, "log"))
	if string(got) != "poststart\nprestop\nusr1\n" {
		t.Errorf("events %q: want postStart, then preStop, then the image's STOPSIGNAL", got)
	}
	p := runtimetestList(t, rt)
	if c := p.Container(reconcile.AppContainer, "app"); c == nil || c.State != reconcile.StateExited || c.ExitCode != 0 {
		t.Errorf("after StopContainer: %+v, want exited 0 and still listed", c)
	}
}

func TestFailedPostStartKillsContainer(t *testing.T) {
	rt, e := newRuntime(t)
	c := runtimetest.Sleeper("app", testImage)
	c.Lifecycle = &reconcile.Lifecycle{PostStart: &reconcile.LifecycleHandler{Exec: &reconcile.ExecAction{Command: []string{"false"}}}}
	pod := runtimetest.NewPod("badhook", c)
	base := snapshotHost(t, rt, e)
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, "app")
	if err == nil || !strings.Contains(err.Error(), "postStart") {
		t.Errorf("StartContainer with a failing postStart hook: %v", err)
	}
	p := runtimetestList(t, rt)
	if c := p.Container(reconcile.AppContainer, "app"); c == nil || c.State == reconcile.StateRunning {
		t.Errorf("container after a failed postStart: %+v, want not running", c)
	}
	if err := rt.RemovePod(ctx(t), pod.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, rt, e, base)
}

func TestHTTPGetPreStopHook(t *testing.T) {
	rt, e := newRuntime(t)
	marks := t.TempDir()
	c := reconcile.Container{Name: "web", Image: testImage,
		// Answers one request and keeps what it was asked.
		Command:      []string{"sh", "-c", `nc -l -p 8080 -e sh -c 'while read -r l; do echo "$l" >> /marks/request; [ ${#l} -le 1 ] && break; done; printf "HTTP/1.0 200 OK\r\n\r\n"'; sleep 3600`},
		Ports:        []reconcile.ContainerPort{{Name: "http", ContainerPort: 8080}},
		VolumeMounts: []reconcile.VolumeMount{{Name: "marks", MountPath: "/marks"}},
		Lifecycle: &reconcile.Lifecycle{PreStop: &reconcile.LifecycleHandler{HTTPGet: &reconcile.HTTPGetAction{
			Path: "/shutdown", Port: reconcile.IntOrString{IsString: true, StrVal: "http"},
			HTTPHeaders: []reconcile.HTTPHeader{{Name: "X-Berth", Value: "bye"}}}}},
	}
	pod := runtimetest.NewPod("httphook", c)
	pod.Spec.Volumes = []reconcile.Volume{{Name: "marks", HostPath: &reconcile.HostPathVolumeSource{Path: marks}}}
	upChecked(t, rt, e, pod)
	waitFor(t, func() bool { // nc listening
		res, err := rt.ExecSync(ctx(t), pod.ID, "web", []string{"netstat", "-ltn"}, 5*time.Second)
		return err == nil && strings.Contains(string(res.Stdout), ":8080")
	})
	if err := rt.StopContainer(ctx(t), pod.ID, reconcile.AppContainer, "web", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(marks, "request"))
	if !strings.HasPrefix(string(got), "GET /shutdown HTTP/1.1") || !strings.Contains(string(got), "X-Berth: bye") {
		t.Errorf("the preStop httpGet sent %q", got)
	}
}

func TestPrivilegedContainer(t *testing.T) {
	rt, e := newRuntime(t)
	yes := true
	c := runtimetest.Sleeper("root", testImage)
	c.SecurityContext = &reconcile.SecurityContext{Privileged: &yes}
	plain := runtimetest.Sleeper("plain", testImage)
	pod := runtimetest.NewPod("priv", c, plain)
	upChecked(t, rt, e, pod)
	self, _ := os.ReadFile("/proc/self/status")
	var want string
	for _, l := range strings.Split(string(self), "\n") {
		if strings.HasPrefix(l, "CapEff:") {
			want = strings.Join(strings.Fields(l), " ")
		}
	}
	for name, priv := range map[string]bool{"root": true, "plain": false} {
		res, err := rt.ExecSync(ctx(t), pod.ID, name, []string{"grep", "CapEff", "/proc/self/status"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
		got := strings.Join(strings.Fields(lines[0]), " ")
		if (got == want) != priv {
			t.Errorf("%s: %s, berth's own %s; privileged %v", name, got, want, priv)
		}
	}
}
