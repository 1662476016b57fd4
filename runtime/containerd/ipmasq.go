package containerd

import (
	"bufio"
	"bytes"
	"crypto/sha512"
	"fmt"
	"os/exec"
	"strings"
)

// The bridge plugin (containernetworking-plugins 1.1) tears down its
// ipMasq rules only when it finds the pod's interface in the network
// namespace: with the namespace gone, CNI DEL releases the address but
// leaves a POSTROUTING rule and a CNI-… chain in the nat table. For berth's
// own network, teardownIPMasq removes what the plugin would have, found by
// the chain name and comment the plugin derives from the network name and
// container ID.

// ipMasqChain is the plugin's utils.FormatChainName.
func ipMasqChain(network, id string) string {
	sum := sha512.Sum512([]byte(network + id))
	return fmt.Sprintf("CNI-%x", sum)[:28]
}

// ipMasqComment is the plugin's utils.FormatComment.
func ipMasqComment(network, id string) string {
	return fmt.Sprintf("name: %q id: %q", network, id)
}

func teardownIPMasq(network, id string) error {
	chain := ipMasqChain(network, id)
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		return fmt.Errorf("iptables-save: %w", err)
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// -A POSTROUTING -s 10.88.0.2/32 -m comment --comment "…" -j CNI-…
		if len(f) < 4 || f[0] == "" || f[0][0] == '#' {
			continue
		}
		if f[0] == ":"+chain {
			found = true
		}
		if f[0] != "-A" || f[1] != "POSTROUTING" || f[len(f)-1] != chain || f[2] != "-s" {
			continue
		}
		found = true
		del := exec.Command("iptables", "-t", "nat", "-D", "POSTROUTING", "-s", f[3], "-j", chain,
			"-m", "comment", "--comment", ipMasqComment(network, id))
		if b, err := del.CombinedOutput(); err != nil {
			return fmt.Errorf("iptables delete masquerade rule: %v: %s", err, b)
		}
	}
	if !found {
		return nil
	}
	for _, args := range [][]string{{"-F", chain}, {"-X", chain}} {
		cmd := exec.Command("iptables", append([]string{"-t", "nat"}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(b), "No chain") {
			return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, b)
		}
	}
	return nil
}
