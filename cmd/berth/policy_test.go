package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNodePolicyFlagsAndFile(t *testing.T) {
	h := newHost(t)
	dir := t.TempDir()
	h.write("risky.yaml", `apiVersion: v1
kind: Pod
metadata:
  name: risky
spec:
  terminationGracePeriodSeconds: 1
  volumes:
    - name: dev
      hostPath: {path: `+strconv.Quote(dir)+`}
  containers:
    - name: main
      image: `+testImage+`
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
      securityContext:
        capabilities: {add: [NET_ADMIN]}
      volumeMounts: [{name: dev, mountPath: /dev-host}]
`)
	h.commit("risky")
	code, _, errOut := h.berth("apply", "--repo", h.repo)
	for _, want := range []string{
		"spec.volumes[0].hostPath.path", "--allow-host-path",
		"spec.containers[0].securityContext.capabilities.add[0]", "--allow-capability=NET_ADMIN",
	} {
		if code == 0 || !strings.Contains(errOut, want) {
			t.Errorf("apply under the default policy: exit %d, stderr %q; want it to name %q", code, errOut, want)
		}
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("capabilities: [NET_ADMIN]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.mustBerth("apply", "--repo", h.repo, "--node-policy", policy, "--allow-host-path", dir)
	if p, ok := h.pods()["risky"]; !ok || len(p.Containers) != 1 {
		t.Errorf("after opting in, pod risky: %+v", p)
	}
}
