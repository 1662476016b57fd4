package schema

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to Load as a YAML, JSON or CUE file. Load
// must neither crash nor hit an internal error, and every diagnostic must
// point into the repository.
func FuzzLoad(f *testing.F) {
	f.Add(uint8(0), []byte(validPod))
	f.Add(uint8(0), []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: My_Pod}\nspec: {contianers: []}\n---\n- 1\n"))
	f.Add(uint8(0), []byte("{apiVersion: \"v1\", kind: \"Pod\", metadata: {name: \"x\",},}"))
	f.Add(uint8(0), []byte(aliasBomb))
	f.Add(uint8(1), []byte(`{"apiVersion": "v1", "kind": "Pod", "spec": {"containers": "x"}}`))
	f.Add(uint8(2), []byte("package p\nx: {apiVersion: \"v1\", kind: \"Pod\", metadata: name: \"a\"}\n"))
	f.Add(uint8(2), []byte("package p\nimport \"strings\"\na: strings.Repeat(\"x\", 3)\nb: a & 1\n"))
	exts := []string{".yaml", ".json", ".cue"}
	f.Fuzz(func(t *testing.T, ext uint8, data []byte) {
		name := "apps/fuzz" + exts[int(ext)%len(exts)]
		fsys := fstest.MapFS{name: {Data: data}}
		res, err := Load(fsys, Options{MaxFileSize: 64 << 10})
		if err == nil {
			for _, o := range res.Objects {
				if o.Kind == "Pod" && o.Pod == nil {
					t.Fatalf("Pod %s without spec", o.Key())
				}
			}
			return
		}
		var lerr *Error
		if !errors.As(err, &lerr) {
			t.Fatalf("plain error: %v", err)
		}
		if len(lerr.Diagnostics) == 0 {
			t.Fatal("error without diagnostics")
		}
		for _, d := range lerr.Diagnostics {
			if strings.Contains(d.Message, "internal error") {
				t.Fatalf("internal error: %s", d)
			}
			if !strings.HasPrefix(d.Pos.File, "./") {
				t.Fatalf("diagnostic outside the repository: %s", d)
			}
		}
	})
}
