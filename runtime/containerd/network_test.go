package containerd_test

import (
	"testing"

	gocni "github.com/containerd/go-cni"
	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/containerd"
)

func strp(s string) *string { return &s }

func TestHostsFile(t *testing.T) {
	aliases := []reconcile.HostAlias{
		{IP: "127.0.0.1", Hostnames: []string{"foo.local", "bar.local"}},
		{IP: "10.1.2.3", Hostnames: []string{"foo.remote", "bar.remote"}},
	}
	for _, tc := range []struct {
		name string
		in   containerd.HostsInput
		want string
	}{
		{"pod network", containerd.HostsInput{IP: "10.0.0.5", Hostname: "web"},
			"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.0.0.5\tweb\n"},
		{"subdomain and aliases", containerd.HostsInput{IP: "10.0.0.5", Hostname: "web-0", Subdomain: "web", Namespace: "shop", Aliases: aliases},
			"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
				"10.0.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n"},
		{"host network keeps the host's file", containerd.HostsInput{IP: "192.0.2.7", Hostname: "node", HostNetwork: true, Host: []byte("127.0.0.1 localhost\n192.0.2.7 node"), Aliases: aliases[:1]},
			"127.0.0.1 localhost\n192.0.2.7 node\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(containerd.HostsFile(tc.in))); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	host := []byte("# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org corp.example\noptions edns0 ndots:2\n")
	for _, tc := range []struct {
		name string
		in   containerd.ResolvInput
		want string
	}{
		{"default policy drops loopback", containerd.ResolvInput{Host: host},
			"nameserver 192.0.2.1\nsearch example.org corp.example\noptions edns0 ndots:2\n"},
		{"host network keeps loopback", containerd.ResolvInput{Host: host, Policy: containerd.DNSDefault, HostNetwork: true},
			"nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org corp.example\noptions edns0 ndots:2\n"},
		{"None with dnsConfig (custom-dns example)", containerd.ResolvInput{Host: host, Policy: containerd.DNSNone, Config: &reconcile.PodDNSConfig{
			Nameservers: []string{"192.0.2.1"},
			Searches:    []string{"ns1.svc.cluster-domain.example", "my.dns.search.suffix"},
			Options:     []reconcile.PodDNSConfigOption{{Name: "ndots", Value: strp("2")}, {Name: "edns0"}},
		}}, "nameserver 192.0.2.1\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\noptions ndots:2 edns0\n"},
		{"dnsConfig merges, dedups, overrides options, caps nameservers", containerd.ResolvInput{Host: host, Policy: containerd.DNSClusterFirst, Config: &reconcile.PodDNSConfig{
			Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"},
			Searches:    []string{"example.org", "extra.example"},
			Options:     []reconcile.PodDNSConfigOption{{Name: "ndots", Value: strp("5")}},
		}}, "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nsearch example.org corp.example extra.example\noptions edns0 ndots:5\n"},
		{"None without config is empty", containerd.ResolvInput{Host: host, Policy: containerd.DNSNone}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(containerd.ResolvConf(tc.in))); diff != "" {
				t.Errorf("resolv.conf (-want +got):\n%s", diff)
			}
		})
	}
}

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
