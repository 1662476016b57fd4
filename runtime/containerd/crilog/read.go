package crilog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Line is one log line, partial entries joined.
type Line struct {
	Time   time.Time
	Stream string
	Msg    []byte
}

// ParseEntry parses one CRI log entry (without its newline).
func ParseEntry(b []byte) (t time.Time, stream string, partial bool, msg []byte, err error) {
	f := bytes.SplitN(b, []byte{' '}, 4)
	if len(f) < 3 {
		return t, "", false, nil, fmt.Errorf("malformed log entry %q", b)
	}
	t, err = time.Parse(time.RFC3339Nano, string(f[0]))
	if err != nil {
		return t, "", false, nil, fmt.Errorf("malformed log time: %w", err)
	}
	stream, tag := string(f[1]), string(f[2])
	if stream != "stdout" && stream != "stderr" || tag != "F" && tag != "P" {
		return t, "", false, nil, fmt.Errorf("malformed log entry %q", b)
	}
	if len(f) == 4 {
		msg = f[3]
	}
	return t, stream, tag == "P", msg, nil
}

// Files returns the log files of path, oldest first: <path>.N … <path>.1,
// <path>. Missing ones are skipped.
func Files(path string) []string {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	base := filepath.Base(path)
	type rotated struct {
		n    int
		path string
	}
	var old []rotated
	var out []string
	current := false
	for _, e := range ents {
		name := e.Name()
		if name == base {
			current = true
			continue
		}
		if rest, ok := strings.CutPrefix(name, base+"."); ok {
			if n, err := strconv.Atoi(rest); err == nil && n > 0 {
				old = append(old, rotated{n, filepath.Join(filepath.Dir(path), name)})
			}
		}
	}
	sort.Slice(old, func(i, j int) bool { return old[i].n > old[j].n })
	for _, r := range old {
		out = append(out, r.path)
	}
	if current {
		out = append(out, path)
	}
	return out
}

// ReadOptions select what ReadLines returns.
type ReadOptions struct {
	// Since drops lines older than this time (zero: keep all).
	Since time.Time
	// Tail keeps only the last Tail lines (negative: all).
	Tail int
}

// ReadLines returns the lines of the log at path (all its rotated files),
// oldest first, filtered by opts.
func ReadLines(path string, opts ReadOptions) ([]Line, error) {
	var lines []Line
	partial := map[string]*Line{}
	for _, f := range Files(path) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t, stream, isPartial, msg, err := ParseEntry(sc.Bytes())
			if err != nil {
				// A raw log (written by the shim itself): the line as it is.
				t, stream, isPartial, msg = time.Time{}, "stdout", false, append([]byte(nil), sc.Bytes()...)
			}
			l := partial[stream]
			if l == nil {
				l = &Line{Time: t, Stream: stream}
			}
			l.Msg = append(l.Msg, msg...)
			if isPartial {
				partial[stream] = l
				continue
			}
			delete(partial, stream)
			if !opts.Since.IsZero() && !l.Time.IsZero() && l.Time.Before(opts.Since) {
				continue
			}
			lines = append(lines, *l)
		}
	}
	if opts.Tail >= 0 && len(lines) > opts.Tail {
		lines = lines[len(lines)-opts.Tail:]
	}
	return lines, nil
}

// Follow writes the messages of entries appended to the log at path from
// byte offset off of the current file on, following rotation, until ctx
// ends or done reports true after the file was read to its end.
func Follow(ctx context.Context, path string, off int64, w io.Writer, done func() bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var pending []byte
	final, drained := false, false
	var quiet time.Time
	for {
		chunk, err := br.ReadBytes('\n')
		pending = append(pending, chunk...)
		if len(chunk) > 0 {
			quiet = time.Now()
		}
		if err == nil {
			_, _, isPartial, msg, perr := ParseEntry(bytes.TrimSuffix(pending, []byte{'\n'}))
			if perr != nil {
				// A raw log line: as it is.
				msg, isPartial = append([]byte(nil), bytes.TrimSuffix(pending, []byte{'\n'})...), false
			}
			pending = pending[:0]
			if _, werr := w.Write(msg); werr != nil {
				return werr
			}
			if !isPartial {
				if _, werr := w.Write([]byte{'\n'}); werr != nil {
					return werr
				}
			}
			continue
		}
		if !errors.Is(err, io.EOF) {
			return err
		}
		// At the end: rotated away? Then continue with the new file.
		if st, serr := os.Stat(path); serr == nil {
			cur, _ := f.Stat()
			if cur != nil && !os.SameFile(st, cur) {
				if !drained {
					drained = true // read what came before the rename
					continue
				}
				nf, oerr := os.Open(path)
				if oerr == nil {
					f.Close()
					f = nf
					br.Reset(f)
					drained = false
					continue
				}
			}
		}
		if final {
			// The writer may lag behind the container's end: stop once
			// nothing more came for a moment.
			if time.Since(quiet) > 300*time.Millisecond {
				return nil
			}
		} else if done != nil && done() {
			final, quiet = true, time.Now()
			continue
		}
		wait := 200 * time.Millisecond
		if final {
			wait = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}
