package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/snapshots"

	"berth.dev/berth/internal/testenv"
	"berth.dev/berth/reconcile"
	ctrdrt "berth.dev/berth/runtime/containerd"
)

// End-to-end tests: the berth command against a private containerd, a Git
// repository on disk, real runc and CNI. They run the command in-process
// (each call makes a fresh runtime client, as a new process would).

var daemon *testenv.Containerd

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &daemon)) }

const testImage = "example.local/busybox:1"

// host is one test's berth host: a containerd namespace, a network, a state
// directory and a Git repository.
type host struct {
	t     *testing.T
	ns    string
	net   testenv.Net
	state string
	repo  string
}

func newHost(t *testing.T) *host {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; run without -short")
	}
	h := &host{t: t, ns: testenv.Namespace(t, daemon), net: testenv.Network(t), state: t.TempDir(), repo: t.TempDir()}
	testenv.BusyboxImage(t, daemon, h.ns, testImage)
	h.git("init", "-q", "-b", "main")
	t.Cleanup(func() {
		// Remove whatever the test left running, through berth itself.
		for _, f := range h.files() {
			os.Remove(filepath.Join(h.repo, f))
		}
		h.commit("cleanup")
		if code, _, errOut := h.berth("apply", "--repo", h.repo, "--allow-delete-all"); code != 0 {
			t.Errorf("cleanup apply: exit %d: %s", code, errOut)
		}
	})
	return h
}

func (h *host) files() []string {
	entries, _ := os.ReadDir(h.repo)
	var out []string
	for _, e := range entries {
		if !e.IsDir() && e.Name() != ".git" {
			out = append(out, e.Name())
		}
	}
	return out
}

func (h *host) git(args ...string) {
	h.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = h.repo
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func (h *host) write(name, content string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.repo, name), []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *host) commit(msg string) {
	h.t.Helper()
	h.git("add", "-A")
	h.git("commit", "-q", "--allow-empty", "-m", msg)
}

// berth runs the command with this host's shared flags.
func (h *host) berth(args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	full := append([]string{args[0],
		"--containerd-address", daemon.Address(), "--namespace", h.ns, "--state-dir", h.state,
		"--network", h.net.Name, "--bridge", h.net.Bridge, "--pod-subnet", h.net.Subnet,
		"--log-level", "warn"}, args[1:]...)
	var out, errb bytes.Buffer
	code = run(full, &out, &errb)
	return code, out.String(), errb.String()
}

func (h *host) mustBerth(args ...string) string {
	h.t.Helper()
	code, out, errOut := h.berth(args...)
	return h.must(args, code, out, errOut)
}

