package containerd

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/api/resource"

	"berth.dev/berth/reconcile"
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

// ResourceValue answers a resourceFieldRef (limits.cpu, requests.cpu,
// limits.memory, requests.memory, and the ephemeral-storage pair) of the
// named container of pod (containerName when the selector names none),
// divided by the divisor and rounded up, as Kubernetes does. An unset
// limit is the host's capacity.
func ResourceValue(pod *reconcile.DesiredPod, containerName string, sel *reconcile.ResourceFieldSelector) (string, error) {
	name := sel.ContainerName
	if name == "" {
		name = containerName
	}
	var c *reconcile.Container
	for _, cs := range [][]reconcile.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range cs {
			if cs[i].Name == name {
				c = &cs[i]
			}
		}
	}
	if c == nil {
		return "", fmt.Errorf("resourceFieldRef: no container %q", name)
	}
	divisor := resource.MustParse("1")
	if sel.Divisor != "" {
		d, err := parseQuantity(sel.Divisor)
		if err != nil {
			return "", err
		}
		divisor = d
	}
	var limits, requests map[string]string
	if c.Resources != nil {
		limits, requests = c.Resources.Limits, c.Resources.Requests
	}
	lookup := func(key string, def resource.Quantity) (resource.Quantity, error) {
		if strings.HasPrefix(sel.Resource, "requests.") {
			if s, ok := requests[key]; ok {
				return parseQuantity(s)
			}
			if s, ok := limits[key]; ok {
				return parseQuantity(s)
			}
			return resource.Quantity{}, nil
		}
		if s, ok := limits[key]; ok {
			return parseQuantity(s)
		}
		return def, nil
	}
	switch sel.Resource {
	case "limits.cpu", "requests.cpu":
		q, err := lookup("cpu", *resource.NewQuantity(int64(runtime.NumCPU()), resource.DecimalSI))
		if err != nil {
			return "", err
		}
		if divisor.MilliValue() == 0 {
			return "", fmt.Errorf("resourceFieldRef: divisor %q is zero", sel.Divisor)
		}
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	case "limits.memory", "requests.memory", "limits.ephemeral-storage", "requests.ephemeral-storage":
		key := "memory"
		def := *resource.NewQuantity(hostMemory(), resource.BinarySI)
		if sel.Resource == "limits.ephemeral-storage" || sel.Resource == "requests.ephemeral-storage" {
			key = "ephemeral-storage"
			def = *resource.NewQuantity(0, resource.BinarySI)
		}
		q, err := lookup(key, def)
		if err != nil {
			return "", err
		}
		if divisor.Value() == 0 {
			return "", fmt.Errorf("resourceFieldRef: divisor %q is zero", sel.Divisor)
		}
		return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
	}
	return "", fmt.Errorf("resourceFieldRef %q is not supported", sel.Resource)
}

func hostMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return int64(si.Totalram) * int64(si.Unit)
}
