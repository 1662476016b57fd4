package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"berth.dev/berth/agent"
	"berth.dev/berth/secrets/secretstest"
)

// Encrypted secrets, end to end: files encrypted with the sops command
// built from berth's own SOPS module version, applied on real containerd.

// Canary values: no output, record, log, label or file of berth may hold
// them; only the pod's environment and its tmpfs volume do.
const (
	canaryDB  = "canary-db-5e1f0c-plaintext"
	canaryDB2 = "canary-db-rotated-9a7d21"
	canaryAPI = "canary-api-33b8e4-plaintext"
)

func secretDoc(name, value string) string {
	return `apiVersion: v1
kind: Secret
metadata:
  name: ` + name + `
type: Opaque
stringData:
  value: ` + value + `
`
}

// secretReader is a pod that needs Secret name in its environment and as a
// file.
func secretReader(pod, secret string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + pod + `
spec:
  terminationGracePeriodSeconds: 1
  volumes:
    - name: s
      secret: {secretName: ` + secret + `}
  containers:
    - name: main
      image: ` + testImage + `
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
      env:
        - name: VALUE
          valueFrom: {secretKeyRef: {name: ` + secret + `, key: value}}
      volumeMounts: [{name: s, mountPath: /etc/s}]
`
}

func TestEncryptedSecretsEndToEnd(t *testing.T) {
	h := newHost(t)
	sinks := &sinkLog{}

	// The device makes its identity; "other" is another device.
	keygenOut := h.mustBerth("keygen")
	device := strings.TrimSpace(keygenOut)
	if !strings.HasPrefix(device, "age1") {
		t.Fatalf("berth keygen printed %q, want an age public key", keygenOut)
	}
	idFile := filepath.Join(h.state, "secrets", "age.key")
	if fi, err := os.Stat(idFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v %v", fi, err)
	}
	if again := h.mustBerth("keygen"); strings.TrimSpace(again) != device {
		t.Errorf("second keygen printed %q, want the same key %q", again, device)
	}
	other := secretstest.NewIdentity(t)
	third := secretstest.NewIdentity(t)
	dataOnly := []string{"--encrypted-regex", "^(data|stringData)$"}
	encrypt := func(doc string, recipients ...string) string {
		return string(secretstest.Encrypt(t, doc, recipients, dataOnly...))
	}

	h.write("db.yaml", encrypt(secretDoc("db", canaryDB), device, other.Recipient))
	h.write("api.yaml", encrypt(secretDoc("api", canaryAPI), other.Recipient))
	h.write("app.yaml", secretReader("app", "db"))
	h.write("waiter.yaml", secretReader("waiter", "api"))
	h.write("bystander.yaml", sleeper("bystander", "3600"))
	h.commit("v1")

	apply := func(args ...string) string {
		t.Helper()
		code, out, errOut := h.berth(append([]string{"apply", "--repo", h.repo, "--log-level", "trace"}, args...)...)
		sinks.add("apply stdout", out)
		sinks.add("apply stderr", errOut)
		if code != 0 {
			t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
		}
		return out
	}
	read := func(pod string) string {
		t.Helper()
		code, out, errOut := h.berth("exec", pod, "--", "sh", "-c", `echo "$VALUE $(cat /etc/s/value)"`)
		if code != 0 {
			t.Fatalf("exec %s: %d %s", pod, code, errOut)
		}
		return strings.TrimSpace(out)
	}

	// The device runs the pod whose Secret it can read, with the value;
	// the pod whose Secret is for another device waits; the rest runs.
	out := apply()
	if !strings.Contains(out, "Pod/default/waiter waits for Secret api") {
		t.Errorf("apply does not say which pod waits:\n%s", out)
	}
	pods := h.pods()
	if _, ok := pods["waiter"]; ok {
		t.Error("the pod needing a Secret for another device was started")
	}
	for _, p := range []string{"app", "bystander"} {
		if _, ok := pods[p]; !ok {
			t.Errorf("pod %s is not running", p)
		}
	}
	if got := read("app"); got != canaryDB+" "+canaryDB {
		t.Errorf("app sees %q, want the decrypted value in env and file", got)
	}
	status := h.mustBerth("status")
	sinks.add("status", status)
	if !strings.Contains(status, "./waiter.yaml:1:1: Pod/default/waiter waits for Secret api: not encrypted to this device's age identity") {
		t.Errorf("status does not say why waiter is not started:\n%s", status)
	}
	sinks.add("status json", h.mustBerth("status", "-o", "json"))
	before := h.pids()

	// Re-encrypting the same values (new data key, one more recipient)
	// changes nothing.
	h.write("db.yaml", encrypt(secretDoc("db", canaryDB), device, other.Recipient, third.Recipient))
	h.write("api.yaml", encrypt(secretDoc("api", canaryAPI), other.Recipient, third.Recipient))
	h.commit("re-encrypt")
	plan := h.mustBerthCode(0, "plan", "--repo", h.repo)
	sinks.add("plan", plan)
	apply()
	if after := h.pids(); !equalPIDs(before, after) {
		t.Errorf("re-encryption with the same values restarted pods: %v → %v", before, after)
	}

	// A tampered file is refused with its position, and nothing changes.
	good, _ := os.ReadFile(filepath.Join(h.repo, "db.yaml"))
	bad, line := tamperValue(t, good, "value:")
	h.write("db.yaml", string(bad))
	h.commit("tampered")
	code, out, errOut := h.berth("apply", "--repo", h.repo)
	sinks.add("tampered apply", out+errOut)
	if code != 1 || !strings.Contains(errOut, "./db.yaml:"+strconv.Itoa(line)+":") || !strings.Contains(errOut, "changed after it was encrypted") {
		t.Errorf("tampered file: exit %d, stderr:\n%s", code, errOut)
	}
	if after := h.pids(); !equalPIDs(before, after) {
		t.Errorf("a refused revision changed pods: %v → %v", before, after)
	}
	code, out, errOut = h.berth("plan", "--repo", h.repo)
	sinks.add("tampered plan", out+errOut)
	if code != 1 || !strings.Contains(out+errOut, "./db.yaml:"+strconv.Itoa(line)+":") {
		t.Errorf("plan of the tampered revision: exit %d\n%s%s", code, out, errOut)
	}

	// Rotation: api is now also encrypted to this device, and db gets a
	// new value. Exactly the pods whose readable value changed roll.
	h.write("db.yaml", encrypt(secretDoc("db", canaryDB2), device, other.Recipient))
	h.write("api.yaml", encrypt(secretDoc("api", canaryAPI), device, other.Recipient))
	h.commit("rotate")
	plan = h.mustBerthCode(2, "plan", "--repo", h.repo)
	sinks.add("rotation plan", plan)
	if !strings.Contains(plan, "replace pod default/app: changed secret[db]") || !strings.Contains(plan, "create  pod default/waiter") ||
		!strings.Contains(plan, "keep    pod default/bystander") || strings.Contains(plan, canaryDB) {
		t.Errorf("rotation plan:\n%s", plan)
	}
	apply()
	after := h.pids()
	if after["bystander/main"] != before["bystander/main"] {
		t.Error("rotation restarted the pod that uses no Secret")
	}
	if after["app/main"] == before["app/main"] || after["app/main"] == 0 {
		t.Error("the pod whose Secret value changed was not replaced")
	}
	if got := read("app"); got != canaryDB2+" "+canaryDB2 {
		t.Errorf("app sees %q after rotation", got)
	}
	if got := read("waiter"); got != canaryAPI+" "+canaryAPI {
		t.Errorf("waiter sees %q once its Secret is encrypted to this device", got)
	}
	// Removing this device from api's recipients stops the pod that needs
	// it, and only that one.
	h.write("api.yaml", encrypt(secretDoc("api", canaryAPI), other.Recipient))
	h.commit("revoke")
	rolled := h.pids()
	apply()
	final := h.pids()
	if _, ok := final["waiter/main"]; ok {
		t.Error("the pod whose Secret this device can no longer read still runs")
	}
	if final["app/main"] != rolled["app/main"] || final["bystander/main"] != rolled["bystander/main"] {
		t.Error("revoking one Secret restarted other pods")
	}

	// No sink holds a plaintext value.
	sinks.add("status json", h.mustBerth("status", "-o", "json"))
	sinks.add("logs app", h.mustBerth("logs", "app"))
	sinks.check(t, canaryDB, canaryDB2, canaryAPI)
	checkStateDir(t, h.state, canaryDB, canaryDB2, canaryAPI)
	checkLabels(t, h, canaryDB, canaryDB2, canaryAPI)
}

