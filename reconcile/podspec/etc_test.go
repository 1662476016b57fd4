package podspec_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/reconcile/podspec"
)

func strp(s string) *string { return &s }

func TestHostsFile(t *testing.T) {
	aliases := []reconcile.HostAlias{
		{IP: "127.0.0.1", Hostnames: []string{"foo.local", "bar.local"}},
		{IP: "10.1.2.3", Hostnames: []string{"foo.remote", "bar.remote"}},
	}
	for _, tc := range []struct {
		name string
		in   podspec.HostsInput
		want string
	}{
		{"pod network", podspec.HostsInput{IP: "10.0.0.5", Hostname: "web"},
			"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n10.0.0.5\tweb\n"},
		{"subdomain and aliases", podspec.HostsInput{IP: "10.0.0.5", Hostname: "web-0", Subdomain: "web", Namespace: "shop", Aliases: aliases},
			"# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
				"10.0.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n"},
		{"host network keeps the host's file", podspec.HostsInput{IP: "192.0.2.7", Hostname: "node", HostNetwork: true, Host: []byte("127.0.0.1 localhost\n192.0.2.7 node"), Aliases: aliases[:1]},
			"127.0.0.1 localhost\n192.0.2.7 node\n\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(podspec.HostsFile(tc.in))); diff != "" {
				t.Errorf("hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	host := []byte("# generated\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org corp.example\noptions edns0 ndots:2\n")
	for _, tc := range []struct {
		name string
		in   podspec.ResolvInput
		want string
	}{
		{"default policy drops loopback", podspec.ResolvInput{Host: host},
			"nameserver 192.0.2.1\nsearch example.org corp.example\noptions edns0 ndots:2\n"},
		{"host network keeps loopback", podspec.ResolvInput{Host: host, Policy: podspec.DNSDefault, HostNetwork: true},
			"nameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch example.org corp.example\noptions edns0 ndots:2\n"},
		{"None with dnsConfig (custom-dns example)", podspec.ResolvInput{Host: host, Policy: podspec.DNSNone, Config: &reconcile.PodDNSConfig{
			Nameservers: []string{"192.0.2.1"},
			Searches:    []string{"ns1.svc.cluster-domain.example", "my.dns.search.suffix"},
			Options:     []reconcile.PodDNSConfigOption{{Name: "ndots", Value: strp("2")}, {Name: "edns0"}},
		}}, "nameserver 192.0.2.1\nsearch ns1.svc.cluster-domain.example my.dns.search.suffix\noptions ndots:2 edns0\n"},
		{"dnsConfig merges, dedups, overrides options, caps nameservers", podspec.ResolvInput{Host: host, Policy: podspec.DNSClusterFirst, Config: &reconcile.PodDNSConfig{
			Nameservers: []string{"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"},
			Searches:    []string{"example.org", "extra.example"},
			Options:     []reconcile.PodDNSConfigOption{{Name: "ndots", Value: strp("5")}},
		}}, "nameserver 192.0.2.1\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nsearch example.org corp.example extra.example\noptions edns0 ndots:5\n"},
		{"None without config is empty", podspec.ResolvInput{Host: host, Policy: podspec.DNSNone}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, string(podspec.ResolvConf(tc.in))); diff != "" {
				t.Errorf("resolv.conf (-want +got):\n%s", diff)
			}
		})
	}
}
