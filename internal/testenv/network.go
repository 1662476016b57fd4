package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Net is a private CNI network for one test.
type Net struct {
	// Name is the CNI network name, e.g. "berth-test-7".
	Name string
	// Bridge is the Linux bridge's name, e.g. "brt7".
	Bridge string
	// Subnet is the IPv4 subnet, e.g. "10.251.7.0/24".
	Subnet string
}

const netLockDir = "/run/berth-testenv"

// Network reserves a network (name, bridge and /24 subnet in 10.251.0.0/16)
// no other test on the machine uses at the same time, across test binaries:
// slot N is held by an flock on /run/berth-testenv/net-N.lock. A bridge and
// IP allocations left by an earlier crashed run are deleted first, and
// again when the test ends.
func Network(tb testing.TB) Net {
	tb.Helper()
	skipShort(tb)
	if err := os.MkdirAll(netLockDir, 0o755); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	for n := 1; n < 255; n++ {
		f, err := os.OpenFile(filepath.Join(netLockDir, fmt.Sprintf("net-%d.lock", n)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			tb.Fatalf("testenv: %v", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		net := Net{
			Name:   fmt.Sprintf("berth-test-%d", n),
			Bridge: fmt.Sprintf("brt%d", n),
			Subnet: fmt.Sprintf("10.251.%d.0/24", n),
		}
		// IP allocations live in the network's own host-local store; an
		// earlier run's are forgotten with its bridge.
		ipam := filepath.Join("/var/lib/cni/networks", net.Name)
		deleteLink(net.Bridge)
		os.RemoveAll(ipam)
		tb.Cleanup(func() {
			deleteLink(net.Bridge)
			os.RemoveAll(ipam)
			f.Close()
		})
		return net
	}
	tb.Fatal("testenv: no free test network slot")
	return Net{}
}

func deleteLink(name string) {
	if _, err := os.Stat(filepath.Join("/sys/class/net", name)); err != nil {
		return
	}
	_ = exec.Command("ip", "link", "delete", name).Run()
}
