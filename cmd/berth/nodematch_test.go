package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

// otherArch is an architecture this host is not.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

// archPod is a pod selecting nodes by the labels kubelet sets.
func archPod(name, key, value string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n  nodeSelector: {" + key + ": " + value + "}\n  containers: [{name: a, image: busybox}]\n"
}

// TestNotForThisNode checks that a pod selecting another architecture is
// named as not for this node, with the reason, by vet and plan, and that a
// pod selecting this host's OS by kubelet's labels (current and beta) is
// planned.
func TestNotForThisNode(t *testing.T) {
	files := map[string]string{
		"arm.yaml":   archPod("arm", "kubernetes.io/arch", otherArch()),
		"linux.yaml": archPod("linux", "kubernetes.io/os", runtime.GOOS),
		"beta.yaml":  archPod("beta", "beta.kubernetes.io/os", runtime.GOOS),
		"host.yaml":  archPod("host", "kubernetes.io/hostname", "host-1"),
	}
	reason := "Pod/default/arm (./arm.yaml:1:1): not for this node: nodeSelector kubernetes.io/arch=" + otherArch() + ": node label is kubernetes.io/arch=" + runtime.GOARCH

	code, out, errOut := vet(t, "--node-name", "Host-1", writeRepo(t, files))
	if code != 0 || !strings.Contains(out, "skip "+reason+"\n") {
		t.Errorf("vet: exit %d, want 0 and a skip line %q; stdout:\n%s\nstderr:\n%s", code, reason, out, errOut)
	}
	code, out, _ = vet(t, "-o", "json", "--node-name", "host-1", writeRepo(t, files))
	var rep vetReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || len(rep.NotForNode) != 1 || rep.NotForNode[0].Object != "Pod/default/arm" {
		t.Errorf("vet -o json: exit %d, %v, notForNode %+v", code, err, rep.NotForNode)
	}

	r := newGitRepo(t)
	r.commit(map[string]string{"keep.yaml": archPod("keep", "kubernetes.io/os", runtime.GOOS)})
	r.git("checkout", "-q", "-b", "head")
	r.commit(files)
	code, out, errOut = runBerth(t, "plan", "--repo", r.dir, "--base", "main", "--head", "head")
	for _, w := range []string{"create  pod default/linux", "create  pod default/beta", "create  pod default/host", "skip " + reason + "\n", "plan: 3 to create, 0 to replace, 0 to delete, 1 unchanged"} {
		if !strings.Contains(out, w) {
			t.Errorf("plan output lacks %q (exit %d):\n%s\n%s", w, code, out, errOut)
		}
	}
	_, out, _ = runBerth(t, "plan", "--repo", r.dir, "--base", "main", "--head", "head", "-o", "markdown")
	if !strings.Contains(out, "**Not for this node**") || !strings.Contains(out, "Pod/default/arm") {
		t.Errorf("markdown plan does not name the pod not for this node:\n%s", out)
	}
}
