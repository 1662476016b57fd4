package crilog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The log daemon serves one shim group: its directory holds
//
//	run.lock       held (flock) by the running daemon, for its life
//	start.lock     serializes starting the daemon and its exit when idle
//	daemon.log     the daemon's own errors
//	streams/ID.json       a container's registration (Stream, JSON)
//	streams/ID.attached   the shim has opened the FIFOs (Attach)
//	streams/ID.stdout     the FIFOs the container's shim writes its
//	streams/ID.stderr     stdout and stderr to
//
// The daemon opens each registered FIFO for reading (and, until the shim
// has opened it, see Attach, for writing too, so that it does not see an
// end before the shim comes) and writes what it reads to the container's
// log; when the shim closes a FIFO (the container's output ended) the
// daemon reads it to its end and lets the log go. A registration removed
// (the container's task is deleted) is read to its end, then closed. A daemon started again (after a crash or a kill) finds the
// registrations and goes on reading where the previous one stopped: the
// FIFOs stay open in the shims while their containers run, so what was
// written meanwhile waits in them (a container blocks only once its pipe
// is full).
const (
	daemonArg     = "berth-log-daemon"
	runLock       = "run.lock"
	startLock     = "start.lock"
	daemonLog     = "daemon.log"
	streamsDir    = "streams"
	pipeSize      = 1 << 20 // bytes a FIFO buffers while no daemon reads
	idleExit      = 10 * time.Second
	rescanEvery   = 10 * time.Second
	drainDeadline = 200 * time.Millisecond
)

// Stream is one container's registration with its group's log daemon.
type Stream struct {
	// Path is the container's log file; MaxSize and MaxFiles bound it.
	Path     string `json:"path"`
	MaxSize  int64  `json:"maxSize"`
	MaxFiles int    `json:"maxFiles"`
}

// Register makes the FIFOs of container id in the daemon directory dir and
// records st, replacing an earlier registration of id; it returns the
// FIFOs' paths for the shim. The daemon opens them once it sees the
// registration (until then, the shim's open waits).
func Register(dir, id string, st Stream) (stdout, stderr string, err error) {
	sd := filepath.Join(dir, streamsDir)
	if err := os.MkdirAll(sd, 0o700); err != nil {
		return "", "", err
	}
	if err := Unregister(dir, id); err != nil {
		return "", "", err
	}
	base := filepath.Join(sd, id)
	for _, f := range []string{base + ".stdout", base + ".stderr"} {
		if err := unix.Mkfifo(f, 0o600); err != nil {
			return "", "", fmt.Errorf("make fifo %s: %w", f, err)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", "", err
	}
	tmp := base + ".json.tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", "", err
	}
	if err := os.Rename(tmp, base+".json"); err != nil {
		return "", "", err
	}
	return base + ".stdout", base + ".stderr", nil
}

