package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The CI examples are tested by running their shell parts with bash
// against a real repository, with a stand-in berth that records its
// arguments; the recorded command line is then run by the real berth.

// stubBerth puts a berth on PATH that appends its arguments (one per
// line, a blank line after each call) to the returned file, prints a
// Markdown line and exits with code.
func stubBerth(t *testing.T, code string) (pathEnv, argsFile string) {
	t.Helper()
	dir := t.TempDir()
	argsFile = filepath.Join(dir, "args")
	script := "#!/bin/bash\nprintf '%s\\n' \"$@\" >> " + argsFile + "\necho >> " + argsFile + "\n" +
		"if [ \"$1\" = plan ]; then echo '### berth plan (stand-in)'; exit " + code + "; fi\n"
	if err := os.WriteFile(filepath.Join(dir, "berth"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + os.Getenv("PATH"), argsFile
}

// recordedPlan returns the arguments of the recorded plan call.
func recordedPlan(t *testing.T, argsFile string) []string {
	t.Helper()
	data, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range strings.Split(strings.TrimSpace(string(data)), "\n\n") {
		args := strings.Split(call, "\n")
		if args[0] == "plan" {
			return args
		}
	}
	t.Fatalf("no plan call in %q", data)
	return nil
}

// replay runs a recorded plan command line with the real berth in dir.
func replay(t *testing.T, dir string, args []string) (int, string) {
	t.Helper()
	for i, a := range args {
		if a == "." && i > 0 && args[i-1] == "--repo" {
			args[i] = dir
		}
	}
	code, out, errOut := runBerth(t, args...)
	return code, out + errOut
}

func bashRun(t *testing.T, dir, script string, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func webPod(image string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: " + image + "}]\n"
}

func TestGitHubActionsExample(t *testing.T) {
	data, err := os.ReadFile("../../examples/ci/github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On   map[string]any `yaml:"on"`
		Jobs map[string]struct {
			Steps []struct {
				Name string            `yaml:"name"`
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	if _, ok := wf.On["pull_request"]; !ok {
		t.Errorf("workflow does not run on pull_request")
	}
	steps := map[string]string{}
	var comment string
	for _, s := range wf.Jobs["plan"].Steps {
		steps[s.Name] = s.Run
		if strings.HasPrefix(s.Uses, "actions/github-script") {
			comment = s.With["script"]
		}
	}
	if !strings.Contains(steps["Validate"], "berth vet") {
		t.Errorf("no berth vet step: %v", steps)
	}
	// The vet step's command line works with the real berth.
	vetLine, _, _ := strings.Cut(strings.TrimSpace(steps["Validate"]), "#")
	vetArgs := strings.Fields(strings.TrimPrefix(vetLine, "berth "))
	vetDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(vetDir, "web.yaml"), []byte(webPod("nginx:1.27")), 0o644); err != nil {
		t.Fatal(err)
	}
	vetArgs[len(vetArgs)-1] = vetDir
	if code, out, errOut := runBerth(t, vetArgs...); code != 0 {
		t.Errorf("%v: exit %d\n%s%s", vetArgs, code, out, errOut)
	}
	for _, want := range []string{"updateComment", "createComment", "<!-- berth plan -->"} {
		if !strings.Contains(comment, want) {
			t.Errorf("comment script lacks %q", want)
		}
	}

	// A pull request checkout: the merge of feature into main.
	r := newGitRepo(t)
	r.commit(map[string]string{"web.yaml": webPod("nginx:1.27")})
	r.git("checkout", "-q", "-b", "feature")
	r.commit(map[string]string{"web.yaml": webPod("nginx:1.28")})
	r.git("checkout", "-q", "main")
	r.commit(map[string]string{"db.yaml": strings.ReplaceAll(webPod("postgres:16"), "web", "db")})
	r.git("checkout", "-q", "--detach")
	r.git("-c", "user.name=t", "-c", "user.email=t@localhost", "merge", "-q", "--no-ff", "-m", "merge", "feature")

	tmp := t.TempDir()
	path, argsFile := stubBerth(t, "2")
	out, err := bashRun(t, r.dir, steps["Plan"], path, "RUNNER_TEMP="+tmp,
		"GITHUB_OUTPUT="+filepath.Join(tmp, "output"), "GITHUB_STEP_SUMMARY="+filepath.Join(tmp, "summary"))
	if err != nil {
		t.Fatalf("plan step: %v\n%s", err, out)
	}
	if o, _ := os.ReadFile(filepath.Join(tmp, "output")); strings.TrimSpace(string(o)) != "exit=2" {
		t.Errorf("step output %q, want exit=2", o)
	}
	if md, _ := os.ReadFile(filepath.Join(tmp, "plan.md")); !strings.Contains(string(md), "berth plan") {
		t.Errorf("plan.md = %q", md)
	}
	code, md := replay(t, r.dir, recordedPlan(t, argsFile))
	if code != exitChanges || !strings.Contains(md, "<b>replace</b> <code>default/web</code>") || !strings.Contains(md, "| replace | 1 |\n| delete | 0 |\n| unchanged | 1 |") {
		t.Errorf("recorded plan: exit %d, want 2 replacing web only:\n%s", code, md)
	}
}

// notesServer is a stand-in for GitLab's merge request notes API.
type notesServer struct {
	mu      sync.Mutex
	notes   []map[string]any
	created int
	updated int
}

func (s *notesServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("PRIVATE-TOKEN") != "secret-token" {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	const base = "/api/v4/projects/7/merge_requests/3/notes"
	var body struct {
		Body string `json:"body"`
	}
	if r.Method != http.MethodGet {
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == base:
		json.NewEncoder(w).Encode(s.notes)
	case r.Method == http.MethodPost && r.URL.Path == base:
		s.created++
		s.notes = append(s.notes, map[string]any{"id": 100 + len(s.notes), "body": body.Body})
		json.NewEncoder(w).Encode(s.notes[len(s.notes)-1])
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, base+"/"):
		for _, n := range s.notes {
			if r.URL.Path == base+"/"+jsonNumber(n["id"]) {
				s.updated++
				n["body"] = body.Body
				json.NewEncoder(w).Encode(n)
				return
			}
		}
		http.NotFound(w, r)
	default:
		http.NotFound(w, r)
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestGitLabCIExample(t *testing.T) {
	data, err := os.ReadFile("../../examples/ci/gitlab-ci.yml")
	if err != nil {
		t.Fatal(err)
	}
	var jobs map[string]struct {
		Script []string `yaml:"script"`
		Rules  []struct {
			If string `yaml:"if"`
		} `yaml:"rules"`
	}
	if err := yaml.Unmarshal(data, &jobs); err != nil {
		t.Fatal(err)
	}
	job := jobs["berth-plan"]
	if len(job.Rules) == 0 || !strings.Contains(job.Rules[0].If, "merge_request_event") {
		t.Errorf("job does not run on merge requests: %+v", job.Rules)
	}
	script := strings.Join(job.Script, "\n")
	if !strings.Contains(script, "berth vet") {
		t.Errorf("no berth vet in the script")
	}

	r := newGitRepo(t)
	base := r.commit(map[string]string{"web.yaml": webPod("nginx:1.27")})
	r.git("checkout", "-q", "-b", "feature")
	head := r.commit(map[string]string{"web.yaml": webPod("nginx:1.28")})

	notes := &notesServer{notes: []map[string]any{}}
	srv := httptest.NewServer(notes)
	defer srv.Close()
	env := []string{"CI_API_V4_URL=" + srv.URL + "/api/v4", "CI_PROJECT_ID=7", "CI_MERGE_REQUEST_IID=3",
		"BERTH_PLAN_TOKEN=secret-token", "CI_MERGE_REQUEST_DIFF_BASE_SHA=" + base, "CI_COMMIT_SHA=" + head,
		"CI_PROJECT_DIR=" + r.dir}

	// Two pushes: one note, created then updated; changes pass the job.
	var argsFile string
	for i := 0; i < 2; i++ {
		var path string
		path, argsFile = stubBerth(t, "2")
		if out, err := bashRun(t, r.dir, script, append(env, path)...); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
	}
	if notes.created != 1 || notes.updated != 1 || len(notes.notes) != 1 {
		t.Errorf("notes created %d, updated %d, held %d; want 1, 1, 1", notes.created, notes.updated, len(notes.notes))
	}
	if b, _ := notes.notes[0]["body"].(string); !strings.HasPrefix(b, "<!-- berth plan -->\n### berth plan") {
		t.Errorf("note body %q", b)
	}
	// A change that does not validate fails the job, after the note.
	path, _ := stubBerth(t, "1")
	if out, err := bashRun(t, r.dir, script, append(env, path)...); err == nil {
		t.Errorf("job passed when plan exited 1:\n%s", out)
	}
	if notes.updated != 2 {
		t.Errorf("note not updated for the failing change")
	}
	code, md := replay(t, r.dir, recordedPlan(t, argsFile))
	if code != exitChanges || !strings.Contains(md, "<code>default/web</code>") {
		t.Errorf("recorded plan: exit %d:\n%s", code, md)
	}
}
