package containerd_test

import (
	"context"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/google/go-cmp/cmp"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
)

var testPaths = containerd.PodPaths{
	Dir:   "/state/pods/default_web",
	NetNS: "/var/run/netns/berth-default_web",
	IPC:   "/state/pods/default_web/ns/ipc",
	UTS:   "/state/pods/default_web/ns/uts",
}

func genSpec(t *testing.T, pod *reconcile.DesiredPod, img ocispec.ImageConfig) *oci.Spec {
	t.Helper()
	opts, err := containerd.SpecOpts(containerd.SpecInput{Pod: pod, Container: &pod.Spec.Containers[0], Image: img, Paths: testPaths})
	if err != nil {
		t.Fatalf("SpecOpts: %v", err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "default_web_app"}, opts...)
	if err != nil {
		t.Fatalf("GenerateSpec: %v", err)
	}
	return s
}

func specPod(c reconcile.Container) *reconcile.DesiredPod {
	return &reconcile.DesiredPod{
		ID:   reconcile.PodID{Namespace: "default", Name: "web"},
		Spec: reconcile.PodSpec{Containers: []reconcile.Container{c}},
	}
}

func TestSpecArgs(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"default", "cmd"}}
	for _, tc := range []struct {
		name          string
		command, args []string
		want          []string
	}{
		{"image defaults", nil, nil, []string{"/entry", "default", "cmd"}},
		{"args replace cmd", nil, []string{"a", "b"}, []string{"/entry", "a", "b"}},
		{"command replaces entrypoint and cmd", []string{"sh"}, nil, []string{"sh"}},
		{"command and args", []string{"sh", "-c"}, []string{"echo hi"}, []string{"sh", "-c", "echo hi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := genSpec(t, specPod(reconcile.Container{Name: "app", Command: tc.command, Args: tc.args}), img)
			if diff := cmp.Diff(tc.want, s.Process.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
		})
	}
	_, err := containerd.SpecOpts(containerd.SpecInput{Pod: specPod(reconcile.Container{Name: "app"}), Container: &reconcile.Container{Name: "app"}, Paths: testPaths})
	if err == nil {
		t.Errorf("no command at all: want an error")
	}
}

func TestSpecEnvCwdNamespacesMounts(t *testing.T) {
	pod := specPod(reconcile.Container{
		Name: "app", Command: []string{"x"},
		Env:        []reconcile.EnvVar{{Name: "A", Value: "pod"}, {Name: "B", Value: "b"}},
		WorkingDir: "/work",
		VolumeMounts: []reconcile.VolumeMount{
			{Name: "data", MountPath: "/data"},
			{Name: "host", MountPath: "/host/", ReadOnly: true, SubPath: "sub/dir"},
		},
	})
	pod.Spec.Hostname = "custom"
	pod.Spec.Volumes = []reconcile.Volume{
		{Name: "data", EmptyDir: &reconcile.EmptyDirVolumeSource{}},
		{Name: "host", HostPath: &reconcile.HostPathVolumeSource{Path: "/srv/x"}},
	}
	s := genSpec(t, pod, ocispec.ImageConfig{Env: []string{"PATH=/bin", "A=image"}, WorkingDir: "/img"})
	wantEnv := []string{"PATH=/bin", "A=pod", "B=b", "HOSTNAME=custom"} // A keeps its place
	if diff := cmp.Diff(wantEnv, s.Process.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if s.Process.Cwd != "/work" {
		t.Errorf("cwd %q, want /work", s.Process.Cwd)
	}
	if s.Hostname != "custom" {
		t.Errorf("hostname %q, want custom", s.Hostname)
	}
	ns := map[specs.LinuxNamespaceType]string{}
	for _, n := range s.Linux.Namespaces {
		ns[n.Type] = n.Path
	}
	for typ, want := range map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: testPaths.NetNS, specs.IPCNamespace: testPaths.IPC, specs.UTSNamespace: testPaths.UTS,
		specs.PIDNamespace: "", specs.MountNamespace: "",
	} {
		if got, ok := ns[typ]; !ok || got != want {
			t.Errorf("namespace %s: path %q (present %v), want %q", typ, got, ok, want)
		}
	}
	mounts := map[string]specs.Mount{}
	for _, m := range s.Mounts {
		mounts[m.Destination] = m
	}
	for dst, want := range map[string]specs.Mount{
		"/etc/hosts":       {Destination: "/etc/hosts", Type: "bind", Source: testPaths.Dir + "/etc/hosts", Options: []string{"rbind", "rprivate", "rw"}},
		"/etc/resolv.conf": {Destination: "/etc/resolv.conf", Type: "bind", Source: testPaths.Dir + "/etc/resolv.conf", Options: []string{"rbind", "rprivate", "rw"}},
		"/data":            {Destination: "/data", Type: "bind", Source: testPaths.Dir + "/volumes/data", Options: []string{"rbind", "rprivate", "rw"}},
		"/host":            {Destination: "/host", Type: "bind", Source: "/srv/x/sub/dir", Options: []string{"rbind", "rprivate", "ro"}},
	} {
		if diff := cmp.Diff(want, mounts[dst]); diff != "" {
			t.Errorf("mount %s (-want +got):\n%s", dst, diff)
		}
	}
	if got := s.Annotations["io.containerd.runc.v2.group"]; got != "default_web" {
		t.Errorf("shim group annotation %q, want default_web", got)
	}
}

func TestSpecRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		vm   reconcile.VolumeMount
		want string
	}{
		{"unknown volume", reconcile.VolumeMount{Name: "nope", MountPath: "/x"}, "not declared"},
		{"escaping subPath", reconcile.VolumeMount{Name: "data", MountPath: "/x", SubPath: "../../etc"}, "subPath"},
		{"absolute subPath", reconcile.VolumeMount{Name: "data", MountPath: "/x", SubPath: "/etc"}, "subPath"},
		{"relative mountPath", reconcile.VolumeMount{Name: "data", MountPath: "x"}, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := specPod(reconcile.Container{Name: "app", Command: []string{"x"}, VolumeMounts: []reconcile.VolumeMount{tc.vm}})
			pod.Spec.Volumes = []reconcile.Volume{{Name: "data", EmptyDir: &reconcile.EmptyDirVolumeSource{}}}
			_, err := containerd.SpecOpts(containerd.SpecInput{Pod: pod, Container: &pod.Spec.Containers[0], Paths: testPaths})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestIDs(t *testing.T) {
	id := reconcile.PodID{Namespace: "default", Name: "web"}
	if got := containerd.SandboxID(id); got != "default_web" {
		t.Errorf("SandboxID = %q", got)
	}
	if got := containerd.ContainerID(id, "app"); got != "default_web_app" {
		t.Errorf("ContainerID = %q", got)
	}
	long := reconcile.PodID{Namespace: "a-very-long-namespace-name-indeed", Name: strings.Repeat("x", 60)}
	a, b := containerd.ContainerID(long, "app"), containerd.ContainerID(long, "app2")
	for _, got := range []string{a, b, containerd.SandboxID(long)} {
		if len(got) > 76 {
			t.Errorf("ID %q longer than 76", got)
		}
	}
	if a == b || a != containerd.ContainerID(long, "app") {
		t.Errorf("long IDs must be distinct and stable: %q %q", a, b)
	}
	// "--" is a valid DNS label but not a containerd identifier.
	dd := containerd.SandboxID(reconcile.PodID{Namespace: "default", Name: "xn--web"})
	if strings.Contains(dd, "--") || strings.Contains(dd, "_") {
		t.Errorf("SandboxID of xn--web = %q, want a valid identifier", dd)
	}
}

func TestNormalizeImage(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                 "docker.io/library/busybox:latest",
		"busybox:1.36":            "docker.io/library/busybox:1.36",
		"example.local/busybox:1": "example.local/busybox:1",
		"localhost:5000/team/app": "localhost:5000/team/app:latest",
		"quay.io/org/img@sha256:" + strings.Repeat("a", 64): "quay.io/org/img@sha256:" + strings.Repeat("a", 64),
	} {
		if got := containerd.NormalizeImage(in); got != want {
			t.Errorf("NormalizeImage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSpecPropagationAndSharedPID(t *testing.T) {
	pod := specPod(reconcile.Container{Name: "app", Command: []string{"x"}, VolumeMounts: []reconcile.VolumeMount{
		{Name: "h", MountPath: "/a", MountPropagation: "HostToContainer"},
		{Name: "h", MountPath: "/b", MountPropagation: "Bidirectional"},
		{Name: "h", MountPath: "/c"},
	}})
	pod.Spec.Volumes = []reconcile.Volume{{Name: "h", HostPath: &reconcile.HostPathVolumeSource{Path: "/srv"}}}
	opts, err := containerd.SpecOpts(containerd.SpecInput{Pod: pod, Container: &pod.Spec.Containers[0], Paths: testPaths, PIDNamespace: "/proc/42/ns/pid"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := oci.GenerateSpec(namespaces.WithNamespace(context.Background(), "test"), nil, &containers.Container{ID: "x"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range s.Mounts {
		if len(m.Options) > 1 && m.Type == "bind" {
			got[m.Destination] = m.Options[1]
		}
	}
	for dst, want := range map[string]string{"/a": "rslave", "/b": "rshared", "/c": "rprivate"} {
		if got[dst] != want {
			t.Errorf("mount %s propagation %q, want %q", dst, got[dst], want)
		}
	}
	var pid string
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.PIDNamespace {
			pid = ns.Path
		}
	}
	if pid != "/proc/42/ns/pid" {
		t.Errorf("pid namespace %q, want the shared one", pid)
	}
}

// The default seccomp profile keeps the native and 32-bit compat
// architectures containerd lists, and leaves out x32.
func TestSpecSeccompDefaultArchitectures(t *testing.T) {
	s := genSpec(t, specPod(reconcile.Container{Name: "app", Command: []string{"sh"}}), ocispec.ImageConfig{})
	if s.Linux == nil || s.Linux.Seccomp == nil {
		t.Fatal("no seccomp profile in the spec")
	}
	sc := s.Linux.Seccomp
	if sc.DefaultAction != specs.ActErrno || len(sc.Syscalls) == 0 {
		t.Errorf("default profile: action %q, %d rules; want an allow list", sc.DefaultAction, len(sc.Syscalls))
	}
	if slices.Contains(sc.Architectures, specs.ArchX32) {
		t.Errorf("architectures %v include x32", sc.Architectures)
	}
	var want []specs.Arch
	switch goruntime.GOARCH {
	case "amd64":
		want = []specs.Arch{specs.ArchX86_64, specs.ArchX86}
	case "arm64":
		want = []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	for _, a := range want {
		if !slices.Contains(sc.Architectures, a) {
			t.Errorf("architectures %v lack %s", sc.Architectures, a)
		}
	}
}
