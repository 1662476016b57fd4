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

// Masquerading for berth's own network is one rule set for the whole pod
// subnet, not the bridge plugin's chain per pod: the plugin's ipMasq runs
// iptables about nine times on every CNI ADD and DEL, each run reading the
// whole nat table, so a pod's network set-up and teardown cost grew with
// the number of pods. The set is a chain, MasqueradeChain(network):
//
//	-d <subnet> -j RETURN          (pod to pod: not masqueraded)
//	-d 224.0.0.0/4 -j RETURN       (multicast: as the plugin)
//	-j MASQUERADE
//
// jumped to from POSTROUTING for traffic from the subnet, with the comment
// MasqueradeComment(network). ensureMasquerade writes it before a
// process's first CNI ADD; it stays while berth's network does.

// MasqueradeChain is the nat chain of network's masquerade rule set.
func MasqueradeChain(network string) string {
	sum := sha512.Sum512([]byte(network))
	return fmt.Sprintf("BERTH-MASQ-%x", sum)[:28]
}

// MasqueradeComment marks the POSTROUTING rule that jumps to it.
func MasqueradeComment(network string) string {
	return "berth masquerade: " + network
}

// ensureMasquerade writes the network's masquerade chain (afresh) and
// adds the POSTROUTING jump to it unless it is there.
func ensureMasquerade(network, subnet string) error {
	chain := MasqueradeChain(network)
	restore := exec.Command("iptables-restore", "-w", "--noflush")
	restore.Stdin = strings.NewReader(fmt.Sprintf("*nat\n:%s - [0:0]\n-F %s\n-A %s -d %s -j RETURN\n-A %s -d 224.0.0.0/4 -j RETURN\n-A %s -j MASQUERADE\nCOMMIT\n",
		chain, chain, chain, subnet, chain, chain))
	if b, err := restore.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore masquerade chain: %v: %s", err, b)
	}
	jump := []string{"POSTROUTING", "-s", subnet, "-m", "comment", "--comment", MasqueradeComment(network), "-j", chain}
	if exec.Command("iptables", append([]string{"-w", "-t", "nat", "-C"}, jump...)...).Run() == nil {
		return nil
	}
	if b, err := exec.Command("iptables", append([]string{"-w", "-t", "nat", "-A"}, jump...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("iptables add masquerade rule: %v: %s", err, b)
	}
	return nil
}

// masquerade runs ensureMasquerade for berth's own network once in this
// process (again after a failure): before its first CNI ADD, so a pod
// made by any berth process has its outbound traffic masqueraded, and
// rules deleted by hand come back with the next pod.
func (r *Runtime) masquerade() error {
	r.masqMu.Lock()
	defer r.masqMu.Unlock()
	if r.masqDone {
		return nil
	}
	if err := ensureMasquerade(r.ownNetwork, r.ownSubnet); err != nil {
		return err
	}
	r.masqDone = true
	return nil
}

// legacyMasq reports whether the nat table holds the bridge plugin's
// masquerade chain of CNI container cid: a pod an older berth made, with
// ipMasq on. The table is read once per process (such chains predate it;
// berth makes none), not on every pod's removal; again after a failed read,
// which answers true so that teardownIPMasq reports the failure.
func (r *Runtime) legacyMasq(cid string) bool {
	r.masqMu.Lock()
	defer r.masqMu.Unlock()
	if r.legacyChains == nil {
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		if err != nil {
			return true
		}
		r.legacyChains = map[string]bool{}
		for _, l := range strings.Split(string(out), "\n") {
			if decl, ok := strings.CutPrefix(l, ":"); ok {
				name, _, _ := strings.Cut(decl, " ")
				r.legacyChains[name] = true
			}
		}
	}
	return r.legacyChains[ipMasqChain(r.ownNetwork, cid)]
}
