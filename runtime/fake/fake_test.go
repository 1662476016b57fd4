package fake_test

import (
	"sync"
	"testing"

	"berth.dev/berth/reconcile"
	"berth.dev/berth/runtime/fake"
	"berth.dev/berth/runtime/runtimetest"
	"github.com/google/go-cmp/cmp"
)

const image = "example.local/busybox:1"

// TestContract holds the fake to the behaviour the real runtime has.
func TestContract(t *testing.T) {
	var mu sync.Mutex
	byTest := map[*testing.T]*fake.Runtime{}
	runtimetest.Run(t, func(t *testing.T) (reconcile.Runtime, string) {
		mu.Lock()
		defer mu.Unlock()
		// A second call for the same test is an agent restarted on the same
		// host: it sees the same record.
		rt, ok := byTest[t]
		if !ok {
			rt = fake.New(image)
			byTest[t] = rt
		}
		return rt, image
	})
}

// The fake writes a pod's /etc files as the real runtime does: through
// podspec, on the fake's Host.
func TestEtcFilesAsTheRealRuntime(t *testing.T) {
	rt := fake.New(image)
	pod := runtimetest.NewPod("web-0", runtimetest.Sleeper("app", image))
	pod.Spec.Subdomain = "web"
	pod.Spec.HostAliases = []reconcile.HostAlias{{IP: "192.0.2.9", Hostnames: []string{"db", "db.local"}}}
	pod.Spec.DNSConfig = &reconcile.PodDNSConfig{Searches: []string{"svc.example"}}
	runtimetest.Up(t, rt, pod)
	ip := runtimetest.MustList(t, rt)[0].IP
	want := map[string]string{
		"hostname": "web-0\n",
		"hosts": "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			"fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n" +
			ip + "\tweb-0.web.default.svc.cluster.local\tweb-0\n\n# Entries added by HostAliases.\n192.0.2.9\tdb\tdb.local\n",
		// The host's loopback stub is not reachable from the pod's network.
		"resolv.conf": "nameserver 192.0.2.53\nsearch example.internal svc.example\n",
	}
	for name, w := range want {
		got, ok := rt.EtcFile(pod.ID, name)
		if !ok {
			t.Errorf("no /etc/%s", name)
			continue
		}
		if diff := cmp.Diff(w, string(got)); diff != "" {
			t.Errorf("/etc/%s (-want +got):\n%s", name, diff)
		}
	}
}