// Unregister removes the registration of container id: the daemon reads
// what its FIFOs still hold and closes them. Nothing registered is no
// error.
func Unregister(dir, id string) error {
	base := filepath.Join(dir, streamsDir, id)
	for _, f := range []string{base + ".json", base + ".attached", base + ".stdout", base + ".stderr"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Attach records that the shim of container id has opened its FIFOs (its
// task is created): the daemon stops holding them open for writing, so
// the container's log ends, and is let go, when the shim closes them.
func Attach(dir, id string) error {
	return os.WriteFile(filepath.Join(dir, streamsDir, id+".attached"), nil, 0o600)
}

// Registered reports whether container id has a registration in dir.
func Registered(dir, id string) bool {
	_, err := os.Stat(filepath.Join(dir, streamsDir, id+".json"))
	return err == nil
}

// EnsureDaemon starts the log daemon of dir, running exe (berth-log, or a
// program that calls DriverMain when IsDriver), unless one runs. It
// returns once the daemon holds its lock and has opened the registered
// FIFOs. The daemon is a session of its own, so it outlives the caller.
func EnsureDaemon(exe, dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, streamsDir), 0o700); err != nil {
		return err
	}
	sl, err := lockFile(filepath.Join(dir, startLock), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer sl.Close()
	if running(dir) {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(dir, daemonLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	p, err := os.StartProcess(exe, []string{exe, daemonArg, dir}, &os.ProcAttr{
		Dir:   "/",
		Files: []*os.File{null, logf, logf, w},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	w.Close()
	if err != nil {
		return fmt.Errorf("start log daemon: %w", err)
	}
	// The daemon closes descriptor 3 when it is ready, or exits.
	done := make(chan struct{})
	go func() {
		var b [1]byte
		r.Read(b[:])
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("log daemon %s did not start within 10s", dir)
	}
	go p.Wait() // reaped when it exits while this process runs
	if !running(dir) {
		return fmt.Errorf("log daemon %s exited at start (see %s)", dir, filepath.Join(dir, daemonLog))
	}
	return nil
}

// running reports whether a daemon holds dir's run lock.
func running(dir string) bool {
	f, err := os.OpenFile(filepath.Join(dir, runLock), os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return true
	}
	return false
}

func lockFile(path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// IsDaemon reports whether this process was started as a log daemon.
func IsDaemon() bool { return len(os.Args) == 3 && os.Args[1] == daemonArg }

// daemonMain runs the log daemon of the directory in os.Args[2] until it
// has had no registration for a while, its directory is removed, or it is
// told to stop (SIGTERM, SIGINT); it returns the exit code.
func daemonMain() int {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(20)
	debug.SetMemoryLimit(4 << 20)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	return runDaemon(os.Args[2], os.NewFile(3, "ready"), stop)
}

// runDaemon serves dir until stop receives, dir is removed or it was idle
// long enough; it closes ready once it holds the run lock and has opened
// the registered FIFOs.
func runDaemon(dir string, ready io.Closer, stop <-chan os.Signal) int {
	d := &daemon{dir: dir, streams: map[string]*stream{}}
	defer ready.Close()
	rl, err := lockFile(filepath.Join(d.dir, runLock), unix.LOCK_EX|unix.LOCK_NB)
	if err != nil {
		// Another daemon serves the directory.
		return 0
	}
	defer rl.Close()
	changes, err := watch(filepath.Join(d.dir, streamsDir))
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth log daemon %s: %v\n", d.dir, err)
		return 1
	}
	d.scan()
	ready.Close()
	idleSince := time.Now()
	tick := time.NewTicker(rescanEvery)
	defer tick.Stop()
	for {
		// A wake-up looks at the containers whose files changed; a tick
		// looks at every registration, as a safety net.
		full := false
		select {
		case <-stop:
			d.closeAll()
			return 0
		case _, ok := <-changes.wake:
			if !ok {
				d.closeAll() // the directory is gone
				return 0
			}
		case <-tick.C:
			full = true
		}
		if _, err := os.Stat(filepath.Join(d.dir, streamsDir)); err != nil {
			d.closeAll()
			return 0
		}
		ids, all := changes.take()
		var open int
		if full || all {
			open = d.scan()
		} else {
			open = d.update(ids)
		}
		if open > 0 {
			idleSince = time.Now()
			continue
		}
		if time.Since(idleSince) < idleExit {
			continue
		}
		// Idle: exit, unless a registration arrives meanwhile (whoever
		// registers takes the start lock before looking for a daemon).
		sl, err := lockFile(filepath.Join(d.dir, startLock), unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			continue
		}
		if d.scan() == 0 {
			d.closeAll()
			return 0
		}
		sl.Close()
		idleSince = time.Now()
	}
}

type daemon struct {
	dir     string
	mu      sync.Mutex
	streams map[string]*stream // by container ID
}

// stream is a registered container: its two FIFOs and its log writer.
type stream struct {
	files []*os.File
	// holds are the FIFOs opened for writing too, until the shim has
	// opened them (Attach): without a writer, a read sees the end.
	holds []*os.File
	w     *Writer
	done  chan struct{}
}

// release lets go of the stream's own write ends: the end of the stream
// is then the shim closing its own.
func (s *stream) release() {
	for _, f := range s.holds {
		f.Close()
	}
	s.holds = nil
}

// scan opens the registrations not open yet (or registered again with new
// FIFOs) and closes those removed; it returns how many are open.
func (d *daemon) scan() int {
	ents, _ := os.ReadDir(filepath.Join(d.dir, streamsDir))
	seen := map[string]bool{}
	var gone []*stream
	for _, e := range ents {
		if id, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			seen[id] = true
			gone = d.sync(id, true, gone)
		}
	}
	for id, s := range d.streams {
		if !seen[id] {
			gone = append(gone, s)
			delete(d.streams, id)
		}
	}
	closeStreams(gone...)
	return len(d.streams)
}

// update does what scan does for the containers ids only (those whose
// files changed); it returns how many registrations are open.
func (d *daemon) update(ids map[string]bool) int {
	var gone []*stream
	for id := range ids {
		_, err := os.Stat(filepath.Join(d.dir, streamsDir, id+".json"))
		gone = d.sync(id, err == nil, gone)
	}
	closeStreams(gone...)
	return len(d.streams)
}

// sync brings container id's stream in line with its registration: opens
// it when registered and not open (or open on FIFOs that were replaced,
// after reading the old ones to their end), lets go of the daemon's write
// ends once the shim has attached, and appends to gone, for the caller to
// close, a stream no longer registered.
func (d *daemon) sync(id string, registered bool, gone []*stream) []*stream {
	base := filepath.Join(d.dir, streamsDir, id)
	if s := d.streams[id]; s != nil {
		if registered && s.current(base) {
			if len(s.holds) > 0 && attached(base) {
				s.release()
			}
			return gone
		}
		delete(d.streams, id)
		if !registered {
			return append(gone, s)
		}
		// Registered again: what the old FIFOs hold goes into the log
		// before what the new ones bring.
		closeStreams(s)
	}
	if !registered {
		return gone
	}
	s, err := openStream(base, attached(base))
	if errors.Is(err, os.ErrNotExist) {
		return gone // unregistered meanwhile
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "berth log daemon: %s: %v\n", id, err)
		return gone
	}
	d.streams[id] = s
	return gone
}

func (d *daemon) closeAll() {
	var all []*stream
	for id, s := range d.streams {
		all = append(all, s)
		delete(d.streams, id)
	}
	closeStreams(all...)
}

// attached reports whether the shim has opened the FIFOs at base.
func attached(base string) bool {
	_, err := os.Stat(base + ".attached")
	return err == nil
}

// openStream opens a registration's FIFOs and copies them into its log
// until the shim closes them (the container's output ended) or the
// stream is closed. Before the shim has opened them, the daemon holds
// them open for writing too.
func openStream(base string, attached bool) (*stream, error) {
	b, err := os.ReadFile(base + ".json")
	if err != nil {
		return nil, err
	}
	var st Stream
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	w, err := NewWriter(st.Path, st.MaxSize, st.MaxFiles)
	if err != nil {
		return nil, err
	}
	s := &stream{w: w, done: make(chan struct{})}
	var wg sync.WaitGroup
	for _, name := range []string{"stdout", "stderr"} {
		f, err := os.OpenFile(base+"."+name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			closeStreams(s)
			return nil, err
		}
		_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, pipeSize)
		s.files = append(s.files, f)
		if !attached {
			h, err := os.OpenFile(base+"."+name, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				closeStreams(s)
				return nil, err
			}
			s.holds = append(s.holds, h)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Copy(name, f); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) {
				fmt.Fprintf(os.Stderr, "berth log daemon: %s %s: %v\n", filepath.Base(base), name, err)
			}
		}()
	}
	go func() {
		wg.Wait()
		w.Close()
		close(s.done)
	}()
	return s, nil
}

// current reports whether the stream's FIFOs are still the files at base.
func (s *stream) current(base string) bool {
	for i, name := range []string{"stdout", "stderr"} {
		st, err := os.Stat(base + "." + name)
		if err != nil || i >= len(s.files) {
			return false
		}
		fst, err := s.files[i].Stat()
		if err != nil || !os.SameFile(st, fst) {
			return false
		}
	}
	return true
}

// closeStreams reads what the streams' FIFOs still hold (for a moment,
// all at once), then closes them and their logs.
func closeStreams(ss ...*stream) {
	deadline := time.Now().Add(drainDeadline)
	for _, s := range ss {
		s.release()
		for _, f := range s.files {
			_ = f.SetReadDeadline(deadline)
		}
	}
	for _, s := range ss {
		if len(s.files) == 2 {
			<-s.done
		}
		for _, f := range s.files {
			f.Close()
		}
	}
}

// watcher tells which containers' files in a directory were created,
// removed or renamed.
type watcher struct {
	// wake receives when there are changes to take; it is closed when
	// the directory itself is removed.
	wake chan struct{}
	mu   sync.Mutex
	ids  map[string]bool
	// all: the kernel's event queue overflowed, so which containers
	// changed is unknown.
	all bool
}

// take returns the containers whose files changed since the last take,
// or all=true when any may have.
func (w *watcher) take() (ids map[string]bool, all bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids, all = w.ids, w.all
	w.ids, w.all = map[string]bool{}, false
	return ids, all
}

// streamID is the container a file of the streams directory belongs to.
func streamID(name string) string {
	for _, suffix := range []string{".json.tmp", ".json", ".attached", ".stdout", ".stderr"} {
		if id, ok := strings.CutSuffix(name, suffix); ok {
			return id
		}
	}
	return name
}

// watch watches dir's entries being created, removed or renamed.
func watch(dir string) (*watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_DELETE|unix.IN_MOVED_FROM|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "inotify")
	w := &watcher{wake: make(chan struct{}, 1), ids: map[string]bool{}}
	go func() {
		defer close(w.wake)
		buf := make([]byte, 64<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			w.mu.Lock()
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if ev.Mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
					w.mu.Unlock()
					return
				}
				name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				if i := bytes.IndexByte(name, 0); i >= 0 {
					name = name[:i]
				}
				switch {
				case ev.Mask&unix.IN_Q_OVERFLOW != 0 || len(name) == 0:
					w.all = true
				default:
					w.ids[streamID(string(name))] = true
				}
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}()
	return w, nil
}
