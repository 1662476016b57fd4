package runtimetest

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"berth.dev/berth/reconcile"
)

// Factory returns a Runtime for one (sub)test and the image its containers
// run. The image must be available to EnsureImage with PullIfNotPresent and
// PullNever, and provide sh and sleep. Each call with a new t returns a
// runtime with nothing in it. A second call with the same t must return
// another instance on the same record (containerd namespace and state
// directory), as an agent restarted on the same host would get; an
// in-memory fake may return the same instance. The factory registers its
// own cleanup with t.
type Factory func(t *testing.T) (reconcile.Runtime, string)

// Grace is the termination grace period of the suite's pods.
const Grace = time.Second

// NewPod returns a normalized pod in namespace "default" with the given
// containers, grace period Grace, restartPolicy Never and image pull policy
// IfNotPresent on containers that have none.
func NewPod(name string, containers ...reconcile.Container) *reconcile.DesiredPod {
	grace := int64(Grace / time.Second)
	for i := range containers {
		if containers[i].ImagePullPolicy == "" {
			containers[i].ImagePullPolicy = reconcile.PullIfNotPresent
		}
	}
	return &reconcile.DesiredPod{
		ID:       reconcile.PodID{Namespace: "default", Name: name},
		Hash:     "0123456789abcdef",
		Owner:    "Pod/default/" + name,
		Revision: "rev-1",
		Spec: reconcile.PodSpec{
			Containers:                    containers,
			RestartPolicy:                 reconcile.RestartNever,
			TerminationGracePeriodSeconds: &grace,
		},
	}
}

// Sleeper is a container that runs until it is stopped.
func Sleeper(name, image string) reconcile.Container {
	return reconcile.Container{Name: name, Image: image, Command: []string{"sleep", "3600"}}
}

// Exiter is a container that exits at once with code.
func Exiter(name, image string, code string) reconcile.Container {
	return reconcile.Container{Name: name, Image: image, Command: []string{"sh", "-c", "exit " + code}}
}

// Context returns a context for one step of a test, bounded to a minute.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Up ensures the images of pod, creates its sandbox and starts its app
// containers in order, failing the test on error. The pod is removed when
// the test ends.
func Up(t *testing.T, rt reconcile.Runtime, pod *reconcile.DesiredPod) {
	t.Helper()
	ctx := Context(t)
	t.Cleanup(func() {
		if err := rt.RemovePod(context.Background(), pod.ID, Grace); err != nil {
			t.Errorf("cleanup: RemovePod(%s): %v", pod.ID, err)
		}
	})
	for _, c := range pod.Spec.Containers {
		if err := rt.EnsureImage(ctx, c.Image, c.ImagePullPolicy); err != nil {
			t.Fatalf("EnsureImage(%s): %v", c.Image, err)
		}
	}
	if err := rt.CreateSandbox(ctx, pod); err != nil {
		t.Fatalf("CreateSandbox(%s): %v", pod.ID, err)
	}
	for _, c := range pod.Spec.Containers {
		if err := rt.StartContainer(ctx, pod, reconcile.AppContainer, c.Name); err != nil {
			t.Fatalf("StartContainer(%s, %s): %v", pod.ID, c.Name, err)
		}
	}
}

