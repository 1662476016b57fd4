package podspec

import (
	"fmt"
	"math"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"berth.dev/berth/reconcile"
)

// Capacity is what a host has: a resourceFieldRef to an unset limit
// answers it, as on a kubelet.
type Capacity struct {
	CPUs   int64
	Memory int64 // bytes
}

func parseQuantity(s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return q, fmt.Errorf("quantity %q: %w", s, err)
	}
	return q, nil
}

// ResourceValue answers a resourceFieldRef (limits.cpu, requests.cpu,
// limits.memory, requests.memory, and the ephemeral-storage pair) of the
// named container of pod (containerName when the selector names none),
// divided by the divisor and rounded up, as Kubernetes does. An unset
// limit is the host's capacity, host.
func ResourceValue(pod *reconcile.DesiredPod, containerName string, sel *reconcile.ResourceFieldSelector, host Capacity) (string, error) {
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
		q, err := lookup("cpu", *resource.NewQuantity(host.CPUs, resource.DecimalSI))
		if err != nil {
			return "", err
		}
		if divisor.MilliValue() == 0 {
			return "", fmt.Errorf("resourceFieldRef: divisor %q is zero", sel.Divisor)
		}
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	case "limits.memory", "requests.memory", "limits.ephemeral-storage", "requests.ephemeral-storage":
		key := "memory"
		def := *resource.NewQuantity(host.Memory, resource.BinarySI)
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
