package record

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteReadReplace(t *testing.T) {
	dir := t.TempDir()
	var got Revision
	if ok, err := Read(dir, LastApplied, &got); ok || err != nil {
		t.Fatalf("missing record: ok=%v err=%v", ok, err)
	}
	for _, c := range []string{"aaa", "bbb"} {
		want := Revision{Commit: c, Time: time.Unix(1700000000, 0).UTC()}
		if err := Write(dir, LastApplied, want); err != nil {
			t.Fatal(err)
		}
		if ok, err := Read(dir, LastApplied, &got); !ok || err != nil {
			t.Fatalf("ok=%v err=%v", ok, err)
		}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := os.WriteFile(filepath.Join(dir, LastApplied), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir, LastApplied, &got); err == nil {
		t.Error("corrupt record read without error")
	}
}
