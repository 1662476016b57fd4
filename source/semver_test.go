package source

import (
	"errors"
	"testing"
)

func TestSemverRange(t *testing.T) {
	r := newTestRepo(t)
	tags := map[string]string{}
	for _, tag := range []string{"v1.0.0", "1.2.0", "v1.3.0-rc.1", "v2.0.0", "latest"} {
		tags[tag] = r.commit(tag, map[string]string{"version": tag + "\n"})
		gitRun(t, r.work, "tag", "-a", "-m", tag, tag)
	}
	r.push()
	srv := startHTTPServer(t, r.root, "", "")
	for _, tc := range []struct {
		ref, wantTag string
		wantErr      error
	}{
		{">=1.2.0 <2.0.0", "1.2.0", nil},
		{"~1", "1.2.0", nil},
		{"1.x", "1.2.0", nil},
		{"^1.3.0-rc.0", "v1.3.0-rc.1", nil},
		{">=1.0.0", "v2.0.0", nil},
		{">=3", "", ErrRefNotFound},
		{"v1.0.0", "v1.0.0", nil}, // a plain tag name stays a tag
	} {
		t.Run(tc.ref, func(t *testing.T) {
			s := mustOpen(t, Options{URL: srv.URL + "/repo.git", Ref: tc.ref})
			if tc.wantErr != nil {
				if err := fetchErr(t, s); !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				return
			}
			rev, _ := mustFetch(t, s)
			if rev.Commit != tags[tc.wantTag] || rev.Ref != "refs/tags/"+tc.wantTag {
				t.Fatalf("resolved %s (%s), want tag %s (%s)", rev.Ref, rev.ShortCommit(), tc.wantTag, tags[tc.wantTag][:12])
			}
		})
	}

	// A new matching tag is picked up by the next fetch.
	s := mustOpen(t, Options{URL: srv.URL + "/repo.git", Ref: ">=1.2.0 <2.0.0", CacheDir: t.TempDir()})
	mustFetch(t, s)
	newer := r.commit("1.4.1", map[string]string{"version": "1.4.1\n"})
	gitRun(t, r.work, "tag", "v1.4.1")
	r.push()
	rev, changed := mustFetch(t, s)
	if !changed || rev.Commit != newer || rev.Ref != "refs/tags/v1.4.1" {
		t.Fatalf("after a new tag: %s %s changed=%v", rev.Ref, rev.ShortCommit(), changed)
	}
}
