package record

import (
	"os"
	"path/filepath"
	"syscall"
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

// TestWriteSameLeavesFile checks that writing what a record already holds
// replaces nothing (no new file, so no sync), and that a change does.
func TestWriteSameLeavesFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, LastApplied)
	inode := func() uint64 {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	rev := Revision{Commit: "aaa", Time: time.Unix(1700000000, 0).UTC()}
	if err := Write(dir, LastApplied, rev); err != nil {
		t.Fatal(err)
	}
	first := inode()
	if err := Write(dir, LastApplied, rev); err != nil {
		t.Fatal(err)
	}
	if inode() != first {
		t.Error("the same record was written again")
	}
	rev.Commit = "bbb"
	if err := Write(dir, LastApplied, rev); err != nil {
		t.Fatal(err)
	}
	var got Revision
	if ok, err := Read(dir, LastApplied, &got); !ok || err != nil || got != rev || inode() == first {
		t.Errorf("changed record: %+v (ok=%v, err=%v, replaced=%v), want %+v", got, ok, err, inode() != first, rev)
	}
}
