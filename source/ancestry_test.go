package source

import (
	"context"
	"testing"
)

func TestIsAncestorAfterForcePush(t *testing.T) {
	r := newTestRepo(t)
	one := r.commit("one", map[string]string{"a.yaml": "a: 1\n"})
	two := r.commit("two", map[string]string{"a.yaml": "a: 2\n"})
	r.push()
	srv := startHTTPServer(t, r.root, "", "")
	s := mustOpen(t, Options{URL: srv.URL + "/repo.git", CacheDir: t.TempDir()})
	mustFetch(t, s)
	gitRun(t, r.work, "reset", "-q", "--hard", one)
	rewritten := r.commit("rewritten", map[string]string{"a.yaml": "a: 3\n"})
	r.push()
	if rev, _ := mustFetch(t, s); rev.Commit != rewritten {
		t.Fatalf("fetched %s after the force-push, want %s", rev.ShortCommit(), rewritten[:12])
	}
	for _, tc := range []struct {
		older, newer string
		want         bool
	}{{one, two, true}, {one, rewritten, true}, {two, rewritten, false}, {two, two, true}} {
		got, err := s.IsAncestor(context.Background(), tc.older, tc.newer)
		if err != nil || got != tc.want {
			t.Errorf("IsAncestor(%.7s, %.7s) = %v, %v; want %v", tc.older, tc.newer, got, err, tc.want)
		}
	}
}
