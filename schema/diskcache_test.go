package schema

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"berth.dev/berth/internal/corpus"
	"berth.dev/berth/reconcile"
)

// loadKept loads fsys with a new cache that first reads the file at path,
// then writes it back, and returns the result, the error and the cache's
// statistics.
func loadKept(t *testing.T, fsys fstest.MapFS, path string, opts Options) (*Result, error, CacheStats) {
	t.Helper()
	c := NewCache()
	if err := c.ReadFile(path); err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	opts.Cache = c
	res, err := Load(fsys, opts)
	if werr := c.WriteFile(path); werr != nil {
		t.Fatalf("WriteFile: %v", werr)
	}
	return res, err, c.Stats()
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestDiskCacheAcrossProcesses checks that what one command kept spares
// the next one validating unchanged files, never changes a result (valid
// or not), and that the file is rewritten only when what it holds changes.
func TestDiskCacheAcrossProcesses(t *testing.T) {
	fsys := podRepo(50)
	path := filepath.Join(t.TempDir(), "cache", "validation")
	want, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := 5

	got, err, st := loadKept(t, fsys, path, Options{})
	if err != nil || st.Hits != 0 || st.Misses != files {
		t.Fatalf("first load: %v, %+v; want %d misses", err, st, files)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, %v; want mode 0600", fi, err)
	}
	ino := inode(t, path)

	got, err, st = loadKept(t, fsys, path, Options{})
	if err != nil || st.Hits != files || st.Misses != 0 {
		t.Fatalf("second load: %v, %+v; want %d hits", err, st, files)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("result from the kept cache differs (-validated +kept):\n%s", d)
	}
	if inode(t, path) != ino {
		t.Error("the file was written again though nothing changed")
	}

	// Other limits are other verdicts.
	if _, _, st = loadKept(t, fsys, path, Options{Strict: true}); st.Hits != 0 {
		t.Errorf("strict load used %d entries of a lax one", st.Hits)
	}
	loadKept(t, fsys, path, Options{})

	// A broken file is validated and reported again, the others are not.
	broken := fstest.MapFS{}
	for k, v := range fsys {
		broken[k] = v
	}
	broken["apps/pods-002.yaml"] = &fstest.MapFile{Data: bytes.Replace(fsys["apps/pods-002.yaml"].Data, []byte("image: nginx:1.27"), []byte("image: 42"), 1)}
	_, err1, st := loadKept(t, broken, path, Options{})
	if err1 == nil || st.Misses != 1 || st.Hits != files-1 {
		t.Fatalf("broken file: %v, %+v; want an error, 1 miss", err1, st)
	}
	_, err2, st := loadKept(t, broken, path, Options{})
	if err2 == nil || err2.Error() != err1.Error() || st.Misses != 0 {
		t.Fatalf("broken file kept: %v (%+v), want %v from the cache", err2, st, err1)
	}
	if !strings.Contains(err2.Error(), "apps/pods-002.yaml:") {
		t.Errorf("kept error does not name the file: %v", err2)
	}
}

// TestDiskCacheKeepsNoSecret checks that neither a Secret nor the plain
// text of a decrypted file reaches the disk, while the files beside them
// are kept.
func TestDiskCacheKeepsNoSecret(t *testing.T) {
	const secret = "s3cr3t-value-of-the-test"
	fsys := fstest.MapFS{
		"secret.yaml": {Data: []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: " + secret + "}\n")},
		"sealed.yaml": {Data: []byte("ENCRYPTED\n")},
		"config.yaml": {Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {mode: prod}\n")},
		"pod.yaml":    {Data: []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: web, image: nginx:1.27}]\n")},
	}
	opts := Options{Decrypt: func(name string, data []byte) ([]byte, error) {
		if string(data) == "ENCRYPTED\n" {
			return []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {token: " + secret + "}\n"), nil
		}
		return data, nil
	}}
	path := filepath.Join(t.TempDir(), "validation")
	if _, err, _ := loadKept(t, fsys, path, opts); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte(secret)) || bytes.Contains(data, []byte("password")) {
		t.Fatalf("the cache file holds a secret:\n%s", data)
	}
	if !bytes.Contains(data, []byte(`"name":"app"`)) || !bytes.Contains(data, []byte(`"name":"web"`)) {
		t.Fatalf("the cache file lacks the ConfigMap and the Pod:\n%s", data)
	}
	res, err, st := loadKept(t, fsys, path, opts)
	if err != nil || st.Hits != 2 || st.Misses != 2 {
		t.Fatalf("second load: %v, %+v; want 2 hits (config, pod), 2 misses (secret, sealed)", err, st)
	}
	if len(res.Objects) != 4 {
		t.Errorf("second load: %d objects, want 4", len(res.Objects))
	}

	// An invalid Secret is not kept either: its problems name its keys.
	fsys["secret.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {" + secret + ": 5}\n")}
	if _, err, _ := loadKept(t, fsys, path, opts); err == nil || !strings.Contains(err.Error(), secret) {
		t.Fatalf("invalid Secret: %v; want a problem naming its key", err)
	}
	if data, err := os.ReadFile(path); err != nil || bytes.Contains(data, []byte(secret)) {
		t.Fatalf("the cache file holds an invalid Secret's key (%v):\n%s", err, data)
	}
}

