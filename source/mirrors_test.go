package source

import (
	"github.com/go-git/go-git/v5/plumbing"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestMirrorsTriedInOrder(t *testing.T) {
	r := newTestRepo(t)
	want := r.commit("one", map[string]string{"a.yaml": "a: 1\n"})
	r.push()
	good := startHTTPServer(t, r.root, "", "")
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer down.Close()

	s := mustOpen(t, Options{URL: down.URL + "/repo.git", Mirrors: []string{down.URL + "/other.git", good.URL + "/repo.git"}, CacheDir: t.TempDir()})
	rev, _ := mustFetch(t, s)
	if rev.Commit != want {
		t.Fatalf("fetched %s, want %s", rev.ShortCommit(), want[:12])
	}
	// All down: the error names every address tried, without credentials.
	s = mustOpen(t, Options{URL: "http://user:secret@" + strings.TrimPrefix(down.URL, "http://") + "/repo.git", Mirrors: []string{down.URL + "/b.git"}})
	err := fetchErr(t, s)
	if !strings.Contains(err.Error(), "/b.git") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %q", err)
	}
}

func TestShallowSingleBranch(t *testing.T) {
	r := newTestRepo(t)
	r.commit("one", map[string]string{"a.yaml": "a: 1\n"})
	two := r.commit("two", map[string]string{"a.yaml": "a: 2\n"})
	gitRun(t, r.work, "branch", "other")
	gitRun(t, r.work, "tag", "v1")
	r.push()
	srv := startHTTPServer(t, r.root, "", "")
	for _, ref := range []string{"", "main"} {
		s := mustOpen(t, Options{URL: srv.URL + "/repo.git", Ref: ref, Shallow: true, CacheDir: t.TempDir()})
		rev, _ := mustFetch(t, s)
		if rev.Commit != two {
			t.Fatalf("ref %q: fetched %s, want %s", ref, rev.ShortCommit(), two[:12])
		}
		if shallow, err := s.git.repo.Storer.Shallow(); err != nil || len(shallow) == 0 {
			t.Fatalf("ref %q: cache is not shallow (%v, %v)", ref, shallow, err)
		}
		refs, err := s.git.repo.References()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		_ = refs.ForEach(func(ref *plumbing.Reference) error { names = append(names, ref.Name().String()); return nil })
		for _, n := range names {
			if strings.Contains(n, "other") || strings.Contains(n, "tags/v1") {
				t.Fatalf("ref %q: shallow fetch brought %s", ref, n)
			}
		}
		// A newer commit arrives by the next shallow fetch.
		three := r.commit("three "+ref, map[string]string{"a.yaml": "a: 3" + ref + "\n"})
		r.push()
		if rev, changed := mustFetch(t, s); !changed || rev.Commit != three {
			t.Fatalf("ref %q: second fetch %s changed=%v, want %s", ref, rev.ShortCommit(), changed, three[:12])
		}
		two = three
	}
}
