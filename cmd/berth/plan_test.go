package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"berth.dev/berth/preview"
	"berth.dev/berth/reconcile"
	ctrdrt "berth.dev/berth/runtime/containerd"
)

// gitRepo is a Git repository on disk driven with the git CLI, for plan's
// revision previews (no containerd involved).
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T) *gitRepo {
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (an empty content removes one) and commits them,
// returning the commit hash.
func (r *gitRepo) commit(files map[string]string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", "change")
	return r.git("rev-parse", "HEAD")
}

func runBerth(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	full := append([]string{args[0], "--state-dir", t.TempDir(), "--log-level", "warn", "--node-name", "host-1"}, args[1:]...)
	code := run(full, &out, &errb)
	return code, out.String(), errb.String()
}

func TestPlanRevisions(t *testing.T) {
	r := newGitRepo(t)
	base := r.commit(map[string]string{"web.yaml": sleeper("web", "3600"), "db.yaml": sleeper("db", "3600")})
	r.git("checkout", "-q", "-b", "feature")
	r.commit(map[string]string{"web.yaml": sleeper("web", "7200")})
	r.git("checkout", "-q", "-b", "hostnet", "main")
	r.commit(map[string]string{"net.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: net}\nspec:\n  hostNetwork: true\n  containers: [{name: a, image: a:1}]\n"})
	r.git("checkout", "-q", "-b", "broken", "feature")
	r.commit(map[string]string{"bad.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad}\nspec:\n  containers: [{name: a, image: a}]\n"})
	r.git("checkout", "-q", "main")

	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"text", []string{"--base", "main", "--head", "feature"}, 2, []string{
			"plan main (" + base[:12] + ") → feature (",
			"replace pod default/web: changed containers[main].command",
			`+ spec.containers[main].command: ["sh","-c","trap 'exit 0' TERM; sleep 7200 & wait"]`,
			"plan: 0 to create, 1 to replace, 0 to delete, 1 unchanged",
		}},
		{"against a revision", []string{"--against", base, "--ref", "feature"}, 2, []string{"replace pod default/web"}},
		{"no change", []string{"--base", "main", "--head", base}, 0, []string{"plan: 0 to create, 0 to replace, 0 to delete, 2 unchanged"}},
		{"markdown", []string{"--base", "main", "--head", "feature", "-o", "markdown"}, 2, []string{
			"| replace | 1 |", "<summary><b>replace</b> <code>default/web</code>",
		}},
		{"invalid head", []string{"--base", "main", "--head", "broken"}, 1, []string{
			"head revision broken (", "./bad.yaml:3:18: Pod/default/Bad: metadata.name:",
		}},
		{"invalid head markdown", []string{"--base", "main", "--head", "broken", "-o", "markdown"}, 1, []string{
			"fails validation", "./bad.yaml:3:18: Pod/default/Bad: metadata.name:",
		}},
		{"unknown base", []string{"--base", "nope", "--head", "feature"}, 1, nil},
		{"refused by the node policy", []string{"--base", "main", "--head", "hostnet"}, 1, []string{
			"create  pod default/net: new in hostnet", "refused by this node's policy: spec.hostNetwork",
		}},
		{"allowed by the node policy", []string{"--base", "main", "--head", "hostnet", "--allow-host-namespaces"}, 2, []string{
			"create  pod default/net: new in hostnet",
		}},
		{"bad output", []string{"--base", "main", "-o", "yaml"}, 1, nil},
		{"conflicting revisions", []string{"--base", "main", "--against", "feature"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runBerth(t, append([]string{"plan", "--repo", r.dir}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "\x1b[") {
				t.Errorf("colours in output to a buffer")
			}
		})
	}
}