// sinkLog collects what berth printed, to look for canaries.
type sinkLog struct{ outputs map[string]string }

func (s *sinkLog) add(name, text string) {
	if s.outputs == nil {
		s.outputs = map[string]string{}
	}
	s.outputs[name] += text
}

func (s *sinkLog) check(t *testing.T, canaries ...string) {
	t.Helper()
	for name, text := range s.outputs {
		for _, c := range canaries {
			if strings.Contains(text, c) {
				t.Errorf("%s holds a secret value", name)
			}
		}
	}
}

// checkStateDir reads every file of the state directory (the Git cache,
// records, logs, keys), except the pods' tmpfs volumes, which are where a
// secret is meant to be.
func checkStateDir(t *testing.T, dir string, canaries ...string) {
	t.Helper()
	tmpfs := tmpfsMounts(t)
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && tmpfs[p] {
			return fs.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		n++
		for _, c := range canaries {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s holds a secret value", p)
			}
		}
		return nil
	})
	if err != nil || n < 5 {
		t.Errorf("state directory walk: %v, %d files read", err, n)
	}
}

// tmpfsMounts returns the mount points of tmpfs file systems.
func tmpfsMounts(t *testing.T) map[string]bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "tmpfs" {
				out[fields[4]] = true
			}
		}
	}
	return out
}