// must fails the test unless a berth command exited 0; it returns its
// output.
func (h *host) must(args []string, code int, out, errOut string) string {
	h.t.Helper()
	if code != 0 {
		h.t.Fatalf("berth %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// pods returns the observed pods by name, from `berth status -o json`.
func (h *host) pods() map[string]reconcile.ObservedPod {
	h.t.Helper()
	var st struct {
		Pods []reconcile.ObservedPod `json:"observed"`
	}
	if err := json.Unmarshal([]byte(h.mustBerth("status", "-o", "json")), &st); err != nil {
		h.t.Fatal(err)
	}
	out := map[string]reconcile.ObservedPod{}
	for _, p := range st.Pods {
		out[p.ID.Name] = p
	}
	return out
}

// pids returns "pod/container" → task PID of every running container.
func (h *host) pids() map[string]uint32 {
	out := map[string]uint32{}
	for name, p := range h.pods() {
		for _, c := range p.Containers {
			if c.State == reconcile.StateRunning {
				out[name+"/"+c.Name] = c.PID
			}
		}
	}
	return out
}

func sleeper(name, arg string) string {
	return `apiVersion: v1
kind: Pod
metadata:
  name: ` + name + `
spec:
  terminationGracePeriodSeconds: 2
  containers:
    - name: main
      image: ` + testImage + `
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep ` + arg + ` & wait"]
`
}

const twoContainerPod = `apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 3
  volumes:
    - name: shared-data
      emptyDir: {}
  containers:
    - name: web
      image: ` + testImage + `
      command: ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /srv/www & wait"]
      ports:
        - containerPort: 8080
      volumeMounts:
        - name: shared-data
          mountPath: /srv/www
    - name: sidecar
      image: ` + testImage + `
      command: ["sh", "-c"]
      args:
        - |
          trap 'exit 0' TERM
          while true; do
            echo "hello from $(hostname)" > /pod-data/index.html
            wget -qO- http://127.0.0.1:8080/ > /pod-data/fetched.tmp 2>&1 && mv /pod-data/fetched.tmp /pod-data/fetched.txt
            sleep 1 & wait
          done
      volumeMounts:
        - name: shared-data
          mountPath: /pod-data
`

func TestTwoContainerPod(t *testing.T) {
	h := newHost(t)
	h.write("web.yaml", twoContainerPod)
	h.commit("web")
	h.mustBerth("apply", "--repo", h.repo)

	p, ok := h.pods()["web"]
	if !ok {
		t.Fatal("pod web not running")
	}
	for _, name := range []string{"web", "sidecar"} {
		if c := p.Container(reconcile.AppContainer, name); c == nil || c.State != reconcile.StateRunning {
			t.Fatalf("container %s not running: %+v", name, c)
		}
	}
	// The sidecar fetched, over the pod's own loopback, the page it wrote,
	// and the page names the pod's hostname.
	fetched := filepath.Join(h.state, "pods", "default_web", "volumes", "shared-data", "fetched.txt")
	var got string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(fetched); err == nil {
			got = string(b)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if strings.TrimSpace(got) != "hello from web" {
		t.Fatalf("sidecar fetched %q over localhost, want %q", got, "hello from web")
	}
	if p.IP == "" {
		t.Error("pod has no IP")
	}
}

func TestApplyLifecycle(t *testing.T) {
	h := newHost(t)
	h.write("a.yaml", sleeper("a", "3600"))
	h.write("b.yaml", sleeper("b", "3600"))
	h.write("c.yaml", sleeper("c", "3600"))
	h.commit("three pods")

	out := h.mustBerth("apply", "--repo", h.repo)
	if !strings.Contains(out, "3 to create") {
		t.Errorf("first apply:\n%s", out)
	}
	before := h.pids()
	if len(before) != 3 {
		t.Fatalf("running containers = %v, want 3", before)
	}

	// Nothing changed: plan exits 0 and apply touches nothing.
	if code, out, errOut := h.berth("plan", "--repo", h.repo); code != 0 {
		t.Fatalf("plan with no change: exit %d\n%s%s", code, out, errOut)
	}
	h.mustBerth("apply", "--repo", h.repo)
	if after := h.pids(); !equalPIDs(before, after) {
		t.Fatalf("no-change apply changed PIDs: %v → %v", before, after)
	}

	// A new commit that changes one pod's args replaces that pod only.
	h.write("b.yaml", sleeper("b", "7200"))
	h.commit("change b")
	code, out, _ := h.berth("plan", "--repo", h.repo)
	if code != exitChanges || !strings.Contains(out, "replace pod default/b") {
		t.Fatalf("plan after change: exit %d\n%s", code, out)
	}
	h.mustBerth("apply", "--repo", h.repo)
	after := h.pids()
	if after["a/main"] != before["a/main"] || after["c/main"] != before["c/main"] {
		t.Errorf("untouched pods restarted: %v → %v", before, after)
	}
	if after["b/main"] == 0 || after["b/main"] == before["b/main"] {
		t.Errorf("pod b not replaced: %v → %v", before, after)
	}

	// Deleting a file removes the pod and everything of it. First make
	// sure the checks below would see the pod if it were there.
	cID := reconcile.PodID{Namespace: "default", Name: "c"}
	if out, _ := exec.Command("ip", "netns", "list").CombinedOutput(); !strings.Contains(string(out), ctrdrt.NetNSName(h.ns, cID)) {
		t.Fatalf("ip netns does not list pod c's namespace:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(h.state, "pods", "default_c")); err != nil {
		t.Fatalf("pod c has no directory: %v", err)
	}
	os.Remove(filepath.Join(h.repo, "c.yaml"))
	h.commit("remove c")
	h.mustBerth("apply", "--repo", h.repo)
	if _, ok := h.pods()["c"]; ok {
		t.Fatal("pod c still there")
	}
	h.assertNoTrace(cID)
	if got := h.pids(); got["a/main"] != before["a/main"] || got["b/main"] != after["b/main"] {
		t.Errorf("deleting c touched other pods: %v", got)
	}
}

func equalPIDs(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// assertNoTrace checks that containerd, ip netns, the CNI IPAM store and
// the state directory hold nothing of pod id.
func (h *host) assertNoTrace(id reconcile.PodID) {
	h.t.Helper()
	ctx := context.Background()
	cl, err := daemon.Client(h.ns)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	cs, err := cl.Containers(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range cs {
		labels, _ := c.Labels(ctx)
		if labels["berth.dev/pod-name"] == id.Name || strings.Contains(c.ID(), "_"+id.Name+"_") || strings.HasSuffix(c.ID(), "_"+id.Name) {
			h.t.Errorf("container %s of pod %s left behind", c.ID(), id)
		}
	}
	tasks, err := cl.TaskService().List(ctx, nil)
	if err == nil {
		for _, tk := range tasks.Tasks {
			if strings.Contains(tk.ID, "_"+id.Name) {
				h.t.Errorf("task %s left behind", tk.ID)
			}
		}
	}
	var snaps []string
	_ = cl.SnapshotService(testenv.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.Contains(info.Name, "_"+id.Name) {
			snaps = append(snaps, info.Name)
		}
		return nil
	})
	if len(snaps) > 0 {
		h.t.Errorf("snapshots left behind: %v", snaps)
	}
	leases, _ := cl.LeasesService().List(ctx)
	for _, l := range leases {
		if strings.Contains(l.ID, "_"+id.Name) {
			h.t.Errorf("lease %s left behind", l.ID)
		}
	}
	out, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ctrdrt.NetNSName(h.ns, id)) + `( |$)`).Match(out) {
		h.t.Errorf("network namespace left behind:\n%s", out)
	}
	ipam := filepath.Join(ctrdrt.IPAMDir, h.net.Name)
	entries, _ := os.ReadDir(ipam)
	for _, e := range entries {
		if net := regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+$`); net.MatchString(e.Name()) {
			b, _ := os.ReadFile(filepath.Join(ipam, e.Name()))
			if strings.Contains(string(b), "_"+ctrdrt.SandboxID(id)+"-") {
				h.t.Errorf("IPAM allocation %s left behind: %s", e.Name(), b)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(h.state, "pods", id.Namespace+"_"+id.Name)); !os.IsNotExist(err) {
		h.t.Errorf("pod directory left behind (%v)", err)
	}
	if m := testenv.MountsUnder(filepath.Join(h.state, "pods", id.Namespace+"_"+id.Name)); len(m) > 0 {
		h.t.Errorf("mounts left behind: %v", m)
	}
}

const (
	badName = `apiVersion: v1
kind: Pod
metadata:
  name: My_Pod
spec:
  containers:
    - name: main
      image: ` + testImage + `
`
	badField = `apiVersion: v1
kind: Pod
metadata:
  name: typo
spec:
  contianers:
    - name: main
      image: ` + testImage + `
`
	badType = `apiVersion: v1
kind: Pod
metadata:
  name: args
spec:
  containers:
    - name: main
      image: ` + testImage + `
      args: "sleep 10"
`
)

func TestBrokenRevisionChangesNothing(t *testing.T) {
	h := newHost(t)
	h.write("a.yaml", sleeper("a", "3600"))
	h.commit("a")
	h.mustBerth("apply", "--repo", h.repo)
	before := h.pids()

	h.write("a.yaml", sleeper("a", "7200")) // a valid change that must not be applied
	h.write("name.yaml", badName)
	h.write("field.yaml", badField)
	h.write("type.yaml", badType)
	h.commit("broken")

	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\./name\.yaml:4:9: Pod/default/My_Pod: metadata\.name: .*DNS-1123`),
		regexp.MustCompile(`(?m)^\./field\.yaml:6:3: Pod/default/typo: spec\.contianers: `),
		regexp.MustCompile(`(?m)^\./type\.yaml:9:13: Pod/default/args: spec\.containers\.0\.args: .*list`),
	}
	for _, args := range [][]string{{"vet", h.repo}, {"plan", "--repo", h.repo}, {"apply", "--repo", h.repo}} {
		code, out, errOut := h.berth(args...)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", args[0], code)
		}
		all := out + errOut
		for _, re := range want {
			if !re.MatchString(all) {
				t.Errorf("%s: output lacks %s:\n%s", args[0], re, all)
			}
		}
	}
	if after := h.pids(); !equalPIDs(before, after) {
		t.Errorf("a broken revision changed the host: %v → %v", before, after)
	}
}
