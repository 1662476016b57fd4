// Package sim is a simulated container runtime for fleet benchmarks:
// `berth agent --runtime sim` runs its pods in memory, with no containerd
// and no process per container, so hundreds of agents fit on one machine
// (bench/fleet.sh). Nothing runs: it exists to measure berth's own work
// (fetching, validating, planning, rollouts, status traffic), never to
// run workloads. The real runtime, containerd, stays the default.
//
// It is runtime/fake, which the contract suite in runtime/runtimetest
// holds to the real runtime's behaviour, with every image pullable:
// containers "run" until stopped, and a command `sh -c 'exit N'` (or
// `true`, `false`) exits at once with N, so a revision can fail its
// health check on purpose.
package sim

import (
	"context"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
)

var _ reconcile.Runtime = (*Runtime)(nil)

// Runtime is a simulated runtime.
type Runtime struct {
	*fake.Runtime
}

// New returns an empty simulated runtime; every image can be pulled.
func New() *Runtime {
	r := &Runtime{Runtime: fake.New()}
	r.Pull = func(ctx context.Context, image string) error {
		r.AddImage(image)
		return nil
	}
	return r
}

// Check reports the runtime healthy: there is nothing to reach.
func (r *Runtime) Check(ctx context.Context) error { return nil }

// Close does nothing.
func (r *Runtime) Close() error { return nil }
