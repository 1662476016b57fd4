//go:build faults

package main

import (
	"context"
	"os"

	"berth.dev/berth/reconcile"
	ctrd "berth.dev/berth/runtime/containerd"
)

// faultRuntime wraps the agent's runtime for the fault suite (make
// test-faults builds bin/berth-faults with the faults tag; berth's own
// builds never carry this file): with BERTH_FAULT_PANIC_POD=name, making
// that pod's sandbox panics, in the pod's worker, as a bug in berth would.
func faultRuntime(rt *ctrd.Runtime) agentRuntime {
	if pod := os.Getenv("BERTH_FAULT_PANIC_POD"); pod != "" {
		return panicOnCreate{rt, pod}
	}
	return rt
}

// panicOnCreate is the containerd runtime, every method of it, but for
// CreateSandbox of one pod.
type panicOnCreate struct {
	*ctrd.Runtime
	pod string
}

func (p panicOnCreate) CreateSandbox(ctx context.Context, d *reconcile.DesiredPod) error {
	if d.ID.Name == p.pod {
		panic("injected by BERTH_FAULT_PANIC_POD: sandbox of " + p.pod)
	}
	return p.Runtime.CreateSandbox(ctx, d)
}
