package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
		RemoveMasquerade(net.Name)
		tb.Cleanup(func() {
			deleteLink(net.Bridge)
			os.RemoveAll(ipam)
			RemoveMasquerade(net.Name)
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

// RemoveMasquerade deletes berth's masquerade rule set of the network (the
// POSTROUTING rule with the comment "berth masquerade: <network>" and the
// chain it jumps to), which stays while the network does.
func RemoveMasquerade(network string) {
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return
	}
	comment := "berth masquerade: " + network
	for _, l := range strings.Split(string(out), "\n") {
		// -A POSTROUTING -s <subnet> -m comment --comment "<comment>" -j <chain>
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "-A" || f[1] != "POSTROUTING" || f[2] != "-s" || !strings.Contains(l, `"`+comment+`"`) {
			continue
		}
		chain := f[len(f)-1]
		_ = exec.Command("iptables", "-w", "-t", "nat", "-D", "POSTROUTING", "-s", f[3], "-m", "comment", "--comment", comment, "-j", chain).Run()
		_ = exec.Command("iptables", "-w", "-t", "nat", "-F", chain).Run()
		_ = exec.Command("iptables", "-w", "-t", "nat", "-X", chain).Run()
	}
}
