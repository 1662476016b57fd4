package crilog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Defaults of the kubelet's containerLogMaxSize and containerLogMaxFiles.
const (
	DefaultMaxSize  = 10 << 20
	DefaultMaxFiles = 5
)

// maxLine is the longest chunk written as one entry; longer lines are
// split into partial (P) entries.
const maxLine = 16 << 10

// Writer appends CRI log entries to a file, rotating it by size. It is
// safe for concurrent use by the streams of one container.
type Writer struct {
	mu       sync.Mutex
	path     string
	maxSize  int64
	maxFiles int
	f        *os.File
	size     int64
	now      func() time.Time
}

// NewWriter opens (appending to) the log file at path. maxSize <= 0 and
// maxFiles < 1 take the defaults; maxFiles counts the current file.
func NewWriter(path string, maxSize int64, maxFiles int) (*Writer, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if maxFiles < 1 {
		maxFiles = DefaultMaxFiles
	}
	w := &Writer{path: path, maxSize: maxSize, maxFiles: maxFiles, now: time.Now}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	w.f, w.size = f, st.Size()
	return nil
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}

// Entry writes one entry: stream ("stdout" or "stderr"), partial, and the
// message without its newline.
func (w *Writer) Entry(stream string, partial bool, msg []byte) error {
	tag := "F"
	if partial {
		tag = "P"
	}
	var b bytes.Buffer
	b.Grow(len(msg) + 48)
	b.WriteString(w.now().UTC().Format(time.RFC3339Nano))
	b.WriteByte(' ')
	b.WriteString(stream)
	b.WriteByte(' ')
	b.WriteString(tag)
	b.WriteByte(' ')
	b.Write(msg)
	b.WriteByte('\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.size > 0 && w.size+int64(b.Len()) > w.maxSize {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	n, err := w.f.Write(b.Bytes())
	w.size += int64(n)
	return err
}

// rotate shifts <path>.i to <path>.i+1 (dropping the oldest) and starts a
// new <path>.
func (w *Writer) rotate() error {
	if err := w.f.Close(); err != nil {
		return err
	}
	if w.maxFiles == 1 {
		if err := os.Remove(w.path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return w.open()
	}
	_ = os.Remove(w.path + "." + strconv.Itoa(w.maxFiles-1))
	for i := w.maxFiles - 2; i >= 1; i-- {
		if err := os.Rename(w.path+"."+strconv.Itoa(i), w.path+"."+strconv.Itoa(i+1)); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if err := os.Rename(w.path, w.path+".1"); err != nil && !os.IsNotExist(err) {
		return err
	}
	return w.open()
}

// Copy writes what r yields as entries of stream until r ends.
func (w *Writer) Copy(stream string, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			if werr := w.Entry(stream, false, line[:len(line)-1]); werr != nil {
				return werr
			}
		case errors.Is(err, bufio.ErrBufferFull):
			if werr := w.Entry(stream, true, line); werr != nil {
				return werr
			}
		case len(line) > 0:
			// The last line has no newline: it is still a full line.
			if werr := w.Entry(stream, false, line); werr != nil {
				return werr
			}
			return ignoreEOF(err)
		default:
			return ignoreEOF(err)
		}
	}
}

func ignoreEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// Driver arguments in the log URI (the shim passes each query key and its
// value as two arguments, in no particular order).
const (
	argPath     = "berth-log"
	argMaxSize  = "berth-log-max-size"
	argMaxFiles = "berth-log-max-files"
)

// URI returns the containerd log URI that makes the shim run exe as the
// log driver writing to path.
func URI(exe, path string, maxSize int64, maxFiles int) *url.URL {
	q := url.Values{}
	q.Set(argPath, path)
	q.Set(argMaxSize, strconv.FormatInt(maxSize, 10))
	q.Set(argMaxFiles, strconv.Itoa(maxFiles))
	return &url.URL{Scheme: "binary", Path: exe, RawQuery: q.Encode()}
}

// IsDriver reports whether this process was started by a shim as berth's
// log driver.
func IsDriver() bool {
	if os.Getenv("CONTAINER_ID") == "" || os.Getenv("CONTAINER_NAMESPACE") == "" {
		return false
	}
	for _, a := range os.Args[1:] {
		if a == argPath {
			return true
		}
	}
	return false
}

// DriverMain runs the log driver: it copies file descriptors 3 (stdout)
// and 4 (stderr) into the log file named by its arguments, after closing
// descriptor 5 to tell the shim it is ready, and returns the exit code
// once both streams end. It keeps its memory small: one thread for Go
// code, an eager garbage collector.
func DriverMain() int {
	runtime.GOMAXPROCS(1)
	// The shim sends SIGTERM when it closes the container's streams; the
	// driver ends on its own once it has written what they still held
	// (the shim kills it if that takes too long).
	signal.Ignore(syscall.SIGTERM)
	debug.SetGCPercent(20)
	debug.SetMemoryLimit(4 << 20)
	args := map[string]string{}
	for i := 1; i+1 < len(os.Args); i += 2 {
		args[os.Args[i]] = os.Args[i+1]
	}
	maxSize, _ := strconv.ParseInt(args[argMaxSize], 10, 64)
	maxFiles, _ := strconv.Atoi(args[argMaxFiles])
	w, err := NewWriter(args[argPath], maxSize, maxFiles)
	ready := os.NewFile(5, "ready")
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth log driver: %v\n", err)
		ready.Close()
		return 1
	}
	defer w.Close()
	stdout, stderr := os.NewFile(3, "stdout"), os.NewFile(4, "stderr")
	if err := ready.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "berth log driver: ready: %v\n", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, s := range []struct {
		name string
		f    *os.File
	}{{"stdout", stdout}, {"stderr", stderr}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Copy(s.name, s.f); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "berth log driver: %v\n", firstErr)
		return 1
	}
	return 0
}