// checkLabels looks for the canaries in the labels of every container of
// the host's namespace.
func checkLabels(t *testing.T, h *host, canaries ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := daemon.Client(h.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cs, err := cl.Containers(ctx)
	if err != nil || len(cs) == 0 {
		t.Fatalf("containers: %v (%d)", err, len(cs))
	}
	for _, c := range cs {
		labels, err := c.Labels(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(labels)
		for _, cn := range canaries {
			if bytes.Contains(b, []byte(cn)) {
				t.Errorf("labels of container %s hold a secret value", c.ID())
			}
		}
	}
}

// tamperValue changes one character of the ciphertext on the first line
// holding key and returns the file and that line.
func tamperValue(t *testing.T, enc []byte, key string) ([]byte, int) {
	t.Helper()
	lines := strings.Split(string(enc), "\n")
	for i, l := range lines {
		if j := strings.Index(l, "ENC[AES256_GCM,data:"); j >= 0 && strings.Contains(l, key) {
			b := []byte(l)
			k := j + len("ENC[AES256_GCM,data:")
			if b[k] == 'A' {
				b[k] = 'B'
			} else {
				b[k] = 'A'
			}
			lines[i] = string(b)
			return []byte(strings.Join(lines, "\n")), i + 1
		}
	}
	t.Fatalf("no encrypted %q in\n%s", key, enc)
	return nil, 0
}

// TestAgentEncryptedSecrets: the agent decrypts with the device's
// identity, runs what it can read, and says what waits; its status API,
// metrics, log (at debug level) and records hold no value.
func TestAgentEncryptedSecrets(t *testing.T) {
	h := newHost(t)
	device := strings.TrimSpace(h.mustBerth("keygen"))
	other := secretstest.NewIdentity(t)
	dataOnly := []string{"--encrypted-regex", "^(data|stringData)$"}
	h.write("db.yaml", string(secretstest.Encrypt(t, secretDoc("db", canaryDB), []string{device}, dataOnly...)))
	h.write("api.yaml", string(secretstest.Encrypt(t, secretDoc("api", canaryAPI), []string{other.Recipient}, dataOnly...)))
	h.write("app.yaml", secretReader("app", "db"))
	h.write("waiter.yaml", secretReader("waiter", "api"))
	h.commit("v1")

	ra := h.startAgent("--repo", h.repo)
	st := ra.waitFor("app ready", func(st *agent.Status) bool { _, ready := podRevision(st, "app"); return ready })
	if _, ok := h.pods()["waiter"]; ok {
		t.Error("the agent started the pod whose Secret is for another device")
	}
	status := h.mustBerth("status")
	if !strings.Contains(status, "Pod/default/waiter waits for Secret api: not encrypted to this device's age identity") {
		t.Errorf("status with the agent does not say why waiter waits:\n%s", status)
	}
	resp, err := http.Get("http://" + ra.listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	apiStatus, _ := json.Marshal(st)
	ra.stop()
	sinks := &sinkLog{}
	sinks.add("status", status)
	sinks.add("metrics", string(metrics))
	sinks.add("agent status API", string(apiStatus))
	sinks.add("agent log", ra.log.String())
	sinks.check(t, canaryDB, canaryAPI)
	checkStateDir(t, h.state, canaryDB, canaryAPI)
	checkLabels(t, h, canaryDB, canaryAPI)
}

// TestNoIdentityHint: a device without an age identity runs what needs no
// Secret of its own and says how to make one.
func TestNoIdentityHint(t *testing.T) {
	h := newHost(t)
	other := secretstest.NewIdentity(t)
	h.write("api.yaml", string(secretstest.Encrypt(t, secretDoc("api", canaryAPI), []string{other.Recipient}, "--encrypted-regex", "^(data|stringData)$")))
	h.write("waiter.yaml", secretReader("waiter", "api"))
	h.write("bystander.yaml", sleeper("bystander", "3600"))
	h.commit("v1")
	out := h.mustBerth("apply", "--repo", h.repo)
	if !strings.Contains(out, "Pod/default/waiter waits for Secret api") || !strings.Contains(out, "this device has no age identity in "+filepath.Join(h.state, "secrets", "age.key")+": berth keygen makes one") {
		t.Errorf("apply on a device without an identity:\n%s", out)
	}
	pods := h.pods()
	if _, ok := pods["bystander"]; !ok {
		t.Error("the pod that needs no Secret was not started")
	}
	if _, ok := pods["waiter"]; ok {
		t.Error("the pod that needs an unreadable Secret was started")
	}
	if st := h.mustBerth("status"); !strings.Contains(st, "berth keygen makes one") {
		t.Errorf("status does not give the hint:\n%s", st)
	}
}
