package containerd_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

func TestPodsShareBoundedShimsAndAKilledShimIsReported(t *testing.T) {
	rt, _ := newRuntime(t, func(o *containerd.Options) { o.PodsPerShim = 2 })
	var pods []*reconcile.DesiredPod
	for _, name := range []string{"a", "b", "c"} {
		p := runtimetest.NewPod(name, runtimetest.Sleeper("main", testImage), runtimetest.Sleeper("side", testImage))
		runtimetest.Up(t, rt, p)
		pods = append(pods, p)
	}
	obs := map[string]reconcile.ObservedPod{}
	list, err := rt.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		obs[p.ID.Name] = p
	}
	shims := map[string]int{}
	for name, p := range obs {
		for _, c := range p.Containers {
			s := runtimetest.ParentPID(t, c.PID)
			if shims[name] != 0 && shims[name] != s {
				t.Errorf("the containers of pod %s run under two shims", name)
			}
			shims[name] = s
		}
	}
	if shims["a"] != shims["b"] || shims["c"] == shims["a"] {
		t.Fatalf("shims by pod %v: want a and b in one, c in another (2 pods per shim)", shims)
	}

	wctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	exited := make(chan reconcile.PodID, 16)
	go rt.WatchExits(wctx, func(id reconcile.PodID) { exited <- id })
	// The watch is in place once an exit is seen: run one in pod c.
	probe := runtimetest.NewPod("c", runtimetest.Sleeper("main", testImage), runtimetest.Sleeper("side", testImage))
	probe.Spec.Containers = append(probe.Spec.Containers, reconcile.Container{Name: "once", Image: testImage, Command: []string{"true"}})
	for seen := false; !seen; {
		if err := rt.StartContainer(ctx(t), probe, reconcile.AppContainer, "once"); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-exited:
			seen = id.Name == "c"
		case <-time.After(2 * time.Second):
		}
	}
	drain(exited)

	if err := syscall.Kill(shims["a"], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 2, "b": 2}
	deadline := time.After(30 * time.Second)
	for want["a"]+want["b"] > 0 {
		select {
		case id := <-exited:
			if _, ok := want[id.Name]; !ok {
				t.Errorf("exit reported for pod %s, whose shim was not killed", id.Name)
			}
			want[id.Name]--
		case <-deadline:
			t.Fatalf("exits still expected after the shim was killed: %v", want)
		}
	}
	list, err = rt.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list {
		for _, c := range p.Containers {
			if c.Name == "once" {
				continue
			}
			switch p.ID.Name {
			case "a", "b":
				if c.State != reconcile.StateExited || c.ExitCode != 137 || c.Reason != containerd.ReasonTaskLost {
					t.Errorf("pod %s container %s after its shim was killed: %s, exit %d, reason %q; want exited, 137, %s", p.ID.Name, c.Name, c.State, c.ExitCode, c.Reason, containerd.ReasonTaskLost)
				}
			case "c":
				if c.State != reconcile.StateRunning {
					t.Errorf("pod c's %s is %s: a shim it does not use was killed", c.Name, c.State)
				}
			}
		}
	}
	// Restarting a container of a pod whose shim died starts a new shim.
	if err := rt.StartContainer(ctx(t), pods[0], reconcile.AppContainer, "main"); err != nil {
		t.Fatalf("restart after the shim died: %v", err)
	}
}

func drain(ch chan reconcile.PodID) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// A removed pod frees its place in its shim group at once: the runtime
// keeps its count of the groups' pods between starts, and forgets it when
// a pod goes.
func TestRemovedPodFreesItsShimPlace(t *testing.T) {
	rt, _ := newRuntime(t, func(o *containerd.Options) { o.PodsPerShim = 2 })
	pods := map[string]*reconcile.DesiredPod{}
	for _, name := range []string{"a", "b"} {
		pods[name] = runtimetest.NewPod(name, runtimetest.Sleeper("main", testImage))
		runtimetest.Up(t, rt, pods[name])
	}
	if err := rt.RemovePod(ctx(t), pods["a"].ID, 0); err != nil {
		t.Fatal(err)
	}
	pods["d"] = runtimetest.NewPod("d", runtimetest.Sleeper("main", testImage))
	runtimetest.Up(t, rt, pods["d"])
	list, err := rt.List(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	shim := map[string]int{}
	for _, p := range list {
		for _, c := range p.Containers {
			shim[p.ID.Name] = runtimetest.ParentPID(t, c.PID)
		}
	}
	if shim["b"] == 0 || shim["d"] != shim["b"] {
		t.Errorf("shims by pod %v: want d in b's shim, where a's place was freed", shim)
	}
}
