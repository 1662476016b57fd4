package containerd

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"

	gocni "github.com/containerd/go-cni"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

// PortMappings returns the hostPort mappings of the pod's containers (app
// and init), in the form the CNI portmap plugin takes. Ports without a
// hostPort are not mapped.
func PortMappings(pod *reconcile.DesiredPod) []gocni.PortMapping {
	var out []gocni.PortMapping
	for _, cs := range [][]reconcile.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				if p.HostPort == 0 {
					continue
				}
				proto := strings.ToLower(p.Protocol)
				if proto == "" {
					proto = "tcp"
				}
				out = append(out, gocni.PortMapping{
					HostPort:      p.HostPort,
					ContainerPort: p.ContainerPort,
					Protocol:      proto,
					HostIP:        p.HostIP,
				})
			}
		}
	}
	return out
}

func encodePorts(ports []gocni.PortMapping) string {
	if len(ports) == 0 {
		return ""
	}
	b, _ := json.Marshal(ports)
	return string(b)
}

func decodePorts(s string) ([]gocni.PortMapping, error) {
	if s == "" {
		return nil, nil
	}
	var out []gocni.PortMapping
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("port mappings label: %w", err)
	}
	return out, nil
}

// hostFacts reads what a pod's /etc files take from this host (see
// podspec.Host): the hostname, /etc/hosts for a hostNetwork pod, and
// resolv.conf; when it names only loopback stub resolvers and
// systemd-resolved keeps the upstream list, a pod with its own network
// gets that list, as on a kubelet.
func hostFacts(hostNetwork bool) (podspec.Host, error) {
	var h podspec.Host
	h.Hostname, _ = os.Hostname()
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		return h, err
	}
	h.Resolv = b
	if !hostNetwork && podspec.LoopbackOnly(b) {
		if up, err := os.ReadFile("/run/systemd/resolve/resolv.conf"); err == nil {
			h.Resolv = up
		}
	}
	if hostNetwork {
		if h.Hosts, err = os.ReadFile("/etc/hosts"); err != nil && !os.IsNotExist(err) {
			return h, err
		}
	}
	return h, nil
}

// podHostname is the pod's hostname on this host (podspec.Hostname).
func podHostname(pod *reconcile.DesiredPod) string {
	h, _ := os.Hostname()
	return podspec.Hostname(pod, h)
}

// hostIP returns the host's primary address: the source address of its
// default route, else its first global unicast address.
func hostIP() string {
	if c, err := net.Dial("udp", "192.0.2.1:9"); err == nil {
		// A UDP "connection" sends nothing; it only picks a route.
		defer c.Close()
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
			return a.IP.String()
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
