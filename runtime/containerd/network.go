package containerd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	gocni "github.com/containerd/go-cni"

	"berth.dev/berth/reconcile"
)

// Kubernetes' limits on a pod's resolv.conf (kubelet's validation).
const (
	maxDNSNameservers = 3
	maxDNSSearches    = 32
)

// DNS policies.
const (
	DNSClusterFirst            = "ClusterFirst"
	DNSClusterFirstWithHostNet = "ClusterFirstWithHostNet"
	DNSDefault                 = "Default"
	DNSNone                    = "None"
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

// HostsInput is what a pod's /etc/hosts is made of.
type HostsInput struct {
	// IP is the pod's address; empty when it has none yet.
	IP string
	// Hostname and Subdomain name the pod; a subdomain adds the FQDN
	// "<hostname>.<subdomain>.<namespace>.svc.<clusterDomain>" as
	// Kubernetes does.
	Hostname, Subdomain, Namespace string
	// Aliases are the pod's hostAliases.
	Aliases []reconcile.HostAlias
	// Host is the host's /etc/hosts; with HostNetwork it is the base of the
	// pod's file, as on a kubelet.
	Host        []byte
	HostNetwork bool
}

// ClusterDomain is the DNS domain pod FQDNs are formed in, as on a default
// Kubernetes cluster.
const ClusterDomain = "cluster.local"

// HostsFile returns the pod's /etc/hosts in the kubelet's layout: the
// loopback entries and the pod's own name (or, for a hostNetwork pod, the
// host's file), then the hostAliases.
func HostsFile(in HostsInput) []byte {
	var b bytes.Buffer
	if in.HostNetwork {
		b.Write(in.Host)
		if len(in.Host) > 0 && in.Host[len(in.Host)-1] != '\n' {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString("# Kubernetes-managed hosts file.\n")
		b.WriteString("127.0.0.1\tlocalhost\n")
		b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
		b.WriteString("fe00::0\tip6-localnet\n")
		b.WriteString("fe00::0\tip6-mcastprefix\n")
		b.WriteString("fe00::1\tip6-allnodes\n")
		b.WriteString("fe00::2\tip6-allrouters\n")
		if in.IP != "" {
			if in.Subdomain != "" {
				fmt.Fprintf(&b, "%s\t%s.%s.%s.svc.%s\t%s\n", in.IP, in.Hostname, in.Subdomain, in.Namespace, ClusterDomain, in.Hostname)
			} else {
				fmt.Fprintf(&b, "%s\t%s\n", in.IP, in.Hostname)
			}
		}
	}
	if len(in.Aliases) > 0 {
		b.WriteString("\n# Entries added by HostAliases.\n")
		for _, a := range in.Aliases {
			if len(a.Hostnames) == 0 {
				continue
			}
			fmt.Fprintf(&b, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
		}
	}
	return b.Bytes()
}

// resolvConf is a parsed resolv.conf.
type resolvConf struct {
	nameservers, searches, options []string
}

func parseResolvConf(b []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "nameserver":
			rc.nameservers = append(rc.nameservers, f[1])
		case "search":
			rc.searches = f[1:] // the last search line wins
		case "domain":
			rc.searches = f[1:2]
		case "options":
			rc.options = append(rc.options, f[1:]...)
		}
	}
	return rc
}

// ResolvInput is what a pod's /etc/resolv.conf is made of.
type ResolvInput struct {
	// Host is the host's resolv.conf.
	Host []byte
	// Policy is the pod's dnsPolicy (default ClusterFirst) and Config its
	// dnsConfig.
	Policy      string
	Config      *reconcile.PodDNSConfig
	HostNetwork bool
}

// ResolvConf returns the pod's /etc/resolv.conf. A host has no cluster
// DNS, so ClusterFirst and ClusterFirstWithHostNet behave as Default, as on
// a kubelet configured without cluster DNS: the host's file, less
// nameservers on loopback when the pod has its own network (a local stub
// resolver is not reachable from there). None starts empty. dnsConfig
// then adds nameservers and searches (duplicates dropped, Kubernetes'
// limits of 3 and 32 applied) and options (a later option of the same
// name wins).
func ResolvConf(in ResolvInput) []byte {
	var rc resolvConf
	if in.Policy != DNSNone {
		rc = parseResolvConf(in.Host)
		if !in.HostNetwork {
			rc.nameservers = slices.DeleteFunc(rc.nameservers, func(s string) bool {
				ip := net.ParseIP(s)
				return ip != nil && ip.IsLoopback()
			})
		}
	}
	if c := in.Config; c != nil {
		for _, ns := range c.Nameservers {
			if !slices.Contains(rc.nameservers, ns) {
				rc.nameservers = append(rc.nameservers, ns)
			}
		}
		for _, s := range c.Searches {
			if !slices.Contains(rc.searches, s) {
				rc.searches = append(rc.searches, s)
			}
		}
		for _, o := range c.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			rc.options = slices.DeleteFunc(rc.options, func(s string) bool {
				name, _, _ := strings.Cut(s, ":")
				return name == o.Name
			})
			rc.options = append(rc.options, opt)
		}
	}
	if len(rc.nameservers) > maxDNSNameservers {
		rc.nameservers = rc.nameservers[:maxDNSNameservers]
	}
	if len(rc.searches) > maxDNSSearches {
		rc.searches = rc.searches[:maxDNSSearches]
	}
	var b bytes.Buffer
	for _, ns := range rc.nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", ns)
	}
	if len(rc.searches) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(rc.searches, " "))
	}
	if len(rc.options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(rc.options, " "))
	}
	return b.Bytes()
}

// hostResolvConf reads the host's resolv.conf. When it names only
// loopback stub resolvers and systemd-resolved keeps the upstream list,
// that list is used instead for pods with their own network.
func hostResolvConf(hostNetwork bool) ([]byte, error) {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if hostNetwork {
		return b, nil
	}
	rc := parseResolvConf(b)
	onlyLoopback := len(rc.nameservers) > 0
	for _, ns := range rc.nameservers {
		if ip := net.ParseIP(ns); ip == nil || !ip.IsLoopback() {
			onlyLoopback = false
		}
	}
	if onlyLoopback {
		if up, err := os.ReadFile("/run/systemd/resolve/resolv.conf"); err == nil {
			return up, nil
		}
	}
	return b, nil
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
