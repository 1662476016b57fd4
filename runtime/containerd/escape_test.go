package containerd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

// TestSubPathSymlinkStaysInVolume is CVE-2017-1002101: an init container
// plants symlinks in an emptyDir that point at a host directory, and the
// app container mounts them as subPaths (one that exists, one berth must
// create through the link). berth resolves subPaths inside the volume,
// so the app sees none of the host directory, nothing is created on the
// host, and after RemovePod nothing is left.
func TestSubPathSymlinkStaysInVolume(t *testing.T) {
	rt, e := newRuntime(t)
	base := snapshotHost(t, rt, e)
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plant := reconcile.Container{Name: "plant", Image: testImage,
		Command: []string{"sh", "-c", "ln -s " + host + " /vol/dir && ln -s " + host + "/secret /vol/file && " +
			"ln -s " + host + " /vol/made && ln -s / /vol/root && ln -s ../../.. /vol/up"},
		VolumeMounts: []reconcile.VolumeMount{{Name: "vol", MountPath: "/vol"}}}
	pod := runtimetest.NewPod("subpath", runtimetest.Sleeper("app", testImage))
	pod.Spec.InitContainers = []reconcile.Container{plant}
	pod.Spec.Volumes = []reconcile.Volume{{Name: "vol", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
	for _, sub := range []string{"dir", "file", "made/sub", "root", "up", "up/etc"} {
		pod.Spec.Containers = append(pod.Spec.Containers, reconcile.Container{
			Name: "c-" + strings.NewReplacer("/", "-").Replace(sub), Image: testImage,
			Command:      []string{"sh", "-c", "cat /m/secret /m 2>&1; echo x > /m/new; ls -a /m"},
			VolumeMounts: []reconcile.VolumeMount{{Name: "vol", MountPath: "/m", SubPath: sub}},
		})
	}
	runStaged(t, rt, pod, func(name string, err error) {
		// Refusing is fine; what starts must be contained.
		t.Logf("container %s: %v", name, err)
	})
	for _, c := range pod.Spec.Containers[1:] {
		// A refused container does not exist: nothing to wait for.
		_, _ = rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, c.Name)
		if got := logOf(t, rt, pod.ID, c.Name); strings.Contains(got, "host secret") || strings.Contains(got, "passwd") {
			t.Errorf("container %s read the host through a subPath symlink: %q", c.Name, got)
		}
	}
	ents, err := os.ReadDir(host)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("the host directory changed through subPath symlinks: %v", names)
	}
	if err := rt.RemovePod(ctx(t), pod.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	assertNoLeak(t, rt, e, base)
}

// runStaged starts pod's init containers one after another, each to its
// end, then its app containers, handing a failed start to refused.
func runStaged(t *testing.T, rt *containerd.Runtime, pod *reconcile.DesiredPod, refused func(string, error)) {
	t.Helper()
	t.Cleanup(func() { _ = rt.RemovePod(ctx(t), pod.ID, time.Second) })
	if err := rt.CreateSandbox(ctx(t), pod); err != nil {
		t.Fatal(err)
	}
	for _, c := range pod.Spec.InitContainers {
		if err := rt.StartContainer(ctx(t), pod, reconcile.InitContainer, c.Name); err != nil {
			t.Fatal(err)
		}
		if code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.InitContainer, c.Name); err != nil || code != 0 {
			t.Fatalf("init container %s: exit %d, %v", c.Name, code, err)
		}
	}
	for _, c := range pod.Spec.Containers {
		if err := rt.StartContainer(ctx(t), pod, reconcile.AppContainer, c.Name); err != nil {
			refused(c.Name, err)
		}
	}
}

// TestDefaultConfinement: a container that asks for nothing runs with
// the runtime's default seccomp profile, cannot write the host's
// core_pattern or sysrq-trigger, has /proc/kcore masked, and sees its own
// cgroup, read-only, with its memory limit (cgroup v2's memory.max or
// v1's memory controller).
func TestDefaultConfinement(t *testing.T) {
	rt, _ := newRuntime(t)
	c := runtimetest.Sleeper("app", testImage)
	c.Resources = &reconcile.ResourceRequirements{Limits: map[string]string{"memory": "64Mi"}}
	pod := runtimetest.NewPod("confined", c)
	runtimetest.Up(t, rt, pod)
	for _, tc := range []struct {
		cmd, want string
	}{
		{"grep -E '^Seccomp:' /proc/self/status | tr -d '\\t'", "Seccomp:2\n"},
		{"echo x > /proc/sys/kernel/core_pattern && echo WROTE || echo refused", "refused\n"},
		{"echo h > /proc/sysrq-trigger && echo WROTE || echo refused", "refused\n"},
		{"cat /proc/keys /proc/timer_list | wc -c", "0\n"},
		{"f=/sys/fs/cgroup/memory.max; [ -e $f ] || f=/sys/fs/cgroup/memory/memory.limit_in_bytes; cat $f; echo 1 > $f && echo WROTE || echo refused", "67108864\nrefused\n"},
	} {
		res, err := rt.ExecSync(ctx(t), pod.ID, "app", []string{"sh", "-c", tc.cmd}, 10*time.Second)
		if err != nil {
			t.Fatalf("exec %q: %v", tc.cmd, err)
		}
		if got := string(res.Stdout); got != tc.want {
			t.Errorf("%s: got %q (stderr %q), want %q", tc.cmd, got, res.Stderr, tc.want)
		}
	}
}

