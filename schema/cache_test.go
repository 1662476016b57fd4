package schema

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/reconcile"
)

// TestCache checks what a Cache saves and that it never changes a result:
// a changed YAML file or CUE package is validated again, nothing else; the
// same revision twice is answered without validation; a new node
// re-evaluates CUE only; an error is cached like a result.
func TestCache(t *testing.T) {
	fsys := podRepo(100)
	for k, v := range cueRepo(100) {
		fsys[k] = v
	}
	cache := NewCache()
	load := func(opts Options) *Result {
		t.Helper()
		opts.Cache = cache
		got, err := Load(fsys, opts)
		if err != nil {
			t.Fatal(err)
		}
		opts.Cache = nil
		want, err := Load(fsys, opts)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("cached result differs (-uncached +cached):\n%s", d)
		}
		return got
	}
	step := func(name string, opts Options, wantMisses, wantRevisions int) {
		t.Helper()
		before := cache.Stats()
		load(opts)
		after := cache.Stats()
		if m, r := after.Misses-before.Misses, after.Revisions-before.Revisions; m != wantMisses || r != wantRevisions {
			t.Errorf("%s: %d misses, %d revisions answered; want %d and %d", name, m, r, wantMisses, wantRevisions)
		}
	}
	files := 10 + 10 // YAML files and CUE packages
	step("first load", Options{}, files, 0)
	step("same revision", Options{}, 0, 1)
	fsys["apps/pods-003.yaml"] = &fstest.MapFile{Data: append(fsys["apps/pods-003.yaml"].Data, "# changed\n"...)}
	step("one YAML file changed", Options{}, 1, 0)
	before := cache.Stats().Objects
	fsys["pkg2/objects-00.cue"] = &fstest.MapFile{Data: append(fsys["pkg2/objects-00.cue"].Data, "// changed\n"...)}
	step("one CUE file changed", Options{}, 1, 0)
	if n := cache.Stats().Objects - before; n != 10 {
		t.Errorf("one CUE file changed: %d unchanged objects reused, want 10", n)
	}
	step("another node", Options{Node: reconcile.Node{Name: "other"}}, 10, 0)
	fsys["broken.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Pod\n")}
	cache2 := cache.Stats()
	_, err1 := Load(fsys, Options{Cache: cache, Node: reconcile.Node{Name: "other"}})
	_, err2 := Load(fsys, Options{Cache: cache, Node: reconcile.Node{Name: "other"}})
	if err1 == nil || err2 == nil || err1.Error() != err2.Error() {
		t.Errorf("broken revision: %v, then %v", err1, err2)
	}
	if s := cache.Stats(); s.Misses-cache2.Misses != 1 || s.Revisions-cache2.Revisions != 1 {
		t.Errorf("broken revision: %+v then %+v", cache2, s)
	}
}
