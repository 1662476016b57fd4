package containerd_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

func TestContainerResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  *reconcile.ResourceRequirements
		want containerd.Resources
	}{
		{"none", nil, containerd.Resources{CPUShares: 2}},
		{"requests and limits", &reconcile.ResourceRequirements{
			Requests: map[string]string{"cpu": "250m", "memory": "32Mi"},
			Limits:   map[string]string{"cpu": "500m", "memory": "64Mi"},
		}, containerd.Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20}},
		{"limit only: request defaults to it", &reconcile.ResourceRequirements{Limits: map[string]string{"cpu": "2"}},
			containerd.Resources{CPUShares: 2048, CPUQuota: 200000, CPUPeriod: 100000}},
		{"tiny cpu floors", &reconcile.ResourceRequirements{Limits: map[string]string{"cpu": "1m"}},
			containerd.Resources{CPUShares: 2, CPUQuota: 1000, CPUPeriod: 100000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerd.ContainerResources(&reconcile.Container{Name: "a", Resources: tc.res})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	if _, err := containerd.ContainerResources(&reconcile.Container{Name: "a", Resources: &reconcile.ResourceRequirements{Limits: map[string]string{"memory": "lots"}}}); err == nil {
		t.Errorf("a bad quantity: want an error")
	}
}

func TestCgroupLimitsAndOOMKilled(t *testing.T) {
	rt, e := newRuntime(t)
	limited := runtimetest.Sleeper("limited", testImage)
	limited.Resources = &reconcile.ResourceRequirements{
		Requests: map[string]string{"cpu": "250m"},
		Limits:   map[string]string{"cpu": "500m", "memory": "32Mi"},
	}
	hog := script("hog", "dd if=/dev/zero of=/dev/null bs=64M count=1")
	hog.Resources = &reconcile.ResourceRequirements{Limits: map[string]string{"memory": "16Mi"}}
	pod := runtimetest.NewPod("limits", limited, hog)
	upChecked(t, rt, e, pod)
	cg := func(ctrl, file string) string {
		b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", ctrl, rt.Namespace(), containerd.ContainerID(pod.ID, "limited"), file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	got := []string{cg("memory", "memory.limit_in_bytes"), cg("cpu", "cpu.cfs_quota_us"), cg("cpu", "cpu.cfs_period_us"), cg("cpu", "cpu.shares")}
	if diff := cmp.Diff([]string{"33554432", "50000", "100000", "256"}, got); diff != "" {
		t.Errorf("cgroup memory limit, cfs quota, period, shares (-want +got):\n%s", diff)
	}
	code, err := rt.WaitContainer(ctx(t), pod.ID, reconcile.AppContainer, "hog")
	if err != nil || code != 137 {
		t.Fatalf("hog exited %d, %v; want 137", code, err)
	}
	p := runtimetestList(t, rt)
	c := p.Container(reconcile.AppContainer, "hog")
	if c == nil || c.Reason != "OOMKilled" {
		t.Errorf("hog observed as %+v, want reason OOMKilled", c)
	}
}

func TestSecurityContext(t *testing.T) {
	rt, e := newRuntime(t)
	i64 := func(n int64) *int64 { return &n }
	yes, no := true, false
	c := runtimetest.Sleeper("app", testImage)
	c.SecurityContext = &reconcile.SecurityContext{
		RunAsGroup:               i64(3000),
		ReadOnlyRootFilesystem:   &yes,
		AllowPrivilegeEscalation: &no,
		Capabilities:             &reconcile.Capabilities{Drop: []string{"ALL"}, Add: []string{"NET_BIND_SERVICE"}},
		SeccompProfile:           &reconcile.SeccompProfile{Type: podspec.SeccompRuntimeDefault},
	}
	pod := runtimetest.NewPod("secure", c)
	pod.Spec.SecurityContext = &reconcile.PodSecurityContext{RunAsUser: i64(1000), FSGroup: i64(2000), SupplementalGroups: []int64{4000},
		Sysctls: []reconcile.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "100"}}}
	pod.Spec.Volumes = []reconcile.Volume{{Name: "data", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
	pod.Spec.Containers[0].VolumeMounts = []reconcile.VolumeMount{{Name: "data", MountPath: "/data"}}
	upChecked(t, rt, e, pod)
	res, err := rt.ExecSync(ctx(t), pod.ID, "app", []string{"sh", "-c", `id -u; id -g; id -G; touch /rootfs-write 2>/dev/null && echo ROOT-WRITABLE; touch /data/ok && echo data-writable; stat -c 'data-group=%g' /data/ok;
grep -E '^(CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\t' ' '; cat /proc/sys/net/ipv4/ip_unprivileged_port_start`}, 30*time.Second)
	if err != nil {
		t.Fatalf("ExecSync: %v", err)
	}
	got := string(res.Stdout)
	lines := strings.Split(got, "\n")
	if len(lines) < 3 || lines[0] != "1000" || lines[1] != "3000" {
		t.Fatalf("id output %q: want uid 1000 gid 3000", got)
	}
	groups := strings.Fields(lines[2])
	for _, g := range []string{"2000", "4000"} {
		if !strings.Contains(" "+strings.Join(groups, " ")+" ", " "+g+" ") {
			t.Errorf("groups %v lack %s (fsGroup, supplementalGroups)", groups, g)
		}
	}
	for _, want := range []string{"data-writable\n", "data-group=2000\n", "CapBnd: 0000000000000400\n", "NoNewPrivs: 1\n", "Seccomp: 2\n", "\n100\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "ROOT-WRITABLE") {
		t.Errorf("readOnlyRootFilesystem: the root filesystem is writable")
	}

	// runAsNonRoot against an image that runs as root is refused.
	nonRoot := runtimetest.NewPod("nonroot", runtimetest.Sleeper("app", testImage))
	nonRoot.Spec.SecurityContext = &reconcile.PodSecurityContext{RunAsNonRoot: &yes}
	if err := rt.CreateSandbox(ctx(t), nonRoot); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.RemovePod(ctx(t), nonRoot.ID, runtimetest.Grace) })
	err = rt.StartContainer(ctx(t), nonRoot, reconcile.AppContainer, "app")
	if err == nil || !strings.Contains(err.Error(), "runAsNonRoot") {
		t.Errorf("StartContainer with runAsNonRoot and a root image: %v, want a runAsNonRoot error", err)
	}
}

func TestSeccompLocalhostProfile(t *testing.T) {
	rt, e := newRuntime(t)
	dir := filepath.Join(e.stateDir, "seccomp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	profile := `{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}`
	if err := os.WriteFile(filepath.Join(dir, "no-mkdir.json"), []byte(profile), 0o644); err != nil {
		t.Fatal(err)
	}
	c := script("main", "mkdir /tmp/x 2>/dev/null && echo made || echo refused")
	c.SecurityContext = &reconcile.SecurityContext{SeccompProfile: &reconcile.SeccompProfile{Type: podspec.SeccompLocalhost, LocalhostProfile: "no-mkdir.json"}}
	pod := runtimetest.NewPod("seccomp", c)
	upChecked(t, rt, e, pod)
	if out, _ := waitOutput(t, rt, pod, "main"); out != "refused\n" {
		t.Errorf("under a profile refusing mkdir: %q", out)
	}
}
