package containerd_test

import (
	"testing"

	gocni "github.com/containerd/go-cni"
	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
)

func TestPortMappings(t *testing.T) {
	pod := specPod(reconcile.Container{Name: "a", Ports: []reconcile.ContainerPort{
		{ContainerPort: 80, HostPort: 8080, Protocol: "TCP"},
		{ContainerPort: 53, HostPort: 5353, Protocol: "UDP", HostIP: "127.0.0.1"},
		{ContainerPort: 9000},
	}})
	want := []gocni.PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 5353, ContainerPort: 53, Protocol: "udp", HostIP: "127.0.0.1"},
	}
	if diff := cmp.Diff(want, containerd.PortMappings(pod)); diff != "" {
		t.Errorf("mappings (-want +got):\n%s", diff)
	}
}