// TestAdmitRefusesBeforeAnyChange: pods that would undo confinement, or
// that CreateSandbox or StartContainer could only refuse halfway, are
// refused by Admit and by CreateSandbox with nothing made.
func TestAdmitRefusesBeforeAnyChange(t *testing.T) {
	_, e := newRuntime(t)
	allowed := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	strict, err := containerd.New(ctx(t), containerd.Options{
		Address: ctrd.Address(), Namespace: e.ns, StateDir: e.stateDir, CNIBinDirs: []string{testenv.CNIBinDir},
		NetworkName: e.net.Name, Bridge: e.net.Bridge, Subnet: e.net.Subnet,
		Policy: reconcile.WithClaimDirs(reconcile.NodePolicy{HostPaths: []string{allowed}}, e.stateDir),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	base := snapshotHost(t, strict, e)
	yes := true
	for _, tc := range []struct {
		name, want string
		mut        func(p *reconcile.DesiredPod)
	}{
		{"procMount", "procMount Unmasked", func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].SecurityContext = &reconcile.SecurityContext{ProcMount: "Unmasked"}
		}},
		{"unsafe sysctl", `unsafe sysctl "net.core.somaxconn"`, func(p *reconcile.DesiredPod) {
			p.Spec.SecurityContext = &reconcile.PodSecurityContext{Sysctls: []reconcile.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}}
		}},
		{"host sysctl", `"kernel.core_pattern" is not namespaced`, func(p *reconcile.DesiredPod) {
			p.Spec.SecurityContext = &reconcile.PodSecurityContext{Sysctls: []reconcile.Sysctl{{Name: "kernel.core_pattern", Value: "|/x"}}}
		}},
		{"unconfined", "seccomp profile Unconfined", func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].SecurityContext = &reconcile.SecurityContext{SeccompProfile: &reconcile.SeccompProfile{Type: "Unconfined"}}
		}},
		{"bidirectional", "Bidirectional propagation is only allowed in a privileged container", func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
			p.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "v", MountPath: "/v", MountPropagation: "Bidirectional"}}
		}},
		{"symlinked hostPath", `resolves to "/etc"`, func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", HostPath: &reconcile.HostPathVolumeSource{Path: filepath.Join(allowed, "link")}}}
		}},
		{"another pod's claim", "inside berth's state directory", func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "data", HostPath: &reconcile.HostPathVolumeSource{
				Path: reconcile.ClaimDir(e.stateDir, "default", "data", "db", 0), Type: "DirectoryOrCreate"}}}
		}},
		{"dot key", `key "." is not a file name`, func(p *reconcile.DesiredPod) {
			p.ConfigMaps = map[string]*reconcile.ConfigMapData{"cfg": {Data: map[string]string{".": "x", "..": "y"}}}
			p.Spec.Volumes = []reconcile.Volume{{Name: "cfg", ConfigMap: &reconcile.ConfigMapVolumeSource{Name: "cfg"}}}
		}},
		{"env NUL", "contains a NUL byte", func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].Env = []reconcile.EnvVar{{Name: "A", Value: "a\x00b"}}
		}},
		{"negative cpu", `quantity "-1" is negative`, func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].Resources = &reconcile.ResourceRequirements{Limits: map[string]string{"cpu": "-1"}}
		}},
		{"huge memory", `quantity "1e400" is more than`, func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].Resources = &reconcile.ResourceRequirements{Limits: map[string]string{"memory": "1e400"}}
		}},
		{"huge sizeLimit", "spec.volumes[0].emptyDir.sizeLimit", func(p *reconcile.DesiredPod) {
			p.Spec.Volumes = []reconcile.Volume{{Name: "v", EmptyDir: &reconcile.EmptyDirVolumeSource{Medium: "Memory", SizeLimit: "1e400"}}}
		}},
		{"long hostname", "spec.hostname", func(p *reconcile.DesiredPod) {
			p.Spec.Hostname = strings.Repeat("h", 64)
		}},
		{"privileged", "--allow-privileged", func(p *reconcile.DesiredPod) {
			p.Spec.Containers[0].SecurityContext = &reconcile.SecurityContext{Privileged: &yes}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := runtimetest.NewPod("refused", runtimetest.Sleeper("app", testImage))
			tc.mut(pod)
			if err := strict.Admit(pod); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Admit: %v; want %q", err, tc.want)
			}
			if err := strict.CreateSandbox(ctx(t), pod); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CreateSandbox: %v; want %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(reconcile.ClaimsRoot(e.stateDir)); err == nil {
		t.Errorf("a refused pod made a claim directory")
	}
	assertNoLeak(t, strict, e, base)
}
