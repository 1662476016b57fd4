package crilog

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var entryRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) [FP] .*$`)

func msgs(lines []Line) []string {
	var out []string
	for _, l := range lines {
		out = append(out, l.Stream+":"+string(l.Msg))
	}
	return out
}

func TestWriteReadRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, err := NewWriter(path, 200, 3)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	long := strings.Repeat("x", maxLine+10)
	in := "one\ntwo\n" + long + "\nlast without newline"
	if err := w.Copy("stdout", strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := w.Copy("stderr", strings.NewReader("err "+string(rune('a'+i))+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	files := Files(path)
	if len(files) != 3 {
		t.Fatalf("files %v: want 3 (rotation keeps maxFiles)", files)
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if !entryRE.MatchString(l[:min(len(l), 200)]) {
				t.Errorf("%s: entry %q is not in CRI format", f, l[:min(len(l), 80)])
			}
		}
	}
	all, err := ReadLines(path, ReadOptions{Tail: -1})
	if err != nil {
		t.Fatal(err)
	}
	got := msgs(all)
	// Rotation dropped the oldest entries; what is left is in order and
	// ends with the newest.
	if want := []string{"stderr:err d", "stderr:err e", "stderr:err f"}; !cmp.Equal(want, got[len(got)-3:]) {
		t.Errorf("newest lines %v, want %v", got[len(got)-3:], want)
	}
	tail, _ := ReadLines(path, ReadOptions{Tail: 2})
	if diff := cmp.Diff([]string{"stderr:err e", "stderr:err f"}, msgs(tail)); diff != "" {
		t.Errorf("tail 2 (-want +got):\n%s", diff)
	}
	since, _ := ReadLines(path, ReadOptions{Tail: -1, Since: all[len(all)-1].Time})
	if len(since) != 1 {
		t.Errorf("since the last line's time: %v", msgs(since))
	}
}

func TestPartialLinesJoined(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, _ := NewWriter(path, 0, 0)
	long := strings.Repeat("y", 3*maxLine+5)
	if err := w.Copy("stdout", strings.NewReader("a\n"+long+"\nb\n")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	lines, _ := ReadLines(path, ReadOptions{Tail: -1})
	if got := msgs(lines); len(got) != 3 || got[0] != "stdout:a" || got[1] != "stdout:"+long || got[2] != "stdout:b" {
		t.Errorf("lines: %d, first %q", len(got), got[0])
	}
	b, _ := os.ReadFile(path)
	if n := strings.Count(string(b), " stdout P "); n != 3 {
		t.Errorf("%d partial entries, want 3", n)
	}
}

func TestFollowAcrossRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	w, _ := NewWriter(path, 100, 2)
	var out bytes.Buffer
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- Follow(context.Background(), path, 0, &out, func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		})
	}()
	var want strings.Builder
	for i := range 10 {
		line := strings.Repeat(string(rune('a'+i)), 30)
		want.WriteString(line + "\n")
		if err := w.Entry("stdout", false, []byte(line)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if out.String() != want.String() {
		t.Errorf("followed %q, want %q", out.String(), want.String())
	}
}

func TestReadRawLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "raw.log")
	if err := os.WriteFile(path, []byte("plain one\nplain two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lines, err := ReadLines(path, ReadOptions{Tail: -1, Since: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"stdout:plain one", "stdout:plain two"}, msgs(lines)); diff != "" {
		t.Errorf("raw lines (-want +got):\n%s", diff)
	}
}

func FuzzParseEntry(f *testing.F) {
	f.Add([]byte("2026-11-29T18:15:31.024519233Z stdout F hello"))
	f.Add([]byte("2026-11-29T18:15:31Z stderr P "))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, stream, _, msg, err := ParseEntry(b)
		if err != nil {
			return
		}
		if stream != "stdout" && stream != "stderr" || len(msg) > len(b) {
			t.Errorf("ParseEntry(%q) = %v, %q, %q", b, ts, stream, msg)
		}
	})
}
