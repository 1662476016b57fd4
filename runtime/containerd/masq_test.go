package containerd_test

import (
	"crypto/sha512"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"

	"berth.dev/berth/runtime/containerd"
	"berth.dev/berth/runtime/runtimetest"
)

// natRules returns the lines of the nat table that contain s.
func natRules(t *testing.T, s string) []string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, s) {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestMasqueradeIsOneRuleSetForTheSubnet: berth's own network masquerades
// the pods' outbound traffic with one rule set for the subnet, made with
// the first pod and kept: no pod gets a chain of its own, so a pod's
// network costs the same with 1 or 200 pods. A pod made by an older berth
// (with the bridge plugin's chain per pod) loses its chain with the pod.
func TestMasqueradeIsOneRuleSetForTheSubnet(t *testing.T) {
	rt, e := newRuntime(t)
	a := runtimetest.NewPod("masq-a", runtimetest.Sleeper("main", testImage))
	b := runtimetest.NewPod("masq-b", runtimetest.Sleeper("main", testImage))
	runtimetest.Up(t, rt, a)
	runtimetest.Up(t, rt, b)

	chain := containerd.MasqueradeChain(e.net.Name)
	jump := natRules(t, `"`+containerd.MasqueradeComment(e.net.Name)+`"`)
	if len(jump) != 1 || !strings.Contains(jump[0], "-A POSTROUTING -s "+e.net.Subnet) || !strings.HasSuffix(jump[0], "-j "+chain) {
		t.Fatalf("POSTROUTING rules of the network's masquerade: %q, want one from %s to %s", jump, e.net.Subnet, chain)
	}
	want := []string{"-A " + chain + " -d " + e.net.Subnet + " -j RETURN", "-A " + chain + " -d 224.0.0.0/4 -j RETURN", "-A " + chain + " -j MASQUERADE"}
	if got := natRules(t, "-A "+chain+" "); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("chain %s:\n%s\nwant\n%s", chain, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := natRules(t, `name: \"`+e.net.Name+`\"`); len(got) > 0 {
		t.Fatalf("per-pod masquerade rules: %q", got)
	}

	// b as an older berth left it: the bridge plugin's own chain for its
	// CNI container ID and address.
	c := namespaces.WithNamespace(ctx(t), rt.Namespace())
	sb, err := rt.Client().ContainerService().Get(c, containerd.SandboxID(b.ID))
	if err != nil {
		t.Fatal(err)
	}
	cid, ip := sb.Labels[containerd.LabelCNIID], sb.Labels[containerd.LabelIP]
	sum := sha512.Sum512([]byte(e.net.Name + cid))
	old := fmt.Sprintf("CNI-%x", sum)[:28]
	comment := fmt.Sprintf("name: %q id: %q", e.net.Name, cid)
	for _, args := range [][]string{
		{"-N", old},
		{"-A", old, "-d", e.net.Subnet, "-m", "comment", "--comment", comment, "-j", "ACCEPT"},
		{"-A", "POSTROUTING", "-s", ip + "/32", "-m", "comment", "--comment", comment, "-j", old},
	} {
		if out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	if err := rt.RemovePod(ctx(t), b.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	if got := natRules(t, old); len(got) > 0 {
		t.Fatalf("the older berth's chain of a removed pod is left: %q", got)
	}
	if err := rt.RemovePod(ctx(t), a.ID, runtimetest.Grace); err != nil {
		t.Fatal(err)
	}
	// With no pod, the rule set stays for the next (the network does).
	if got := natRules(t, "-A "+chain+" "); len(got) != 3 {
		t.Fatalf("after the pods: chain %s has %q", chain, got)
	}
	// A new process makes it again if it was deleted.
	for _, args := range [][]string{{"-D", "POSTROUTING", "-s", e.net.Subnet, "-m", "comment", "--comment", containerd.MasqueradeComment(e.net.Name), "-j", chain}, {"-F", chain}} {
		if out, err := exec.Command("iptables", append([]string{"-w", "-t", "nat"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v: %s", args, err, out)
		}
	}
	rt2, _ := newRuntime(t)
	runtimetest.Up(t, rt2, runtimetest.NewPod("masq-c", runtimetest.Sleeper("main", testImage)))
	if got := natRules(t, "-A "+chain+" "); len(got) != 3 {
		t.Fatalf("after a new process's first pod: chain %s has %q", chain, got)
	}
	if got := natRules(t, `"`+containerd.MasqueradeComment(e.net.Name)+`"`); len(got) != 1 {
		t.Fatalf("after a new process's first pod: jumps %q", got)
	}
}
