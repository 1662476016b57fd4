package main

import (
	"strings"
	"testing"
)

// TestPlanGitRevisions checks that plan reads --base and --head as git
// rev-parse does: HEAD~1, main^, short hashes and tags.
func TestPlanGitRevisions(t *testing.T) {
	r := newGitRepo(t)
	first := r.commit(map[string]string{"web.yaml": sleeper("web", "3600")})
	r.git("tag", "v1")
	r.commit(map[string]string{"web.yaml": sleeper("web", "7200")})
	for _, args := range [][]string{
		{"--base", "HEAD~1", "--head", "HEAD"},
		{"--base", "main^", "--head", "main"},
		{"--base", first[:7], "--head", "HEAD"},
		{"--base", "v1", "--head", "v1~0"},
	} {
		code, out, errOut := runBerth(t, append([]string{"plan", "--repo", r.dir}, args...)...)
		want := "replace pod default/web"
		if args[3] == "v1~0" {
			want = "plan: 0 to create, 0 to replace, 0 to delete, 1 unchanged"
		}
		if !strings.Contains(out, want) {
			t.Errorf("plan %v: exit %d, output lacks %q:\n%s\n%s", args, code, want, out, errOut)
		}
	}
}
