package podspec

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"slices"
	"strings"

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

// Hostname is the pod's hostname: spec.hostname, else the pod's name; a
// hostNetwork pod has the host's (hostHostname, when known).
func Hostname(pod *reconcile.DesiredPod, hostHostname string) string {
	if pod.Spec.HostNetwork && hostHostname != "" {
		return hostHostname
	}
	if pod.Spec.Hostname != "" {
		return pod.Spec.Hostname
	}
	// As the kubelet does: a pod name longer than a hostname may be is
	// cut to 63 characters, without a trailing '-' or '.'.
	name := pod.ID.Name
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-.")
	}
	return name
}

// Host is what a pod's /etc files take from the host they run on, read
// by the runtime: its hostname, /etc/hosts (the base of a hostNetwork
// pod's) and resolv.conf (the upstream one when the host runs a loopback
// stub resolver; see LoopbackOnly).
type Host struct {
	Hostname      string
	Hosts, Resolv []byte
}

// EtcFiles returns the files a pod's containers see as /etc/hosts,
// /etc/hostname and /etc/resolv.conf, for a pod at ip on host.
func EtcFiles(pod *reconcile.DesiredPod, ip string, host Host) map[string][]byte {
	hostname := Hostname(pod, host.Hostname)
	var hostHosts []byte
	if pod.Spec.HostNetwork {
		hostHosts = host.Hosts
	}
	return map[string][]byte{
		"hosts": HostsFile(HostsInput{
			IP: ip, Hostname: hostname, Subdomain: pod.Spec.Subdomain, Namespace: pod.ID.Namespace,
			Aliases: pod.Spec.HostAliases, Host: hostHosts, HostNetwork: pod.Spec.HostNetwork,
		}),
		"hostname": []byte(hostname + "\n"),
		"resolv.conf": ResolvConf(ResolvInput{
			Host: host.Resolv, Policy: pod.Spec.DNSPolicy, Config: pod.Spec.DNSConfig, HostNetwork: pod.Spec.HostNetwork,
		}),
	}
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

// LoopbackOnly says whether a resolv.conf names only nameservers on
// loopback (a local stub resolver, which a pod with its own network
// cannot reach).
func LoopbackOnly(resolv []byte) bool {
	rc := parseResolvConf(resolv)
	for _, ns := range rc.nameservers {
		if ip := net.ParseIP(ns); ip == nil || !ip.IsLoopback() {
			return false
		}
	}
	return len(rc.nameservers) > 0
}
