package containerd

import (
	"context"
	"fmt"
	"runtime"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// CPU shares and CFS period as the kubelet computes them.
const (
	minShares     = 2
	maxShares     = 262144
	sharesPerCPU  = 1024
	milliCPUToCPU = 1000
	quotaPeriod   = 100000 // µs
	minQuota      = 1000   // µs
)

func parseQuantity(s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return q, fmt.Errorf("quantity %q: %w", s, err)
	}
	return q, nil
}

// parseBytes parses a Kubernetes quantity as a number of bytes.
func parseBytes(s string) (int64, error) {
	q, err := parseQuantity(s)
	if err != nil {
		return 0, err
	}
	return q.Value(), nil
}

// Resources are a container's cgroup settings derived from its requests
// and limits.
type Resources struct {
	// MemoryLimit is limits.memory in bytes, 0 for none.
	MemoryLimit int64
	// CPUShares come from requests.cpu (or limits.cpu when requests are
	// not given), 2 when neither is.
	CPUShares uint64
	// CPUQuota and CPUPeriod come from limits.cpu; 0 quota for none.
	CPUQuota  int64
	CPUPeriod uint64
}

// ContainerResources translates a container's requests and limits into
// cgroup settings the way the kubelet does: shares = milliCPU*1024/1000
// (at least 2), quota = milliCPU*100000/1000 µs per 100 ms period (at
// least 1 ms), memory limit in bytes. As the API server would, a missing
// request defaults to the limit.
func ContainerResources(c *reconcile.Container) (Resources, error) {
	res := Resources{CPUShares: minShares}
	if c.Resources == nil {
		return res, nil
	}
	get := func(m map[string]string, k string) (*resource.Quantity, error) {
		s, ok := m[k]
		if !ok {
			return nil, nil
		}
		q, err := parseQuantity(s)
		if err != nil {
			return nil, fmt.Errorf("container %q: resources %s: %w", c.Name, k, err)
		}
		return &q, nil
	}
	cpuReq, err := get(c.Resources.Requests, "cpu")
	if err != nil {
		return res, err
	}
	cpuLim, err := get(c.Resources.Limits, "cpu")
	if err != nil {
		return res, err
	}
	memLim, err := get(c.Resources.Limits, "memory")
	if err != nil {
		return res, err
	}
	if cpuReq == nil {
		cpuReq = cpuLim
	}
	if cpuReq != nil {
		shares := uint64(cpuReq.MilliValue()) * sharesPerCPU / milliCPUToCPU
		res.CPUShares = min(max(shares, minShares), maxShares)
	}
	if cpuLim != nil {
		res.CPUPeriod = quotaPeriod
		res.CPUQuota = max(cpuLim.MilliValue()*quotaPeriod/milliCPUToCPU, minQuota)
	}
	if memLim != nil {
		res.MemoryLimit = memLim.Value()
	}
	return res, nil
}

// withResources sets the container's cgroup limits.
func withResources(r Resources) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		lr := s.Linux.Resources
		shares := r.CPUShares
		lr.CPU = &specs.LinuxCPU{Shares: &shares}
		if r.CPUQuota > 0 {
			q, p := r.CPUQuota, r.CPUPeriod
			lr.CPU.Quota, lr.CPU.Period = &q, &p
		}
		if r.MemoryLimit > 0 {
			m := r.MemoryLimit
			lr.Memory = &specs.LinuxMemory{Limit: &m}
			// No swap beyond the limit, as on a kubelet without swap.
			sw := m
			lr.Memory.Swap = &sw
		}
		return nil
	}
}

// hostCapacity is this host's CPUs and memory, what a resourceFieldRef
// to an unset limit answers.
func hostCapacity() podspec.Capacity {
	return podspec.Capacity{CPUs: int64(runtime.NumCPU()), Memory: hostMemory()}
}

func hostMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