func TestPlanJSON(t *testing.T) {
	r := newGitRepo(t)
	base := r.commit(map[string]string{"web.yaml": sleeper("web", "3600")})
	head := r.commit(map[string]string{"web.yaml": "", "db.yaml": sleeper("db", "1")})
	code, out, errOut := runBerth(t, "plan", "--repo", r.dir, "--base", base, "-o", "json")
	if code != exitChanges {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	var p struct {
		preview.Plan
		HasChanges bool `json:"hasChanges"`
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p.Base.Commit != base || p.Head.Commit != head || !p.HasChanges || p.Counts.Create != 1 || p.Counts.Delete != 1 {
		t.Errorf("plan = %+v", p)
	}
}

// TestPlanLive previews against a real host: a pod removed outside berth
// is drift, a changed pod shows its field diff from the revision it runs.
func TestPlanLive(t *testing.T) {
	h := newHost(t)
	h.write("a.yaml", sleeper("a", "3600"))
	h.write("b.yaml", sleeper("b", "3600"))
	h.commit("a and b")
	h.mustBerth("apply", "--repo", h.repo)

	ctx := context.Background()
	rt, err := ctrdrt.New(ctx, ctrdrt.Options{Address: daemon.Address(), Namespace: h.ns, StateDir: h.state,
		NetworkName: h.net.Name, Bridge: h.net.Bridge, Subnet: h.net.Subnet})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if err := rt.RemovePod(ctx, reconcile.PodID{Namespace: "default", Name: "b"}, 0); err != nil {
		t.Fatal(err)
	}
	h.write("a.yaml", sleeper("a", "7200"))
	h.commit("change a")

	for _, format := range []string{"text", "json", "markdown"} {
		code, out, errOut := h.berth("plan", "--repo", h.repo, "--against", "live", "-o", format)
		if code != exitChanges {
			t.Fatalf("%s: exit %d\n%s%s", format, code, out, errOut)
		}
		for _, want := range []string{"removed outside berth", "changed containers[main].command", "sleep 7200"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", format, want, out)
			}
		}
	}
	// Nothing was changed by planning: b is still gone, a still old.
	if pods := h.pods(); len(pods) != 1 {
		t.Errorf("pods after plan: %v", pods)
	}
}

func TestPlanInventory(t *testing.T) {
	r := newGitRepo(t)
	web := func(image string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  nodeSelector: {tier: edge}\n  containers: [{name: web, image: " + image + "}]\n"
	}
	r.commit(map[string]string{"web.yaml": web("nginx:1.27")})
	r.git("checkout", "-q", "-b", "feature")
	r.commit(map[string]string{"web.yaml": web("nginx:1.28")})
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	if err := os.WriteFile(inv, []byte(`devices:
  - {name: edge-1, labels: {tier: edge}}
  - {name: core-1, labels: {tier: core}}
  - {name: edge-2, labels: {tier: edge}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runBerth(t, "plan", "--repo", r.dir, "--base", "main", "--head", "feature", "--inventory", inv, "-o", "markdown")
	if code != exitChanges {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"**2 of 3 devices change (pods 2 replaced)", "| 1 | 2 | `tier=edge` |", "Devices: edge-1, edge-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if code, out, _ := runBerth(t, "plan", "--repo", r.dir, "--head", "feature", "--inventory", inv); code != 1 {
		t.Errorf("--inventory without --base: exit %d\n%s", code, out)
	}
}

// TestPlanRemote previews two revisions of a remote repository served by
// git http-backend on loopback: one fetch into the cache, then both
// revisions read from it.
func TestPlanRemote(t *testing.T) {
	r := newGitRepo(t)
	base := r.commit(map[string]string{"web.yaml": webPod("nginx:1.27")})
	r.git("checkout", "-q", "-b", "feature")
	r.commit(map[string]string{"web.yaml": webPod("nginx:1.28")})
	backend := filepath.Join(r.git("--exec-path"), "git-http-backend")
	h := &cgi.Handler{Path: backend, Root: "/", Env: []string{
		"GIT_PROJECT_ROOT=" + filepath.Dir(r.dir), "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	url := srv.URL + "/" + filepath.Base(r.dir) + "/.git"
	for _, baseRef := range []string{"main", base, base[:10]} {
		code, out, errOut := runBerth(t, "plan", "--repo", url, "--base", baseRef, "--head", "feature")
		if code != exitChanges || !strings.Contains(out, "replace pod default/web: changed containers[web].image") {
			t.Errorf("--base %s: exit %d\n%s%s", baseRef, code, out, errOut)
		}
	}
}