// MustList lists the runtime's pods, failing the test on error.
func MustList(t *testing.T, rt reconcile.Runtime) []reconcile.ObservedPod {
	t.Helper()
	pods, err := rt.List(Context(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return pods
}

// Run runs the contract suite, one subtest per behaviour.
func Run(t *testing.T, newRuntime Factory) {
	t.Run("CreateStartList", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("web", Sleeper("app", image))
		Up(t, rt, pod)
		pods := MustList(t, rt)
		if len(pods) != 1 {
			t.Fatalf("List returned %d pods, want 1: %+v", len(pods), pods)
		}
		got := pods[0]
		want := reconcile.ObservedPod{
			ID:           pod.ID,
			Hash:         pod.Hash,
			Revision:     pod.Revision,
			Owner:        pod.Owner,
			GracePeriod:  Grace,
			SandboxReady: true,
			Containers: []reconcile.ObservedContainer{{
				Name:  "app",
				Kind:  reconcile.AppContainer,
				Image: image,
				State: reconcile.StateRunning,
			}},
		}
		opts := cmp.Options{
			cmpopts.IgnoreFields(reconcile.ObservedPod{}, "IP", "CreatedAt"),
			cmpopts.IgnoreFields(reconcile.ObservedContainer{}, "ID", "PID", "StartedAt", "FinishedAt"),
		}
		if diff := cmp.Diff(want, got, opts); diff != "" {
			t.Errorf("List mismatch (-want +got):\n%s", diff)
		}
		if c := got.Container(reconcile.AppContainer, "app"); c != nil {
			if c.PID == 0 {
				t.Errorf("running container has no PID")
			}
			if c.ID == "" {
				t.Errorf("container has no ID")
			}
		}
	})

	t.Run("ObservePodIsListForOnePod", func(t *testing.T) {
		rt, image := newRuntime(t)
		o, ok := rt.(reconcile.PodObserver)
		if !ok {
			t.Fatalf("%T does not observe single pods (reconcile.PodObserver)", rt)
		}
		web := NewPod("web", Sleeper("app", image))
		job := NewPod("job", Exiter("main", image, "3"))
		Up(t, rt, web)
		Up(t, rt, job)
		if _, err := rt.WaitContainer(Context(t), job.ID, reconcile.AppContainer, "main"); err != nil {
			t.Fatalf("WaitContainer: %v", err)
		}
		listed := MustList(t, rt)
		if len(listed) != 2 {
			t.Fatalf("List returned %d pods, want 2: %+v", len(listed), listed)
		}
		for _, want := range listed {
			got, err := o.ObservePod(Context(t), want.ID)
			if err != nil || got == nil {
				t.Fatalf("ObservePod(%s) = %+v, %v; want the pod", want.ID, got, err)
			}
			if diff := cmp.Diff(want, *got); diff != "" {
				t.Errorf("ObservePod(%s) differs from List (-List +ObservePod):\n%s", want.ID, diff)
			}
		}
		missing := reconcile.PodID{Namespace: web.ID.Namespace, Name: "absent"}
		if got, err := o.ObservePod(Context(t), missing); err != nil || got != nil {
			t.Errorf("ObservePod(%s) = %+v, %v; want nil, nil", missing, got, err)
		}
	})

	t.Run("RunAsNonRootRefusesRoot", func(t *testing.T) {
		// The test image runs as root: runAsNonRoot (set on the pod, as
		// Kubernetes merges it into each container) refuses it unless the
		// container names a non-zero runAsUser.
		rt, image := newRuntime(t)
		yes := true
		pod := NewPod("nonroot", Sleeper("root", image), Sleeper("user", image))
		pod.Spec.SecurityContext = &reconcile.PodSecurityContext{RunAsNonRoot: &yes}
		uid := int64(1000)
		pod.Spec.Containers[1].SecurityContext = &reconcile.SecurityContext{RunAsUser: &uid}
		ctx := Context(t)
		t.Cleanup(func() { rt.RemovePod(context.Background(), pod.ID, Grace) })
		if err := rt.EnsureImage(ctx, image, reconcile.PullIfNotPresent); err != nil {
			t.Fatal(err)
		}
		if err := rt.CreateSandbox(ctx, pod); err != nil {
			t.Fatal(err)
		}
		err := rt.StartContainer(ctx, pod, reconcile.AppContainer, "root")
		if err == nil || !strings.Contains(err.Error(), "runAsNonRoot") {
			t.Errorf("StartContainer of a root container with runAsNonRoot = %v; want a runAsNonRoot refusal", err)
		}
		if err := rt.StartContainer(ctx, pod, reconcile.AppContainer, "user"); err != nil {
			t.Errorf("StartContainer with runAsUser 1000: %v", err)
		}
	})

	t.Run("WaitExitCode", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("job", Exiter("main", image, "3"))
		Up(t, rt, pod)
		code, err := rt.WaitContainer(Context(t), pod.ID, reconcile.AppContainer, "main")
		if err != nil {
			t.Fatalf("WaitContainer: %v", err)
		}
		if code != 3 {
			t.Errorf("exit code %d, want 3", code)
		}
		pods := MustList(t, rt)
		if len(pods) != 1 {
			t.Fatalf("List returned %d pods, want 1", len(pods))
		}
		c := pods[0].Container(reconcile.AppContainer, "main")
		if c == nil || c.State != reconcile.StateExited || c.ExitCode != 3 {
			t.Errorf("container after exit = %+v, want state exited with code 3", c)
		}
		// Waiting again for an exited container returns at once.
		if code, err := rt.WaitContainer(Context(t), pod.ID, reconcile.AppContainer, "main"); err != nil || code != 3 {
			t.Errorf("second WaitContainer = %d, %v; want 3, nil", code, err)
		}
	})

	t.Run("StartTwiceReplaces", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("web", Sleeper("app", image))
		Up(t, rt, pod)
		before := MustList(t, rt)[0].Container(reconcile.AppContainer, "app")
		if before == nil {
			t.Fatal("container missing after start")
		}
		if err := rt.StartContainer(Context(t), pod, reconcile.AppContainer, "app"); err != nil {
			t.Fatalf("second StartContainer: %v", err)
		}
		pods := MustList(t, rt)
		if len(pods) != 1 || len(pods[0].Containers) != 1 {
			t.Fatalf("after restart: %+v, want one pod with one container", pods)
		}
		after := pods[0].Containers[0]
		if after.State != reconcile.StateRunning {
			t.Errorf("state after restart %s, want running", after.State)
		}
		if after.PID == before.PID {
			t.Errorf("PID %d unchanged: the container was not replaced", after.PID)
		}
	})

	t.Run("RemovePod", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("web", Sleeper("a", image), Exiter("b", image, "0"))
		Up(t, rt, pod)
		other := NewPod("other", Sleeper("a", image))
		Up(t, rt, other)
		if err := rt.RemovePod(Context(t), pod.ID, Grace); err != nil {
			t.Fatalf("RemovePod: %v", err)
		}
		pods := MustList(t, rt)
		if len(pods) != 1 || pods[0].ID != other.ID {
			t.Errorf("after RemovePod, List = %+v, want only %s", pods, other.ID)
		}
		if err := rt.RemovePod(Context(t), pod.ID, Grace); err != nil {
			t.Errorf("second RemovePod: %v", err)
		}
	})

	t.Run("RemoveUnknownPod", func(t *testing.T) {
		rt, _ := newRuntime(t)
		if err := rt.RemovePod(Context(t), reconcile.PodID{Namespace: "default", Name: "nope"}, Grace); err != nil {
			t.Errorf("RemovePod of unknown pod: %v", err)
		}
		if pods := MustList(t, rt); len(pods) != 0 {
			t.Errorf("List = %+v, want nothing", pods)
		}
	})

	t.Run("CancelledRemoveStillRemoves", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("web", Sleeper("app", image))
		Up(t, rt, pod)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := rt.RemovePod(ctx, pod.ID, Grace); err != nil {
			t.Fatalf("RemovePod with a cancelled context: %v", err)
		}
		if pods := MustList(t, rt); len(pods) != 0 {
			t.Errorf("List = %+v, want nothing", pods)
		}
	})

	t.Run("FreshInstanceSeesSamePods", func(t *testing.T) {
		rt, image := newRuntime(t)
		Up(t, rt, NewPod("web", Sleeper("app", image)))
		job := NewPod("job", Exiter("main", image, "7"))
		Up(t, rt, job)
		if _, err := rt.WaitContainer(Context(t), job.ID, reconcile.AppContainer, "main"); err != nil {
			t.Fatalf("WaitContainer: %v", err)
		}
		first := MustList(t, rt)
		again, _ := newRuntime(t)
		second := MustList(t, again)
		if diff := cmp.Diff(first, second); diff != "" {
			t.Errorf("a fresh instance sees different pods (-first +fresh):\n%s", diff)
		}
		if len(second) != 2 {
			t.Errorf("fresh instance lists %d pods, want 2", len(second))
		}
	})

	t.Run("CreateSandboxIsIdempotent", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("web", Sleeper("app", image))
		Up(t, rt, pod)
		if err := rt.CreateSandbox(Context(t), pod); err != nil {
			t.Fatalf("second CreateSandbox: %v", err)
		}
		pods := MustList(t, rt)
		if len(pods) != 1 || !pods[0].SandboxReady {
			t.Errorf("after second CreateSandbox: %+v, want one ready pod", pods)
		}
	})

	t.Run("StartWithoutSandboxFails", func(t *testing.T) {
		rt, image := newRuntime(t)
		pod := NewPod("web", Sleeper("app", image))
		if err := rt.EnsureImage(Context(t), image, reconcile.PullIfNotPresent); err != nil {
			t.Fatalf("EnsureImage: %v", err)
		}
		if err := rt.StartContainer(Context(t), pod, reconcile.AppContainer, "app"); err == nil {
			t.Errorf("StartContainer without a sandbox succeeded")
			_ = rt.RemovePod(context.Background(), pod.ID, Grace)
		}
	})

	t.Run("EnsureImagePolicies", func(t *testing.T) {
		rt, image := newRuntime(t)
		if err := rt.EnsureImage(Context(t), image, reconcile.PullNever); err != nil {
			t.Errorf("EnsureImage(present, Never): %v", err)
		}
		if err := rt.EnsureImage(Context(t), image, reconcile.PullIfNotPresent); err != nil {
			t.Errorf("EnsureImage(present, IfNotPresent): %v", err)
		}
		if err := rt.EnsureImage(Context(t), "example.invalid/missing:1", reconcile.PullNever); err == nil {
			t.Errorf("EnsureImage(missing, Never) succeeded")
		}
	})
}

// ParentPID returns the parent of process pid: for a container's init
// process on containerd, the PID of its shim.
func ParentPID(t *testing.T, pid uint32) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from its end.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("parent of %d: %v", pid, err)
	}
	return ppid
}
