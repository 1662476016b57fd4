package main

import (
	"strings"
	"testing"
	"time"
)

func configRepo(greeting string) map[string]string {
	return map[string]string{
		"config.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: greeting}
data: {text: "` + greeting + `"}
---
apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {value: "s3cret"}
`,
		"reader.yaml": `apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
    - name: cfg
      configMap: {name: greeting}
  containers:
    - name: main
      image: ` + testImage + `
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
      env:
        - name: TOKEN
          valueFrom: {secretKeyRef: {name: token, key: value}}
      volumeMounts: [{name: cfg, mountPath: /etc/cfg}]
`,
		"bystander.yaml": sleeper("bystander", "3600"),
	}
}

func TestConfigMapChangeReplacesOnlyItsPods(t *testing.T) {
	h := newHost(t)
	for f, c := range configRepo("hello") {
		h.write(f, c)
	}
	h.commit("v1")
	h.mustBerth("apply", "--repo", h.repo)
	read := func() string {
		code, out, errOut := h.berth("exec", "reader", "--", "sh", "-c", `cat /etc/cfg/text; echo " $TOKEN"`)
		if code != 0 {
			t.Fatalf("exec: %d %s", code, errOut)
		}
		return out
	}
	if got := read(); got != "hello s3cret\n" {
		t.Errorf("reader sees %q", got)
	}
	before := h.pids()
	h.write("config.yaml", configRepo("bonjour")["config.yaml"])
	h.commit("v2")
	plan := h.mustBerthCode(2, "plan", "--repo", h.repo)
	if !strings.Contains(plan, "reader") || strings.Contains(plan, "replace default/bystander") {
		t.Errorf("plan after the ConfigMap change:\n%s", plan)
	}
	h.mustBerth("apply", "--repo", h.repo)
	after := h.pids()
	if before["bystander/main"] != after["bystander/main"] {
		t.Errorf("the pod that does not use the ConfigMap was restarted")
	}
	if before["reader/main"] == after["reader/main"] {
		t.Errorf("the pod that uses the ConfigMap was not replaced")
	}
	deadline := time.Now().Add(10 * time.Second)
	for read() != "bonjour s3cret\n" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := read(); got != "bonjour s3cret\n" {
		t.Errorf("after the change the reader sees %q", got)
	}
}

// mustBerthCode runs berth and fails unless it exits with code.
func (h *host) mustBerthCode(code int, args ...string) string {
	h.t.Helper()
	got, out, errOut := h.berth(args...)
	if got != code {
		h.t.Fatalf("berth %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, got, code, out, errOut)
	}
	return out
}
