package reconcile

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckPolicy(t *testing.T) {
	yes := true
	risky := PodSpec{
		HostNetwork: true, HostPID: true,
		Volumes: []Volume{
			{Name: "dev", HostPath: &HostPathVolumeSource{Path: "/dev/ttyUSB0"}},
			{Name: "data", HostPath: &HostPathVolumeSource{Path: "/srv/data/../../etc"}},
			{Name: "ok", HostPath: &HostPathVolumeSource{Path: "/srv/data/app"}},
			{Name: "tmp", EmptyDir: &EmptyDirVolumeSource{}},
		},
		InitContainers: []Container{{Name: "init", SecurityContext: &SecurityContext{Privileged: &yes}}},
		Containers: []Container{{
			Name:  "app",
			Ports: []ContainerPort{{ContainerPort: 80, HostPort: 8080}, {ContainerPort: 9090}},
			SecurityContext: &SecurityContext{Capabilities: &Capabilities{
				Add: []string{"NET_BIND_SERVICE", "CAP_NET_ADMIN", "sys_time"}, Drop: []string{"ALL"}}},
		}},
	}
	fields := func(err error) []string {
		var out []string
		var pe *PolicyError
		for _, e := range unjoin(err) {
			if errors.As(e, &pe) {
				out = append(out, pe.Field+" "+pe.Policy)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		pol  NodePolicy
		want []string
	}{
		{"default refuses all of it", NodePolicy{HostPaths: []string{"/srv/data"}}, []string{
			"spec.hostNetwork --allow-host-namespaces",
			"spec.hostPID --allow-host-namespaces",
			"spec.volumes[0].hostPath.path --allow-host-path",
			"spec.volumes[1].hostPath.path --allow-host-path",
			"spec.initContainers[0].securityContext.privileged --allow-privileged",
			"spec.containers[0].securityContext.capabilities.add[1] --allow-capability=NET_ADMIN",
			"spec.containers[0].securityContext.capabilities.add[2] --allow-capability=SYS_TIME",
			"spec.containers[0].ports[0].hostPort --allow-host-ports",
		}},
		{"opted in", NodePolicy{Privileged: true, HostNamespaces: true, HostPorts: true,
			Capabilities: []string{"net_admin", "CAP_SYS_TIME"}, HostPaths: []string{"/dev", "/"}}, nil},
		{"ALL capabilities", NodePolicy{Privileged: true, HostNamespaces: true, HostPorts: true,
			Capabilities: []string{"ALL"}, HostPaths: []string{"/dev/ttyUSB0", "/etc", "/srv/data"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPolicy(&risky, tc.pol)
			if diff := cmp.Diff(tc.want, fields(err)); diff != "" {
				t.Errorf("refusals (-want +got):\n%s", diff)
			}
		})
	}
	err := CheckPolicy(&risky, NodePolicy{})
	if msg := err.Error(); !strings.Contains(msg, `spec.volumes[0].hostPath.path: hostPath "/dev/ttyUSB0" is refused by this node's policy (allow it with --allow-host-path)`) {
		t.Errorf("message %q does not name the field and the policy", msg)
	}
	if err := CheckPolicy(&PodSpec{Containers: []Container{{Name: "plain"}}}, NodePolicy{}); err != nil {
		t.Errorf("a plain pod: %v", err)
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