// TestDiskCacheRefusesDamage checks that a damaged, truncated or foreign
// file is ignored: everything is validated again and the result is the
// same.
func TestDiskCacheRefusesDamage(t *testing.T) {
	fsys := podRepo(20)
	want, err := Load(fsys, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	loadKept(t, fsys, good, Options{})
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	header, payload, _ := bytes.Cut(data, []byte{'\n'})
	// A value the payload holds, changed in place: the JSON stays valid.
	changed := bytes.Replace(payload, []byte(`"nginx:1.27"`), []byte(`"nginx:6.66"`), 1)
	if bytes.Equal(changed, payload) {
		t.Fatal("test payload has no nginx:1.27")
	}
	cases := map[string][]byte{
		"changed":   append(append(header, '\n'), changed...),
		"truncated": data[:len(data)/2],
		"no header": payload,
		"other binary": append([]byte(strings.Replace(string(header), buildStamp(), strings.Repeat("0", len(buildStamp())), 1)+"\n"),
			payload...),
		"empty": {},
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err, st := loadKept(t, fsys, path, Options{})
			if err != nil || st.Hits != 0 {
				t.Fatalf("%v, %+v: want no hit", err, st)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Fatalf("result differs:\n%s", d)
			}
		})
	}
}

// TestDiskCacheWritesOnlyWhatReadsBack checks that an entry whose encoding
// does not read back exactly equal stays in memory only: an empty label
// map is not the same as none.
func TestDiskCacheWritesOnlyWhatReadsBack(t *testing.T) {
	e := &cacheEntry{disk: true, loaded: []loaded{{OK: true, Obj: reconcile.Object{
		TypeMeta: reconcile.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		Metadata: reconcile.ObjectMeta{Name: "a", Namespace: "default", Labels: map[string]string{}},
	}}}}
	if raw := encodeEntry(key{1}, e); len(raw) != 0 {
		t.Errorf("an entry that does not read back was encoded: %s", raw)
	}
	e.loaded[0].Obj.Metadata.Labels = map[string]string{"app": "a"}
	if raw := encodeEntry(key{1}, e); len(raw) == 0 {
		t.Error("an entry that reads back was not encoded")
	}
}

// TestDiskCacheCorpus checks, on every unit of both conformance corpora,
// that a result or an error read back from the kept cache is exactly the
// one validation gives, and counts how many files are kept.
func TestDiskCacheCorpus(t *testing.T) {
	units := append(corpusUnits(t, corpus.Dir(t, corpus.K8sExamples)), corpusUnits(t, corpus.Dir(t, corpus.RealWorld))...)
	dir := t.TempDir()
	files, kept := 0, 0
	for i, u := range units {
		want, wantErr := Load(u.files, Options{})
		path := filepath.Join(dir, strconv.Itoa(i))
		loadKept(t, u.files, path, Options{})
		got, gotErr, st := loadKept(t, u.files, path, Options{})
		files += st.Hits + st.Misses
		kept += st.Hits
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s: result from the kept cache differs (-validated +kept):\n%s", u.name, d)
		}
		if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
			t.Errorf("%s: error from the kept cache differs:\n%v\nwant\n%v", u.name, gotErr, wantErr)
		}
	}
	t.Logf("%d of %d YAML and JSON files kept", kept, files)
	if kept < files*9/10 {
		t.Errorf("only %d of %d files kept", kept, files)
	}
}
